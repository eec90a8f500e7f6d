//! One request through the rule set: phases 1-5, the TX collection,
//! captures, `MATCHED_VAR(S)`, `skipAfter`, `ctl:` and disruptive actions.
//!
//! Rules run unmodified: CRS implements paranoia levels and anomaly
//! scoring itself with TX variables, `skipAfter` and `setvar`.

use crate::body::{BodyLimits, Pairs};
use crate::engine::{Entry, Link, Rule, RuleSet};
use crate::macros::MacroSource;
use crate::request::{ParsedBody, Request};
use crate::seclang::actions::{Ctl, Disruptive, EngineMode, SetOp, SetVar};
use crate::variables::{parse_target, Collection, Selector, VarSpec};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

/// Most values one target list may yield for one rule (a bound on work per
/// rule; body and argument limits keep real requests far below it).
const MAX_VALUES_PER_RULE: usize = 4096;

/// A rule that matched, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchedRule {
    /// Rule id.
    pub id: u32,
    /// Phase it ran in.
    pub phase: u8,
    /// Expanded `msg`.
    pub msg: String,
    /// Expanded `logdata`.
    pub data: String,
    /// `severity`, if set.
    pub severity: Option<String>,
    /// Whether the rule logs (`nolog` rules are kept for metrics, not logs).
    pub logged: bool,
}

/// The transaction was stopped by a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interruption {
    /// The rule that stopped it.
    pub rule_id: u32,
    /// The HTTP status to answer with.
    pub status: u16,
}

/// The response, as far as phases 3 and 4 see it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// `HTTP/1.1` and so on.
    pub protocol: String,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// Body (bounded by the caller).
    pub body: Vec<u8>,
}

/// One value a target yielded.
struct Item<'v> {
    collection: Collection,
    key: Cow<'v, [u8]>,
    value: Cow<'v, [u8]>,
}

impl Item<'_> {
    fn name(&self) -> String {
        if self.key.is_empty() && !is_keyed(self.collection) {
            self.collection.name().to_string()
        } else {
            format!(
                "{}:{}",
                self.collection.name(),
                String::from_utf8_lossy(&self.key)
            )
        }
    }
}

fn is_keyed(c: Collection) -> bool {
    use Collection::*;
    matches!(
        c,
        Args | ArgsNames
            | ArgsGet
            | ArgsGetNames
            | ArgsPost
            | ArgsPostNames
            | RequestHeaders
            | RequestHeadersNames
            | RequestCookies
            | RequestCookiesNames
            | ResponseHeaders
            | ResponseHeadersNames
            | Tx
            | Files
            | FilesNames
            | FilesSizes
            | MultipartPartHeaders
            | Xml
            | MatchedVars
            | MatchedVarsNames
    )
}

/// Which rules a runtime target removal applies to.
#[derive(Debug, Clone)]
enum RuleSel {
    Id(u32),
    Tag(String),
}

/// The state of one request.
pub struct Transaction {
    rules: Arc<RuleSet>,
    req: Rc<Request>,
    limits: BodyLimits,
    body: Rc<ParsedBody>,
    body_parsed: bool,
    processor: Option<String>,
    force_body: bool,
    body_access: bool,
    /// The TX collection; shared with the snapshot a rule's targets read,
    /// copied only if a rule writes to it while its snapshot is alive.
    tx: Rc<BTreeMap<String, Vec<u8>>>,
    mode: EngineMode,
    removed_ids: Vec<(u32, u32)>,
    removed_tags: Vec<String>,
    removed_targets: Vec<(RuleSel, VarSpec)>,
    matched_var: (String, Vec<u8>),
    matched_vars: Vec<(String, Vec<u8>)>,
    /// Index of the rule being evaluated (for `RULE.*` macros).
    current: Option<usize>,
    response: Response,
    allowed: bool,
    /// Every rule that matched, in order.
    pub matches: Vec<MatchedRule>,
    /// Set when a rule stopped the transaction.
    pub interruption: Option<Interruption>,
}

impl Transaction {
    /// Starts a transaction in `mode` (a `SecRuleEngine` in the rules wins).
    pub fn new(rules: Arc<RuleSet>, req: Request, mode: EngineMode, limits: BodyLimits) -> Self {
        let mode = rules.engine.unwrap_or(mode);
        let processor = req.default_processor().map(str::to_string);
        Transaction {
            rules,
            req: Rc::new(req),
            limits,
            body: Rc::new(ParsedBody::default()),
            body_parsed: false,
            processor,
            force_body: false,
            body_access: true,
            tx: Rc::new(BTreeMap::new()),
            mode,
            removed_ids: Vec::new(),
            removed_tags: Vec::new(),
            removed_targets: Vec::new(),
            matched_var: (String::new(), Vec::new()),
            matched_vars: Vec::new(),
            current: None,
            response: Response::default(),
            allowed: false,
            matches: Vec::new(),
            interruption: None,
        }
    }

    /// The engine mode now (rules may change it with `ctl:ruleEngine`).
    pub fn mode(&self) -> EngineMode {
        self.mode
    }

    /// A TX variable (lower-case name), for tests and the audit log.
    pub fn tx(&self, name: &str) -> Option<&[u8]> {
        self.tx.get(name).map(Vec::as_slice)
    }

    /// The body processor's error, if it failed.
    pub fn body_error(&self) -> Option<&str> {
        (!self.body.error_msg.is_empty()).then_some(self.body.error_msg.as_str())
    }

    /// The request being inspected.
    pub fn request(&self) -> &Request {
        &self.req
    }

    /// Sets the request body (at most `limit` bytes) before phase 2.
    pub fn set_request_body(&mut self, body: Vec<u8>, limit: usize) {
        Rc::make_mut(&mut self.req).set_body(body, limit);
    }

    /// Phase 1: request headers.
    pub fn process_request_headers(&mut self) -> Option<Interruption> {
        self.run_phase(1)
    }

    /// Phase 2: parses the body with the selected processor, then runs.
    pub fn process_request_body(&mut self) -> Option<Interruption> {
        if !self.body_parsed {
            self.body_parsed = true;
            if self.body_access {
                self.body = Rc::new(self.req.parse_body(self.processor.as_deref(), self.limits));
            }
        }
        self.run_phase(2)
    }

    /// Phase 3: response headers.
    pub fn process_response_headers(
        &mut self,
        status: u16,
        protocol: &str,
        headers: Vec<(String, String)>,
    ) -> Option<Interruption> {
        self.response.status = status;
        self.response.protocol = protocol.to_string();
        self.response.headers = headers;
        self.run_phase(3)
    }

    /// Phase 4: response body.
    pub fn process_response_body(&mut self, body: Vec<u8>) -> Option<Interruption> {
        self.response.body = body;
        self.run_phase(4)
    }

    /// Phase 5: logging (runs even after an interruption).
    pub fn process_logging(&mut self) {
        let saved = self.interruption.take();
        self.run_phase(5);
        self.interruption = saved.or(self.interruption);
    }

    /// Ids of the rules that matched and log.
    pub fn logged_ids(&self) -> Vec<u32> {
        self.matches
            .iter()
            .filter(|m| m.logged)
            .map(|m| m.id)
            .collect()
    }

    fn run_phase(&mut self, phase: u8) -> Option<Interruption> {
        if self.interruption.is_some() && phase != 5 {
            return self.interruption;
        }
        if self.mode == EngineMode::Off || (self.allowed && phase <= 2) {
            return None;
        }
        let rules = Arc::clone(&self.rules);
        let entries = rules.phases.get(usize::from(phase) - 1)?;
        let mut i = 0;
        while let Some(entry) = entries.get(i) {
            let Entry::Rule(ri) = entry else {
                i += 1;
                continue;
            };
            let Some(rule) = rules.rules.get(*ri) else {
                i += 1;
                continue;
            };
            if self.is_removed(rule) || !self.eval_rule(*ri, rule) {
                i += 1;
                continue;
            }
            if self.interruption.is_some() && phase != 5 {
                return self.interruption;
            }
            if self.allowed {
                return None;
            }
            if let Some(marker) = &rule.skip_after {
                i = entries
                    .iter()
                    .skip(i + 1)
                    .position(|e| matches!(e, Entry::Marker(m) if m == marker))
                    .map_or(entries.len(), |p| i + 1 + p);
            } else if rule.skip > 0 {
                let mut left = rule.skip;
                i += 1;
                while left > 0 && i < entries.len() {
                    if matches!(entries.get(i), Some(Entry::Rule(_))) {
                        left -= 1;
                    }
                    i += 1;
                }
            } else {
                i += 1;
            }
        }
        self.interruption
    }

    fn current_rule(&self) -> Option<&Rule> {
        self.current.and_then(|i| self.rules.rules.get(i))
    }

    fn is_removed(&self, rule: &Rule) -> bool {
        self.removed_ids
            .iter()
            .any(|&(a, b)| (a..=b).contains(&rule.id))
            || self
                .removed_tags
                .iter()
                .any(|t| rule.tags.iter().any(|rt| rt.eq_ignore_ascii_case(t)))
    }

    fn eval_rule(&mut self, index: usize, rule: &Rule) -> bool {
        self.current = Some(index);
        self.matched_vars.clear();
        for link in &rule.links {
            if !self.eval_link(rule, link) {
                return false;
            }
        }
        for link in &rule.links {
            for sv in &link.setvars {
                self.setvar(sv);
            }
            for c in &link.ctls {
                self.ctl(c);
            }
        }
        let msg = rule
            .msg
            .as_ref()
            .map(|m| m.expand(self).into_owned())
            .unwrap_or_default();
        let data = rule
            .logdata
            .as_ref()
            .map(|m| m.expand(self).into_owned())
            .unwrap_or_default();
        self.matches.push(MatchedRule {
            id: rule.id,
            phase: rule.phase,
            msg,
            data,
            severity: rule.severity.clone(),
            logged: rule.log,
        });
        let action = match rule.disruptive {
            Disruptive::Block => self
                .rules
                .block_action
                .get(usize::from(rule.phase) - 1)
                .copied()
                .unwrap_or(Disruptive::Pass),
            d => d,
        };
        match action {
            Disruptive::Deny | Disruptive::Drop | Disruptive::Block => {
                if self.mode == EngineMode::On && self.interruption.is_none() {
                    self.interruption = Some(Interruption {
                        rule_id: rule.id,
                        status: rule.status.unwrap_or(403),
                    });
                }
            }
            Disruptive::Allow => {
                if self.mode == EngineMode::On {
                    self.allowed = true;
                }
            }
            Disruptive::Pass => {}
        }
        true
    }

    fn eval_link(&mut self, rule: &Rule, link: &Link) -> bool {
        let Some(op) = &link.operator else {
            return true;
        };
        let req = Rc::clone(&self.req);
        let body = Rc::clone(&self.body);
        let needs_tx = link.targets.iter().any(|t| t.collection == Collection::Tx);
        let needs_mv = link.targets.iter().any(|t| {
            matches!(
                t.collection,
                Collection::MatchedVars
                    | Collection::MatchedVarsNames
                    | Collection::MatchedVar
                    | Collection::MatchedVarName
            )
        });
        let tx_snapshot = if needs_tx {
            Rc::clone(&self.tx)
        } else {
            Rc::new(BTreeMap::new())
        };
        let mv_snapshot: MatchedSnapshot = if needs_mv {
            (self.matched_var.clone(), self.matched_vars.clone())
        } else {
            Default::default()
        };
        let resp = if link.targets.iter().any(|t| {
            matches!(
                t.collection,
                Collection::ResponseHeaders
                    | Collection::ResponseHeadersNames
                    | Collection::ResponseBody
                    | Collection::ResponseStatus
                    | Collection::ResponseProtocol
                    | Collection::ResponseContentType
            )
        }) {
            self.response.clone()
        } else {
            Response::default()
        };
        let sources = Sources {
            req: &req,
            body: &body,
            tx: &tx_snapshot,
            mv: &mv_snapshot,
            resp: &resp,
            processor: self.processor.as_deref(),
            force_body: self.force_body,
            body_access: self.body_access,
        };
        let mut items: Vec<Item<'_>> = Vec::new();
        let exclusions: Vec<&VarSpec> = link
            .targets
            .iter()
            .filter(|t| t.exclude)
            .chain(self.removed_targets.iter().filter_map(|(sel, spec)| {
                let applies = match sel {
                    RuleSel::Id(id) => *id == rule.id,
                    RuleSel::Tag(t) => rule.tags.iter().any(|rt| rt.eq_ignore_ascii_case(t)),
                };
                applies.then_some(spec)
            }))
            .collect();
        for spec in link.targets.iter().filter(|t| !t.exclude) {
            let start = items.len();
            sources.collect(spec, &mut items);
            let mut k = start;
            while k < items.len() {
                let excluded = items.get(k).is_some_and(|it| {
                    exclusions.iter().any(|e| {
                        e.excludes(it.collection, &it.key)
                            || (e.collection == it.collection
                                && matches!(e.selector, Selector::All)
                                && e.exclude)
                    })
                });
                if excluded {
                    items.remove(k);
                } else {
                    k += 1;
                }
            }
            if spec.count {
                let n = items.len() - start;
                items.truncate(start);
                items.push(Item {
                    collection: spec.collection,
                    key: Cow::Borrowed(b""),
                    value: Cow::Owned(n.to_string().into_bytes()),
                });
            }
            if items.len() > MAX_VALUES_PER_RULE {
                items.truncate(MAX_VALUES_PER_RULE);
                break;
            }
        }
        let mut matched_any = false;
        let mut new_matches: Vec<(String, Vec<u8>)> = Vec::new();
        for item in &items {
            let mut candidates: Vec<Cow<'_, [u8]>> = Vec::new();
            let mut cur: Cow<'_, [u8]> = Cow::Borrowed(&item.value);
            if link.multi_match {
                candidates.push(cur.clone());
            }
            for t in &link.transforms {
                let next = match t.apply(&cur) {
                    Cow::Borrowed(_) => None,
                    Cow::Owned(o) => Some(o),
                };
                if let Some(o) = next {
                    if o.as_slice() != cur.as_ref() {
                        cur = Cow::Owned(o);
                        if link.multi_match {
                            candidates.push(cur.clone());
                        }
                    }
                }
            }
            if !link.multi_match {
                candidates.push(cur);
            }
            for v in &candidates {
                let result = op.matches(v, self, link.capture && !link.negated);
                if result.is_some() != link.negated {
                    matched_any = true;
                    if let Some(caps) = result {
                        if link.capture {
                            for (i, c) in caps.into_iter().enumerate() {
                                Rc::make_mut(&mut self.tx).insert(i.to_string(), c);
                            }
                        }
                    }
                    let name = item.name();
                    self.matched_var = (name.clone(), v.to_vec());
                    new_matches.push((name, v.to_vec()));
                    break;
                }
            }
        }
        if matched_any {
            self.matched_vars = new_matches;
        }
        matched_any
    }

    fn setvar(&mut self, sv: &SetVar) {
        if sv.collection != "tx" {
            return;
        }
        let name = sv.name.expand(self).to_ascii_lowercase();
        match &sv.op {
            SetOp::Delete => {
                Rc::make_mut(&mut self.tx).remove(&name);
            }
            SetOp::Set(v) => {
                let v = v.expand(self).into_owned().into_bytes();
                Rc::make_mut(&mut self.tx).insert(name, v);
            }
            SetOp::Add(v) | SetOp::Sub(v) => {
                let delta = atoi(v.expand(self).as_bytes());
                let cur = self.tx.get(&name).map_or(0, |c| atoi(c));
                let n = if matches!(sv.op, SetOp::Add(_)) {
                    cur.saturating_add(delta)
                } else {
                    cur.saturating_sub(delta)
                };
                Rc::make_mut(&mut self.tx).insert(name, n.to_string().into_bytes());
            }
        }
    }

    fn ctl(&mut self, c: &Ctl) {
        match c {
            Ctl::RuleEngine(m) => self.mode = *m,
            Ctl::RuleRemoveById(a, b) => self.removed_ids.push((*a, *b)),
            Ctl::RuleRemoveByTag(t) => self.removed_tags.push(t.clone()),
            Ctl::RuleRemoveTargetById(id, target) => {
                if let Ok(mut spec) = parse_target(target) {
                    spec.exclude = true;
                    self.removed_targets.push((RuleSel::Id(*id), spec));
                }
            }
            Ctl::RuleRemoveTargetByTag(tag, target) => {
                if let Ok(mut spec) = parse_target(target) {
                    spec.exclude = true;
                    self.removed_targets.push((RuleSel::Tag(tag.clone()), spec));
                }
            }
            Ctl::ForceRequestBodyVariable(b) => self.force_body = *b,
            Ctl::RequestBodyProcessor(p) => {
                if !self.body_parsed {
                    self.processor = Some(p.clone());
                }
            }
            Ctl::RequestBodyAccess(b) => self.body_access = *b,
            Ctl::Audit => {}
        }
    }
}

/// C `atoi`.
fn atoi(v: &[u8]) -> i64 {
    let t = std::str::from_utf8(v).unwrap_or("").trim();
    let (neg, digits) = match t.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let n = digits
        .bytes()
        .take_while(u8::is_ascii_digit)
        .fold(0i64, |n, d| {
            n.saturating_mul(10).saturating_add(i64::from(d - b'0'))
        });
    if neg {
        -n
    } else {
        n
    }
}

fn pairs(list: &Pairs) -> impl Iterator<Item = (&[u8], &[u8])> {
    list.iter().map(|(k, v)| (k.as_slice(), v.as_slice()))
}

/// `MATCHED_VAR` (name, value) and `MATCHED_VARS` of the running rule.
type MatchedSnapshot = ((String, Vec<u8>), Vec<(String, Vec<u8>)>);

/// Read-only views the target resolver needs.
struct Sources<'s> {
    req: &'s Request,
    body: &'s ParsedBody,
    tx: &'s BTreeMap<String, Vec<u8>>,
    mv: &'s MatchedSnapshot,
    resp: &'s Response,
    processor: Option<&'s str>,
    force_body: bool,
    body_access: bool,
}

impl<'s> Sources<'s> {
    fn pairs(
        &self,
        c: Collection,
        sel: &Selector,
        list: impl Iterator<Item = (&'s [u8], &'s [u8])>,
        names: bool,
        out: &mut Vec<Item<'s>>,
    ) {
        for (k, v) in list {
            if sel.selects(k) {
                out.push(Item {
                    collection: c,
                    key: Cow::Borrowed(k),
                    value: Cow::Borrowed(if names { k } else { v }),
                });
            }
        }
    }

    fn scalar(&self, c: Collection, value: Cow<'s, [u8]>, out: &mut Vec<Item<'s>>) {
        out.push(Item {
            collection: c,
            key: Cow::Borrowed(b""),
            value,
        });
    }

    fn collect(&self, spec: &VarSpec, out: &mut Vec<Item<'s>>) {
        use Collection::*;
        let c = spec.collection;
        let sel = &spec.selector;
        let req = self.req;
        let body = self.body;
        let get = || {
            req.args_get
                .iter()
                .map(|(k, v)| (k.as_slice(), v.as_slice()))
        };
        let post = || {
            body.args_post
                .iter()
                .map(|(k, v)| (k.as_slice(), v.as_slice()))
        };
        let hdrs = || {
            req.headers
                .iter()
                .map(|(k, v)| (k.as_bytes(), v.as_bytes()))
        };
        let cookies = || {
            req.cookies
                .iter()
                .map(|(k, v)| (k.as_slice(), v.as_slice()))
        };
        let resp_hdrs = || {
            self.resp
                .headers
                .iter()
                .map(|(k, v)| (k.as_bytes(), v.as_bytes()))
        };
        let b = |s: &'s str| Cow::Borrowed(s.as_bytes());
        let o = |s: String| Cow::Owned(s.into_bytes());
        match c {
            Args => self.pairs(c, sel, get().chain(post()), false, out),
            ArgsNames => self.pairs(c, sel, get().chain(post()), true, out),
            ArgsGet => self.pairs(c, sel, get(), false, out),
            ArgsGetNames => self.pairs(c, sel, get(), true, out),
            ArgsPost => self.pairs(c, sel, post(), false, out),
            ArgsPostNames => self.pairs(c, sel, post(), true, out),
            RequestHeaders => self.pairs(c, sel, hdrs(), false, out),
            RequestHeadersNames => self.pairs(c, sel, hdrs(), true, out),
            RequestCookies => self.pairs(c, sel, cookies(), false, out),
            RequestCookiesNames => self.pairs(c, sel, cookies(), true, out),
            ResponseHeaders => self.pairs(c, sel, resp_hdrs(), false, out),
            ResponseHeadersNames => self.pairs(c, sel, resp_hdrs(), true, out),
            Tx => self.pairs(
                c,
                sel,
                self.tx.iter().map(|(k, v)| (k.as_bytes(), v.as_slice())),
                false,
                out,
            ),
            MatchedVars => self.pairs(
                c,
                sel,
                self.mv.1.iter().map(|(k, v)| (k.as_bytes(), v.as_slice())),
                false,
                out,
            ),
            MatchedVarsNames => self.pairs(
                c,
                sel,
                self.mv.1.iter().map(|(k, v)| (k.as_bytes(), v.as_slice())),
                true,
                out,
            ),
            Files => self.pairs(c, sel, pairs(&body.multipart.files), false, out),
            FilesNames => self.pairs(c, sel, pairs(&body.multipart.files), true, out),
            FilesSizes => self.pairs(c, sel, pairs(&body.multipart.file_sizes), false, out),
            MultipartPartHeaders => {
                self.pairs(c, sel, pairs(&body.multipart.part_headers), false, out)
            }
            Xml => {
                let attrs = matches!(sel, Selector::All)
                    || matches!(sel, Selector::Key(k) if k.contains('@'));
                let texts = !matches!(sel, Selector::Key(k) if k.contains('@'));
                let key: Vec<u8> = match sel {
                    Selector::Key(k) => k.as_bytes().to_vec(),
                    _ => Vec::new(),
                };
                let values = texts
                    .then_some(&body.xml.texts)
                    .into_iter()
                    .chain(attrs.then_some(&body.xml.attrs))
                    .flatten();
                for v in values {
                    out.push(Item {
                        collection: c,
                        key: Cow::Owned(key.clone()),
                        value: Cow::Borrowed(v),
                    });
                }
            }
            RequestMethod => self.scalar(c, b(&req.method), out),
            RequestUri | RequestUriRaw => self.scalar(c, b(&req.uri), out),
            RequestFilename => self.scalar(
                c,
                crate::transforms::Transform::UrlDecode
                    .apply(req.filename().as_bytes())
                    .into_owned()
                    .into(),
                out,
            ),
            RequestBasename => self.scalar(
                c,
                crate::transforms::Transform::UrlDecode
                    .apply(req.basename().as_bytes())
                    .into_owned()
                    .into(),
                out,
            ),
            RequestLine => self.scalar(c, o(req.line()), out),
            RequestProtocol => self.scalar(c, b(&req.protocol), out),
            QueryString => self.scalar(c, b(req.query().unwrap_or("")), out),
            RequestBody => {
                if self.body_access && (self.force_body || self.processor == Some("URLENCODED")) {
                    self.scalar(c, Cow::Borrowed(&req.body), out)
                }
            }
            RequestBodyLength => self.scalar(c, o(req.body.len().to_string()), out),
            ReqbodyProcessor => self.scalar(c, b(self.processor.unwrap_or("")), out),
            ReqbodyError => self.scalar(c, b(if body.error { "1" } else { "0" }), out),
            RemoteAddr => self.scalar(c, b(&req.remote_addr), out),
            UniqueId => self.scalar(c, b(&req.unique_id), out),
            ArgsCombinedSize => {
                let n: usize = get().chain(post()).map(|(k, v)| k.len() + v.len()).sum();
                self.scalar(c, o(n.to_string()), out)
            }
            FilesCombinedSize => {
                self.scalar(c, o(body.multipart.files_combined_size.to_string()), out)
            }
            ResponseBody => self.scalar(c, Cow::Borrowed(&self.resp.body), out),
            ResponseStatus => self.scalar(c, o(self.resp.status.to_string()), out),
            ResponseProtocol => self.scalar(c, b(&self.resp.protocol), out),
            ResponseContentType => {
                let ct = self
                    .resp
                    .headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
                    .map_or("", |(_, v)| v.as_str());
                self.scalar(c, b(ct), out)
            }
            MatchedVar => self.scalar(c, Cow::Borrowed(&self.mv.0 .1), out),
            MatchedVarName => self.scalar(c, b(&self.mv.0 .0), out),
        }
    }
}

impl MacroSource for Transaction {
    fn lookup(&self, name: &str, key: Option<&str>) -> Option<String> {
        let lossy = |v: &[u8]| String::from_utf8_lossy(v).into_owned();
        match (name, key) {
            ("tx", Some(k)) => self.tx.get(k).map(|v| lossy(v)),
            ("rule", Some("id")) => self.current_rule().map(|r| r.id.to_string()),
            ("rule", Some("msg")) => self
                .current_rule()
                .and_then(|r| r.msg.as_ref())
                .map(|m| m.expand(self).into_owned()),
            ("rule", Some("severity")) => self.current_rule().and_then(|r| r.severity.clone()),
            ("matched_var", None) => Some(lossy(&self.matched_var.1)),
            ("matched_var_name", None) => Some(self.matched_var.0.clone()),
            _ => {
                let collection = Collection::from_name(name)?;
                let spec = VarSpec {
                    collection,
                    selector: key.map_or(Selector::All, |k| Selector::Key(k.to_string())),
                    count: false,
                    exclude: false,
                };
                let empty: MatchedSnapshot = Default::default();
                let resp = Response::default();
                let tx = BTreeMap::new();
                let sources = Sources {
                    req: &self.req,
                    body: &self.body,
                    tx: &tx,
                    mv: &empty,
                    resp: &resp,
                    processor: self.processor.as_deref(),
                    force_body: self.force_body,
                    body_access: self.body_access,
                };
                let mut items = Vec::new();
                sources.collect(&spec, &mut items);
                items.first().map(|i| lossy(&i.value))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Source;
    use std::collections::HashMap;

    fn rules(text: &str) -> Arc<RuleSet> {
        Arc::new(
            RuleSet::compile(
                &[Source {
                    name: "t.conf".into(),
                    text: text.into(),
                }],
                &HashMap::new(),
            )
            .unwrap(),
        )
    }

    fn request(uri: &str) -> Request {
        Request::new(
            "GET",
            uri,
            "HTTP/1.1",
            vec![("Host".into(), "h".into())],
            BodyLimits::default(),
        )
    }

    fn run(rs: &Arc<RuleSet>, req: &Request, mode: EngineMode) -> Transaction {
        let mut t = Transaction::new(Arc::clone(rs), req.clone(), mode, BodyLimits::default());
        t.process_request_headers();
        t.process_request_body();
        t
    }

    #[test]
    fn anomaly_scoring_with_setvar_and_macros() {
        let rs = rules(concat!(
            "SecAction \"id:1,phase:1,pass,nolog,setvar:tx.crit=5,setvar:tx.score=0\"\n",
            "SecRule ARGS \"@rx (?i)union\" \"id:2,phase:2,pass,capture,t:none,t:urlDecodeUni,msg:'sqli in %{MATCHED_VAR_NAME}',setvar:'tx.score=+%{tx.crit}',setvar:'tx.hit=%{tx.0}'\"\n",
            "SecRule TX:SCORE \"@ge 5\" \"id:3,phase:2,deny,status:403,msg:'score %{tx.score}'\"\n",
        ));
        let req = request("/?q=1%20UNION%20select");
        let t = run(&rs, &req, EngineMode::On);
        assert_eq!(t.tx("score"), Some(&b"5"[..]));
        assert_eq!(t.tx("hit"), Some(&b"UNION"[..]));
        assert_eq!(t.matches[1].msg, "sqli in ARGS:q");
        assert_eq!(
            t.interruption,
            Some(Interruption {
                rule_id: 3,
                status: 403
            })
        );
        assert_eq!(t.logged_ids(), vec![2, 3]);

        let t = run(&rs, &req, EngineMode::DetectionOnly);
        assert_eq!(t.interruption, None);
        assert_eq!(t.logged_ids(), vec![2, 3]);
    }

    #[test]
    fn skip_after_and_markers() {
        let rs = rules(concat!(
            "SecRule &TX:PL \"@eq 0\" \"id:1,phase:1,pass,nolog,skipAfter:END\"\n",
            "SecRule REQUEST_URI \"@contains /\" \"id:2,phase:1,pass\"\n",
            "SecMarker END\n",
            "SecRule REQUEST_URI \"@contains /\" \"id:3,phase:1,pass\"\n",
        ));
        let req = request("/");
        let t = run(&rs, &req, EngineMode::On);
        assert_eq!(t.logged_ids(), vec![3]);
    }

    #[test]
    fn exclusions_counts_and_chains() {
        let rs = rules(concat!(
            "SecRule ARGS|!ARGS:safe \"@rx bad\" \"id:1,phase:2,pass\"\n",
            "SecRule &ARGS \"@eq 2\" \"id:2,phase:2,pass,chain\"\n",
            "  SecRule ARGS_NAMES \"@streq safe\" \"setvar:tx.chained=1\"\n",
            "SecRule &TX:missing \"@eq 0\" \"id:3,phase:2,pass\"\n",
            "SecRule ARGS \"@rx bad\" \"id:4,phase:2,pass,chain\"\n",
            "  SecRule MATCHED_VARS_NAMES \"@rx other\" \"t:none\"\n",
        ));
        let req = request("/?safe=bad&other=good");
        let t = run(&rs, &req, EngineMode::On);
        assert_eq!(t.logged_ids(), vec![2, 3]);
        assert_eq!(t.tx("chained"), Some(&b"1"[..]));
        let req = request("/?safe=x&other=bad");
        let t = run(&rs, &req, EngineMode::On);
        assert_eq!(t.logged_ids(), vec![1, 2, 3, 4]);
    }

    #[test]
    fn ctl_removes_rules_and_targets_at_runtime() {
        let rs = rules(concat!(
            "SecRule REQUEST_FILENAME \"@streq /login\" \"id:1,phase:1,pass,nolog,ctl:ruleRemoveTargetById=3;ARGS:pw,ctl:ruleRemoveById=4\"\n",
            "SecRule ARGS \"@rx x\" \"id:3,phase:2,pass\"\n",
            "SecRule ARGS \"@rx x\" \"id:4,phase:2,pass\"\n",
        ));
        let req = request("/login?pw=x");
        assert!(run(&rs, &req, EngineMode::On).logged_ids().is_empty());
        let req = request("/other?pw=x");
        assert_eq!(run(&rs, &req, EngineMode::On).logged_ids(), vec![3, 4]);
    }

    #[test]
    fn multimatch_sees_every_stage() {
        let rs = rules(
            "SecRule ARGS \"@streq a%41\" \"id:1,phase:2,pass,multiMatch,t:none,t:urlDecode\"\n",
        );
        let req = request("/?x=a%2541");
        assert_eq!(run(&rs, &req, EngineMode::On).logged_ids(), vec![1]);
    }

    #[test]
    fn body_processors_feed_args() {
        let rs = rules(concat!(
            "SecRule ARGS_POST:json.q \"@rx attack\" \"id:1,phase:2,pass\"\n",
            "SecRule REQBODY_PROCESSOR \"@streq JSON\" \"id:2,phase:1,pass\"\n",
        ));
        let mut req = Request::new(
            "POST",
            "/",
            "HTTP/1.1",
            vec![("Content-Type".into(), "application/json".into())],
            BodyLimits::default(),
        );
        req.set_body(br#"{"q":"attack"}"#.to_vec(), 1000);
        assert_eq!(run(&rs, &req, EngineMode::On).logged_ids(), vec![2, 1]);
    }
}
