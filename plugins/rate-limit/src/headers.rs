//! Informational response headers.
//!
//! Draft (draft-ietf-httpapi-ratelimit-headers): `RateLimit-Policy:
//! "<rule>";q=<requests>;w=<window seconds>` and `RateLimit:
//! "<rule>";r=<remaining>;t=<seconds until full>`. Legacy:
//! `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset`
//! (seconds). A refusal always carries `Retry-After`.

use crate::config::HeaderStyle;
use crate::text::push_decimal;

/// The state of the most restrictive bucket that applied to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitState {
    /// Rule name.
    pub rule: String,
    /// Sustained requests per window.
    pub requests: u32,
    /// Window in seconds.
    pub window_secs: u64,
    /// Requests still admissible now.
    pub remaining: u32,
    /// Seconds until the bucket is full.
    pub reset_secs: u64,
}

/// The headers for `state` in `style`.
pub fn rate_limit_headers(style: HeaderStyle, state: &LimitState) -> Vec<(String, String)> {
    // Written with `push_decimal`, not `format!`: these are built for every
    // admitted request when headers are on.
    let number = |n: u64| {
        let mut s = String::with_capacity(20);
        push_decimal(&mut s, n);
        s
    };
    // `"<rule>";<a>=<x>;<b>=<y>`
    let item = |a: &str, x: u64, b: &str, y: u64| {
        let mut s = String::with_capacity(state.rule.len() + 32);
        s.push('"');
        s.push_str(&state.rule);
        s.push_str("\";");
        s.push_str(a);
        push_decimal(&mut s, x);
        s.push(';');
        s.push_str(b);
        push_decimal(&mut s, y);
        s
    };
    let mut out = Vec::new();
    if matches!(style, HeaderStyle::Draft | HeaderStyle::Both) {
        out.push((
            "ratelimit-policy".to_string(),
            item("q=", u64::from(state.requests), "w=", state.window_secs),
        ));
        out.push((
            "ratelimit".to_string(),
            item("r=", u64::from(state.remaining), "t=", state.reset_secs),
        ));
    }
    if matches!(style, HeaderStyle::Legacy | HeaderStyle::Both) {
        out.push((
            "x-ratelimit-limit".to_string(),
            number(u64::from(state.requests)),
        ));
        out.push((
            "x-ratelimit-remaining".to_string(),
            number(u64::from(state.remaining)),
        ));
        out.push(("x-ratelimit-reset".to_string(), number(state.reset_secs)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> LimitState {
        LimitState {
            rule: "api".into(),
            requests: 100,
            window_secs: 60,
            remaining: 37,
            reset_secs: 12,
        }
    }

    #[test]
    fn draft_headers() {
        assert_eq!(
            rate_limit_headers(HeaderStyle::Draft, &state()),
            vec![
                (
                    "ratelimit-policy".to_string(),
                    "\"api\";q=100;w=60".to_string()
                ),
                ("ratelimit".to_string(), "\"api\";r=37;t=12".to_string()),
            ]
        );
    }

    #[test]
    fn legacy_both_and_none() {
        let legacy = rate_limit_headers(HeaderStyle::Legacy, &state());
        assert_eq!(
            legacy[1],
            ("x-ratelimit-remaining".to_string(), "37".to_string())
        );
        assert_eq!(legacy.len(), 3);
        assert_eq!(rate_limit_headers(HeaderStyle::Both, &state()).len(), 5);
        assert!(rate_limit_headers(HeaderStyle::None, &state()).is_empty());
    }
}
