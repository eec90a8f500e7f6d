//! Differences between two runners' reports of the same fixture file (the
//! harness and real Envoy), case by case.
//!
//! Values that differ between any two runs of the same proxy are
//! normalised before comparing: UUIDs (Envoy's `x-request-id`, request ids
//! in denial bodies) become `<uuid>`, and the values of `date` and
//! `x-envoy-upstream-service-time` are ignored (their presence is not).
//! Header order is not compared; repeated headers are.

use crate::fixture::{EchoedRequest, FileReport, Outcome};
use std::fmt;

/// One difference between the two runners for one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// Case name.
    pub case: String,
    /// What differs (`status`, `forwarded`, `headers.x-a`, `upstream.path`, ...).
    pub field: String,
    /// The first runner's value (the harness).
    pub left: String,
    /// The second runner's value (Envoy).
    pub right: String,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}: harness {} / envoy {}",
            self.case, self.field, self.left, self.right
        )
    }
}

const VOLATILE_HEADERS: &[&str] = &["date", "x-envoy-upstream-service-time"];

/// Every difference between `left` and `right`, in case order.
pub fn compare(left: &FileReport, right: &FileReport) -> Vec<Difference> {
    let mut out = Vec::new();
    if left.cases.len() != right.cases.len() {
        out.push(Difference {
            case: left.name.clone(),
            field: "cases run".into(),
            left: left.cases.len().to_string(),
            right: right.cases.len().to_string(),
        });
    }
    for (l, r) in left.cases.iter().zip(&right.cases) {
        let mut push = |field: &str, a: String, b: String| {
            if a != b {
                out.push(Difference {
                    case: l.name.clone(),
                    field: field.to_string(),
                    left: a,
                    right: b,
                });
            }
        };
        push("error", show_error(&l.error), show_error(&r.error));
        push("passed", l.passed().to_string(), r.passed().to_string());
        if let (Some(a), Some(b)) = (&l.outcome, &r.outcome) {
            compare_outcomes(a, b, &mut push);
        }
    }
    out
}

fn show_error(e: &Option<String>) -> String {
    match e {
        Some(_) => "an error".into(),
        None => "no error".into(),
    }
}

fn compare_outcomes(a: &Outcome, b: &Outcome, push: &mut impl FnMut(&str, String, String)) {
    push("status", a.status.to_string(), b.status.to_string());
    push(
        "forwarded",
        a.upstream.is_some().to_string(),
        b.upstream.is_some().to_string(),
    );
    compare_headers("headers", &a.headers, &b.headers, push);
    match (&a.upstream, &b.upstream) {
        (Some(x), Some(y)) => compare_upstream(x, y, push),
        _ => push(
            "body",
            normalize(&String::from_utf8_lossy(&a.body)),
            normalize(&String::from_utf8_lossy(&b.body)),
        ),
    }
}

fn compare_upstream(
    x: &EchoedRequest,
    y: &EchoedRequest,
    push: &mut impl FnMut(&str, String, String),
) {
    push("upstream.method", x.method.clone(), y.method.clone());
    push("upstream.path", x.path.clone(), y.path.clone());
    push("upstream.body", normalize(&x.body), normalize(&y.body));
    compare_headers("upstream_headers", &x.headers, &y.headers, push);
}

/// Compares header lists by name: the sorted, normalised values of each.
fn compare_headers(
    prefix: &str,
    a: &[(String, String)],
    b: &[(String, String)],
    push: &mut impl FnMut(&str, String, String),
) {
    let values = |h: &[(String, String)], name: &str| -> Vec<String> {
        let mut v: Vec<String> = h
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| {
                if VOLATILE_HEADERS.contains(&name) {
                    "<any>".to_string()
                } else {
                    normalize(v)
                }
            })
            .collect();
        v.sort();
        v
    };
    let mut names: Vec<String> = a
        .iter()
        .chain(b)
        .map(|(k, _)| k.to_ascii_lowercase())
        .collect();
    names.sort();
    names.dedup();
    for name in names {
        let (x, y) = (values(a, &name), values(b, &name));
        push(&format!("{prefix}.{name}"), show(&x), show(&y));
    }
}

fn show(values: &[String]) -> String {
    match values {
        [] => "<absent>".into(),
        [one] => format!("{one:?}"),
        many => format!("{many:?}"),
    }
}

/// Replaces every UUID (8-4-4-4-12 hex digits) in `text` with `<uuid>`.
pub fn normalize(text: &str) -> String {
    const SHAPE: &[usize] = &[8, 4, 4, 4, 12];
    let b = text.as_bytes();
    let is_uuid_at = |i: usize| {
        let mut p = i;
        for (n, len) in SHAPE.iter().enumerate() {
            if n > 0 {
                if b.get(p) != Some(&b'-') {
                    return false;
                }
                p += 1;
            }
            if !(p..p + len).all(|j| b.get(j).is_some_and(u8::is_ascii_hexdigit)) {
                return false;
            }
            p += len;
        }
        true
    };
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        if is_uuid_at(i) {
            out.push_str("<uuid>");
            i += 36;
        } else {
            let c = text[i..].chars().next().expect("i is a char boundary");
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::CaseReport;

    fn report(outcome: Outcome) -> FileReport {
        FileReport {
            name: "f".into(),
            runner: "x".into(),
            cases: vec![CaseReport {
                name: "c".into(),
                outcome: Some(outcome),
                mismatches: vec![],
                error: None,
            }],
        }
    }

    #[test]
    fn uuids_dates_and_header_order_are_not_differences() {
        let a = Outcome {
            status: 403,
            headers: vec![
                ("date".into(), "Mon".into()),
                ("x-a".into(), "1".into()),
                ("x-b".into(), "2".into()),
            ],
            body: br#"{"request_id":"0f8fad5b-d9cb-469f-a165-70867728950e"}"#.to_vec(),
            upstream: None,
        };
        let b = Outcome {
            headers: vec![
                ("x-b".into(), "2".into()),
                ("x-a".into(), "1".into()),
                ("date".into(), "Tue".into()),
            ],
            body: br#"{"request_id":"7c9e6679-7425-40de-944b-e07fc1f90ae7"}"#.to_vec(),
            ..a.clone()
        };
        assert_eq!(compare(&report(a), &report(b)), []);
    }

    #[test]
    fn every_difference_is_reported() {
        let a = Outcome {
            status: 200,
            headers: vec![("x-a".into(), "1".into())],
            body: b"x".to_vec(),
            upstream: None,
        };
        let b = Outcome {
            status: 403,
            headers: vec![("x-a".into(), "2".into()), ("x-a".into(), "3".into())],
            body: b"y".to_vec(),
            upstream: None,
        };
        let d = compare(&report(a), &report(b));
        let fields: Vec<_> = d.iter().map(|d| d.field.as_str()).collect();
        assert_eq!(fields, ["status", "headers.x-a", "body"]);
        assert_eq!(d[1].right, r#"["2", "3"]"#);
    }

    #[test]
    fn normalize_keeps_other_text() {
        assert_eq!(
            normalize("id=0f8fad5b-d9cb-469f-a165-70867728950e; é 0f8fad5b"),
            "id=<uuid>; é 0f8fad5b"
        );
    }
}
