//! One allowed request per plugin module, through the wasmtime harness: the
//! cases the `harness_request` criterion bench times and the `wasm-fuel`
//! report counts, so both measure the same work.
//!
//! The modules are the release builds in `target/plugins` (`scripts/build`)
//! and, as the floor, the harness test module in its `pass` mode (a
//! Proxy-Wasm filter that does nothing; `target/wasm32-wasip1/release`).

use crate::crs::crs_config;
use crate::oidc_session;
use crate::tokens::{HS256_JWKS, HS256_TOKEN};
use host_test_harness::clock::DEFAULT_START_NANOS;
use host_test_harness::fixture::{Outcome, Request};
use host_test_harness::{Host, Module};
use std::path::PathBuf;

/// A module, its configuration, and the request sent through it.
pub struct Case {
    /// What the case is called in reports (the plugin's name, or `floor`).
    pub name: &'static str,
    /// The `.wasm` file, relative to the workspace root.
    pub module: &'static str,
    /// The plugin configuration (JSON).
    pub config: String,
    /// The request; every case's request is allowed.
    pub request: Request,
    /// A header the upstream must see (proof the plugin did its work).
    pub upstream_sees: Option<(&'static str, String)>,
}

/// The names of the cases, the floor first: what [`case`] accepts.
pub const NAMES: [&str; 6] = ["floor", "rbac", "rate-limit", "jwt-auth", "waf", "oidc"];

/// The floor and every plugin, in the order of [`NAMES`].
///
/// Fails when the waf case cannot load OWASP CRS (see [`crate::crs`]).
pub fn cases() -> Result<Vec<Case>, String> {
    NAMES.iter().map(|name| case(name)).collect()
}

/// The case called `name` (one of [`NAMES`]). Only the waf case loads
/// OWASP CRS, so the others build without it.
///
/// Fails for a name not in [`NAMES`], and when the waf case cannot load
/// CRS.
pub fn case(name: &str) -> Result<Case, String> {
    let get = |path: &str, headers: &[(&str, &str)]| Request {
        path: path.into(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        source: Some("127.0.0.1".parse().expect("literal")),
        ..Request::default()
    };
    let plugin = |name: &'static str, module: &'static str, config: String, request| Case {
        name,
        module,
        config,
        request,
        upstream_sees: None,
    };
    Ok(match name {
        "floor" => plugin(
            "floor",
            "target/wasm32-wasip1/release/harness_test_modules.wasm",
            r#"{"mode":"pass"}"#.into(),
            get("/bench/item", &[]),
        ),
        "rbac" => plugin(
            "rbac",
            "target/plugins/rbac.wasm",
            r#"{"policies":[{"name":"bench","action":"ALLOW","rules":[{"paths":[{"prefix":"/bench"}],"headers":[{"name":"x-team","string_match":{"exact":"ops"}}]}]}]}"#.into(),
            get("/bench/item", &[("x-team", "ops")]),
        ),
        "rate-limit" => plugin(
            "rate-limit",
            "target/plugins/rate-limit.wasm",
            r#"{"response_headers":"both","rules":[{"name":"bench","key":["client_ip"],"limit":{"requests":1000000000,"per":"second"}}]}"#.into(),
            get("/bench/item", &[]),
        ),
        "jwt-auth" => plugin(
            "jwt-auth",
            "target/plugins/jwt-auth.wasm",
            format!(
                r#"{{"providers":{{"corp":{{"issuer":"https://issuer.test","audiences":["api"],"local_jwks":{{"inline_string":{}}}}}}},"rules":[{{"match":{{"paths":[{{"prefix":"/"}}]}},"requires":{{"provider_name":"corp"}}}}]}}"#,
                serde_json::to_string(HS256_JWKS).expect("string")
            ),
            get("/bench/item", &[("authorization", &format!("Bearer {HS256_TOKEN}"))]),
        ),
        "waf" => plugin(
            "waf",
            "target/plugins/waf.wasm",
            serde_json::to_string(&crs_config(1).map_err(|e| e.to_string())?)
                .expect("the CRS configuration serializes"),
            get(
                "/shop/search?q=running+shoes+size+42&page=2&sort=price_asc",
                &[
                    ("user-agent", "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0"),
                    ("accept", "text/html"),
                ],
            ),
        ),
        "oidc" => Case {
            // The session started when the host's virtual clock starts (it
            // does not move while benching), so it stays valid.
            upstream_sees: Some((
                "authorization",
                format!("Bearer {}", oidc_session::ACCESS_TOKEN),
            )),
            ..plugin(
                "oidc",
                "target/plugins/oidc.wasm",
                oidc_session::config_json(),
                get(
                    "/bench/item",
                    &[(
                        "cookie",
                        &oidc_session::session_cookie(DEFAULT_START_NANOS / 1_000_000_000),
                    )],
                ),
            )
        },
        other => {
            return Err(format!(
                "no harness case named {other:?}; the cases are {}",
                NAMES.join(", ")
            ))
        }
    })
}

impl Case {
    /// The module file.
    pub fn module_path(&self) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(self.module)
    }

    /// A host running the case's module with its configuration.
    pub fn host(&self) -> Result<Host, String> {
        let path = self.module_path();
        let module = Module::from_file(&path)
            .map_err(|e| format!("{}: {e}; run scripts/build first", path.display()))?;
        Host::builder(&module)
            .plugin_config(self.config.clone())
            .build()
            .map_err(|e| format!("{}: {e}", self.name))
    }

    /// Whether `out` is what the case's request must get: allowed, and the
    /// upstream seeing what the plugin adds.
    pub fn check(&self, out: &Outcome) -> Result<(), String> {
        if out.status != 200 {
            return Err(format!(
                "{}: the bench request must be allowed: {out:?}",
                self.name
            ));
        }
        if let Some((name, value)) = &self.upstream_sees {
            let seen = out
                .upstream
                .as_ref()
                .and_then(|u| u.headers.iter().find(|(n, _)| n == name))
                .map(|(_, v)| v.as_str());
            if seen != Some(value.as_str()) {
                return Err(format!(
                    "{}: the upstream saw {name}: {seen:?}, not {value:?}",
                    self.name
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_builds_its_own_case() {
        // The waf case needs CRS on disk; the others build without it.
        for name in NAMES.iter().filter(|n| **n != "waf") {
            let c = case(name).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(c.name, *name);
            assert!(c.module.ends_with(".wasm"), "{name}: module {}", c.module);
            serde_json::from_str::<serde_json::Value>(&c.config)
                .unwrap_or_else(|e| panic!("{name}: the configuration is not JSON: {e}"));
        }
    }

    #[test]
    fn an_unknown_name_is_refused_with_the_known_ones() {
        let err = case("rbca").err().expect("no such case");
        assert!(err.contains("\"rbca\""), "{err}");
        for name in NAMES {
            assert!(err.contains(name), "{err} lacks {name}");
        }
    }
}
