//! Durations written as strings (`"10s"`, `"500ms"`, `"24h"`), the form Envoy's
//! JSON config and the CLI use.

use std::fmt;
use std::time::Duration;

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// The string was empty.
    #[error("empty duration: write a number and a unit, e.g. \"10s\", \"500ms\", \"24h\"")]
    Empty,
    /// The number part was missing or not an unsigned integer.
    #[error("duration {0:?} does not start with a whole number: write e.g. \"30s\"")]
    BadNumber(String),
    /// The unit was missing or unknown.
    #[error("duration {input:?} has unit {unit:?}; use one of ms, s, m, h, d")]
    BadUnit {
        /// The whole input.
        input: String,
        /// The unit that was found.
        unit: String,
    },
    /// The value does not fit in a `Duration`.
    #[error("duration {0:?} is too large")]
    Overflow(String),
}

/// Parses `"<whole number><unit>"` with unit `ms`, `s`, `m`, `h` or `d`.
pub fn parse(input: &str) -> Result<Duration, DurationError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| DurationError::BadNumber(input.to_string()))?;
    let mul: u64 = match unit {
        "ms" => return Ok(Duration::from_millis(n)),
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(DurationError::BadUnit {
                input: input.to_string(),
                unit: unit.to_string(),
            })
        }
    };
    n.checked_mul(mul)
        .map(Duration::from_secs)
        .ok_or_else(|| DurationError::Overflow(input.to_string()))
}

/// Formats a duration in the largest unit that represents it exactly.
pub fn format(d: Duration) -> String {
    let ms = d.as_millis();
    if ms % 1000 != 0 {
        return format!("{ms}ms");
    }
    let s = d.as_secs();
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if s != 0 && s % size == 0 {
            return format!("{}{unit}", s / size);
        }
    }
    format!("{s}s")
}

/// A rough human reading (the two largest units), e.g. `23h59m`, `3d4h`, `42s`.
pub fn format_approx(d: Duration) -> String {
    let s = d.as_secs();
    let parts = [
        (s / 86_400, "d"),
        (s % 86_400 / 3600, "h"),
        (s % 3600 / 60, "m"),
        (s % 60, "s"),
    ];
    let Some(first) = parts.iter().position(|(n, _)| *n != 0) else {
        return "0s".into();
    };
    parts[first..]
        .iter()
        .take(2)
        .filter(|(n, _)| *n != 0)
        .map(|(n, u)| format!("{n}{u}"))
        .collect()
}

/// A `Duration` that (de)serializes as a string like `"10s"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(pub Duration);

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format(self.0))
    }
}

impl std::str::FromStr for HumanDuration {
    type Err = DurationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s).map(HumanDuration)
    }
}

impl<'de> serde::Deserialize<'de> for HumanDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse(&s)
            .map(HumanDuration)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_unit() {
        assert_eq!(parse("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse("24h").unwrap(), Duration::from_secs(86_400));
        assert_eq!(parse("2d").unwrap(), Duration::from_secs(172_800));
    }

    #[test]
    fn refuses_bad_input_with_reason() {
        assert_eq!(parse(""), Err(DurationError::Empty));
        assert!(matches!(parse("h"), Err(DurationError::BadNumber(_))));
        assert!(matches!(parse("10"), Err(DurationError::BadUnit { .. })));
        assert!(matches!(parse("10y"), Err(DurationError::BadUnit { .. })));
        assert!(matches!(
            parse("99999999999999999d"),
            Err(DurationError::Overflow(_))
        ));
        assert!(parse("10y")
            .unwrap_err()
            .to_string()
            .contains("ms, s, m, h, d"));
    }

    #[test]
    fn formats_round_trip() {
        for s in ["500ms", "10s", "5m", "12h", "2d", "0s", "90s"] {
            assert_eq!(format(parse(s).unwrap()), s);
        }
        assert_eq!(format(parse("24h").unwrap()), "1d");
    }

    #[test]
    fn approx_shows_two_largest_units() {
        assert_eq!(format_approx(Duration::from_secs(86_399)), "23h59m");
        assert_eq!(
            format_approx(Duration::from_secs(3 * 86_400 + 4 * 3600 + 5)),
            "3d4h"
        );
        assert_eq!(format_approx(Duration::from_secs(3600)), "1h");
        assert_eq!(format_approx(Duration::from_secs(42)), "42s");
        assert_eq!(format_approx(Duration::ZERO), "0s");
    }
}
