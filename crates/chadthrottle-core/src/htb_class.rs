//! The HTB classes of the qdisc backends: their numbers, and the rate and buffer a class
//! gets for a limit.
//!
//! Backend `htb` puts an HTB qdisc at the root of each egress interface the limited
//! processes use; backend `ifb` redirects their downloads from each such interface's
//! ingress to an IFB device with an HTB qdisc. Either way each limited process has one
//! class, numbered [`CLASS_MAJOR`]`:minor`, and the datapath puts the process's packets in
//! it through `skb->priority`. Everything else goes through unclassified and unqueued
//! (HTB's direct queue, which is served first).

use std::collections::BTreeSet;

/// Major number of ChadThrottle's HTB qdiscs (`c7:`), so a root qdisc is recognised as
/// ours. Below 0x8000, where `tc` numbers the qdiscs it is not given a handle for.
pub const CLASS_MAJOR: u16 = 0x00c7;

/// The qdisc handle `c7:0`.
pub const QDISC_HANDLE: u32 = (CLASS_MAJOR as u32) << 16;

/// Bytes of Ethernet header HTB charges per packet on top of the IP packet.
pub const ETHERNET_HEADER: u32 = 14;

/// IPv4 and TCP headers of a full-sized segment, timestamps included (IPv6 is 20 more,
/// which the compensation ignores: it errs towards the limit, by 1.4 %).
const TCP_IPV4_HEADERS: u32 = 20 + 20 + 12;

/// Nanoseconds per HTB "tick" (`PSCHED_TICKS2NS`: ticks are 64 ns).
const NS_PER_TICK: u64 = 64;

/// The class `c7:minor` as `skb->priority` and as a TC handle.
pub const fn class_id(minor: u16) -> u32 {
    QDISC_HANDLE | minor as u32
}

/// The rate to give an HTB class so that the process's *goodput* (the transport payload
/// the limit counts) is `payload_rate`: HTB charges every segment its headers, Ethernet's
/// included (`link_header` bytes, 0 on links without one). A full segment on an MTU-1500
/// Ethernet link is 1514 bytes charged for 1448 delivered: 4.6 % more.
pub fn wire_rate(payload_rate: u64, mtu: u32, link_header: u32) -> u64 {
    let payload = u128::from(mtu.saturating_sub(TCP_IPV4_HEADERS).max(1));
    let wire = u128::from(mtu) + u128::from(link_header);
    let scaled = (u128::from(payload_rate) * wire).div_ceil(payload);
    u64::try_from(scaled).unwrap_or(u64::MAX).max(1)
}

/// How long a class may send at line rate after a pause: 10 ms of its rate. Short, so
/// the flow stays smooth and the policer behind (which grants a shaped flow one burst of
/// slack, 400 ms of the rate by default) never sees HTB's own burst; the limit's
/// `--burst` is the policer's.
pub const CLASS_BURST_NS: u64 = 10_000_000;

/// HTB's `buffer` of a class (time at `rate`, in 64 ns ticks): [`CLASS_BURST_NS`], and
/// never less than two full frames of `frame` bytes (HTB sends a packet bigger than its
/// buffer whole and then waits it off, which makes the flow lurch).
pub fn buffer_ticks(rate: u64, frame: u32) -> u32 {
    let two_frames = u128::from(2 * frame) * 1_000_000_000 / u128::from(rate.max(1));
    let ns = u128::from(CLASS_BURST_NS).max(two_frames);
    u32::try_from(ns / u128::from(NS_PER_TICK)).unwrap_or(u32::MAX)
}

/// The lowest class number not in `used` (1 to 0xfffe), if any is left.
pub fn free_minor(used: &BTreeSet<u16>) -> Option<u16> {
    (1..=0xfffe).find(|minor| !used.contains(minor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_rate_charges_ethernet_and_headers_per_segment() {
        // 1448 bytes of payload are 1514 on the wire
        assert_eq!(wire_rate(1448 * 1000, 1500, ETHERNET_HEADER), 1514 * 1000);
        assert_eq!(wire_rate(1448, 1500, 0), 1500);
        assert_eq!(
            wire_rate(0, 1500, ETHERNET_HEADER),
            1,
            "HTB refuses a zero rate"
        );
        assert_eq!(wire_rate(u64::MAX, 1500, 14), u64::MAX);
    }

    #[test]
    fn buffer_is_10_ms_in_ticks_never_under_two_frames() {
        // 10 ms = 156 250 ticks of 64 ns, whatever the rate
        assert_eq!(buffer_ticks(1_000_000, 1514), 156_250);
        assert_eq!(buffer_ticks(200 << 20, 1514), 156_250);
        // at 100 KB/s two frames take 30 ms
        assert_eq!(buffer_ticks(100_000, 1514), 30_280_000 / 64);
        assert_eq!(buffer_ticks(0, 1514), u32::MAX);
    }

    #[test]
    fn minors_are_reused_lowest_first() {
        let used: BTreeSet<u16> = [1, 2, 4].into();
        assert_eq!(free_minor(&used), Some(3));
        let full: BTreeSet<u16> = (1..=0xfffe).collect();
        assert_eq!(free_minor(&full), None);
        assert_eq!(class_id(3), 0x00c7_0003);
    }
}
