//! The action list of a rule: `"id:1,phase:2,t:none,setvar:'tx.a=+1',..."`.
//!
//! Actions are split on commas outside single quotes; a value in single
//! quotes loses its quotes (`\'` inside is a quote). Each action becomes a
//! typed [`Action`]; an unknown action is an error rather than silently
//! ignored, so a rule never means less than its author wrote.

use crate::macros::Template;
use crate::transforms::Transform;

/// What a rule does once it (and its chain) matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disruptive {
    /// Continue with the next rule.
    Pass,
    /// Stop the transaction (403 unless `status` says otherwise).
    Deny,
    /// Use the phase's `SecDefaultAction` disruptive action.
    Block,
    /// Stop evaluating rules and let the request through.
    Allow,
    /// Close the connection (treated as deny).
    Drop,
}

/// A `setvar` action.
#[derive(Debug, Clone, PartialEq)]
pub struct SetVar {
    /// Collection (only `tx` is stored; others are accepted and ignored).
    pub collection: String,
    /// Variable name (may contain macros), lower-cased when stored.
    pub name: Template,
    /// What to do.
    pub op: SetOp,
}

/// The assignment form of a `setvar`.
#[derive(Debug, Clone, PartialEq)]
pub enum SetOp {
    /// `tx.a=v` (or `tx.a`, which sets 1).
    Set(Template),
    /// `tx.a=+v`.
    Add(Template),
    /// `tx.a=-v`.
    Sub(Template),
    /// `!tx.a`.
    Delete,
}

/// A `ctl:` action: a per-transaction configuration change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ctl {
    /// `ruleEngine=On|Off|DetectionOnly`.
    RuleEngine(EngineMode),
    /// `ruleRemoveById=ID` or `ID-ID`.
    RuleRemoveById(u32, u32),
    /// `ruleRemoveByTag=TAG`.
    RuleRemoveByTag(String),
    /// `ruleRemoveTargetById=ID;TARGET`.
    RuleRemoveTargetById(u32, String),
    /// `ruleRemoveTargetByTag=TAG;TARGET`.
    RuleRemoveTargetByTag(String, String),
    /// `forceRequestBodyVariable=On|Off`.
    ForceRequestBodyVariable(bool),
    /// `requestBodyProcessor=URLENCODED|JSON|XML|MULTIPART`.
    RequestBodyProcessor(String),
    /// `requestBodyAccess=On|Off`.
    RequestBodyAccess(bool),
    /// `auditEngine`, `auditLogParts`: accepted, no effect (the filter
    /// writes its own audit line).
    Audit,
}

/// The rule engine mode (`SecRuleEngine` / `ctl:ruleEngine`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EngineMode {
    /// Rules run and disruptive actions apply.
    #[default]
    On,
    /// Rules run and are logged, nothing is blocked.
    DetectionOnly,
    /// No rules run.
    Off,
}

impl EngineMode {
    fn parse(v: &str) -> Result<Self, String> {
        match v.to_ascii_lowercase().as_str() {
            "on" => Ok(EngineMode::On),
            "off" => Ok(EngineMode::Off),
            "detectiononly" => Ok(EngineMode::DetectionOnly),
            _ => Err(format!("`{v}` is not On, Off or DetectionOnly")),
        }
    }
}

/// One parsed action.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// `id:N`.
    Id(u32),
    /// `phase:1..5` (or `request`=2, `response`=4, `logging`=5).
    Phase(u8),
    /// `chain`: the next rule is part of this one.
    Chain,
    /// `capture`: regex groups go to `TX.0`..`TX.9`.
    Capture,
    /// `multiMatch`: the operator runs after every transformation.
    MultiMatch,
    /// A disruptive action.
    Disruptive(Disruptive),
    /// `log` (true) / `nolog` (false).
    Log(bool),
    /// `msg:'...'`.
    Msg(Template),
    /// `logdata:'...'`.
    LogData(Template),
    /// `severity:...`.
    Severity(String),
    /// `tag:...`.
    Tag(String),
    /// `t:name`.
    Transform(Transform),
    /// `t:none`: drop the transformations inherited so far.
    TransformNone,
    /// `setvar:...`.
    SetVar(SetVar),
    /// `skipAfter:MARKER`.
    SkipAfter(String),
    /// `skip:N`.
    Skip(u32),
    /// `ctl:...`.
    Ctl(Ctl),
    /// `status:N`.
    Status(u16),
    /// Metadata and logging switches with no effect on matching
    /// (`ver`, `rev`, `maturity`, `accuracy`, `auditlog`, `noauditlog`,
    /// `initcol`, `expirevar`).
    Meta,
}

/// Splits an action list on commas outside single quotes.
pub fn split_actions(list: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = list.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if quoted && chars.peek() == Some(&'\'') => {
                cur.push('\\');
                cur.push('\'');
                chars.next();
            }
            '\'' => {
                quoted = !quoted;
                cur.push(c);
            }
            ',' if !quoted => {
                let t = cur.trim();
                if !t.is_empty() {
                    out.push(t.to_string());
                }
                cur.clear();
            }
            _ => cur.push(c),
        }
    }
    let t = cur.trim();
    if !t.is_empty() {
        out.push(t.to_string());
    }
    out
}

fn unquote(v: &str) -> String {
    let v = v.trim();
    let inner = v
        .strip_prefix('\'')
        .and_then(|s| s.strip_suffix('\''))
        .unwrap_or(v);
    inner.replace("\\'", "'")
}

/// Parses an action list into actions.
pub fn parse_actions(list: &str) -> Result<Vec<Action>, String> {
    split_actions(list)
        .iter()
        .map(|a| parse_action(a))
        .collect()
}

/// Parses one `name[:value]` action.
pub fn parse_action(text: &str) -> Result<Action, String> {
    let (name, value) = match text.split_once(':') {
        Some((n, v)) => (n.trim(), Some(unquote(v))),
        None => (text.trim(), None),
    };
    let need = |what: &str| -> Result<String, String> {
        value
            .clone()
            .ok_or_else(|| format!("action `{name}` needs a value ({what})"))
    };
    Ok(match name.to_ascii_lowercase().as_str() {
        "id" => {
            let v = need("a rule number")?;
            Action::Id(
                v.parse()
                    .map_err(|_| format!("rule id `{v}` is not a positive number"))?,
            )
        }
        "phase" => {
            let v = need("1-5")?;
            Action::Phase(match v.as_str() {
                "request" => 2,
                "response" => 4,
                "logging" => 5,
                n => match n.parse::<u8>() {
                    Ok(p @ 1..=5) => p,
                    _ => return Err(format!("phase `{v}` is not 1-5")),
                },
            })
        }
        "chain" => Action::Chain,
        "capture" => Action::Capture,
        "multimatch" => Action::MultiMatch,
        "pass" => Action::Disruptive(Disruptive::Pass),
        "deny" => Action::Disruptive(Disruptive::Deny),
        "block" => Action::Disruptive(Disruptive::Block),
        "allow" => Action::Disruptive(Disruptive::Allow),
        "drop" => Action::Disruptive(Disruptive::Drop),
        "log" => Action::Log(true),
        "nolog" => Action::Log(false),
        "msg" => Action::Msg(Template::parse(&need("a message")?)),
        "logdata" => Action::LogData(Template::parse(&need("log text")?)),
        "severity" => Action::Severity(need("a severity")?),
        "tag" => Action::Tag(need("a tag")?),
        "t" => {
            let v = need("a transformation name")?;
            if v.eq_ignore_ascii_case("none") {
                Action::TransformNone
            } else {
                Action::Transform(Transform::parse(&v)?)
            }
        }
        "setvar" => Action::SetVar(parse_setvar(&need("`tx.name=value`")?)?),
        "skipafter" => Action::SkipAfter(need("a SecMarker name")?),
        "skip" => {
            let v = need("a rule count")?;
            Action::Skip(
                v.parse()
                    .map_err(|_| format!("skip count `{v}` is not a number"))?,
            )
        }
        "ctl" => Action::Ctl(parse_ctl(&need("`option=value`")?)?),
        "status" => {
            let v = need("an HTTP status")?;
            Action::Status(
                v.parse()
                    .map_err(|_| format!("status `{v}` is not a number"))?,
            )
        }
        "ver" | "rev" | "maturity" | "accuracy" | "auditlog" | "noauditlog" | "initcol"
        | "expirevar" => Action::Meta,
        other => return Err(format!("unknown action `{other}`")),
    })
}

/// Parses the value of a `setvar` action.
pub fn parse_setvar(text: &str) -> Result<SetVar, String> {
    let text = text.trim();
    let (delete, text) = match text.strip_prefix('!') {
        Some(t) => (true, t),
        None => (false, text),
    };
    let (target, value) = match text.split_once('=') {
        Some((t, v)) => (t.trim(), Some(v)),
        None => (text, None),
    };
    let (collection, name) = target
        .split_once('.')
        .ok_or_else(|| format!("setvar target `{target}` is not `collection.name`"))?;
    if name.is_empty() {
        return Err(format!("setvar target `{target}` has no variable name"));
    }
    let op = if delete {
        SetOp::Delete
    } else {
        match value {
            None => SetOp::Set(Template::parse("1")),
            Some(v) => {
                if let Some(r) = v.strip_prefix('+') {
                    SetOp::Add(Template::parse(r))
                } else if let Some(r) = v.strip_prefix('-') {
                    SetOp::Sub(Template::parse(r))
                } else {
                    SetOp::Set(Template::parse(v))
                }
            }
        }
    };
    Ok(SetVar {
        collection: collection.to_ascii_lowercase(),
        name: Template::parse(name),
        op,
    })
}

fn on_off(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("`{v}` is not On or Off")),
    }
}

/// Parses an id or an `a-b` id range.
pub fn parse_id_range(v: &str) -> Result<(u32, u32), String> {
    let v = v.trim();
    let bad = || format!("`{v}` is not a rule id or id range");
    match v.split_once('-') {
        Some((a, b)) => Ok((
            a.trim().parse().map_err(|_| bad())?,
            b.trim().parse().map_err(|_| bad())?,
        )),
        None => {
            let n = v.parse().map_err(|_| bad())?;
            Ok((n, n))
        }
    }
}

/// Parses the value of a `ctl` action.
pub fn parse_ctl(text: &str) -> Result<Ctl, String> {
    let (opt, value) = text
        .split_once('=')
        .ok_or_else(|| format!("ctl `{text}` is not `option=value`"))?;
    let value = value.trim();
    let split_target = |v: &str| -> Result<(String, String), String> {
        v.split_once(';')
            .map(|(a, b)| (a.trim().to_string(), b.trim().to_string()))
            .ok_or_else(|| format!("ctl value `{v}` is not `which;TARGET`"))
    };
    Ok(match opt.trim().to_ascii_lowercase().as_str() {
        "ruleengine" => Ctl::RuleEngine(EngineMode::parse(value)?),
        "ruleremovebyid" => {
            let (a, b) = parse_id_range(value)?;
            Ctl::RuleRemoveById(a, b)
        }
        "ruleremovebytag" => Ctl::RuleRemoveByTag(value.to_string()),
        "ruleremovetargetbyid" => {
            let (id, target) = split_target(value)?;
            let id = id.parse().map_err(|_| format!("`{id}` is not a rule id"))?;
            Ctl::RuleRemoveTargetById(id, target)
        }
        "ruleremovetargetbytag" => {
            let (tag, target) = split_target(value)?;
            Ctl::RuleRemoveTargetByTag(tag, target)
        }
        "forcerequestbodyvariable" => Ctl::ForceRequestBodyVariable(on_off(value)?),
        "requestbodyprocessor" => Ctl::RequestBodyProcessor(value.to_ascii_uppercase()),
        "requestbodyaccess" => Ctl::RequestBodyAccess(on_off(value)?),
        "auditengine" | "auditlogparts" => Ctl::Audit,
        other => return Err(format!("unsupported ctl option `{other}`")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_outside_quotes() {
        assert_eq!(
            split_actions("id:1, msg:'a, b',t:none"),
            vec!["id:1", "msg:'a, b'", "t:none"]
        );
    }

    #[test]
    fn parses_common_actions() {
        let a = parse_actions(
            "id:942100,phase:request,block,capture,t:none,t:urlDecodeUni,skipAfter:END",
        )
        .unwrap();
        assert_eq!(a[0], Action::Id(942100));
        assert_eq!(a[1], Action::Phase(2));
        assert_eq!(a[2], Action::Disruptive(Disruptive::Block));
        assert_eq!(a[4], Action::TransformNone);
        assert_eq!(a[6], Action::SkipAfter("END".into()));
    }

    #[test]
    fn setvar_forms() {
        let s = parse_setvar("'tx.score=+%{tx.critical}'".trim_matches('\'')).unwrap();
        assert!(matches!(s.op, SetOp::Add(_)));
        assert!(matches!(parse_setvar("!tx.a").unwrap().op, SetOp::Delete));
        assert!(matches!(parse_setvar("tx.a=-5").unwrap().op, SetOp::Sub(_)));
        assert!(matches!(parse_setvar("tx.a").unwrap().op, SetOp::Set(_)));
        assert!(parse_setvar("nodot").is_err());
    }

    #[test]
    fn ctl_forms() {
        assert_eq!(
            parse_ctl("ruleRemoveById=10-20").unwrap(),
            Ctl::RuleRemoveById(10, 20)
        );
        assert_eq!(
            parse_ctl("ruleRemoveTargetById=942100;ARGS:pwd").unwrap(),
            Ctl::RuleRemoveTargetById(942100, "ARGS:pwd".into())
        );
        assert_eq!(
            parse_ctl("ruleEngine=DetectionOnly").unwrap(),
            Ctl::RuleEngine(EngineMode::DetectionOnly)
        );
        assert!(parse_ctl("bogus=1").is_err());
    }

    #[test]
    fn unknown_action_is_refused() {
        assert!(parse_action("frobnicate")
            .unwrap_err()
            .contains("frobnicate"));
        assert!(parse_action("phase:9").is_err());
    }
}
