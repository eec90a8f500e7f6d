//! Durations in Envoy's JSON form: `"10s"`, `"500ms"`, `"1.5s"`, `"2m"`,
//! `"1h"`, `"250us"`. A bare number is refused: the unit is always written.

use serde::{Deserialize, Deserializer};
use std::fmt;
use std::time::Duration;

/// A configured duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct ConfigDuration(pub Duration);

impl ConfigDuration {
    /// Parses `"<number><unit>"` with unit `h`, `m`, `s`, `ms`, `us` or `ns`.
    pub fn parse(text: &str) -> Result<ConfigDuration, String> {
        let bad = || {
            format!("invalid duration {text:?}: write a number and a unit, e.g. \"500ms\", \"10s\", \"1.5m\"")
        };
        let t = text.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (num, unit) = t.split_at(split);
        let nanos_per_unit: f64 = match unit {
            "h" => 3.6e12,
            "m" => 6e10,
            "s" => 1e9,
            "ms" => 1e6,
            "us" => 1e3,
            "ns" => 1.0,
            _ => return Err(bad()),
        };
        if num.is_empty()
            || num.starts_with('.')
            || num.ends_with('.')
            || num.matches('.').count() > 1
        {
            return Err(bad());
        }
        let value: f64 = num.parse().map_err(|_| bad())?;
        let nanos = value * nanos_per_unit;
        // Ten years is far beyond any timeout or cache lifetime.
        if !nanos.is_finite() || nanos > 3.2e17 {
            return Err(format!("duration {text:?} is too long"));
        }
        Ok(ConfigDuration(Duration::from_nanos(nanos.round() as u64)))
    }

    /// The duration.
    pub fn get(self) -> Duration {
        self.0
    }
}

impl fmt::Display for ConfigDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0.as_millis())
    }
}

impl<'de> Deserialize<'de> for ConfigDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ConfigDuration::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(text: &str) -> u128 {
        ConfigDuration::parse(text).unwrap().get().as_millis()
    }

    #[test]
    fn units() {
        assert_eq!(ms("500ms"), 500);
        assert_eq!(ms("10s"), 10_000);
        assert_eq!(ms("1.5s"), 1_500);
        assert_eq!(ms("2m"), 120_000);
        assert_eq!(ms("1h"), 3_600_000);
        assert_eq!(
            ConfigDuration::parse("250us").unwrap().get().as_micros(),
            250
        );
    }

    #[test]
    fn refusals() {
        for bad in [
            "",
            "10",
            "s",
            "1.s",
            ".5s",
            "1..2s",
            "-1s",
            "10 days",
            "1e3s",
            "99999999999h",
        ] {
            assert!(ConfigDuration::parse(bad).is_err(), "{bad}");
        }
        let e = serde_json::from_str::<ConfigDuration>("\"5\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid duration"), "{e}");
    }
}
