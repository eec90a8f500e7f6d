//! Fuzzing a module: random and mutated requests through the harness, traps
//! (Rust panics, `unreachable`, out-of-bounds) reported with a reproducer.
//!
//! The generator is a seeded splitmix64, so `--seed S` replays a run
//! exactly. Each iteration either mutates a seed request (from fixture
//! cases) one to four times or builds a request from scratch: odd methods,
//! paths with encoded NULs, `..`, bidi characters and 16 KiB segments,
//! credentials-shaped headers (`Bearer`, `Basic`, JWT-like, API keys),
//! repeated and removed headers, JSON/XML/multipart/form bodies up to 64 KiB,
//! IPv4 and IPv6 sources. Calls the module makes are answered as the
//! fixture's callouts say, or fail (http: reset; gRPC: `UNAVAILABLE`).

use crate::fixture::{FixtureFile, Request};
use crate::{CallResponse, GrpcResponse, GrpcStreamEvent, HostBuilder, HostError};
use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A seeded pseudo-random generator (splitmix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator starting at `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// True with probability 1/`n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const METHODS: &[&str] = &[
    "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "TRACE", "get", "PROPFIND", "X",
];
const PATHS: &[&str] = &[
    "/",
    "/admin",
    "/admin/users",
    "/public/index.html",
    "/api/v1/items?id=1&id=2",
    "/orders/42",
    "/.well-known/jwks.json",
    "/login?redirect=//evil.example",
    "/a/../b/./c",
    "/%2e%2e/%2fetc/passwd",
    "/search?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E",
    "/x?a=' OR 1=1 --",
];
const HEADER_NAMES: &[&str] = &[
    "authorization",
    "cookie",
    "content-type",
    "x-forwarded-for",
    "x-forwarded-client-cert",
    "x-request-id",
    "x-api-key",
    "x-user",
    "x-team",
    "x-tenant",
    "x-roles",
    "user-agent",
    "accept",
    "referer",
    "origin",
    "access-control-request-method",
    "x-jwt-payload",
    "x-palisade-consumer",
];
const VALUES: &[&str] = &[
    "",
    "Bearer ",
    "Bearer a.b.c",
    "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
    "Bearer eyJhbGciOiJIUzI1NiIsImtpZCI6ImhzIn0.eyJleHAiOjF9.AAAA",
    "Basic YWxpY2U6c2VjcmV0",
    "Basic !!!",
    "Basic Og==",
    "text/xml",
    "application/json",
    "multipart/form-data; boundary=b",
    "application/x-www-form-urlencoded",
    "127.0.0.1, 10.0.0.1",
    "By=spiffe://a/b;URI=spiffe://c/d;Subject=\"CN=x\"",
    "sqlmap/1.0",
    "<script>alert(1)</script>",
    "' UNION SELECT * FROM users --",
    "../../etc/passwd",
    "\u{202e}\u{0}\u{7f}é漢字",
    "GET",
];
const BODIES: &[&str] = &[
    "",
    "{}",
    "{\"a\":[1,2,{\"b\":null}],\"c\":\"' OR 1=1\"}",
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
    "<?xml version=\"1.0\"?><a b=\"1\"><c>text</c></a>",
    "<!DOCTYPE a [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><a>&x;</a>",
    "--b\r\ncontent-disposition: form-data; name=\"f\"; filename=\"x.php\"\r\n\r\n<?php ?>\r\n--b--\r\n",
    "a=1&b=%3Cscript%3E&c=%ZZ",
    "{\"unterminated\": ",
];

/// A random printable-or-not string of up to `max` characters.
fn text(rng: &mut Rng, max: usize) -> String {
    let n = rng.below(max + 1);
    (0..n)
        .map(|_| match rng.below(10) {
            0 => char::from_u32(rng.below(0xD7FF) as u32).unwrap_or('?'),
            1 => *rng.pick(&['%', '/', '.', '\0', '\u{7f}', '=', '&', ';', '"', '\\']),
            _ => (b' ' + rng.below(95) as u8) as char,
        })
        .collect()
}

fn header_name(rng: &mut Rng) -> String {
    if rng.one_in(4) {
        let n = 1 + rng.below(20);
        let tail: String = (0..n)
            .map(|_| *rng.pick(b"abcdefghijklmnopqrstuvwxyz0123456789-_") as char)
            .collect();
        format!("x-{tail}")
    } else {
        rng.pick(HEADER_NAMES).to_string()
    }
}

fn value(rng: &mut Rng) -> String {
    match rng.below(8) {
        0 => text(rng, 64),
        1 => "v".repeat(1 + rng.below(8192)),
        2 => format!("{}{}", rng.pick(VALUES), text(rng, 32)),
        _ => rng.pick(VALUES).to_string(),
    }
}

fn source(rng: &mut Rng) -> Option<IpAddr> {
    match rng.below(4) {
        0 => None,
        1 => Some(IpAddr::V4(Ipv4Addr::from(rng.next_u64() as u32))),
        2 => Some(IpAddr::V6(Ipv6Addr::from(
            (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64()),
        ))),
        _ => Some(IpAddr::V4(Ipv4Addr::new(
            127,
            0,
            0,
            1 + rng.below(250) as u8,
        ))),
    }
}

/// Applies one random mutation to `r`.
fn mutate(rng: &mut Rng, r: &mut Request) {
    match rng.below(10) {
        0 => r.method = rng.pick(METHODS).to_string(),
        1 => r.path = rng.pick(PATHS).to_string(),
        2 => r.path.push_str(&text(rng, 48)),
        3 => r.path = format!("/{}", "a/".repeat(rng.below(8192))),
        4 => {
            r.authority = rng
                .pick(&["", "api.local:8080", "[::1]", "exa mple", "é.test"])
                .to_string()
        }
        5 => {
            let (n, v) = (header_name(rng), value(rng));
            r.headers.push((n, v));
        }
        6 if !r.headers.is_empty() => {
            let i = rng.below(r.headers.len());
            if rng.one_in(2) {
                r.headers.remove(i);
            } else {
                let h = r.headers[i].clone();
                r.headers.push(h);
            }
        }
        7 => {
            r.body = match rng.below(4) {
                0 => None,
                1 => Some(text(rng, 256)),
                2 => Some(rng.pick(BODIES).repeat(1 + rng.below(64))),
                _ => Some(rng.pick(BODIES).to_string()),
            }
        }
        8 => r.source = source(rng),
        _ => {
            for _ in 0..rng.below(200) {
                let (n, v) = (header_name(rng), rng.pick(VALUES).to_string());
                r.headers.push((n, v));
            }
        }
    }
    // Envoy frames bodies itself; a request never carries these two.
    r.headers
        .retain(|(k, _)| k != "content-length" && k != "transfer-encoding");
}

/// The next request: a mutated seed or a fresh one.
pub fn next_request(rng: &mut Rng, seeds: &[Request]) -> Request {
    let mut r = if !seeds.is_empty() && rng.one_in(2) {
        rng.pick(seeds).clone()
    } else {
        Request {
            method: rng.pick(METHODS).to_string(),
            path: rng.pick(PATHS).to_string(),
            ..Request::default()
        }
    };
    for _ in 0..1 + rng.below(4) {
        mutate(rng, &mut r);
    }
    r
}

/// A request that trapped the module.
#[derive(Debug, Clone)]
pub struct Trap {
    /// Iteration number (0-based) in the run.
    pub iteration: u64,
    /// The request.
    pub request: Request,
    /// The host's error (trap message and logs).
    pub error: String,
}

/// What a fuzz run saw.
#[derive(Debug, Clone, Default)]
pub struct FuzzReport {
    /// Requests sent.
    pub iterations: u64,
    /// The seed the run started from.
    pub seed: u64,
    /// Count of each response status.
    pub statuses: BTreeMap<u16, u64>,
    /// Streams left waiting (a filter paused and nothing resumed it).
    pub stalled: u64,
    /// Streams the module reset.
    pub resets: u64,
    /// Number of traps.
    pub trap_count: u64,
    /// The first traps, each with its request.
    pub traps: Vec<Trap>,
}

/// How many trapping requests a report keeps.
pub const MAX_KEPT_TRAPS: usize = 5;

/// Sends `iterations` generated requests through hosts made by `builder`
/// (a fresh host after each trap or stall). Fails only when a host cannot
/// be built.
pub fn fuzz(
    builder: impl Fn() -> HostBuilder,
    seeds: &[Request],
    iterations: u64,
    seed: u64,
) -> Result<FuzzReport, HostError> {
    let build = || {
        builder()
            .http_responder(|_| Some(CallResponse::failure()))
            .grpc_responder(|_| Some(GrpcResponse::unavailable()))
            .default_grpc_stream_responder(|s| {
                if s.delivered.is_empty() {
                    GrpcStreamEvent::unavailable()
                } else {
                    Vec::new()
                }
            })
            .build()
    };
    let mut host = build()?;
    let mut rng = Rng::new(seed);
    let mut report = FuzzReport {
        seed,
        ..FuzzReport::default()
    };
    for iteration in 0..iterations {
        let request = next_request(&mut rng, seeds);
        report.iterations += 1;
        match host.send(&request) {
            Ok(o) => *report.statuses.entry(o.status).or_default() += 1,
            Err(HostError::StreamReset { .. }) => report.resets += 1,
            Err(HostError::Stalled { .. }) => {
                report.stalled += 1;
                host = build()?;
            }
            Err(e) => {
                report.trap_count += 1;
                if report.traps.len() < MAX_KEPT_TRAPS {
                    report.traps.push(Trap {
                        iteration,
                        request,
                        error: e.to_string(),
                    });
                }
                host = build()?;
            }
        }
    }
    Ok(report)
}

/// A fixture file that replays a trapping request (run it with
/// `palisade-harness run MODULE --fixtures FILE`).
pub fn reproducer(config: &serde_json::Value, trap: &Trap) -> String {
    let file = FixtureFile {
        name: format!("fuzz reproducer (iteration {})", trap.iteration),
        config: config.clone(),
        config_error: None,
        callouts: BTreeMap::new(),
        connection_manager: None,
        cases: vec![crate::fixture::Case {
            name: "does not trap".to_string(),
            request: trap.request.clone(),
            expect: crate::fixture::Expect::default(),
        }],
        path: Default::default(),
    };
    serde_yaml::to_string(&file).expect("a fixture file always serializes")
}

impl fmt::Display for FuzzReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} iterations (seed {}): {} traps, {} stalled, {} resets; statuses",
            self.iterations, self.seed, self.trap_count, self.stalled, self.resets
        )?;
        for (status, n) in &self.statuses {
            write!(f, " {status}x{n}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_requests() {
        let seeds = [Request::default()];
        let a: Vec<Request> = {
            let mut rng = Rng::new(7);
            (0..200).map(|_| next_request(&mut rng, &seeds)).collect()
        };
        let mut rng = Rng::new(7);
        for r in &a {
            assert_eq!(&next_request(&mut rng, &seeds), r);
        }
        let mut other = Rng::new(8);
        assert_ne!(next_request(&mut other, &seeds), a[0]);
    }

    #[test]
    fn generated_requests_vary_and_never_frame_bodies_themselves() {
        let mut rng = Rng::new(1);
        let reqs: Vec<Request> = (0..2000).map(|_| next_request(&mut rng, &[])).collect();
        let methods: std::collections::BTreeSet<_> = reqs.iter().map(|r| &r.method).collect();
        assert!(methods.len() > 5, "{methods:?}");
        assert!(reqs.iter().any(|r| r.body.is_some()));
        assert!(reqs.iter().any(|r| r.headers.len() > 50));
        assert!(reqs.iter().any(|r| matches!(r.source, Some(IpAddr::V6(_)))));
        assert!(reqs
            .iter()
            .all(|r| r.headers.iter().all(|(k, _)| k != "content-length")));
    }

    #[test]
    fn a_reproducer_is_a_fixture_file() {
        let trap = Trap {
            iteration: 3,
            request: Request {
                path: "/x\u{0}".into(),
                ..Request::default()
            },
            error: "trap".into(),
        };
        let yaml = reproducer(&serde_json::json!({"a": 1}), &trap);
        let file = FixtureFile::parse(&yaml).unwrap();
        assert_eq!(file.cases[0].request, trap.request);
        assert_eq!(file.config, serde_json::json!({"a": 1}));
    }
}
