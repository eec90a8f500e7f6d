//! Metric names that read well in Envoy's `/stats/prometheus`.
//!
//! Plugins define their metrics once, when the plugin is configured, with
//! `proxy_define_metric`; Envoy prefixes them (`wasmcustom`). Names built here
//! are `palisade_<plugin>_<part>_<part>`, lower-case `[a-z0-9_]`, so they are
//! valid Prometheus names whatever a user called a policy.

/// Builds `palisade_<plugin>_<parts...>`, mapping every character outside
/// `[a-z0-9_]` to `_` (after lower-casing).
pub fn metric_name(plugin: &str, parts: &[&str]) -> String {
    let mut out = String::from("palisade_");
    push_sanitized(&mut out, plugin);
    for p in parts {
        out.push('_');
        push_sanitized(&mut out, p);
    }
    out
}

fn push_sanitized(out: &mut String, s: &str) {
    out.extend(s.chars().map(|c| {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' {
            c
        } else {
            '_'
        }
    }));
}

/// The kinds of metric Proxy-Wasm can define.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Monotonic count.
    Counter,
    /// Value that goes up and down.
    Gauge,
    /// Distribution of recorded values.
    Histogram,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_prometheus_safe() {
        assert_eq!(metric_name("rbac", &["allowed"]), "palisade_rbac_allowed");
        assert_eq!(
            metric_name("rbac", &["policy", "Deny-Admin.v2", "denied"]),
            "palisade_rbac_policy_deny_admin_v2_denied"
        );
        assert_eq!(metric_name("jwt-auth", &["x"]), "palisade_jwt_auth_x");
    }
}
