//! Cookies: reading the request's `Cookie` headers, splitting a sealed
//! session into chunks `{name}.0`, `{name}.1`, ... of at most
//! [`CHUNK_BYTES`] (browsers drop a cookie over 4096 bytes, name and
//! attributes included) and reassembling them, and `Set-Cookie` values with
//! the configured attributes.

use crate::config::{CookieConfig, SameSite};

/// Most bytes of one chunk's value (leaves room for name and attributes
/// under the 4096 bytes browsers keep).
pub const CHUNK_BYTES: usize = 3800;
/// Most cookies read from a request.
const MAX_COOKIES: usize = 128;

/// The cookies of a request, in order (name, value).
pub fn parse_cookie_header(values: &[&str]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for header in values {
        for pair in header.split(';') {
            if out.len() >= MAX_COOKIES {
                return out;
            }
            let pair = pair.trim();
            if let Some((n, v)) = pair.split_once('=') {
                let v = v.trim().trim_matches('"');
                out.push((n.trim().to_string(), v.to_string()));
            }
        }
    }
    out
}

/// The first cookie called `name`.
pub fn find<'a>(cookies: &'a [(String, String)], name: &str) -> Option<&'a str> {
    cookies
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Why chunks did not reassemble.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkError {
    /// No chunk at all.
    Absent,
    /// `.0` present but a later index missing while a further one exists, or
    /// more chunks than allowed.
    Incomplete,
}

/// How many chunk cookies of `base` the request carries (indices present).
pub fn chunks_present(cookies: &[(String, String)], base: &str, max: usize) -> usize {
    (0..=max)
        .filter(|i| find(cookies, &format!("{base}.{i}")).is_some())
        .count()
}

/// Reassembles `{base}.0`, `{base}.1`, ... (at most `max`).
pub fn reassemble(
    cookies: &[(String, String)],
    base: &str,
    max: usize,
) -> Result<String, ChunkError> {
    let mut value = String::new();
    let mut n = 0;
    while let Some(part) = find(cookies, &format!("{base}.{n}")) {
        n += 1;
        if n > max {
            return Err(ChunkError::Incomplete);
        }
        value.push_str(part);
    }
    if n == 0 {
        return Err(ChunkError::Absent);
    }
    // A gap (".0" and ".2" without ".1") means a chunk was lost.
    if find(cookies, &format!("{base}.{}", n + 1)).is_some() {
        return Err(ChunkError::Incomplete);
    }
    Ok(value)
}

/// Splits `value` into chunks; `None` when more than `max` are needed.
pub fn split(value: &str, max: usize) -> Option<Vec<&str>> {
    let chunks: Vec<&str> = value
        .as_bytes()
        .chunks(CHUNK_BYTES)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect();
    if chunks.len() > max {
        None
    } else {
        Some(chunks)
    }
}

/// Builds `Set-Cookie` values.
#[derive(Debug, Clone)]
pub struct CookieWriter<'a> {
    config: &'a CookieConfig,
}

impl<'a> CookieWriter<'a> {
    /// With the configured attributes.
    pub fn new(config: &'a CookieConfig) -> Self {
        CookieWriter { config }
    }

    fn attributes(&self, max_age: Option<u64>, same_site: SameSite) -> String {
        let mut a = format!("; Path={}; HttpOnly", self.config.path);
        if self.config.secure {
            a.push_str("; Secure");
        }
        a.push_str("; SameSite=");
        a.push_str(same_site.as_str());
        if let Some(d) = &self.config.domain {
            a.push_str("; Domain=");
            a.push_str(d);
        }
        if let Some(m) = max_age {
            a.push_str(&format!("; Max-Age={m}"));
        }
        a
    }

    /// One cookie (`max_age` `None`: a browser-session cookie).
    pub fn set(&self, name: &str, value: &str, max_age: Option<u64>) -> String {
        format!(
            "{name}={value}{}",
            self.attributes(max_age, self.config.same_site)
        )
    }

    /// The login-state cookie: `Lax` even when the session is `Strict`, so
    /// it comes back on the provider's top-level redirect.
    pub fn set_login(&self, name: &str, value: &str, max_age: u64) -> String {
        let same_site = match self.config.same_site {
            SameSite::Strict => SameSite::Lax,
            s => s,
        };
        format!(
            "{name}={value}{}",
            self.attributes(Some(max_age), same_site)
        )
    }

    /// Deletes a cookie.
    pub fn clear(&self, name: &str) -> String {
        format!("{name}={}", self.attributes(Some(0), self.config.same_site))
    }

    /// The session's chunks, and deletions of the chunks the request had
    /// beyond the new count (`present`).
    pub fn set_chunks(
        &self,
        base: &str,
        chunks: &[&str],
        present: usize,
        max_age: u64,
    ) -> Vec<String> {
        let mut out: Vec<String> = chunks
            .iter()
            .enumerate()
            .map(|(i, c)| self.set(&format!("{base}.{i}"), c, Some(max_age)))
            .collect();
        for i in chunks.len()..present {
            out.push(self.clear(&format!("{base}.{i}")));
        }
        out
    }

    /// Deletes every chunk the request had (at least `.0`).
    pub fn clear_chunks(&self, base: &str, present: usize) -> Vec<String> {
        (0..present.max(1))
            .map(|i| self.clear(&format!("{base}.{i}")))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cookie_headers() {
        let c = parse_cookie_header(&["a=1; b=\"2\"", "c=x=y"]);
        assert_eq!(find(&c, "a"), Some("1"));
        assert_eq!(find(&c, "b"), Some("2"));
        assert_eq!(find(&c, "c"), Some("x=y"));
        assert_eq!(find(&c, "d"), None);
    }

    #[test]
    fn split_and_reassemble_round_trip() {
        let value = "v".repeat(CHUNK_BYTES * 2 + 10);
        let chunks = split(&value, 8).unwrap();
        assert_eq!(chunks.len(), 3);
        let cookies: Vec<(String, String)> = chunks
            .iter()
            .enumerate()
            .map(|(i, c)| (format!("s.{i}"), c.to_string()))
            .collect();
        assert_eq!(reassemble(&cookies, "s", 8).unwrap(), value);
        assert_eq!(chunks_present(&cookies, "s", 8), 3);
        assert!(split(&value, 2).is_none());
    }

    #[test]
    fn missing_or_extra_chunks_are_refused() {
        let c = parse_cookie_header(&["s.0=a; s.2=c"]);
        assert_eq!(reassemble(&c, "s", 8), Err(ChunkError::Incomplete));
        assert_eq!(reassemble(&c, "t", 8), Err(ChunkError::Absent));
        let many: Vec<String> = (0..5).map(|i| format!("s.{i}=x")).collect();
        let c = parse_cookie_header(&[many.join("; ").as_str()]);
        assert_eq!(reassemble(&c, "s", 4), Err(ChunkError::Incomplete));
    }

    #[test]
    fn set_cookie_attributes() {
        let cfg = CookieConfig {
            domain: Some("example.com".into()),
            same_site: SameSite::Strict,
            ..CookieConfig::default()
        };
        let w = CookieWriter::new(&cfg);
        assert_eq!(
            w.set("n", "v", Some(60)),
            "n=v; Path=/; HttpOnly; Secure; SameSite=Strict; Domain=example.com; Max-Age=60"
        );
        assert!(w.set_login("l", "v", 600).contains("SameSite=Lax"));
        assert!(w.clear("n").ends_with("Max-Age=0"));
        let out = w.set_chunks("s", &["a"], 3, 10);
        assert_eq!(out.len(), 3);
        assert!(out[0].starts_with("s.0=a;"));
        assert!(out[2].starts_with("s.2=;") && out[2].ends_with("Max-Age=0"));
        let plain = CookieConfig {
            secure: false,
            ..CookieConfig::default()
        };
        assert!(!CookieWriter::new(&plain)
            .set("n", "v", None)
            .contains("Secure"));
    }
}
