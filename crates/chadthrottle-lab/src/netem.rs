//! A real round-trip delay from the kernel: a netem qdisc on one lab interface, holding
//! every packet for the whole round trip. Kernels built with sch_netem (Debian's, as a
//! module) get it; where the kernel has no netem, adding it fails with "no such qdisc" and
//! the lab falls back to its userspace delay line (`delay`).

use crate::net::{self, Added};
use std::io;
use std::time::Duration;

/// `PSCHED_SHIFT`: `struct tc_netem_qopt` gives its latency in ticks of 64 ns.
const PSCHED_SHIFT: u32 = 6;
/// The fastest flow a delayed lab link is sized for (64 MiB/s; the fastest paced flow a
/// test asks for, the neighbour test's, is 16 MiB/s).
const LAB_MAX_RATE: u64 = 64 << 20;
/// The smallest data packet that counts against netem's limit when segments are not
/// coalesced: a full Ethernet frame's payload. ACKs are smaller but far fewer than a
/// data packet's worth per byte; the factor 2 in [`packet_limit`] covers them.
const SMALLEST_COUNTED: u64 = 1448;
/// netem's own default limit, kept as the floor.
const DEFAULT_LIMIT: u32 = 1000;

/// Packets netem must be able to hold for `delay`: everything the fastest lab flow sends
/// in that time as full-size frames, twice over (its ACKs, and headroom: a full netem
/// queue drops, which a delay line must not).
pub fn packet_limit(delay: Duration) -> u32 {
    let bytes = u128::from(LAB_MAX_RATE) * delay.as_nanos() / 1_000_000_000;
    let packets = 2 * bytes.div_ceil(u128::from(SMALLEST_COUNTED));
    u32::try_from(packets)
        .unwrap_or(u32::MAX)
        .max(DEFAULT_LIMIT)
}

/// `struct tc_netem_qopt` (latency, limit, loss, gap, duplicate, jitter; native endian):
/// a fixed `delay`, no loss, no reordering, no duplication, no jitter.
pub fn qopt(delay: Duration) -> io::Result<[u8; 24]> {
    let ticks = u32::try_from(delay.as_nanos() >> PSCHED_SHIFT).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("netem cannot hold a packet for {delay:?}"),
        )
    })?;
    let mut options = [0; 24];
    options[..4].copy_from_slice(&ticks.to_ne_bytes());
    options[4..8].copy_from_slice(&packet_limit(delay).to_ne_bytes());
    Ok(options)
}

/// Adds netem holding every packet for `delay` as the root qdisc of `name`, in the
/// namespace of the calling thread. The kernel loads sch_netem itself when it is a module.
pub fn add_root(name: &str, delay: Duration) -> io::Result<Added> {
    net::add_root_qdisc(name, "netem", Some(&qopt(delay)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(options: &[u8; 24], at: usize) -> u32 {
        let mut bytes = [0; 4];
        bytes.copy_from_slice(&options[at * 4..at * 4 + 4]);
        u32::from_ne_bytes(bytes)
    }

    #[test]
    fn the_latency_is_in_64_ns_ticks_and_nothing_else_is_set() {
        let options = qopt(Duration::from_millis(20)).unwrap();
        assert_eq!(field(&options, 0), 312_500);
        assert_eq!(field(&options, 1), packet_limit(Duration::from_millis(20)));
        for other in 2..6 {
            assert_eq!(field(&options, other), 0, "field {other}");
        }
    }

    #[test]
    fn the_limit_holds_the_fastest_flow_for_the_whole_delay() {
        // 64 MiB/s for 20 ms is 1 342 178 bytes: 927 full frames, twice over
        assert_eq!(packet_limit(Duration::from_millis(20)), 1854);
        assert_eq!(packet_limit(Duration::from_millis(100)), 9270);
        // never below netem's own default
        assert_eq!(packet_limit(Duration::from_millis(1)), DEFAULT_LIMIT);
    }

    #[test]
    fn a_delay_beyond_the_tick_counter_is_refused() {
        assert!(qopt(Duration::from_secs(300)).is_err());
        assert!(qopt(Duration::from_secs(270)).is_ok());
    }
}
