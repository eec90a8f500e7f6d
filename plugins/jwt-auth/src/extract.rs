//! Finding tokens (and API keys) in a request: headers with a value prefix,
//! query parameters, cookies. At most [`MAX_TOKENS`] candidates per source
//! set.

use crate::config::{HeaderSource, Provider};
use sdk_ext::RequestView;

/// Most token candidates looked at per provider and request.
pub const MAX_TOKENS: usize = 4;

/// Where a token was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// In this header.
    Header(String),
    /// In this query parameter.
    Param(String),
    /// In this cookie.
    Cookie(String),
}

/// A token candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The token text (prefix removed).
    pub token: String,
    /// Where it was.
    pub location: Location,
}

/// The token candidates of `provider` in `req`, in configuration order.
pub fn tokens(provider: &Provider, req: &RequestView) -> Vec<Found> {
    tokens_in(
        &provider.header_sources(),
        &provider.from_params,
        &provider.from_cookies,
        req,
    )
}

/// The candidates in the named headers, query parameters and cookies of
/// `req`, in that order, at most [`MAX_TOKENS`].
pub fn tokens_in(
    headers: &[HeaderSource],
    params: &[String],
    cookies: &[String],
    req: &RequestView,
) -> Vec<Found> {
    let mut out = Vec::new();
    for src in headers {
        for (name, value) in &req.headers {
            if out.len() >= MAX_TOKENS {
                return out;
            }
            if !name.eq_ignore_ascii_case(src.name.as_str()) {
                continue;
            }
            let token = match &src.value_prefix {
                None => Some(value.trim()),
                Some(p) => strip_prefix_ignore_case(value.trim_start(), p).map(str::trim),
            };
            if let Some(t) = token.filter(|t| !t.is_empty()) {
                out.push(Found {
                    token: t.to_string(),
                    location: Location::Header(src.name.as_str().to_string()),
                });
            }
        }
    }
    if let Some(query) = req.query() {
        for pair in query.split('&').take(256) {
            if out.len() >= MAX_TOKENS {
                return out;
            }
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if !v.is_empty() && params.iter().any(|p| p == k) {
                out.push(Found {
                    token: v.to_string(),
                    location: Location::Param(k.to_string()),
                });
            }
        }
    }
    if !cookies.is_empty() {
        for (_, value) in req
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("cookie"))
        {
            for c in value.split(';').take(256) {
                if out.len() >= MAX_TOKENS {
                    return out;
                }
                let (k, v) = c.trim().split_once('=').unwrap_or((c.trim(), ""));
                let v = v.trim_matches('"');
                if !v.is_empty() && cookies.iter().any(|p| p == k) {
                    out.push(Found {
                        token: v.to_string(),
                        location: Location::Cookie(k.to_string()),
                    });
                }
            }
        }
    }
    out
}

fn strip_prefix_ignore_case<'a>(value: &'a str, prefix: &str) -> Option<&'a str> {
    let head = value.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        value.get(prefix.len()..)
    } else {
        None
    }
}

/// All `cookie` headers joined into one value without the cookies named in
/// `names`; `None` when nothing is left.
pub fn cookies_without(req: &RequestView, names: &[String]) -> Option<String> {
    let kept: Vec<&str> = req
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("cookie"))
        .flat_map(|(_, v)| v.split(';'))
        .map(str::trim)
        .filter(|c| {
            let name = c.split_once('=').map_or(*c, |(k, _)| k).trim();
            !c.is_empty() && !names.iter().any(|n| n == name)
        })
        .take(256)
        .collect();
    (!kept.is_empty()).then(|| kept.join("; "))
}

/// `path` without the query parameters named in `names`.
pub fn path_without_params(path: &str, names: &[String]) -> String {
    let Some((base, query)) = path.split_once('?') else {
        return path.to_string();
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let k = pair.split_once('=').map_or(*pair, |(k, _)| k);
            !names.iter().any(|n| n == k)
        })
        .collect();
    if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::JwtAuthConfig;

    fn provider(sources: &str) -> Provider {
        let c = JwtAuthConfig::from_json(
            format!(
                r#"{{"providers":{{"a":{{"issuer":"i","local_jwks":{{"inline_string":{}}}{sources}}}}}}}"#,
                serde_json::to_string(crate::testkeys::JWKS_ALL).unwrap()
            )
            .as_bytes(),
        )
        .unwrap();
        c.providers.into_values().next().unwrap()
    }

    fn req(path: &str, headers: &[(&str, &str)]) -> RequestView {
        RequestView {
            path: path.into(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn default_is_authorization_bearer() {
        let p = provider("");
        let f = tokens(&p, &req("/", &[("authorization", "bearer abc")]));
        assert_eq!(f[0].token, "abc");
        assert_eq!(f[0].location, Location::Header("authorization".into()));
        assert!(tokens(&p, &req("/", &[("authorization", "Basic abc")])).is_empty());
        assert!(tokens(&p, &req("/", &[("authorization", "Bearer ")])).is_empty());
        assert!(tokens(&p, &req("/?access_token=x", &[])).is_empty());
    }

    #[test]
    fn params_cookies_and_custom_headers() {
        let p = provider(
            r#","from_headers":[{"name":"X-Jwt"}],"from_params":["t"],"from_cookies":["session"]"#,
        );
        let f = tokens(
            &p,
            &req(
                "/a?x=1&t=tok2",
                &[("x-jwt", "tok1"), ("cookie", "a=b; session=\"tok3\"")],
            ),
        );
        let got: Vec<&str> = f.iter().map(|f| f.token.as_str()).collect();
        assert_eq!(got, vec!["tok1", "tok2", "tok3"]);
        let many: Vec<(&str, &str)> = vec![("x-jwt", "t"); 10];
        assert_eq!(tokens(&p, &req("/", &many)).len(), MAX_TOKENS);
    }

    #[test]
    fn params_are_removed_from_the_path() {
        let names = vec!["t".to_string()];
        assert_eq!(path_without_params("/a?x=1&t=2&y", &names), "/a?x=1&y");
        assert_eq!(path_without_params("/a?t=2", &names), "/a");
        assert_eq!(path_without_params("/a", &names), "/a");
    }
}
