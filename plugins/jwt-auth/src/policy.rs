//! The jwt-auth decision: configuration + request view + keys + time →
//! [`Decision`]. No host calls, so it runs natively in tests and benches.
//!
//! Three methods feed one requirement tree: JWT providers, HTTP Basic and
//! API keys of consumers. Whatever satisfied the route, the first
//! authenticated party becomes the [`VerifiedIdentity`] later filters read.

use crate::apikey::KeyIndex;
use crate::basic::{self, BasicHeader, CredentialCache};
use crate::cache::{Caches, TokenCache};
use crate::config::{JwtAuthConfig, Provider, ProviderName, Requirement};
use crate::consumer::{Consumer, CredentialError};
use crate::extract::{self, Found, Location};
use crate::jwk::KeySet;
use crate::output;
use crate::verify::{self, TokenError, VerifiedToken};
use sdk_ext::config::ConfigError;
use sdk_ext::identity::{VerifiedIdentity, METHOD_API_KEY, METHOD_BASIC, METHOD_JWT};
use sdk_ext::{Clock, Denial, RequestView};
use serde::Serialize;
use std::collections::HashMap;
use std::rc::Rc;

/// Stable code: no token where one is required.
pub const CODE_MISSING: &str = "jwt_missing";
/// Stable code: a valid token whose issuer this route does not accept.
pub const CODE_REQUIREMENT_UNMET: &str = "jwt_requirement_unmet";
/// Stable code: the filter has no valid configuration.
pub const CODE_UNCONFIGURED: &str = "jwt_unconfigured";
/// Stable code: no Basic credentials where they are required.
pub const CODE_BASIC_MISSING: &str = "basic_missing";
/// Stable code: no API key where one is required.
pub const CODE_API_KEY_MISSING: &str = "api_key_missing";
/// Stable code: none of several accepted credentials was presented.
pub const CODE_CREDENTIALS_MISSING: &str = "credentials_missing";

/// Every code a denial can carry (for metrics defined at configure time).
pub const DENY_CODES: &[&str] = &[
    CODE_MISSING,
    CODE_REQUIREMENT_UNMET,
    CODE_UNCONFIGURED,
    "jwt_too_large",
    "jwt_malformed",
    "jwt_unknown_issuer",
    "jwt_missing_expiration",
    "jwt_expired",
    "jwt_not_yet_valid",
    "jwt_lifetime_too_long",
    "jwt_audience_mismatch",
    "jwt_subject_mismatch",
    "jwt_keys_unavailable",
    "jwt_unknown_kid",
    "jwt_no_matching_key",
    "jwt_bad_signature",
    CODE_BASIC_MISSING,
    CODE_API_KEY_MISSING,
    CODE_CREDENTIALS_MISSING,
    "basic_malformed",
    "basic_too_large",
    "basic_invalid_credentials",
    "api_key_too_large",
    "api_key_invalid",
];

/// An authentication method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// A JSON Web Token of a provider.
    Jwt,
    /// HTTP Basic credentials of a consumer.
    Basic,
    /// An API key of a consumer.
    ApiKey,
}

impl Method {
    /// Every method, in metric order.
    pub const ALL: [Method; 3] = [Method::Jwt, Method::Basic, Method::ApiKey];

    /// The name used in identities, logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Jwt => METHOD_JWT,
            Method::Basic => METHOD_BASIC,
            Method::ApiKey => METHOD_API_KEY,
        }
    }

    fn bit(self) -> u8 {
        match self {
            Method::Jwt => 1,
            Method::Basic => 2,
            Method::ApiKey => 4,
        }
    }
}

/// The keys a provider has right now.
#[derive(Debug, Clone, Default)]
pub struct ProviderKeys {
    /// The key set, `None` until a remote set has been fetched.
    pub set: Option<Rc<KeySet>>,
    /// Bumped whenever `set` changes (invalidates cached verifications).
    pub generation: u64,
}

/// Header changes for the request sent upstream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderChanges {
    /// Headers removed (client-sent copies of identity headers, and the
    /// token header unless `forward`).
    pub remove: Vec<String>,
    /// Headers set after the removals.
    pub set: Vec<(String, String)>,
    /// A new `:path` (token query parameters removed).
    pub path: Option<String>,
}

/// What to do with a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Forward it with these changes; `identity` is handed to later filters.
    Allow {
        /// The first verified identity, if any token verified.
        identity: Option<VerifiedIdentity>,
        /// Upstream header changes.
        headers: HeaderChanges,
        /// Providers whose tokens verified (for metrics).
        verified: Vec<usize>,
        /// The consumer that authenticated, and how (for metrics).
        consumer: Option<(Method, usize)>,
    },
    /// Refuse it.
    Deny {
        /// The response.
        denial: Denial,
        /// The provider the failure is about, if any.
        provider: Option<usize>,
        /// The failure reason for the log (never the token).
        reason: String,
        /// Providers whose failure was an unknown `kid` or missing keys:
        /// fetching their keys again may change the outcome.
        refetch: Vec<usize>,
        /// The method whose credentials failed, if credentials failed.
        method: Option<Method>,
        /// The consumer the failure is about, if known.
        consumer: Option<usize>,
    },
}

/// One structured log line for a denial.
#[derive(Debug, Serialize)]
pub struct DenialRecord<'a> {
    /// Always `jwt-auth`.
    pub plugin: &'static str,
    /// Always `deny`.
    pub decision: &'static str,
    /// Stable code.
    pub code: &'static str,
    /// HTTP status.
    pub status: u16,
    /// Provider the failure is about.
    pub provider: Option<&'a str>,
    /// The method whose credentials failed.
    pub auth_method: Option<&'static str>,
    /// The consumer the failure is about (never the credentials).
    pub consumer: Option<&'a str>,
    /// Why.
    pub reason: &'a str,
    /// Request method.
    pub method: &'a str,
    /// Path without query (a token may be in the query).
    pub path: &'a str,
    /// Host.
    pub host: &'a str,
    /// `x-request-id`.
    pub request_id: &'a str,
}

/// The compiled configuration.
#[derive(Debug, Clone)]
pub struct JwtAuth {
    config: JwtAuthConfig,
    providers: Vec<(ProviderName, Provider)>,
    consumers: Vec<(ProviderName, Consumer)>,
    basic_users: HashMap<String, usize>,
    /// A consumer whose hash unknown user names are checked against.
    decoy_basic: Option<usize>,
    keys: KeyIndex,
    default_requirement: Requirement,
    identity_headers: Vec<String>,
}

#[derive(Debug, Clone)]
enum ProviderResult {
    Ok(VerifiedToken, Found),
    Missing,
    Failed(TokenError),
}

/// The outcome of one consumer method.
#[derive(Debug, Clone)]
enum ConsumerResult {
    /// This consumer; the key's location (API keys).
    Ok(usize, Option<Location>),
    Missing,
    Failed(CredentialError),
}

/// Who satisfied (part of) a requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Authenticated {
    Provider(usize),
    Consumer(Method, usize),
}

#[derive(Debug, Clone)]
enum Failure {
    /// Nothing presented for these methods (bits of [`Method::bit`]).
    Missing(u8),
    Failed(usize, TokenError),
    Credential(CredentialError),
}

impl Failure {
    /// Higher is more specific: failed credentials say more than missing
    /// ones, and a wrong issuer less than any other failure.
    fn rank(&self) -> u8 {
        match self {
            Failure::Missing(_) => 0,
            Failure::Failed(_, TokenError::IssuerMismatch) => 1,
            Failure::Failed(..) | Failure::Credential(_) => 2,
        }
    }

    fn better(a: Option<Failure>, b: Failure) -> Failure {
        match (a, b) {
            (Some(Failure::Missing(x)), Failure::Missing(y)) => Failure::Missing(x | y),
            (Some(a), b) if a.rank() >= b.rank() => a,
            (_, b) => b,
        }
    }
}

impl JwtAuth {
    /// Parses and validates a JSON configuration.
    pub fn from_json(bytes: &[u8]) -> Result<JwtAuth, ConfigError> {
        Ok(JwtAuth::new(JwtAuthConfig::from_json(bytes)?))
    }

    /// Wraps a validated configuration.
    pub fn new(config: JwtAuthConfig) -> JwtAuth {
        let providers: Vec<(ProviderName, Provider)> = config
            .providers
            .iter()
            .map(|(n, p)| (n.clone(), p.clone()))
            .collect();
        let consumers: Vec<(ProviderName, Consumer)> = config
            .consumers
            .iter()
            .map(|(n, c)| (n.clone(), c.clone()))
            .collect();
        let basic_users: HashMap<String, usize> = consumers
            .iter()
            .enumerate()
            .filter(|(_, (_, c))| c.basic_auth.is_some())
            .map(|(i, (n, _))| (n.as_str().to_string(), i))
            .collect();
        // Validated configurations have no key shared by two consumers.
        let keys = KeyIndex::new(config.consumer_keys()).unwrap_or_default();
        let mut any: Vec<Requirement> = providers
            .iter()
            .map(|(n, _)| Requirement::ProviderName(n.as_str().to_string()))
            .collect();
        if config.has_basic_consumers() {
            any.push(Requirement::BasicAuth(crate::config::Empty {}));
        }
        if config.has_api_key_consumers() {
            any.push(Requirement::ApiKey(crate::config::Empty {}));
        }
        let default_requirement = Requirement::RequiresAny(any);
        let mut identity_headers: Vec<String> = Vec::new();
        for (_, p) in &providers {
            let names = p
                .claim_to_headers
                .iter()
                .map(|c| c.header_name.as_str().to_string())
                .chain(
                    p.forward_payload_header
                        .iter()
                        .map(|h| h.as_str().to_string()),
                );
            for n in names {
                if !identity_headers.contains(&n) {
                    identity_headers.push(n);
                }
            }
        }
        JwtAuth {
            config,
            providers,
            consumers,
            decoy_basic: basic_users.values().min().copied(),
            basic_users,
            keys,
            default_requirement,
            identity_headers,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &JwtAuthConfig {
        &self.config
    }

    /// Providers in index order (the order of their names).
    pub fn providers(&self) -> &[(ProviderName, Provider)] {
        &self.providers
    }

    /// Consumers in index order (the order of their names).
    pub fn consumers(&self) -> &[(ProviderName, Consumer)] {
        &self.consumers
    }

    /// Headers this filter sets upstream; client-sent copies are always
    /// removed.
    pub fn identity_headers(&self) -> &[String] {
        &self.identity_headers
    }

    /// The initial keys: inline sets filled in, remote ones empty.
    pub fn initial_keys(&self) -> Vec<ProviderKeys> {
        self.providers
            .iter()
            .map(|(_, p)| ProviderKeys {
                set: p.local_jwks.as_ref().map(|l| Rc::new(l.0.clone())),
                generation: 1,
            })
            .collect()
    }

    /// New caches of the configured sizes; the Basic cache is keyed with
    /// random bytes (see [`CredentialCache`]).
    pub fn new_cache(&self) -> Caches {
        let b = &self.config.basic_auth;
        Caches {
            tokens: TokenCache::new(self.config.token_cache_size),
            credentials: CredentialCache::with_random_key(
                b.cache_size,
                b.cache_duration.get().as_secs(),
            ),
        }
    }

    /// The response when the filter has no valid configuration.
    pub fn unconfigured() -> Denial {
        Denial::new(
            500,
            CODE_UNCONFIGURED,
            "the jwt-auth filter has no valid configuration",
        )
    }

    /// Decides a request at the time `clock` tells.
    pub fn decide_with_clock(
        &self,
        req: &RequestView,
        keys: &[ProviderKeys],
        cache: &mut Caches,
        clock: &dyn Clock,
    ) -> Decision {
        self.decide(req, keys, cache, clock.unix_seconds())
    }

    /// Decides a request at `now` (Unix seconds).
    pub fn decide(
        &self,
        req: &RequestView,
        keys: &[ProviderKeys],
        cache: &mut Caches,
        now: u64,
    ) -> Decision {
        let base = HeaderChanges {
            remove: self.identity_headers.clone(),
            ..Default::default()
        };
        if self.config.bypass_cors_preflight && is_cors_preflight(req) {
            return allow(base, None, vec![], None);
        }
        let requirement = match &self.config.rules {
            None => Some(&self.default_requirement),
            Some(rules) => match rules.iter().find(|r| r.matcher.matches(req)) {
                Some(rule) => rule.requires.as_ref(),
                None => None,
            },
        };
        let Some(requirement) = requirement else {
            return allow(base, None, vec![], None);
        };
        let mut eval = Eval {
            auth: self,
            req,
            keys,
            cache,
            now,
            results: vec![None; self.providers.len()],
            basic: None,
            api_key: None,
        };
        match eval.requirement(requirement, 0) {
            Ok(mut authenticated) => {
                let mut seen = Vec::new();
                authenticated.retain(|a| {
                    let new = !seen.contains(a);
                    seen.push(*a);
                    new
                });
                let mut headers = base;
                let mut identity = None;
                let mut strip = Strip::default();
                let mut verified = Vec::new();
                let mut consumer = None;
                for a in &authenticated {
                    let i = match *a {
                        Authenticated::Provider(i) => i,
                        Authenticated::Consumer(method, c) => {
                            let Some((name, cons)) = self.consumers.get(c) else {
                                continue;
                            };
                            if identity.is_none() {
                                identity = Some(cons.identity(name.as_str(), method.as_str()));
                            }
                            consumer.get_or_insert((method, c));
                            let location = match (method, eval_location(&eval, method)) {
                                (Method::Basic, _) if !self.config.basic_auth.forward => {
                                    Some(Location::Header("authorization".into()))
                                }
                                (Method::ApiKey, Some(l)) if !self.config.api_key.forward => {
                                    Some(l)
                                }
                                _ => None,
                            };
                            if let Some(l) = location {
                                strip.add(&l, &mut headers);
                            }
                            continue;
                        }
                    };
                    verified.push(i);
                    let (Some(Some(ProviderResult::Ok(tok, found))), Some((name, p))) =
                        (eval.results.get(i), self.providers.get(i))
                    else {
                        continue;
                    };
                    if identity.is_none() {
                        identity = Some(VerifiedIdentity {
                            provider: name.as_str().to_string(),
                            issuer: tok.issuer.clone(),
                            subject: tok.subject.clone(),
                            audiences: tok.audiences.clone(),
                            claims: tok.claims.clone(),
                            method: Some(METHOD_JWT.to_string()),
                            consumer: None,
                        });
                    }
                    for c in &p.claim_to_headers {
                        if let Some(v) =
                            output::claim_header_value(&tok.claims, &c.path, &c.separator)
                        {
                            headers.set.push((c.header_name.as_str().to_string(), v));
                        }
                    }
                    if let Some(h) = &p.forward_payload_header {
                        headers
                            .set
                            .push((h.as_str().to_string(), tok.payload_b64.clone()));
                    }
                    if !p.forward {
                        strip.add(&found.location, &mut headers);
                    }
                }
                strip.apply(req, &mut headers);
                allow(headers, identity, verified, consumer)
            }
            Err(failure) => {
                let refetch = eval
                    .results
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| {
                        matches!(
                            r,
                            Some(ProviderResult::Failed(
                                TokenError::UnknownKid | TokenError::KeysUnavailable
                            ))
                        )
                    })
                    .map(|(i, _)| i)
                    .collect();
                let (method, consumer) = match &failure {
                    Failure::Failed(..) => (Some(Method::Jwt), None),
                    Failure::Credential(e) if e.is_basic() => (Some(Method::Basic), e.consumer()),
                    Failure::Credential(e) => (Some(Method::ApiKey), e.consumer()),
                    Failure::Missing(_) => (None, None),
                };
                let (denial, provider, reason) = self.deny(failure, &mut eval);
                Decision::Deny {
                    denial,
                    provider,
                    reason,
                    refetch,
                    method,
                    consumer,
                }
            }
        }
    }

    fn deny(&self, failure: Failure, eval: &mut Eval<'_>) -> (Denial, Option<usize>, String) {
        let realm = &self.config.realm;
        match failure {
            Failure::Missing(methods) => {
                let wanted: Vec<Method> = Method::ALL
                    .into_iter()
                    .filter(|m| methods & m.bit() != 0)
                    .collect();
                let (code, msg, reason) = match wanted.as_slice() {
                    [] | [Method::Jwt] => (
                        CODE_MISSING,
                        "a bearer token is required",
                        "no token in the request",
                    ),
                    [Method::Basic] => (
                        CODE_BASIC_MISSING,
                        "HTTP Basic credentials are required",
                        "no Basic credentials in the request",
                    ),
                    [Method::ApiKey] => (
                        CODE_API_KEY_MISSING,
                        "an API key is required",
                        "no API key in the request",
                    ),
                    _ => (
                        CODE_CREDENTIALS_MISSING,
                        "credentials are required",
                        "no accepted credentials in the request",
                    ),
                };
                let mut denial = Denial::new(401, code, msg);
                for m in if wanted.is_empty() {
                    vec![Method::Jwt]
                } else {
                    wanted
                } {
                    denial = denial.with_header("www-authenticate", challenge(m, realm));
                }
                (denial, None, reason.into())
            }
            Failure::Credential(e) => {
                let method = if e.is_basic() {
                    Method::Basic
                } else {
                    Method::ApiKey
                };
                (
                    Denial::new(401, e.code(), e.public_message())
                        .with_header("www-authenticate", challenge(method, realm)),
                    None,
                    e.to_string(),
                )
            }
            Failure::Failed(i, TokenError::IssuerMismatch)
                if (0..self.providers.len())
                    .any(|j| j != i && matches!(eval.provider(j), ProviderResult::Ok(..))) =>
            {
                let msg = "the token is valid but not accepted for this route";
                (
                    Denial::new(403, CODE_REQUIREMENT_UNMET, msg).with_header(
                        "www-authenticate",
                        format!(
                            "Bearer realm=\"{realm}\", error=\"insufficient_scope\", error_description=\"{msg}\""
                        ),
                    ),
                    Some(i),
                    msg.into(),
                )
            }
            Failure::Failed(i, e) => {
                let msg = e.to_string();
                let error = if e.status() == 403 {
                    "insufficient_scope"
                } else {
                    "invalid_token"
                };
                let description: String = msg
                    .chars()
                    .map(|c| if c == '"' || c == '\\' { '\'' } else { c })
                    .collect();
                (
                    Denial::new(e.status(), e.code(), msg.clone()).with_header(
                        "www-authenticate",
                        format!(
                            "Bearer realm=\"{realm}\", error=\"{error}\", error_description=\"{description}\""
                        ),
                    ),
                    Some(i),
                    msg,
                )
            }
        }
    }

    /// The log record of a denial (`method` and `consumer` as in
    /// [`Decision::Deny`]).
    pub fn denial_record<'a>(
        &'a self,
        denial: &Denial,
        provider: Option<usize>,
        method: Option<Method>,
        consumer: Option<usize>,
        reason: &'a str,
        req: &'a RequestView,
    ) -> DenialRecord<'a> {
        DenialRecord {
            plugin: "jwt-auth",
            decision: "deny",
            code: denial.code,
            status: denial.status,
            provider: provider
                .and_then(|i| self.providers.get(i))
                .map(|(n, _)| n.as_str()),
            auth_method: method.map(Method::as_str),
            consumer: consumer
                .and_then(|i| self.consumers.get(i))
                .map(|(n, _)| n.as_str()),
            reason,
            method: &req.method,
            path: req.path_only(),
            host: &req.host,
            request_id: &req.request_id,
        }
    }
}

fn allow(
    headers: HeaderChanges,
    identity: Option<VerifiedIdentity>,
    verified: Vec<usize>,
    consumer: Option<(Method, usize)>,
) -> Decision {
    Decision::Allow {
        identity,
        headers,
        verified,
        consumer,
    }
}

/// Credentials to remove from the request sent upstream.
#[derive(Default)]
struct Strip {
    params: Vec<String>,
    cookies: Vec<String>,
}

impl Strip {
    /// Removes the credential at `location`: a header at once, query
    /// parameters and cookies in [`Strip::apply`].
    fn add(&mut self, location: &Location, headers: &mut HeaderChanges) {
        match location {
            Location::Header(h) => {
                if !headers.remove.contains(h) {
                    headers.remove.push(h.clone());
                }
            }
            Location::Param(q) => self.params.push(q.clone()),
            Location::Cookie(c) => self.cookies.push(c.clone()),
        }
    }

    /// Rewrites `cookie` and `:path` without the collected credentials.
    fn apply(self, req: &RequestView, headers: &mut HeaderChanges) {
        if !self.cookies.is_empty() {
            if !headers.remove.iter().any(|h| h == "cookie") {
                headers.remove.push("cookie".into());
            }
            if let Some(rest) = extract::cookies_without(req, &self.cookies) {
                headers.set.push(("cookie".into(), rest));
            }
        }
        if !self.params.is_empty() {
            headers.path = Some(extract::path_without_params(&req.path, &self.params));
        }
    }
}

/// The `WWW-Authenticate` challenge of a method.
fn challenge(method: Method, realm: &str) -> String {
    match method {
        Method::Jwt => format!("Bearer realm=\"{realm}\""),
        Method::Basic => format!("Basic realm=\"{realm}\", charset=\"UTF-8\""),
        Method::ApiKey => format!("ApiKey realm=\"{realm}\""),
    }
}

/// Where the consumer credentials of `method` were found.
fn eval_location(eval: &Eval<'_>, method: Method) -> Option<Location> {
    let r = match method {
        Method::Basic => &eval.basic,
        Method::ApiKey => &eval.api_key,
        Method::Jwt => return None,
    };
    match r {
        Some(ConsumerResult::Ok(_, l)) => l.clone(),
        _ => None,
    }
}

/// OPTIONS with `origin` and `access-control-request-method`.
pub fn is_cors_preflight(req: &RequestView) -> bool {
    req.method == "OPTIONS"
        && req.header("origin").is_some()
        && req.header("access-control-request-method").is_some()
}

struct Eval<'a> {
    auth: &'a JwtAuth,
    req: &'a RequestView,
    keys: &'a [ProviderKeys],
    cache: &'a mut Caches,
    now: u64,
    results: Vec<Option<ProviderResult>>,
    basic: Option<ConsumerResult>,
    api_key: Option<ConsumerResult>,
}

impl Eval<'_> {
    fn provider(&mut self, i: usize) -> ProviderResult {
        if let Some(Some(r)) = self.results.get(i) {
            return r.clone();
        }
        let r = self.compute(i);
        if let Some(slot) = self.results.get_mut(i) {
            *slot = Some(r.clone());
        }
        r
    }

    fn compute(&mut self, i: usize) -> ProviderResult {
        let Some((_, p)) = self.auth.providers.get(i) else {
            return ProviderResult::Missing;
        };
        let found = extract::tokens(p, self.req);
        let (set, generation) = match self.keys.get(i) {
            Some(k) => (k.set.as_deref(), k.generation),
            None => (None, 0),
        };
        let mut last = None;
        for f in found {
            if let Some(hit) = self.cache.tokens.get(i, &f.token, generation) {
                if verify::still_valid(hit, p, self.now) {
                    return ProviderResult::Ok(hit.clone(), f);
                }
            }
            match verify::verify_token(&f.token, p, set, self.auth.config.max_token_bytes, self.now)
            {
                Ok(v) => {
                    self.cache.tokens.insert(i, &f.token, generation, v.clone());
                    return ProviderResult::Ok(v, f);
                }
                Err(e) => {
                    // A more specific failure wins over a wrong issuer.
                    if !(e == TokenError::IssuerMismatch && last.is_some()) {
                        last = Some(e);
                    }
                }
            }
        }
        match last {
            None => ProviderResult::Missing,
            Some(e) => ProviderResult::Failed(e),
        }
    }

    /// Basic: the consumer whose password the request carries.
    fn basic(&mut self) -> ConsumerResult {
        if let Some(r) = &self.basic {
            return r.clone();
        }
        let r = self.compute_basic();
        self.basic = Some(r.clone());
        r
    }

    fn compute_basic(&mut self) -> ConsumerResult {
        let creds = match basic::read(self.req) {
            BasicHeader::Missing => return ConsumerResult::Missing,
            BasicHeader::Malformed(why) => {
                return ConsumerResult::Failed(CredentialError::BasicMalformed(why))
            }
            BasicHeader::TooLarge(n) => {
                return ConsumerResult::Failed(CredentialError::BasicTooLarge(n))
            }
            BasicHeader::Found(c) => c,
        };
        let consumers = &self.auth.consumers;
        let hash_of = |i: usize| {
            consumers
                .get(i)
                .and_then(|(_, c)| c.basic_auth.as_ref())
                .map(|b| &b.password_hash)
        };
        let Some(&i) = self.auth.basic_users.get(&creds.username) else {
            // Spend the time of a real check, so response times do not
            // tell which user names exist; the result does not matter.
            if let Some(h) = self.auth.decoy_basic.and_then(hash_of) {
                let _ = h.verify(&creds.password);
            }
            return ConsumerResult::Failed(CredentialError::BasicUnknownUser);
        };
        if self.cache.credentials.hit(i, &creds, self.now) {
            return ConsumerResult::Ok(i, None);
        }
        match hash_of(i) {
            Some(h) if h.verify(&creds.password) => {
                self.cache.credentials.remember(i, &creds, self.now);
                ConsumerResult::Ok(i, None)
            }
            _ => ConsumerResult::Failed(CredentialError::BasicWrongPassword(i)),
        }
    }

    /// API key: the consumer whose key the request carries.
    fn api_key(&mut self) -> ConsumerResult {
        if let Some(r) = &self.api_key {
            return r.clone();
        }
        let r = self.compute_api_key();
        self.api_key = Some(r.clone());
        r
    }

    fn compute_api_key(&self) -> ConsumerResult {
        let cfg = &self.auth.config.api_key;
        let mut failure = None;
        for f in cfg.candidates(self.req) {
            if f.token.len() > cfg.max_key_bytes {
                failure = Some(CredentialError::ApiKeyTooLarge(f.token.len()));
                continue;
            }
            if let Some(i) = self.auth.keys.consumer(&f.token) {
                return ConsumerResult::Ok(i, Some(f.location));
            }
            failure.get_or_insert(CredentialError::ApiKeyUnknown);
        }
        match failure {
            Some(e) => ConsumerResult::Failed(e),
            None => ConsumerResult::Missing,
        }
    }

    fn consumer_method(&mut self, method: Method) -> Result<Vec<Authenticated>, Failure> {
        let r = match method {
            Method::Basic => self.basic(),
            _ => self.api_key(),
        };
        match r {
            ConsumerResult::Ok(i, _) => Ok(vec![Authenticated::Consumer(method, i)]),
            ConsumerResult::Missing => Err(Failure::Missing(method.bit())),
            ConsumerResult::Failed(e) => Err(Failure::Credential(e)),
        }
    }

    fn requirement(
        &mut self,
        r: &Requirement,
        depth: usize,
    ) -> Result<Vec<Authenticated>, Failure> {
        if depth > crate::config::MAX_REQUIREMENT_DEPTH {
            return Err(Failure::Missing(0));
        }
        match r {
            Requirement::ProviderName(name) => {
                let Some(i) = self
                    .auth
                    .providers
                    .iter()
                    .position(|(n, _)| n.as_str() == name)
                else {
                    return Err(Failure::Missing(Method::Jwt.bit()));
                };
                match self.provider(i) {
                    ProviderResult::Ok(..) => Ok(vec![Authenticated::Provider(i)]),
                    ProviderResult::Missing => Err(Failure::Missing(Method::Jwt.bit())),
                    ProviderResult::Failed(e) => Err(Failure::Failed(i, e)),
                }
            }
            Requirement::BasicAuth(_) => self.consumer_method(Method::Basic),
            Requirement::ApiKey(_) => self.consumer_method(Method::ApiKey),
            Requirement::RequiresAny(list) => {
                let mut best = None;
                for child in list {
                    match self.requirement(child, depth + 1) {
                        Ok(v) => return Ok(v),
                        Err(f) => best = Some(Failure::better(best, f)),
                    }
                }
                Err(best.unwrap_or(Failure::Missing(0)))
            }
            Requirement::RequiresAll(list) => {
                let mut all = Vec::new();
                for child in list {
                    all.extend(self.requirement(child, depth + 1)?);
                }
                Ok(all)
            }
            Requirement::AllowMissing(_) | Requirement::AllowMissingOrFailed(_) => {
                let mut ok = Vec::new();
                let mut best = None;
                for i in 0..self.auth.providers.len() {
                    match self.provider(i) {
                        ProviderResult::Ok(..) => ok.push(Authenticated::Provider(i)),
                        ProviderResult::Missing => {}
                        ProviderResult::Failed(e) => {
                            best = Some(Failure::better(best, Failure::Failed(i, e)))
                        }
                    }
                }
                let mut methods = Vec::new();
                if !self.auth.basic_users.is_empty() {
                    methods.push(Method::Basic);
                }
                if !self.auth.keys.is_empty() {
                    methods.push(Method::ApiKey);
                }
                for m in methods {
                    match self.consumer_method(m) {
                        Ok(v) => ok.extend(v),
                        Err(Failure::Missing(_)) => {}
                        Err(f) => best = Some(Failure::better(best, f)),
                    }
                }
                match best {
                    Some(f) if ok.is_empty() && matches!(r, Requirement::AllowMissing(_)) => Err(f),
                    _ => Ok(ok),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkeys::JWKS_ALL;
    use crate::testutil::{claims, sign, NOW};
    use serde_json::json;

    fn auth(extra_provider: &str, root: &str) -> JwtAuth {
        let jwks = serde_json::to_string(JWKS_ALL).unwrap();
        JwtAuth::from_json(
            format!(
                r#"{{"providers":{{
                  "corp":{{"issuer":"https://issuer.test","audiences":["api"],
                           "local_jwks":{{"inline_string":{jwks}}}{extra_provider}}},
                  "partner":{{"issuer":"https://partner.test","local_jwks":{{"inline_string":{jwks}}},
                           "from_headers":[{{"name":"x-partner-token"}}]}}
                }}{root}}}"#
            )
            .as_bytes(),
        )
        .unwrap()
    }

    fn req(method: &str, path: &str, headers: &[(&str, &str)]) -> RequestView {
        RequestView {
            method: method.into(),
            path: path.into(),
            host: "api.local".into(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            request_id: "rid".into(),
            ..Default::default()
        }
    }

    fn decide(a: &JwtAuth, r: &RequestView) -> Decision {
        a.decide(r, &a.initial_keys(), &mut a.new_cache(), NOW)
    }

    fn bearer(token: &str) -> String {
        format!("Bearer {token}")
    }

    fn denial(d: Decision) -> Denial {
        match d {
            Decision::Deny { denial, .. } => denial,
            other => panic!("expected a denial, got {other:?}"),
        }
    }

    fn www(d: &Denial) -> &str {
        d.headers
            .iter()
            .find(|(k, _)| k == "www-authenticate")
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    }

    #[test]
    fn every_algorithm_verifies() {
        let a = auth("", "");
        for (key, alg) in [
            ("rsa1", "RS256"),
            ("rsa1", "RS384"),
            ("rsa1", "RS512"),
            ("rsa1", "PS256"),
            ("rsa1", "PS384"),
            ("rsa1", "PS512"),
            ("p256", "ES256"),
            ("p384", "ES384"),
            ("p521", "ES512"),
            ("ed", "EdDSA"),
            ("hs", "HS256"),
            ("hs", "HS384"),
            ("hs", "HS512"),
        ] {
            let t = sign(key, alg, &claims(json!({})));
            let h = bearer(&t);
            match decide(&a, &req("GET", "/", &[("authorization", &h)])) {
                Decision::Allow {
                    identity, verified, ..
                } => {
                    assert_eq!(verified, vec![0], "{alg}");
                    let id = identity.unwrap();
                    assert_eq!(id.provider, "corp");
                    assert_eq!(id.subject.as_deref(), Some("alice"));
                    assert_eq!(id.audiences, vec!["api".to_string()]);
                }
                d => panic!("{alg}: {d:?}"),
            }
        }
    }

    #[test]
    fn missing_token_is_401_without_error() {
        let a = auth("", "");
        let d = denial(decide(&a, &req("GET", "/", &[])));
        assert_eq!((d.status, d.code), (401, CODE_MISSING));
        assert_eq!(www(&d), "Bearer realm=\"palisade\"");
    }

    #[test]
    fn invalid_token_is_401_with_rfc6750_error() {
        let a = auth("", r#","realm":"api""#);
        let t = sign("rsa1", "RS256", &claims(json!({"exp": NOW - 3600})));
        let d = denial(decide(
            &a,
            &req("GET", "/", &[("authorization", &bearer(&t))]),
        ));
        assert_eq!((d.status, d.code), (401, "jwt_expired"));
        assert_eq!(
            www(&d),
            "Bearer realm=\"api\", error=\"invalid_token\", error_description=\"the token has expired\""
        );
        let body: serde_json::Value = serde_json::from_slice(&d.body("rid")).unwrap();
        assert_eq!(body["code"], "jwt_expired");
    }

    #[test]
    fn audience_mismatch_is_403() {
        let a = auth("", "");
        let t = sign("rsa1", "RS256", &claims(json!({"aud": "other"})));
        let d = denial(decide(
            &a,
            &req("GET", "/", &[("authorization", &bearer(&t))]),
        ));
        assert_eq!((d.status, d.code), (403, "jwt_audience_mismatch"));
        assert!(
            www(&d).contains("error=\"insufficient_scope\""),
            "{}",
            www(&d)
        );
    }

    #[test]
    fn subject_and_lifetime_and_skew() {
        let a = auth(
            r#","subject":{"prefix":"svc-"},"max_lifetime":"1h","clock_skew_seconds":5"#,
            "",
        );
        let ok = sign("rsa1", "RS256", &claims(json!({"sub": "svc-a"})));
        assert!(matches!(
            decide(&a, &req("GET", "/", &[("authorization", &bearer(&ok))])),
            Decision::Allow { .. }
        ));
        let t = sign("rsa1", "RS256", &claims(json!({})));
        let d = denial(decide(
            &a,
            &req("GET", "/", &[("authorization", &bearer(&t))]),
        ));
        assert_eq!((d.status, d.code), (403, "jwt_subject_mismatch"));
        let long = sign(
            "rsa1",
            "RS256",
            &claims(json!({"sub": "svc-a", "exp": NOW + 7200})),
        );
        let d = denial(decide(
            &a,
            &req("GET", "/", &[("authorization", &bearer(&long))]),
        ));
        assert_eq!(d.code, "jwt_lifetime_too_long");
        let just_expired = sign(
            "rsa1",
            "RS256",
            &claims(json!({"sub": "svc-a", "exp": NOW - 4})),
        );
        assert!(matches!(
            decide(
                &a,
                &req("GET", "/", &[("authorization", &bearer(&just_expired))])
            ),
            Decision::Allow { .. }
        ));
        let expired = sign(
            "rsa1",
            "RS256",
            &claims(json!({"sub": "svc-a", "exp": NOW - 6})),
        );
        assert_eq!(
            denial(decide(
                &a,
                &req("GET", "/", &[("authorization", &bearer(&expired))])
            ))
            .code,
            "jwt_expired"
        );
    }

    #[test]
    fn require_expiration_can_be_turned_off() {
        let a = auth(r#","require_expiration":false"#, "");
        let t = sign("rsa1", "RS256", &claims(json!({"exp": null})));
        assert!(matches!(
            decide(&a, &req("GET", "/", &[("authorization", &bearer(&t))])),
            Decision::Allow { .. }
        ));
    }

    const RULES: &str = r#","rules":[
        {"match":{"paths":[{"prefix":"/public"}]}},
        {"match":{"paths":[{"exact":"/partner"}],"methods":["POST"]},"requires":{"provider_name":"partner"}},
        {"match":{"paths":[{"regex":"/either/.*"}]},"requires":{"requires_any":[{"provider_name":"corp"},{"provider_name":"partner"}]}},
        {"match":{"paths":[{"prefix":"/both"}]},"requires":{"requires_all":[{"provider_name":"corp"},{"provider_name":"partner"}]}},
        {"match":{"paths":[{"prefix":"/optional"}]},"requires":{"allow_missing":{}}},
        {"match":{"paths":[{"prefix":"/anything"}]},"requires":{"allow_missing_or_failed":{}}},
        {"match":{"paths":[{"prefix":"/"}]},"requires":{"provider_name":"corp"}}
      ],"bypass_cors_preflight":true"#;

    #[test]
    fn requirements_per_route() {
        let a = auth("", RULES);
        let corp = bearer(&sign("rsa1", "RS256", &claims(json!({}))));
        let partner = sign(
            "p256",
            "ES256",
            &claims(json!({"iss": "https://partner.test"})),
        );
        let expired = bearer(&sign("rsa1", "RS256", &claims(json!({"exp": NOW - 999}))));
        let allowed = |r: RequestView| matches!(decide(&a, &r), Decision::Allow { .. });
        let status = |r: RequestView| denial(decide(&a, &r)).status;

        assert!(allowed(req("GET", "/public/x", &[])));
        assert!(allowed(req(
            "POST",
            "/partner",
            &[("x-partner-token", &partner)]
        )));
        assert_eq!(status(req("POST", "/partner", &[])), 401);
        // A valid corp token on the partner route: valid, but not accepted there.
        let d = denial(decide(
            &a,
            &req("POST", "/partner", &[("authorization", &corp)]),
        ));
        assert_eq!(
            d.status, 401,
            "corp's token is not in partner's header: missing"
        );
        assert!(allowed(req(
            "GET",
            "/either/1",
            &[("x-partner-token", &partner)]
        )));
        assert!(allowed(req(
            "GET",
            "/either/1",
            &[("authorization", &corp)]
        )));
        assert_eq!(
            status(req("GET", "/either/1", &[("authorization", &expired)])),
            401
        );
        assert!(allowed(req(
            "GET",
            "/both",
            &[("authorization", &corp), ("x-partner-token", &partner)]
        )));
        assert_eq!(
            status(req("GET", "/both", &[("authorization", &corp)])),
            401
        );
        assert!(allowed(req("GET", "/optional", &[])));
        assert!(allowed(req(
            "GET",
            "/optional",
            &[("authorization", &corp)]
        )));
        assert_eq!(
            status(req("GET", "/optional", &[("authorization", &expired)])),
            401
        );
        assert!(allowed(req(
            "GET",
            "/anything",
            &[("authorization", &expired)]
        )));
        assert!(allowed(req("GET", "/anything", &[])));
        assert_eq!(status(req("GET", "/other", &[])), 401);
        // CORS preflight passes without a token; a bare OPTIONS does not.
        assert!(allowed(req(
            "OPTIONS",
            "/other",
            &[
                ("origin", "https://app"),
                ("access-control-request-method", "POST")
            ]
        )));
        assert_eq!(status(req("OPTIONS", "/other", &[])), 401);
    }

    #[test]
    fn a_valid_token_for_another_route_is_403() {
        let a = auth("", RULES);
        // Partner's issuer, in the Authorization header corp reads.
        let partner = bearer(&sign(
            "p256",
            "ES256",
            &claims(json!({"iss": "https://partner.test"})),
        ));
        let a2 = JwtAuth::from_json(
            format!(
                r#"{{"providers":{{"corp":{{"issuer":"https://issuer.test","local_jwks":{{"inline_string":{j}}}}},
                   "partner":{{"issuer":"https://partner.test","local_jwks":{{"inline_string":{j}}}}}}},
                   "rules":[{{"match":{{}},"requires":{{"provider_name":"corp"}}}}]}}"#,
                j = serde_json::to_string(JWKS_ALL).unwrap()
            )
            .as_bytes(),
        )
        .unwrap();
        let d = denial(decide(
            &a2,
            &req("GET", "/", &[("authorization", &partner)]),
        ));
        assert_eq!((d.status, d.code), (403, CODE_REQUIREMENT_UNMET));
        // An unknown issuer is 401.
        let evil = bearer(&sign(
            "p256",
            "ES256",
            &claims(json!({"iss": "https://evil.test"})),
        ));
        let d = denial(decide(&a, &req("GET", "/x", &[("authorization", &evil)])));
        assert_eq!((d.status, d.code), (401, "jwt_unknown_issuer"));
    }

    #[test]
    fn outputs_strip_and_forward() {
        let a = auth(
            r#","from_params":["access_token"],"from_headers":[{"name":"authorization","value_prefix":"Bearer "}],
               "forward_payload_header":"x-jwt-payload",
               "claim_to_headers":[
                 {"header_name":"x-user","claim_name":"sub"},
                 {"header_name":"x-roles","claim_name":"realm_access.roles","separator":" "},
                 {"header_name":"x-tenant","claim_path":["https://ex.com/tenant"]},
                 {"header_name":"x-absent","claim_name":"nope"}]"#,
            "",
        );
        let t = sign(
            "rsa1",
            "RS256",
            &claims(
                json!({"realm_access": {"roles": ["r1", "r2"]}, "https://ex.com/tenant": "t9"}),
            ),
        );
        let d = decide(
            &a,
            &req(
                "GET",
                "/p?x=1&access_token=a",
                &[("authorization", &bearer(&t)), ("x-user", "forged")],
            ),
        );
        let Decision::Allow {
            headers, identity, ..
        } = d
        else {
            panic!("{d:?}")
        };
        for h in [
            "x-user",
            "x-roles",
            "x-tenant",
            "x-absent",
            "x-jwt-payload",
            "authorization",
        ] {
            assert!(
                headers.remove.iter().any(|r| r == h),
                "{h} removed: {headers:?}"
            );
        }
        let set = |n: &str| {
            headers
                .set
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(set("x-user").as_deref(), Some("alice"));
        assert_eq!(set("x-roles").as_deref(), Some("r1 r2"));
        assert_eq!(set("x-tenant").as_deref(), Some("t9"));
        assert_eq!(set("x-absent"), None);
        let payload = set("x-jwt-payload").unwrap();
        let decoded: serde_json::Value =
            serde_json::from_slice(&crate::b64::decode_strict(&payload).unwrap()).unwrap();
        assert_eq!(decoded["sub"], "alice");
        assert_eq!(headers.path, None, "the token came from the header");
        assert_eq!(identity.unwrap().claims["https://ex.com/tenant"], "t9");

        // From the query: the parameter is removed from the path.
        let d = decide(&a, &req("GET", &format!("/p?x=1&access_token={t}"), &[]));
        let Decision::Allow { headers, .. } = d else {
            panic!("{d:?}")
        };
        assert_eq!(headers.path.as_deref(), Some("/p?x=1"));
        assert!(!headers.remove.iter().any(|h| h == "authorization"));
    }

    #[test]
    fn forward_keeps_the_token_and_unverified_requests_still_lose_identity_headers() {
        let a = auth(
            r#","forward":true,"claim_to_headers":[{"header_name":"x-user","claim_name":"sub"}]"#,
            r#","rules":[{"match":{"paths":[{"prefix":"/public"}]}}]"#,
        );
        let d = decide(&a, &req("GET", "/public", &[("x-user", "forged")]));
        let Decision::Allow {
            headers, identity, ..
        } = d
        else {
            panic!("{d:?}")
        };
        assert_eq!(headers.remove, vec!["x-user".to_string()]);
        assert!(identity.is_none());
        // No rule matched the path at all: also forwarded, also stripped.
        let d = decide(&a, &req("GET", "/elsewhere", &[("x-user", "forged")]));
        assert!(
            matches!(d, Decision::Allow { ref headers, .. } if headers.remove == vec!["x-user".to_string()])
        );
    }

    #[test]
    fn cache_hits_skip_verification_and_respect_rotation_and_expiry() {
        let a = auth("", "");
        let keys = a.initial_keys();
        let mut cache = a.new_cache();
        let t = sign("rsa1", "RS256", &claims(json!({"exp": NOW + 100})));
        let r = req("GET", "/", &[("authorization", &bearer(&t))]);
        assert!(matches!(
            a.decide(&r, &keys, &mut cache, NOW),
            Decision::Allow { .. }
        ));
        assert_eq!(cache.tokens.len(), 1);
        // A cache hit with no keys at all still allows (same generation)...
        let no_keys: Vec<ProviderKeys> = keys
            .iter()
            .map(|k| ProviderKeys {
                set: None,
                generation: k.generation,
            })
            .collect();
        assert!(matches!(
            a.decide(&r, &no_keys, &mut cache, NOW),
            Decision::Allow { .. }
        ));
        // ...but not after a rotation (new generation) or after expiry.
        let rotated: Vec<ProviderKeys> = keys
            .iter()
            .map(|k| ProviderKeys {
                set: None,
                generation: k.generation + 1,
            })
            .collect();
        let d = a.decide(&r, &rotated, &mut cache, NOW);
        assert!(
            matches!(d, Decision::Deny { ref refetch, .. } if refetch == &vec![0]),
            "{d:?}"
        );
        assert!(matches!(
            a.decide(&r, &keys, &mut cache, NOW + 200),
            Decision::Deny { .. }
        ));
    }

    #[test]
    fn a_token_cookie_is_removed_and_other_cookies_kept() {
        let a = auth(r#","from_cookies":["session"]"#, "");
        let t = sign("rsa1", "RS256", &claims(json!({})));
        let cookie = format!("theme=dark; session={t}; lang=en");
        let d = decide(&a, &req("GET", "/", &[("cookie", &cookie)]));
        let Decision::Allow { headers, .. } = d else {
            panic!("{d:?}")
        };
        assert!(headers.remove.iter().any(|h| h == "cookie"));
        assert_eq!(
            headers.set,
            vec![("cookie".to_string(), "theme=dark; lang=en".to_string())]
        );
        let only = format!("session={t}");
        let d = decide(&a, &req("GET", "/", &[("cookie", &only)]));
        let Decision::Allow { headers, .. } = d else {
            panic!("{d:?}")
        };
        assert!(headers.remove.iter().any(|h| h == "cookie"));
        assert!(headers.set.is_empty());
    }

    #[test]
    fn time_comes_from_the_clock() {
        let a = auth("", "");
        let clock = sdk_ext::FixedClock::at_unix(NOW);
        let t = sign("rsa1", "RS256", &claims(json!({"exp": NOW + 100})));
        let r = req("GET", "/", &[("authorization", &bearer(&t))]);
        let keys = a.initial_keys();
        let mut cache = a.new_cache();
        assert!(matches!(
            a.decide_with_clock(&r, &keys, &mut cache, &clock),
            Decision::Allow { .. }
        ));
        clock.advance(std::time::Duration::from_secs(161));
        let d = denial(a.decide_with_clock(&r, &keys, &mut cache, &clock));
        assert_eq!(d.code, "jwt_expired");
    }

    #[test]
    fn unknown_kid_asks_for_a_refetch() {
        let a = auth("", "");
        let t = sign("rsa2", "RS256", &claims(json!({})));
        let d = decide(&a, &req("GET", "/", &[("authorization", &bearer(&t))]));
        let Decision::Deny {
            denial,
            refetch,
            provider,
            reason,
            method,
            consumer,
        } = d
        else {
            panic!("{d:?}")
        };
        assert_eq!(denial.code, "jwt_unknown_kid");
        assert_eq!(refetch, vec![0]);
        assert_eq!(provider, Some(0));
        assert_eq!((method, consumer), (Some(Method::Jwt), None));
        let r = req("GET", "/x?access_token=secret", &[]);
        let rec =
            serde_json::to_value(a.denial_record(&denial, provider, method, consumer, &reason, &r))
                .unwrap();
        assert_eq!(rec["provider"], "corp");
        assert_eq!(rec["auth_method"], "jwt");
        assert_eq!(rec["path"], "/x");
        assert!(!rec.to_string().contains(&t));
    }
}
