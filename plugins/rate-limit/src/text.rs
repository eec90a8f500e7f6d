//! Numbers and addresses appended to strings without `core::fmt`.
//!
//! Every request builds a shared-data slot name and usually a bucket key
//! holding the client's address; `format!` and `to_string` go through
//! `core::fmt`, which costs over a thousand wasm instructions per call.
//! These write the same text directly.

use sdk_ext::utf8::push_lossy;
use std::net::IpAddr;

/// Appends `n` in decimal, as `n.to_string()` writes it.
pub fn push_decimal(out: &mut String, n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = n;
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    // ASCII digits, appended in one copy (`push_lossy` checks for ASCII
    // far more cheaply in wasm than `str::from_utf8` validates).
    push_lossy(out, &digits[at..]);
}

/// Appends `ip` as its `Display` writes it (IPv4 dotted quad directly;
/// IPv6, with its zero-run compression, through `core::fmt`).
pub fn push_ip(out: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                push_decimal(out, u64::from(octet));
            }
        }
        IpAddr::V6(v6) => {
            use std::fmt::Write;
            let _ = write!(out, "{v6}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_match_to_string() {
        let mut n = 1u64;
        let mut cases = vec![0, 9, 10, 99, 100, u64::from(u32::MAX), u64::MAX];
        while n < u64::MAX / 7 {
            cases.extend([n - 1, n, n + 1]);
            n *= 7;
        }
        for n in cases {
            let mut s = String::from("x");
            push_decimal(&mut s, n);
            assert_eq!(s, format!("x{n}"));
        }
    }

    #[test]
    fn addresses_match_display() {
        for text in [
            "0.0.0.0",
            "127.0.0.1",
            "10.200.3.45",
            "255.255.255.255",
            "::1",
            "2001:db8::8a2e:370:7334",
            "::ffff:192.0.2.1",
        ] {
            let ip: IpAddr = text.parse().unwrap();
            let mut s = String::new();
            push_ip(&mut s, ip);
            assert_eq!(s, ip.to_string());
        }
    }
}
