//! JSON bodies flattened into arguments: `{"a":{"b":[1,"x"]}}` gives
//! `json.a.b.0=1` and `json.a.b.1=x`. Booleans are `true`/`false`, `null`
//! is empty. Depth and argument count are bounded.

use super::{BodyLimits, Pairs};
use serde_json::Value;

/// Why a JSON body was not (fully) turned into arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonError {
    /// Not valid JSON.
    Syntax(String),
    /// Nested deeper than the limit.
    TooDeep(usize),
    /// More values than the argument limit.
    TooManyArgs(usize),
}

impl std::fmt::Display for JsonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JsonError::Syntax(e) => write!(f, "the JSON body does not parse: {e}"),
            JsonError::TooDeep(d) => write!(f, "the JSON body nests deeper than {d} levels"),
            JsonError::TooManyArgs(n) => write!(f, "the JSON body has more than {n} values"),
        }
    }
}

/// Parses and flattens a JSON body.
pub fn parse(body: &[u8], limits: BodyLimits, out: &mut Pairs) -> Result<(), JsonError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| JsonError::Syntax(e.to_string()))?;
    flatten(&v, "json".to_string(), 0, limits, out)
}

fn flatten(
    v: &Value,
    name: String,
    depth: usize,
    limits: BodyLimits,
    out: &mut Pairs,
) -> Result<(), JsonError> {
    if depth > limits.max_depth {
        return Err(JsonError::TooDeep(limits.max_depth));
    }
    let mut push = |value: Vec<u8>, name: String| {
        if out.len() >= limits.max_args {
            return Err(JsonError::TooManyArgs(limits.max_args));
        }
        out.push((name.into_bytes(), value));
        Ok(())
    };
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                flatten(child, format!("{name}.{k}"), depth + 1, limits, out)?;
            }
            Ok(())
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                flatten(child, format!("{name}.{i}"), depth + 1, limits, out)?;
            }
            Ok(())
        }
        Value::String(s) => push(s.clone().into_bytes(), name),
        Value::Number(n) => push(n.to_string().into_bytes(), name),
        Value::Bool(b) => push(b.to_string().into_bytes(), name),
        Value::Null => push(Vec::new(), name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(out: &Pairs) -> Vec<String> {
        out.iter()
            .map(|(n, v)| {
                format!(
                    "{}={}",
                    String::from_utf8_lossy(n),
                    String::from_utf8_lossy(v)
                )
            })
            .collect()
    }

    #[test]
    fn flattens() {
        let mut out = Vec::new();
        parse(
            br#"{"a":{"b":[1,"x",true,null]}}"#,
            BodyLimits::default(),
            &mut out,
        )
        .unwrap();
        assert_eq!(
            names(&out),
            vec![
                "json.a.b.0=1",
                "json.a.b.1=x",
                "json.a.b.2=true",
                "json.a.b.3="
            ]
        );
    }

    #[test]
    fn limits_and_errors() {
        let mut out = Vec::new();
        let tight = BodyLimits {
            max_args: 1,
            max_depth: 2,
        };
        assert_eq!(
            parse(b"[1,2]", tight, &mut out),
            Err(JsonError::TooManyArgs(1))
        );
        assert_eq!(
            parse(b"[[[[1]]]]", tight, &mut Vec::new()),
            Err(JsonError::TooDeep(2))
        );
        assert!(matches!(
            parse(b"{", tight, &mut Vec::new()),
            Err(JsonError::Syntax(_))
        ));
    }
}
