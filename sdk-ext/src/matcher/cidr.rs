//! CIDR ranges (`10.0.0.0/8`, `2001:db8::/32`, or a bare address).

use ipnet::IpNet;
use serde::{Deserialize, Deserializer};
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An IPv4 or IPv6 range. A bare address means that single address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr(IpNet);

impl Cidr {
    /// True when `ip` lies in the range. IPv4-mapped IPv6 addresses
    /// (`::ffff:10.0.0.1`) are compared as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map(IpAddr::V4)
                .unwrap_or(IpAddr::V6(v6)),
            v4 => v4,
        };
        self.0.contains(&ip)
    }

    /// True when every address of `other` lies in this range (same address
    /// family; a range contains itself).
    pub fn contains_range(&self, other: &Cidr) -> bool {
        self.0.contains(&other.0)
    }

    /// True when the two ranges share at least one address.
    pub fn overlaps(&self, other: &Cidr) -> bool {
        self.contains_range(other) || other.contains_range(self)
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if let Ok(net) = s.parse::<IpNet>() {
            return Ok(Cidr(net.trunc()));
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Cidr(IpNet::from(ip)));
        }
        Err(format!(
            "invalid CIDR {s:?}: expected an address with a prefix length such as \"10.0.0.0/8\" or \"2001:db8::/32\""
        ))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn v4_and_v6_ranges() {
        let c: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(c.contains(ip("10.255.0.1")));
        assert!(!c.contains(ip("11.0.0.1")));
        assert!(c.contains(ip("::ffff:10.1.1.1")));
        let c6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(c6.contains(ip("2001:db8::1")));
        assert!(!c6.contains(ip("10.0.0.1")));
    }

    #[test]
    fn bare_address_and_host_bits() {
        let c: Cidr = "127.0.0.7".parse().unwrap();
        assert!(c.contains(ip("127.0.0.7")));
        assert!(!c.contains(ip("127.0.0.8")));
        let c: Cidr = "192.168.1.77/24".parse().unwrap();
        assert_eq!(c.to_string(), "192.168.1.0/24");
    }

    #[test]
    fn range_containment() {
        let c = |s: &str| s.parse::<Cidr>().unwrap();
        assert!(c("10.0.0.0/8").contains_range(&c("10.1.0.0/16")));
        assert!(c("10.0.0.0/8").contains_range(&c("10.0.0.0/8")));
        assert!(!c("10.1.0.0/16").contains_range(&c("10.0.0.0/8")));
        assert!(!c("10.0.0.0/8").contains_range(&c("::/0")));
        assert!(c("10.1.0.0/16").overlaps(&c("10.0.0.0/8")));
        assert!(!c("10.1.0.0/16").overlaps(&c("10.2.0.0/16")));
    }

    #[test]
    fn bad_cidrs_refused() {
        for bad in ["10.0.0.300/8", "10.0.0.0/33", "", "ten"] {
            let err = bad.parse::<Cidr>().unwrap_err();
            assert!(err.contains("invalid CIDR"), "{bad}: {err}");
        }
    }
}
