//! The kernel clocks the datapath uses, read from userspace.

use std::time::{SystemTime, UNIX_EPOCH};

fn now(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid, writable timespec; the clocks used here always exist.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap_or(0)
}

/// CLOCK_MONOTONIC in ns: `bpf_ktime_get_ns()`, the buckets' clock.
pub fn monotonic_ns() -> u64 {
    now(libc::CLOCK_MONOTONIC)
}

/// CLOCK_BOOTTIME in ns: `bpf_ktime_get_boot_ns()`, the expiry clock (counts suspend).
pub fn boottime_ns() -> u64 {
    now(libc::CLOCK_BOOTTIME)
}

/// Converts a CLOCK_BOOTTIME instant to Unix seconds, rounded to the nearest second.
pub fn boottime_to_unix_secs(boot_ns: u64) -> u64 {
    let unix_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    let at = i128::from(unix_ns) + i128::from(boot_ns) - i128::from(boottime_ns());
    u64::try_from((at + 500_000_000) / 1_000_000_000).unwrap_or(0)
}

/// Nanoseconds per clock tick (`/proc/PID/stat` start times are in ticks).
pub fn ns_per_tick() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    1_000_000_000 / u64::try_from(ticks).ok().filter(|&t| t > 0).unwrap_or(100)
}

/// The random id the kernel draws at each boot (`/proc/sys/kernel/random/boot_id`),
/// trimmed: what tells this boot's records from an earlier boot's.
pub fn boot_id() -> std::io::Result<String> {
    std::fs::read_to_string(BOOT_ID).map(|id| id.trim().to_owned())
}

/// Where the kernel gives its boot id.
pub const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";
