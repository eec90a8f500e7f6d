//! Directives: `SecRule`, `SecAction`, `SecMarker`, `SecDefaultAction`,
//! `SecRuleRemoveById/ByTag`, `SecRuleUpdateTargetById/ByTag`,
//! `SecRuleEngine`, and server settings that are accepted and ignored
//! (the plugin configuration owns body limits and logging).

use super::actions::{parse_actions, parse_id_range, Action, EngineMode};
use super::lexer::{logical_lines, words};
use crate::error::RuleError;

/// A `SecRule` or `SecAction` as written.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleText {
    /// The target list (`ARGS|!ARGS:x`); empty for `SecAction`.
    pub targets: String,
    /// The operator with its argument (`@rx ...`, `!@eq 1`); empty for
    /// `SecAction`.
    pub operator: String,
    /// Parsed actions.
    pub actions: Vec<Action>,
    /// Source name.
    pub source: String,
    /// Line the directive starts on.
    pub line: usize,
}

/// One directive.
#[derive(Debug, Clone, PartialEq)]
pub enum Directive {
    /// `SecRule` (or `SecAction`, with an unconditional operator).
    Rule(RuleText),
    /// `SecMarker NAME`.
    Marker(String),
    /// `SecDefaultAction "..."`.
    DefaultAction(Vec<Action>, usize),
    /// `SecRuleRemoveById 1 2-5`.
    RemoveById(Vec<(u32, u32)>),
    /// `SecRuleRemoveByTag TAG`.
    RemoveByTag(String),
    /// `SecRuleUpdateTargetById ID TARGETS`.
    UpdateTargetById(Vec<(u32, u32)>, String),
    /// `SecRuleUpdateTargetByTag TAG TARGETS`.
    UpdateTargetByTag(String, String),
    /// `SecRuleEngine On|Off|DetectionOnly`.
    Engine(EngineMode),
}

/// Server settings that do not change rule semantics here.
const IGNORED: &[&str] = &[
    "seccomponentsignature",
    "secrequestbodyaccess",
    "secresponsebodyaccess",
    "secrequestbodylimit",
    "secrequestbodynofileslimit",
    "secrequestbodyinmemorylimit",
    "secrequestbodylimitaction",
    "secresponsebodylimit",
    "secresponsebodylimitaction",
    "secresponsebodymimetype",
    "secauditengine",
    "secauditlog",
    "secauditlogparts",
    "secauditlogtype",
    "secauditlogformat",
    "secauditlogrelevantstatus",
    "secauditlogstoragedir",
    "secdebuglog",
    "secdebugloglevel",
    "sectmpdir",
    "secdatadir",
    "secargumentseparator",
    "seccookieformat",
    "secunicodemapfile",
    "secstatusengine",
    "secpcrematchlimit",
    "secpcrematchlimitrecursion",
    "seccollectiontimeout",
    "secuploaddir",
    "secuploadkeepfiles",
    "secuploadfilemode",
    "secuploadfilelimit",
];

/// Parses a whole rule source. `source` names it in errors.
pub fn parse(source: &str, text: &str) -> Result<Vec<Directive>, RuleError> {
    let mut out = Vec::new();
    for ll in logical_lines(text) {
        let err = |reason: String| RuleError::new(source, ll.line, reason);
        let w = words(&ll.text).map_err(err)?;
        let Some(name) = w.first() else { continue };
        let arg = |i: usize, what: &str| -> Result<&String, RuleError> {
            w.get(i)
                .ok_or_else(|| err(format!("`{name}` needs {what}")))
        };
        let lname = name.to_ascii_lowercase();
        let d = match lname.as_str() {
            "secrule" => {
                let targets = arg(1, "targets")?.clone();
                let operator = arg(2, "an operator")?.clone();
                let actions = match w.get(3) {
                    Some(a) => parse_actions(a).map_err(err)?,
                    None => Vec::new(),
                };
                if w.len() > 4 {
                    return Err(err(format!(
                        "`SecRule` takes 3 arguments, found {} (is a quote missing?)",
                        w.len() - 1
                    )));
                }
                Directive::Rule(RuleText {
                    targets,
                    operator,
                    actions,
                    source: source.to_string(),
                    line: ll.line,
                })
            }
            "secaction" => Directive::Rule(RuleText {
                targets: String::new(),
                operator: String::new(),
                actions: parse_actions(arg(1, "an action list")?).map_err(err)?,
                source: source.to_string(),
                line: ll.line,
            }),
            "secmarker" => Directive::Marker(arg(1, "a marker name")?.clone()),
            "secdefaultaction" => Directive::DefaultAction(
                parse_actions(arg(1, "an action list")?).map_err(err)?,
                ll.line,
            ),
            "secruleremovebyid" => Directive::RemoveById(
                w.iter()
                    .skip(1)
                    .map(|v| parse_id_range(v))
                    .collect::<Result<_, _>>()
                    .map_err(err)?,
            ),
            "secruleremovebytag" => Directive::RemoveByTag(arg(1, "a tag")?.clone()),
            "secruleupdatetargetbyid" => Directive::UpdateTargetById(
                vec![parse_id_range(arg(1, "a rule id")?).map_err(err)?],
                arg(2, "targets")?.clone(),
            ),
            "secruleupdatetargetbytag" => {
                Directive::UpdateTargetByTag(arg(1, "a tag")?.clone(), arg(2, "targets")?.clone())
            }
            "secruleengine" => {
                Directive::Engine(match arg(1, "a mode")?.to_ascii_lowercase().as_str() {
                    "on" => EngineMode::On,
                    "off" => EngineMode::Off,
                    "detectiononly" => EngineMode::DetectionOnly,
                    other => return Err(err(format!("`{other}` is not On, Off or DetectionOnly"))),
                })
            }
            n if IGNORED.contains(&n) => continue,
            _ => return Err(err(format!("unsupported directive `{name}`"))),
        };
        out.push(d);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rule_and_chain() {
        let d = parse(
            "t.conf",
            "SecRule ARGS \"@rx a\" \\\n  \"id:1,phase:2,chain\"\n  SecRule TX:x \"@eq 1\"\nSecMarker END\n",
        )
        .unwrap();
        assert_eq!(d.len(), 3);
        let Directive::Rule(r) = &d[1] else {
            panic!("rule expected")
        };
        assert!(r.actions.is_empty());
        assert_eq!(r.line, 3);
        assert_eq!(d[2], Directive::Marker("END".into()));
    }

    #[test]
    fn removal_and_update_directives() {
        let d = parse(
            "t.conf",
            "SecRuleRemoveById 1 5-9\nSecRuleUpdateTargetById 942100 \"!ARGS:x\"\nSecRuleRemoveByTag attack-sqli\nSecComponentSignature \"x\"\n",
        )
        .unwrap();
        assert_eq!(d[0], Directive::RemoveById(vec![(1, 1), (5, 9)]));
        assert_eq!(
            d[1],
            Directive::UpdateTargetById(vec![(942100, 942100)], "!ARGS:x".into())
        );
        assert_eq!(d.len(), 3);
    }

    #[test]
    fn errors_name_file_and_line() {
        let e = parse("x.conf", "\n\nSecRule ARGS \"@rx a\" \"id:1,bogus\"\n").unwrap_err();
        assert_eq!(e.to_string(), "x.conf:3: unknown action `bogus`");
        let e = parse("x.conf", "SecFoo bar\n").unwrap_err();
        assert!(e.to_string().starts_with("x.conf:1: unsupported directive"));
    }
}
