//! WAF inspection cost, natively (the engine the plugin runs): request
//! phases 1 and 2 through OWASP CRS 4.25 at paranoia level 1, blocking, as
//! `waf-compile --paranoia 1` ships it, against a baseline engine holding
//! one trivial rule, in the same group so the ratio can be read.
//!
//! Reads CRS from `../shared/crs-4.25.0` (or `$PALISADE_CRS_DIR`).
//! `cargo bench -p palisade-benches --bench waf`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use palisade_benches::crs::crs_config;
use palisade_benches::typical_request;
use std::hint::black_box;
use waf::{Request, Verdict, Waf};

/// The baseline: the same engine and request parsing, one rule that never
/// matches.
fn one_rule() -> Waf {
    Waf::from_json(
        br#"{"rules": [{"name": "baseline.conf", "text": "SecRule REQUEST_FILENAME \"@streq /waf-bench-never\" \"id:1,phase:1,deny,status:403\""}]}"#,
    )
    .expect("the baseline rule loads")
}

/// A request as the filter builds it from the proxy's headers and body.
struct Input {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    extra: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

/// About 150 bytes of JSON, as an API client posts.
const JSON_BODY: &str = r#"{"customer":"c-1042","items":[{"sku":"TSHIRT-M-BLUE","qty":2},{"sku":"MUG-01","qty":1}],"coupon":"SUMMER10","note":"leave at the door"}"#;

fn inputs() -> Vec<Input> {
    vec![
        Input {
            name: "clean_get_query",
            method: "GET",
            path: "/shop/search?q=running+shoes+size+42&page=2&sort=price_asc&lang=en-GB",
            extra: Vec::new(),
            body: Vec::new(),
        },
        Input {
            name: "json_post_150b",
            method: "POST",
            path: "/api/v1/orders",
            extra: vec![
                ("content-type", "application/json".into()),
                ("content-length", JSON_BODY.len().to_string()),
            ],
            body: JSON_BODY.as_bytes().to_vec(),
        },
        Input {
            name: "sqli_get_blocked",
            method: "GET",
            path: "/shop/search?q=1%27%20OR%20%271%27%3D%271%27%20UNION%20SELECT%20password%20FROM%20users--",
            extra: Vec::new(),
            body: Vec::new(),
        },
    ]
}

/// What the filter does per request: the request model from the view, the
/// body, phases 1 and 2.
fn inspect(waf: &Waf, input: &Input) -> Verdict {
    let extra: Vec<(&str, &str)> = input.extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut view = typical_request(input.path, &extra);
    view.method = input.method.into();
    let mut req = Request::from_view(&view, "HTTP/1.1", waf.limits);
    req.set_body(input.body.clone(), waf.request_body_limit);
    waf.inspect(&req)
}

fn check(c: &mut Criterion) {
    let crs = crs_config(1).unwrap_or_else(|e| panic!("{e}"));
    let crs = Waf::from_config(&crs).unwrap_or_else(|e| panic!("CRS does not load: {e}"));
    let baseline = one_rule();
    let inputs = inputs();
    for input in &inputs {
        let blocked = inspect(&crs, input).interruption.map(|i| i.rule_id);
        let expected = input.name.ends_with("_blocked").then_some(949110);
        assert_eq!(
            blocked,
            expected,
            "{}: CRS PL1 must {} it",
            input.name,
            if expected.is_some() { "block" } else { "pass" }
        );
        assert_eq!(
            inspect(&baseline, input).interruption,
            None,
            "{}",
            input.name
        );
    }

    let mut g = c.benchmark_group("waf_inspect");
    for input in &inputs {
        for (engine, waf) in [("crs_pl1", &crs), ("one_rule", &baseline)] {
            g.bench_with_input(BenchmarkId::new(engine, input.name), input, |b, input| {
                b.iter(|| inspect(waf, black_box(input)))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, check);
criterion_main!(benches);
