//! The tc_police backend's numbers: the `struct tc_police` a limit becomes (rate, bucket
//! depth in the kernel's 64 ns ticks, the rate table the kernel insists on) and how deep
//! the eBPF policer behind it must be to stay a backstop.
//!
//! The police action counts whole IP packets as they arrive at the interface's ingress
//! (after GRO: up to 64 KB each, one set of headers), so the limit's payload rate is given
//! as is, like the nftables rule's: at most the header share below the limit. A packet
//! bigger than the bucket never conforms, so the bucket holds at least one packet of the
//! largest size GRO builds.
//!
//! A filter is set again only when it is missing or its figures changed: replacing a
//! police action refills its bucket, so re-setting every filter on each change would hand
//! every other limited process a fresh burst.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Nanoseconds per psched tick (`PSCHED_TICKS2NS`).
const NS_PER_TICK: u128 = 64;

/// The largest packet GRO hands to the ingress (`GSO_MAX_SIZE` without BIG TCP).
pub const LARGEST_PACKET: u64 = 65_536;

/// Entries of the rate table (`TC_RTAB_SIZE` is 1024 bytes of `u32`).
pub const RATE_TABLE_ENTRIES: usize = 256;

/// The largest packet the rate table describes: the action is given no `mtu` limit of
/// its own (see [`POLICE_MTU`]), so this only sizes the table's cells, as `tc` does.
const TABLE_MTU: u32 = 2047;

/// The police action's `mtu`: none (a packet of any size is measured against the bucket).
pub const POLICE_MTU: u32 = u32::MAX;

/// The bucket depth in bytes the police action gets for a limit with `burst`.
pub fn police_burst(burst: u64) -> u64 {
    burst.max(LARGEST_PACKET)
}

/// `struct tc_police.burst`: how long `bytes` take at `rate`, in 64 ns ticks.
pub fn burst_ticks(rate: u64, bytes: u64) -> u32 {
    let ns = u128::from(bytes) * 1_000_000_000 / u128::from(rate.max(1));
    u32::try_from(ns / NS_PER_TICK).unwrap_or(u32::MAX)
}

/// `tc_ratespec.cell_log` for the rate table: the smallest cell with 255 cells covering
/// [`TABLE_MTU`] (the kernel refuses 0).
pub fn cell_log() -> u8 {
    let mut log = 0u8;
    while (TABLE_MTU >> log) > 255 {
        log += 1;
    }
    log
}

/// The rate table (`TCA_POLICE_RATE`): entry `i`, the ticks `(i + 1) << cell_log` bytes
/// take at `rate`. The kernel keeps it but computes with the rate itself since 3.x; it
/// still refuses a police action at a rate without one.
pub fn rate_table(rate: u64) -> [u32; RATE_TABLE_ENTRIES] {
    let log = cell_log();
    let mut table = [0u32; RATE_TABLE_ENTRIES];
    for (index, entry) in (1u64..).zip(table.iter_mut()) {
        *entry = burst_ticks(rate, index << log);
    }
    table
}

/// The burst the eBPF policer behind the action gets: the action's whole bucket, so that
/// what the action lets through the backstop does too.
pub fn backstop_burst(burst: u64) -> u64 {
    police_burst(burst)
}

/// One police filter on an interface's ingress: its handle and what its action was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoliceFilter {
    pub handle: u32,
    /// Bytes per second.
    pub rate: u64,
    /// The bucket's depth in bytes ([`police_burst`] of the limit's burst).
    pub bucket: u64,
}

/// Which of `wanted` must be set on an interface whose ingress holds the police filters
/// `present` (handles, as the kernel lists them) and, as last set, `recorded`: those not
/// there, and those set with other figures. The rest are left alone with their tokens.
pub fn filters_to_set(
    wanted: &[PoliceFilter],
    recorded: &[PoliceFilter],
    present: &BTreeSet<u32>,
) -> Vec<PoliceFilter> {
    wanted
        .iter()
        .filter(|filter| !present.contains(&filter.handle) || !recorded.contains(filter))
        .copied()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_missing_or_changed_filter_is_set() {
        let filter = |handle, rate| PoliceFilter {
            handle,
            rate,
            bucket: 1 << 20,
        };
        let recorded = [filter(1, 1_000_000), filter(2, 2_000_000), filter(3, 500)];
        let present = BTreeSet::from([1, 2]);
        let wanted = [
            filter(1, 1_000_000), // unchanged: kept with its tokens
            filter(2, 3_000_000), // re-rated
            filter(3, 500),       // recorded but gone from the interface
            filter(4, 700),       // new
        ];
        assert_eq!(
            filters_to_set(&wanted, &recorded, &present),
            vec![filter(2, 3_000_000), filter(3, 500), filter(4, 700)]
        );
        // a deeper bucket for the same rate is a change too
        let deeper = PoliceFilter {
            bucket: 2 << 20,
            ..filter(1, 1_000_000)
        };
        assert_eq!(filters_to_set(&[deeper], &recorded, &present), vec![deeper]);
        assert!(filters_to_set(&wanted[..1], &recorded, &present).is_empty());
    }

    #[test]
    fn the_bucket_holds_the_largest_packet() {
        assert_eq!(police_burst(1 << 20), 1 << 20);
        assert_eq!(police_burst(1500), LARGEST_PACKET);
        assert_eq!(backstop_burst(1500), LARGEST_PACKET);
    }

    #[test]
    fn ticks_are_64_ns() {
        // 1 MB at 1 MB/s is a second: 10^9 / 64 ticks
        assert_eq!(burst_ticks(1_000_000, 1_000_000), 15_625_000);
        assert_eq!(burst_ticks(0, 1), 15_625_000, "a zero rate counts as 1 B/s");
        assert_eq!(burst_ticks(1, u64::MAX), u32::MAX);
    }

    #[test]
    fn the_rate_table_is_what_tc_builds() {
        assert_eq!(cell_log(), 3, "255 cells of 8 bytes cover 2047");
        let table = rate_table(1_000_000);
        // 8 bytes at 1 MB/s: 8 µs, 125 ticks; the last cell, 2048 bytes: 32000 ticks
        assert_eq!(table[0], 125);
        assert_eq!(table[RATE_TABLE_ENTRIES - 1], 32_000);
        assert!(table.windows(2).all(|pair| pair[0] < pair[1]));
    }
}
