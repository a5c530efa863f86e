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

/// How many times the class's rate the segmenting leaf (a `tbf` under each download
/// class on an IFB) may pass: high enough that it never holds the class back, so only
/// HTB shapes. A download arrives GRO-merged, up to 64 KB a packet, and HTB sends each
/// packet whole: at 1 MB/s that is 64 ms of the rate at once, so 100 ms windows saw one
/// packet or two (cv 13–30 %). The leaf cuts every packet longer than
/// [`segment_above`] into its segments as it is queued.
pub const SEGMENTER_RATE_FACTOR: u64 = 64;

/// The leaf's rate for a class at `rate`.
pub fn segmenter_rate(rate: u64) -> u64 {
    rate.saturating_mul(SEGMENTER_RATE_FACTOR)
}

/// How much of the class's rate a packet the leaf queues whole may be: 2 ms.
pub const SEGMENT_ABOVE_NS: u64 = 2_000_000;

/// The longest packet the leaf queues whole (its bucket, which `tbf` also takes as the
/// longest packet it passes): [`SEGMENT_ABOVE_NS`] of `rate`, never under two frames.
/// Only where a GRO packet is a large part of a 100 ms window is it cut (at 1 MB/s into
/// frames; at 50 MB/s, where cutting costs the neighbours latency, not at all).
pub fn segment_above(rate: u64, frame: u32) -> u32 {
    let bytes = u128::from(rate) * u128::from(SEGMENT_ABOVE_NS) / 1_000_000_000;
    u32::try_from(bytes)
        .unwrap_or(u32::MAX)
        .max(frame.saturating_mul(2))
}

/// How long the leaf's queue is at the class's rate: three seconds. Counted in bytes,
/// since the IFB's own 1 000 *packets* were anything from 1.5 MB to 64 MB by how GRO
/// merged; one second dropped eight connections at 1 MB/s (cv 29–113 %, BENCHMARKS.md).
pub const LEAF_QUEUE_NS: u64 = 3_000_000_000;

/// The smallest leaf queue in bytes, whatever the rate: the receive windows a download's
/// connections open with (64 KiB each) arrive at once at any rate, and 1 MiB holds
/// sixteen. Three seconds of 100 KB/s (300 KB) held one connection but not eight: the
/// leaf dropped, and with seconds of queue before each retransmission the rate fell by
/// up to half (BENCHMARKS.md). The windows keep growing (receive autotuning follows the
/// round trip the queue lengthens), so eight downloads at 100 KB/s still fill 1 MiB after
/// 17–25 s: the floor puts the overflow off, it does not remove it. It applies below
/// 350 KB/s, where it is more than three seconds of the rate: there a full queue delays
/// the limited flows themselves by up to 10 s at 100 KB/s (their neighbours pass it by).
const LEAF_QUEUE_MIN: u32 = 1024 * 1024;

/// The leaf's queue for a class at `rate`, in bytes: [`LEAF_QUEUE_NS`] of it, never under
/// 1 MiB, never over 4 GiB.
pub fn leaf_queue_bytes(rate: u64) -> u32 {
    let bytes = u128::from(rate) * u128::from(LEAF_QUEUE_NS) / 1_000_000_000;
    u32::try_from(bytes).unwrap_or(u32::MAX).max(LEAF_QUEUE_MIN)
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
    fn the_leaf_cuts_packets_over_2_ms_of_the_rate_and_never_holds_the_class() {
        assert_eq!(segment_above(1_045_000, 1514), 3028);
        assert_eq!(segment_above(10_450_000, 1514), 20_900);
        assert_eq!(segment_above(52_250_000, 1514), 104_500);
        assert_eq!(segment_above(u64::MAX, 1514), u32::MAX);
        assert_eq!(segmenter_rate(1_000_000), 64_000_000);
        assert_eq!(segmenter_rate(u64::MAX), u64::MAX);
    }

    #[test]
    fn the_leaf_queue_is_three_seconds_of_the_rate_at_least_1_mib() {
        assert_eq!(leaf_queue_bytes(1_045_000), 3_135_000);
        assert_eq!(leaf_queue_bytes(52_250_000), 156_750_000);
        // `100K` (102 400 B/s of payload, 107 069 charged): eight 64 KiB windows fit
        assert_eq!(leaf_queue_bytes(107_069), 1_048_576);
        assert_eq!(leaf_queue_bytes(20_000), 1_048_576);
        // where three seconds of the rate pass the floor
        assert_eq!(leaf_queue_bytes(350_000), 1_050_000);
        assert_eq!(leaf_queue_bytes(u64::MAX), u32::MAX);
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
