//! The proxy's own address, found the way Envoy finds it
//! (`Network::Utility::getLocalAddress`): the first address of the IP
//! version on the machine's interfaces that is not a loopback address, or
//! the loopback address when there is none. Envoy puts it in
//! `x-forwarded-for` in place of a loopback peer (`use_remote_address:
//! true`), so the harness needs the same value to behave the same.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::OnceLock;

/// Envoy's loopback test for a peer: exactly `127.0.0.1` or `::1`
/// (`Network::Utility::isLoopbackAddress`), not all of `127.0.0.0/8`.
pub(crate) fn is_envoy_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4 == Ipv4Addr::LOCALHOST,
        IpAddr::V6(v6) => v6 == Ipv6Addr::LOCALHOST,
    }
}

/// The machine's address of the same IP version as `like` (computed once).
pub(crate) fn local_address(like: IpAddr) -> IpAddr {
    static ADDRESSES: OnceLock<(IpAddr, IpAddr)> = OnceLock::new();
    let (v4, v6) = *ADDRESSES.get_or_init(|| {
        let all = interface_addresses();
        (
            first_not_loopback(&all, IpAddr::is_ipv4).unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            first_not_loopback(&all, IpAddr::is_ipv6).unwrap_or(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        )
    });
    if like.is_ipv4() {
        v4
    } else {
        v6
    }
}

fn first_not_loopback(all: &[IpAddr], version: fn(&IpAddr) -> bool) -> Option<IpAddr> {
    all.iter()
        .copied()
        .filter(version)
        .find(|ip| !is_envoy_loopback(*ip))
}

/// Every interface address, in `getifaddrs` order.
fn interface_addresses() -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we only read, then free
    // with freeifaddrs exactly once.
    unsafe {
        if libc::getifaddrs(&mut head) != 0 {
            return out;
        }
        let mut cur = head;
        while !cur.is_null() {
            let addr = (*cur).ifa_addr;
            if !addr.is_null() {
                match i32::from((*addr).sa_family) {
                    libc::AF_INET => {
                        let sin = &*(addr as *const libc::sockaddr_in);
                        out.push(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                            sin.sin_addr.s_addr,
                        ))));
                    }
                    libc::AF_INET6 => {
                        let sin6 = &*(addr as *const libc::sockaddr_in6);
                        out.push(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)));
                    }
                    _ => {}
                }
            }
            cur = (*cur).ifa_next;
        }
        libc::freeifaddrs(head);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_loopback_address_is_loopback() {
        assert!(is_envoy_loopback("127.0.0.1".parse().unwrap()));
        assert!(is_envoy_loopback("::1".parse().unwrap()));
        assert!(!is_envoy_loopback("127.0.0.9".parse().unwrap()));
        assert!(!is_envoy_loopback("10.0.0.1".parse().unwrap()));
    }

    #[test]
    fn the_local_address_is_a_machine_address_of_the_same_version() {
        let all = interface_addresses();
        assert!(
            all.contains(&IpAddr::V4(Ipv4Addr::LOCALHOST)),
            "getifaddrs lists lo: {all:?}"
        );
        let v4 = local_address("127.0.0.1".parse().unwrap());
        assert!(v4.is_ipv4());
        assert!(
            all.contains(&v4) || v4 == IpAddr::V4(Ipv4Addr::LOCALHOST),
            "{v4} in {all:?}"
        );
        assert_eq!(
            first_not_loopback(
                &["127.0.0.1".parse().unwrap(), "192.0.2.7".parse().unwrap()],
                IpAddr::is_ipv4
            ),
            Some("192.0.2.7".parse().unwrap())
        );
    }
}
