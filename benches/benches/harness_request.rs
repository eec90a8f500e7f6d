//! One request through each plugin module in the wasmtime harness: the
//! whole Proxy-Wasm path (context creation, header reads, the decision,
//! header writes, `on_log`) as a plugin author's tests pay for it, beside
//! the floor (a module that does nothing).
//!
//! Needs the release modules: `scripts/build`, then
//! `cargo bench -p palisade-benches --bench harness_request`. The waf case
//! loads OWASP CRS 4.25 at paranoia level 1 from `../shared/crs-4.25.0`
//! (or `$PALISADE_CRS_DIR`). The cases are `palisade_benches::harness_cases`.

use criterion::{criterion_group, criterion_main, Criterion};
use palisade_benches::harness_cases::cases;

fn one_request(c: &mut Criterion) {
    let mut g = c.benchmark_group("harness_request");
    for case in cases().unwrap_or_else(|e| panic!("{e}")) {
        let mut host = case.host().unwrap_or_else(|e| panic!("{e}"));
        let out = host.send(&case.request).expect("request runs");
        case.check(&out).unwrap_or_else(|e| panic!("{e}"));
        g.bench_function(case.name, |b| {
            b.iter(|| host.send(&case.request).expect("request runs"))
        });
    }
    g.finish();
}

criterion_group!(benches, one_request);
criterion_main!(benches);
