//! Whether traffic with a remote address stays local or goes to the Internet.
//!
//! One function decides it for the whole project (the monitor's Internet/Local split, the
//! TUI's traffic view); its ranges are listed in [`locality`] and each has a test.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Where a remote address is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Locality {
    /// Private, loopback, link-local, CGNAT, multicast or broadcast: traffic that does not
    /// leave the site.
    Local,
    /// Everything else.
    Internet,
}

/// Classifies a remote address. Local are:
///
/// | range | IPv4 | IPv6 |
/// |---|---|---|
/// | unspecified / "this network" | 0.0.0.0/8 | `::` |
/// | loopback | 127.0.0.0/8 | `::1` |
/// | private (RFC 1918) | 10/8, 172.16/12, 192.168/16 | — |
/// | unique local (ULA, RFC 4193) | — | fc00::/7 |
/// | link-local | 169.254/16 | fe80::/10 |
/// | shared address space (CGNAT, RFC 6598) | 100.64/10 | — |
/// | multicast | 224/4 | ff00::/8 |
/// | limited broadcast | 255.255.255.255 | — |
///
/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`, what a dual-stack socket reports for an
/// IPv4 peer) are classified as the IPv4 address. Everything else — including
/// documentation and benchmarking ranges such as 198.18.0.0/15 — counts as Internet.
pub fn locality(remote: IpAddr) -> Locality {
    let local = match remote {
        IpAddr::V4(v4) => local_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => local_v4(v4),
            None => local_v6(v6),
        },
    };
    if local {
        Locality::Local
    } else {
        Locality::Internet
    }
}

fn local_v4(addr: Ipv4Addr) -> bool {
    let [a, b, _, _] = addr.octets();
    a == 0
        || addr.is_loopback()
        || addr.is_private()
        || addr.is_link_local()
        || (a == 100 && (b & 0xc0) == 64)
        || addr.is_multicast()
        || addr.is_broadcast()
}

fn local_v6(addr: Ipv6Addr) -> bool {
    let first = addr.segments()[0];
    addr.is_unspecified()
        || addr.is_loopback()
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        || addr.is_multicast()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(text: &str) -> Locality {
        locality(text.parse().unwrap())
    }

    #[track_caller]
    fn range(first: &str, last: &str, expected: Locality) {
        assert_eq!(of(first), expected, "{first}");
        assert_eq!(of(last), expected, "{last}");
    }

    #[test]
    fn ipv4_local_ranges_at_both_ends() {
        use Locality::Local;
        range("0.0.0.0", "0.255.255.255", Local);
        range("127.0.0.0", "127.255.255.255", Local);
        range("10.0.0.0", "10.255.255.255", Local);
        range("172.16.0.0", "172.31.255.255", Local);
        range("192.168.0.0", "192.168.255.255", Local);
        range("169.254.0.0", "169.254.255.255", Local);
        range("100.64.0.0", "100.127.255.255", Local);
        range("224.0.0.0", "239.255.255.255", Local);
        range("255.255.255.255", "255.255.255.255", Local);
    }

    #[test]
    fn ipv4_neighbours_of_local_ranges_are_internet() {
        use Locality::Internet;
        range("1.0.0.0", "9.255.255.255", Internet);
        range("11.0.0.0", "126.255.255.255", Internet);
        range("172.15.255.255", "172.32.0.0", Internet);
        range("192.167.255.255", "192.169.0.0", Internet);
        range("169.253.255.255", "169.255.0.0", Internet);
        range("100.63.255.255", "100.128.0.0", Internet);
        range("223.255.255.255", "240.0.0.0", Internet);
        range("255.255.255.254", "8.8.8.8", Internet);
        range("198.18.0.1", "198.19.255.255", Internet);
    }

    #[test]
    fn ipv6_local_ranges_at_both_ends() {
        use Locality::Local;
        range("::", "::1", Local);
        range("fc00::", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Local);
        range("fe80::", "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Local);
        range("ff00::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Local);
    }

    #[test]
    fn ipv6_neighbours_of_local_ranges_are_internet() {
        use Locality::Internet;
        range("::2", "2001:4860:4860::8888", Internet);
        range(
            "fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "fe00::",
            Internet,
        );
        range(
            "fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "fec0::",
            Internet,
        );
        range("2001:2::1", "2001:db8::1", Internet);
    }

    #[test]
    fn ipv4_mapped_addresses_follow_their_ipv4_address() {
        assert_eq!(of("::ffff:192.168.1.1"), Locality::Local);
        assert_eq!(of("::ffff:127.0.0.1"), Locality::Local);
        assert_eq!(of("::ffff:8.8.8.8"), Locality::Internet);
    }
}
