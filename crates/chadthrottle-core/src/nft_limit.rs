//! The nftables backend's numbers: what its `limit rate over` rule is given for a limit,
//! and how deep the eBPF policer behind it must be to stay a backstop.
//!
//! `nft_limit` counts whole IP packets, and at the output hook TCP's packets are still
//! offloaded ones (up to 64 KB, one set of headers): the limit's payload rate is given as
//! is, which leaves the rule at most the header share (52 of 1500 bytes) below the limit
//! when segments are sent one by one. Its byte bucket holds one unit (a second, the
//! smallest it takes) of the rate plus the burst, starting full: a policer behind it with
//! a shallower bucket would drop what the rule let through.

/// The rule's burst (the kernel takes 32 bits).
pub fn rule_burst(burst: u64) -> u32 {
    u32::try_from(burst).unwrap_or(u32::MAX)
}

/// The burst the eBPF policer behind the rule gets: the rule's whole bucket (a second of
/// the rate and the burst).
pub const fn backstop_burst(rate: u64, burst: u64) -> u64 {
    rate.saturating_add(burst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backstop_holds_the_rules_whole_bucket() {
        assert_eq!(rule_burst(65_536), 65_536);
        assert_eq!(rule_burst(u64::MAX), u32::MAX);
        assert_eq!(backstop_burst(1 << 20, 400 << 10), (1 << 20) + (400 << 10));
        assert_eq!(backstop_burst(u64::MAX, 1), u64::MAX);
    }
}
