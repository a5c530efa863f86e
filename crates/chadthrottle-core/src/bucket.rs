//! The token bucket each limit runs in the datapath, modelled exactly.
//!
//! The datapath (`bpf/include/bucket.h` in the kernel crate) keeps a bucket as a
//! *theoretical arrival time* (GCRA): a packet of `len` bytes conforms when the bucket's
//! time is at most `tau` ahead of now, and moves it `len / rate` seconds further. The
//! division keeps its remainder, so the admitted bytes over any busy interval are exactly
//! `rate × interval` plus the burst, from 1 B/s to 1 TiB/s, with no drift and no
//! overflow (`len × 10⁹ + remainder < 2⁶⁴` for every `len < 2³²` and rate ≤ 2⁴⁰).
//!
//! The burst absorbs stalls *inside* a transfer; after [`IDLE_NS`] without any packet the
//! saved-up credit is cut to [`IDLE_BURST`], so a transfer that starts after a silence
//! cannot overshoot by a whole burst. The kernel crate checks this model against the C
//! code, compiled for the host.

use crate::rate::{Rate, Size};

pub const NSEC_PER_SEC: u64 = 1_000_000_000;

/// The rate stored for a direction that is counted but never dropped.
pub const UNLIMITED: u64 = u64::MAX;

/// Bursts longer than this (in time at the limit rate) are cut to it: about 11.6 days,
/// which keeps `now + tau` far from overflow.
pub const MAX_TAU_NS: u64 = 1_000_000 * NSEC_PER_SEC;

/// A silence this long ends a transfer: longer than a policed TCP flow's retransmission
/// timeout and its first backoff (200 + 400 ms), so stalls within a transfer keep their
/// burst.
pub const IDLE_NS: u64 = NSEC_PER_SEC;

/// Credit a bucket keeps across a silence of [`IDLE_NS`]: one full-size (64 KiB) GSO
/// packet, so a new transfer starts at once but without a saved-up burst.
pub const IDLE_BURST: u64 = 64 * 1024;

/// One direction's bucket state, field for field as `struct ct_bucket`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Bucket {
    /// Bytes per second; 0 blocks, [`UNLIMITED`] never drops.
    pub rate: u64,
    /// How far ahead of now the bucket may run: the burst, in nanoseconds at `rate`.
    pub tau_ns: u64,
    /// The credit left after a silence of [`IDLE_NS`], in nanoseconds at `rate`.
    pub idle_tau_ns: u64,
    /// Theoretical arrival time of the next byte (CLOCK_MONOTONIC ns).
    pub tat_ns: u64,
    /// Remainder of the last `len × 10⁹ / rate` division, carried to the next packet.
    pub rem: u64,
    /// When a packet was last offered.
    pub last_ns: u64,
}

impl Bucket {
    /// A bucket that starts *empty* at `now_ns`: the first packet passes, but no burst is
    /// saved up, so a flow that is already running cannot overshoot when the limit lands.
    pub fn new(rate: u64, burst: u64, now_ns: u64) -> Bucket {
        let tau = tau_ns(rate, burst);
        Bucket {
            rate,
            tau_ns: tau,
            idle_tau_ns: tau_ns(rate, burst.min(IDLE_BURST)),
            tat_ns: now_ns.saturating_add(tau),
            rem: 0,
            last_ns: now_ns,
        }
    }

    /// Whether a packet of `len` bytes at `now_ns` conforms; charges it if so.
    pub fn admit(&mut self, now_ns: u64, len: u64) -> bool {
        self.admit_with_slack(now_ns, len, 0)
    }

    /// As [`Bucket::admit`], letting this packet run `slack_ns` further ahead than the
    /// burst allows: the datapath gives it to TCP packets whose shaper holds the rate
    /// (the policer is then a backstop), so a shaped download's first window passes.
    pub fn admit_with_slack(&mut self, now_ns: u64, len: u64, slack_ns: u64) -> bool {
        match self.rate {
            0 => false,
            UNLIMITED => true,
            rate => {
                if now_ns > self.last_ns + IDLE_NS {
                    let floor = now_ns + self.tau_ns - self.idle_tau_ns;
                    self.tat_ns = self.tat_ns.max(floor);
                }
                self.last_ns = now_ns;
                let tat = self.tat_ns.max(now_ns);
                if tat - now_ns > self.tau_ns.saturating_add(slack_ns) {
                    return false;
                }
                let cost = len * NSEC_PER_SEC + self.rem;
                self.tat_ns = tat + cost / rate;
                self.rem = cost % rate;
                true
            }
        }
    }
}

/// The burst `burst` bytes as time at `rate`, capped at [`MAX_TAU_NS`].
pub fn tau_ns(rate: u64, burst: u64) -> u64 {
    if rate == 0 || rate == UNLIMITED {
        return 0;
    }
    let tau = u128::from(burst) * u128::from(NSEC_PER_SEC) / u128::from(rate);
    u64::try_from(tau).map_or(MAX_TAU_NS, |tau| tau.min(MAX_TAU_NS))
}

/// The burst a limit gets unless `--burst` says otherwise: the bytes the rate carries in
/// [`DEFAULT_BURST_MS`], and never less than [`MIN_BURST`].
///
/// Chosen by measurement (BENCHMARKS.md, "Choosing the default burst"): within a
/// transfer, a policed TCP download at LAN round trips loses its tail and waits out a
/// 200 ms retransmission timeout; a burst shorter than that caps what the flow can catch
/// up afterwards (100 ms lost half the rate, 50 ms three quarters, 200 ms still 3 %);
/// 400 ms was the shortest that held every download within ±2 %. Credit saved up across
/// a silence of [`IDLE_NS`] is cut to [`IDLE_BURST`], so a transfer starting on an idle
/// bucket does not overshoot; one that starts less than a second after earlier traffic
/// may spend the whole burst (+4 % at most on a 10 s transfer, +3.4 % measured).
pub fn default_burst(rate: Rate) -> Size {
    let bytes = u128::from(rate.bytes_per_sec()) * u128::from(DEFAULT_BURST_MS) / 1000;
    let bytes = u64::try_from(bytes).unwrap_or(u64::MAX).max(MIN_BURST);
    Size::new(bytes.min(crate::rate::MAX_SIZE)).unwrap_or(MIN_BURST_SIZE)
}

/// See [`default_burst`].
pub const DEFAULT_BURST_MS: u64 = 400;

/// See [`default_burst`]: one full-size (64 KiB) GSO packet, so that even the lowest
/// rates admit whole offloaded packets without first running up a debt.
pub const MIN_BURST: u64 = 64 * 1024;

const MIN_BURST_SIZE: Size = match Size::new(MIN_BURST) {
    Some(size) => size,
    None => panic!("MIN_BURST is a valid size"),
};

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds a backlogged sender for `seconds`: every `gap_ns` it offers a packet of
    /// `len` bytes. Returns the admitted bytes.
    fn backlogged(bucket: &mut Bucket, seconds: u64, gap_ns: u64, len: u64) -> u64 {
        let mut admitted = 0;
        let mut now = 0;
        while now < seconds * NSEC_PER_SEC {
            if bucket.admit(now, len) {
                admitted += len;
            }
            now += gap_ns;
        }
        admitted
    }

    #[test]
    fn admits_exactly_the_rate_plus_one_packet_with_no_drift() {
        // rates chosen so that len × 10⁹ / rate is never a whole number of ns
        for (rate, len, gap_ns) in [
            (1, 1, NSEC_PER_SEC),
            (3, 1, 100_000_000),
            (100_000, 1448, 1_000),
            (1_048_573, 65_483, 1_000),
            (12_500_000_000, 65_536, 100),
            (crate::rate::MAX_RATE, 4_000_000_000, 1_000_000),
        ] {
            let mut bucket = Bucket::new(rate, len, 0);
            let seconds = if rate < 10 { 100_000 } else { 3 };
            let admitted = backlogged(&mut bucket, seconds, gap_ns, len);
            let ideal = u128::from(rate) * u128::from(seconds);
            // the bucket starts empty and admits a packet whenever its time is ≤ tau
            // ahead: the total is within one packet (plus one offer gap) of the ideal
            let slack = u128::from(len) + u128::from(rate) * u128::from(gap_ns) / 1_000_000_000 + 1;
            assert!(
                u128::from(admitted).abs_diff(ideal) <= slack + u128::from(len),
                "rate {rate}: admitted {admitted}, ideal {ideal}"
            );
        }
    }

    /// Offers 1000-byte packets at one instant; how many pass.
    fn passing_at_once(bucket: &mut Bucket, now: u64) -> usize {
        (0..100_000).take_while(|_| bucket.admit(now, 1000)).count()
    }

    #[test]
    fn a_stall_within_a_transfer_keeps_the_whole_burst() {
        let mut bucket = Bucket::new(1_000_000, 500_000, 0);
        assert_eq!(passing_at_once(&mut bucket, 0), 1, "starts empty");
        // 900 ms without a packet (a retransmission timeout and a bit): full burst
        let now = 900_000_000;
        assert_eq!(
            passing_at_once(&mut bucket, now),
            501,
            "500 000 bytes plus one packet"
        );
    }

    #[test]
    fn a_silence_leaves_only_the_idle_credit() {
        let mut bucket = Bucket::new(1_000_000, 500_000, 0);
        // an hour of silence, then a burst of 1000-byte packets at one instant
        let passed = passing_at_once(&mut bucket, 3600 * NSEC_PER_SEC);
        assert_eq!(
            passed, 66,
            "65 536 bytes of idle credit plus the conforming packet"
        );
        // small bursts keep all of theirs
        let mut small = Bucket::new(1_000_000, 10_000, 0);
        assert_eq!(passing_at_once(&mut small, 3600 * NSEC_PER_SEC), 11);
    }

    #[test]
    fn zero_blocks_and_unlimited_passes() {
        let mut block = Bucket::new(0, 1000, 0);
        assert!(!block.admit(10 * NSEC_PER_SEC, 1));
        let mut open = Bucket::new(UNLIMITED, 1000, 0);
        assert!(open.admit(0, u64::from(u32::MAX)));
        assert_eq!(open, Bucket::new(UNLIMITED, 1000, 0), "state untouched");
    }

    #[test]
    fn tau_never_overflows() {
        assert_eq!(tau_ns(1, crate::rate::MAX_SIZE), MAX_TAU_NS);
        assert_eq!(tau_ns(1_000_000, 100_000), 100_000_000);
        assert_eq!(tau_ns(crate::rate::MAX_RATE, 1), 0);
        let bucket = Bucket::new(1, crate::rate::MAX_SIZE, u64::MAX - 1);
        assert_eq!(bucket.tat_ns, u64::MAX);
    }

    #[test]
    fn default_burst_is_400ms_of_rate_with_a_floor() {
        let rate = |bytes| Rate::new(bytes).expect("valid rate");
        assert_eq!(default_burst(rate(10 << 20)).bytes(), 4 << 20);
        assert_eq!(default_burst(rate(100 * 1024)).bytes(), MIN_BURST);
        assert_eq!(default_burst(Rate::BLOCK).bytes(), MIN_BURST);
        assert_eq!(
            default_burst(rate(crate::rate::MAX_RATE)).bytes(),
            crate::rate::MAX_SIZE
        );
    }
}
