//! The compiled rule set: directives from every source, in order, turned
//! into rules with compiled targets, operators and transformations, and
//! per-phase lists with `SecMarker`s in place for `skipAfter`.

use crate::error::RuleError;
use crate::macros::Template;
use crate::operators::Operator;
use crate::seclang::actions::{Action, Ctl, Disruptive, EngineMode, SetVar};
use crate::seclang::parser::{self, Directive, RuleText};
use crate::transforms::Transform;
use crate::variables::{parse_targets, VarSpec};
use std::collections::HashMap;

/// One `SecRule` of a chain (the first is the chain starter).
#[derive(Debug, Clone)]
pub struct Link {
    /// Targets, exclusions included (`!ARGS:x`).
    pub targets: Vec<VarSpec>,
    /// The operator; `None` for `SecAction` (always matches).
    pub operator: Option<Operator>,
    /// `!@op`.
    pub negated: bool,
    /// Transformations in order.
    pub transforms: Vec<Transform>,
    /// `multiMatch`.
    pub multi_match: bool,
    /// `capture`.
    pub capture: bool,
    /// `setvar` actions, run when the whole chain matched.
    pub setvars: Vec<SetVar>,
    /// `ctl` actions, run when the whole chain matched.
    pub ctls: Vec<Ctl>,
}

/// A rule: a chain starter and its chained links.
#[derive(Debug, Clone)]
pub struct Rule {
    /// `id`.
    pub id: u32,
    /// Phase 1-5.
    pub phase: u8,
    /// The chain, starter first.
    pub links: Vec<Link>,
    /// The disruptive action.
    pub disruptive: Disruptive,
    /// Whether a match is logged.
    pub log: bool,
    /// `msg`.
    pub msg: Option<Template>,
    /// `logdata`.
    pub logdata: Option<Template>,
    /// `severity`.
    pub severity: Option<String>,
    /// `tag`s.
    pub tags: Vec<String>,
    /// `skipAfter` marker.
    pub skip_after: Option<String>,
    /// `skip` count.
    pub skip: u32,
    /// `status` for a deny.
    pub status: Option<u16>,
    /// Source name and line, for diagnostics.
    pub source: String,
    /// Line of the chain starter.
    pub line: usize,
}

/// An entry of a phase's evaluation list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// Index into [`RuleSet::rules`].
    Rule(usize),
    /// A `SecMarker`.
    Marker(String),
}

/// The defaults `SecDefaultAction` sets for a phase.
#[derive(Debug, Clone)]
struct Defaults {
    disruptive: Disruptive,
    log: bool,
    transforms: Vec<Transform>,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            disruptive: Disruptive::Pass,
            log: true,
            transforms: Vec::new(),
        }
    }
}

/// A loaded, compiled rule set; immutable and shared by all transactions.
#[derive(Debug, Clone)]
pub struct RuleSet {
    /// All rules in definition order (removed ones are dropped).
    pub rules: Vec<Rule>,
    /// Evaluation lists for phases 1-5.
    pub phases: [Vec<Entry>; 5],
    /// What `block` means, per phase.
    pub block_action: [Disruptive; 5],
    /// `SecRuleEngine`, if a source set it.
    pub engine: Option<EngineMode>,
}

/// One rule source: a name for errors and its text.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Source {
    /// File name (or any label).
    pub name: String,
    /// SecLang text.
    pub text: String,
}

fn ranges_contain(ranges: &[(u32, u32)], id: u32) -> bool {
    ranges.iter().any(|&(a, b)| (a..=b).contains(&id))
}

impl RuleSet {
    /// Parses and compiles sources in order; `data_files` maps `.data`
    /// file names to contents for `@pmFromFile`.
    pub fn compile(
        sources: &[Source],
        data_files: &HashMap<String, String>,
    ) -> Result<RuleSet, RuleError> {
        let mut b = Builder {
            data_files,
            rules: Vec::new(),
            removed: Vec::new(),
            entries: Vec::new(),
            defaults: Default::default(),
            open_chain: None,
            engine: None,
        };
        for src in sources {
            for d in parser::parse(&src.name, &src.text)? {
                b.directive(d)?;
            }
            if let Some(i) = b.open_chain.take() {
                let r = b
                    .rules
                    .get(i)
                    .map(|r| (r.source.clone(), r.line))
                    .unwrap_or_default();
                return Err(RuleError::new(
                    &r.0,
                    r.1,
                    "the last rule of the chain is missing (`chain` on the final rule)",
                ));
            }
        }
        Ok(b.finish())
    }

    /// The rule with `id`, if loaded.
    pub fn rule(&self, id: u32) -> Option<&Rule> {
        self.rules.iter().find(|r| r.id == id)
    }
}

struct Builder<'d> {
    data_files: &'d HashMap<String, String>,
    rules: Vec<Rule>,
    removed: Vec<bool>,
    entries: Vec<Entry>,
    defaults: [Defaults; 5],
    open_chain: Option<usize>,
    engine: Option<EngineMode>,
}

impl Builder<'_> {
    fn directive(&mut self, d: Directive) -> Result<(), RuleError> {
        match d {
            Directive::Rule(text) => self.rule(text)?,
            Directive::Marker(name) => self.entries.push(Entry::Marker(name)),
            Directive::DefaultAction(actions, _line) => {
                let mut phase = 2u8;
                let mut d = Defaults::default();
                for a in actions {
                    match a {
                        Action::Phase(p) => phase = p,
                        Action::Disruptive(x) => d.disruptive = x,
                        Action::Log(l) => d.log = l,
                        Action::Transform(t) => d.transforms.push(t),
                        _ => {}
                    }
                }
                if let Some(slot) = self.defaults.get_mut(usize::from(phase) - 1) {
                    *slot = d;
                }
            }
            Directive::RemoveById(ranges) => {
                for (i, r) in self.rules.iter().enumerate() {
                    if ranges_contain(&ranges, r.id) {
                        self.removed[i] = true;
                    }
                }
            }
            Directive::RemoveByTag(tag) => {
                for (i, r) in self.rules.iter().enumerate() {
                    if r.tags.iter().any(|t| t == &tag) {
                        self.removed[i] = true;
                    }
                }
            }
            Directive::UpdateTargetById(ranges, targets) => {
                let specs = self.targets(&targets, None)?;
                for r in self
                    .rules
                    .iter_mut()
                    .filter(|r| ranges_contain(&ranges, r.id))
                {
                    if let Some(first) = r.links.first_mut() {
                        first.targets.extend(specs.iter().cloned());
                    }
                }
            }
            Directive::UpdateTargetByTag(tag, targets) => {
                let specs = self.targets(&targets, None)?;
                for r in self.rules.iter_mut().filter(|r| r.tags.contains(&tag)) {
                    if let Some(first) = r.links.first_mut() {
                        first.targets.extend(specs.iter().cloned());
                    }
                }
            }
            Directive::Engine(m) => self.engine = Some(m),
        }
        Ok(())
    }

    fn targets(&self, text: &str, at: Option<&RuleText>) -> Result<Vec<VarSpec>, RuleError> {
        parse_targets(text).map_err(|e| match at {
            Some(t) => RuleError::new(&t.source, t.line, e),
            None => RuleError::new("SecRuleUpdateTarget", 0, e),
        })
    }

    fn rule(&mut self, text: RuleText) -> Result<(), RuleError> {
        let err = |m: String| RuleError::new(&text.source, text.line, m);
        let targets = if text.targets.is_empty() {
            Vec::new()
        } else {
            self.targets(&text.targets, Some(&text))?
        };
        let (negated, operator) = if text.targets.is_empty() {
            (false, None)
        } else {
            let op = text.operator.trim();
            let (neg, op) = match op.strip_prefix('!') {
                Some(o) => (true, o.trim_start()),
                None => (false, op),
            };
            let (name, arg) = match op.strip_prefix('@') {
                Some(o) => match o.split_once(char::is_whitespace) {
                    Some((n, a)) => (n, a.trim_start()),
                    None => (o, ""),
                },
                None => ("rx", op),
            };
            (
                neg,
                Some(Operator::compile(name, arg, self.data_files).map_err(err)?),
            )
        };
        let chained_to = self.open_chain.take();
        let phase_of_chain = chained_to.and_then(|i| self.rules.get(i)).map(|r| r.phase);
        let phase = text
            .actions
            .iter()
            .find_map(|a| {
                if let Action::Phase(p) = a {
                    Some(*p)
                } else {
                    None
                }
            })
            .or(phase_of_chain)
            .unwrap_or(2);
        let defaults = self
            .defaults
            .get(usize::from(phase) - 1)
            .cloned()
            .unwrap_or_default();
        let mut link = Link {
            targets,
            operator,
            negated,
            transforms: defaults.transforms.clone(),
            multi_match: false,
            capture: false,
            setvars: Vec::new(),
            ctls: Vec::new(),
        };
        let mut rule = Rule {
            id: 0,
            phase,
            links: Vec::new(),
            disruptive: defaults.disruptive,
            log: defaults.log,
            msg: None,
            logdata: None,
            severity: None,
            tags: Vec::new(),
            skip_after: None,
            skip: 0,
            status: None,
            source: text.source.clone(),
            line: text.line,
        };
        let mut has_id = false;
        let mut chain = false;
        for a in text.actions.iter().cloned() {
            match a {
                Action::Id(id) => {
                    rule.id = id;
                    has_id = true;
                }
                Action::Phase(_) | Action::Meta => {}
                Action::Chain => chain = true,
                Action::Capture => link.capture = true,
                Action::MultiMatch => link.multi_match = true,
                Action::Disruptive(d) => rule.disruptive = d,
                Action::Log(l) => rule.log = l,
                Action::Msg(m) => rule.msg = Some(m),
                Action::LogData(m) => rule.logdata = Some(m),
                Action::Severity(s) => rule.severity = Some(s),
                Action::Tag(t) => rule.tags.push(t),
                Action::Transform(t) => link.transforms.push(t),
                Action::TransformNone => link.transforms.clear(),
                Action::SetVar(s) => link.setvars.push(s),
                Action::SkipAfter(m) => rule.skip_after = Some(m),
                Action::Skip(n) => rule.skip = n,
                Action::Ctl(c) => link.ctls.push(c),
                Action::Status(s) => rule.status = Some(s),
            }
        }
        match chained_to {
            Some(i) => {
                let Some(starter) = self.rules.get_mut(i) else {
                    return Err(err("chained rule without a starter".into()));
                };
                if has_id {
                    return Err(err("a chained rule may not have its own `id`".into()));
                }
                starter.links.push(link);
                if chain {
                    self.open_chain = Some(i);
                }
            }
            None => {
                if !has_id {
                    return Err(err("the rule has no `id` action".into()));
                }
                if self
                    .rules
                    .iter()
                    .zip(&self.removed)
                    .any(|(r, gone)| r.id == rule.id && !gone)
                {
                    return Err(err(format!("rule id {} is defined twice", rule.id)));
                }
                rule.links.push(link);
                self.entries.push(Entry::Rule(self.rules.len()));
                if chain {
                    self.open_chain = Some(self.rules.len());
                }
                self.rules.push(rule);
                self.removed.push(false);
            }
        }
        Ok(())
    }

    fn finish(self) -> RuleSet {
        let mut new_index = vec![usize::MAX; self.rules.len()];
        let mut rules = Vec::new();
        for (i, (r, gone)) in self.rules.into_iter().zip(self.removed).enumerate() {
            if !gone {
                new_index[i] = rules.len();
                rules.push(r);
            }
        }
        let mut phases: [Vec<Entry>; 5] = Default::default();
        for e in &self.entries {
            match e {
                Entry::Marker(m) => {
                    for p in phases.iter_mut() {
                        p.push(Entry::Marker(m.clone()));
                    }
                }
                Entry::Rule(i) => {
                    let Some(&ni) = new_index.get(*i) else {
                        continue;
                    };
                    if let Some(r) = rules.get(ni) {
                        if let Some(p) = phases.get_mut(usize::from(r.phase) - 1) {
                            p.push(Entry::Rule(ni));
                        }
                    }
                }
            }
        }
        let block_action = [0, 1, 2, 3, 4].map(|i| match self.defaults[i].disruptive {
            Disruptive::Block => Disruptive::Deny,
            d => d,
        });
        RuleSet {
            rules,
            phases,
            block_action,
            engine: self.engine,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(text: &str) -> Result<RuleSet, RuleError> {
        RuleSet::compile(
            &[Source {
                name: "t.conf".into(),
                text: text.into(),
            }],
            &HashMap::new(),
        )
    }

    #[test]
    fn chains_and_phases() {
        let rs = compile(
            "SecDefaultAction \"phase:2,log,pass\"\nSecRule ARGS \"@rx a\" \"id:1,phase:2,block,chain\"\n  SecRule TX:x \"@eq 1\" \"t:lowercase\"\nSecMarker END\nSecAction \"id:2,phase:1,nolog,pass\"\n",
        )
        .unwrap();
        assert_eq!(rs.rules.len(), 2);
        assert_eq!(rs.rules[0].links.len(), 2);
        assert_eq!(rs.rules[0].links[1].transforms, vec![Transform::Lowercase]);
        assert_eq!(
            rs.phases[1],
            vec![Entry::Rule(0), Entry::Marker("END".into())]
        );
        assert_eq!(
            rs.phases[0],
            vec![Entry::Marker("END".into()), Entry::Rule(1)]
        );
        assert_eq!(rs.block_action[1], Disruptive::Pass);
    }

    #[test]
    fn removal_and_target_update() {
        let rs = compile(
            "SecRule ARGS \"@rx a\" \"id:1\"\nSecRule ARGS \"@rx b\" \"id:2,tag:x\"\nSecRule ARGS \"@rx c\" \"id:3\"\nSecRuleRemoveById 1\nSecRuleRemoveByTag x\nSecRuleUpdateTargetById 3 \"!ARGS:pw\"\n",
        )
        .unwrap();
        assert_eq!(rs.rules.len(), 1);
        assert_eq!(rs.rules[0].links[0].targets.len(), 2);
        assert!(rs.rule(3).is_some());
    }

    #[test]
    fn load_errors_locate_the_rule() {
        let e = compile("\nSecRule ARGS \"@rx (\" \"id:1\"\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("t.conf:2: regex does not compile"),
            "{e}"
        );
        let e = compile("SecRule ARGS \"@rx a\" \"phase:1\"\n").unwrap_err();
        assert_eq!(e.to_string(), "t.conf:1: the rule has no `id` action");
        let e = compile("SecRule ARGS \"@rx a\" \"id:1,chain\"\n").unwrap_err();
        assert!(e.to_string().contains("chain"));
        let e = compile("SecRule ARGS \"@rx a\" \"id:1\"\nSecRule ARGS \"@rx a\" \"id:1\"\n")
            .unwrap_err();
        assert!(e.to_string().contains("defined twice"));
    }
}
