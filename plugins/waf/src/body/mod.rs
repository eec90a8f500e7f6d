//! Request body processors: what `REQBODY_PROCESSOR` names turns the body
//! into `ARGS_POST`.
//!
//! - [`urlencoded`]: `application/x-www-form-urlencoded` (also the query
//!   string parser);
//! - [`json`]: `application/json` and `+json` types, flattened to
//!   `json.a.b.0` names.
//!
//! - [`multipart`]: `multipart/form-data` into fields, files and part
//!   headers;
//! - [`xml`]: text nodes and attribute values for `XML:/*` and `XML://@*`.

pub mod json;
pub mod multipart;
pub mod urlencoded;
pub mod xml;

/// Limits every processor honours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimits {
    /// Most arguments produced (further ones are dropped and flagged).
    pub max_args: usize,
    /// Deepest JSON nesting accepted.
    pub max_depth: usize,
}

impl Default for BodyLimits {
    fn default() -> Self {
        BodyLimits {
            max_args: 1024,
            max_depth: 64,
        }
    }
}

/// Name/value pairs produced by a processor.
pub type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// The processor a `Content-Type` selects, as `REQBODY_PROCESSOR` names it.
pub fn processor_for(content_type: &str) -> Option<&'static str> {
    let ct = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if ct == "application/x-www-form-urlencoded" {
        Some("URLENCODED")
    } else if ct == "multipart/form-data" {
        Some("MULTIPART")
    } else if ct == "application/json" || (ct.starts_with("application/") && ct.ends_with("+json"))
    {
        Some("JSON")
    } else if ct.ends_with("/xml") || ct.ends_with("+xml") {
        Some("XML")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processors_by_content_type() {
        assert_eq!(
            processor_for("application/x-www-form-urlencoded; charset=utf-8"),
            Some("URLENCODED")
        );
        assert_eq!(processor_for("Application/JSON"), Some("JSON"));
        assert_eq!(processor_for("application/vnd.api+json"), Some("JSON"));
        assert_eq!(
            processor_for("multipart/form-data; boundary=x"),
            Some("MULTIPART")
        );
        assert_eq!(processor_for("text/xml"), Some("XML"));
        assert_eq!(processor_for("text/plain"), None);
    }
}
