//! The whole machine's CPU time from `/proc/stat` and what two samples of it say about a
//! window: CPU-seconds, the share of the machine, and CPU-seconds per gigabyte moved —
//! counted two ways, the busy jiffies (user, nice, system, irq, softirq) and the wall time
//! of every CPU less its idle, iowait and steal; beside it one process's CPU time from
//! `/proc/PID/stat`. The arithmetic is pure so that it is tested without a machine under
//! load.
//!
//! Why two ways: with tick-based accounting (this host's kernel: no
//! `CONFIG_IRQ_TIME_ACCOUNTING`, no `VIRT_CPU_ACCOUNTING`) a busy jiffy is a timer tick
//! that found the CPU working, while a tickless idle CPU's idle time is clocked exactly.
//! Work in bursts shorter than a tick between idle spells — packet processing — is
//! mostly missed by the ticks, and the busy columns fall below what the lab's own two
//! processes are known to have used (their times are the scheduler's, exact). Wall time
//! less idle counts that work.

use anyhow::Context as _;

/// The kernel's `USER_HZ`: `/proc/stat` counts in 1/100 s on every Linux architecture the
/// project builds for (the ABI fixes it, whatever `CONFIG_HZ` is).
const USER_HZ: f64 = 100.0;

/// One reading of the `cpu` line (all CPUs summed), in jiffies, and when it was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTimes {
    /// user + nice + system + irq + softirq: work, whoever did it, as ticks sampled it.
    pub busy: u64,
    /// Every column but guest and guest_nice (already inside user and nice).
    pub total: u64,
    /// idle + iowait + steal: the time no work of this machine ran.
    pub idle: u64,
    /// CPUs with a `cpuN` line (online).
    pub cpus: u32,
    /// CLOCK_MONOTONIC at the reading.
    pub at_ns: u64,
}

/// What the machine's CPUs did between two readings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    pub cpu_seconds: f64,
    /// Busy share of all CPUs' time, 0…1.
    pub share: f64,
}

/// The `cpu` line of `/proc/stat`'s text, read at `at_ns`.
pub fn parse(stat: &str, at_ns: u64) -> anyhow::Result<CpuTimes> {
    let line = stat
        .lines()
        .find(|line| line.split_whitespace().next() == Some("cpu"))
        .context("/proc/stat has no \"cpu\" line")?;
    let columns: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .with_context(|| format!("/proc/stat's cpu line {line:?} is not all numbers"))?;
    // user nice system idle iowait irq softirq steal [guest guest_nice]
    anyhow::ensure!(
        columns.len() >= 8,
        "/proc/stat's cpu line {line:?} has fewer than 8 columns"
    );
    let column = |index: usize| columns[index];
    let cpus = stat
        .lines()
        .filter_map(|line| line.split_whitespace().next()?.strip_prefix("cpu"))
        .filter(|number| !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()))
        .count();
    anyhow::ensure!(cpus > 0, "/proc/stat has no cpuN line");
    Ok(CpuTimes {
        busy: column(0) + column(1) + column(2) + column(5) + column(6),
        total: columns.iter().take(8).sum(),
        idle: column(3) + column(4) + column(7),
        cpus: u32::try_from(cpus)?,
        at_ns,
    })
}

/// Reads `/proc/stat` now.
pub fn read() -> anyhow::Result<CpuTimes> {
    let text = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    parse(&text, crate::now_ns())
}

/// The window from `before` to `after` by the busy jiffies; `None` if no time passed (or
/// the counters went backwards, which a reading of one machine never shows).
pub fn window(before: CpuTimes, after: CpuTimes) -> Option<Window> {
    let busy = after.busy.checked_sub(before.busy)?;
    let total = after.total.checked_sub(before.total)?;
    (total > 0).then(|| Window {
        cpu_seconds: busy as f64 / USER_HZ,
        share: busy as f64 / total as f64,
    })
}

/// The window from `before` to `after` as every CPU's wall time less its idle, iowait and
/// steal (see the module's opening); `None` if no time passed or the CPUs changed.
pub fn awake(before: CpuTimes, after: CpuTimes) -> Option<Window> {
    let idle = after.idle.checked_sub(before.idle)? as f64 / USER_HZ;
    let wall = after.at_ns.checked_sub(before.at_ns)? as f64 / 1e9;
    let capacity = wall * f64::from(after.cpus);
    (capacity > 0.0 && before.cpus == after.cpus).then(|| {
        // jiffies and the clock are read a moment apart: never below nothing
        let busy = (capacity - idle).max(0.0);
        Window {
            cpu_seconds: busy,
            share: busy / capacity,
        }
    })
}

/// CPU-seconds of `window` above a `background` busy share (0…1) that the same CPUs
/// showed just before: on a shared machine, an estimate of the window's own work. Never
/// negative (the others' work can drop during the window).
pub fn above_background(window: Window, background: f64) -> f64 {
    if window.share <= 0.0 {
        return 0.0;
    }
    // all CPUs' seconds in the window, busy or not
    let capacity = window.cpu_seconds / window.share;
    (capacity * (window.share - background)).max(0.0)
}

/// CPU-seconds per gigabyte (10^9 B) moved; `None` when nothing moved.
pub fn per_gigabyte(cpu_seconds: f64, bytes: u64) -> Option<f64> {
    (bytes > 0).then(|| cpu_seconds / (bytes as f64 / 1e9))
}

/// A process's CPU-seconds (user + system, all its threads) from its `/proc/PID/stat`
/// text. With tick-based accounting (this host's kernel) a tick that lands in a softirq
/// while the process runs counts here too.
pub fn parse_process(stat: &str) -> anyhow::Result<f64> {
    // the name (field 2) may hold spaces and parentheses: fields are counted after its end
    let (_, rest) = stat
        .rsplit_once(')')
        .with_context(|| format!("{stat:?} is not a /proc/PID/stat line"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state); utime and stime are fields 14 and 15
    let ticks = |index: usize| -> anyhow::Result<u64> {
        fields
            .get(index)
            .and_then(|word| word.parse().ok())
            .with_context(|| format!("{stat:?} has no field {}", index + 3))
    };
    Ok((ticks(11)? + ticks(12)?) as f64 / USER_HZ)
}

/// Process `pid`'s CPU-seconds so far.
pub fn process_seconds(pid: u32) -> anyhow::Result<f64> {
    let path = format!("/proc/{pid}/stat");
    parse_process(&std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?)
}

/// The one-minute load average: the machine is shared, and a figure is read beside it.
pub fn load_1min() -> anyhow::Result<f64> {
    let text = std::fs::read_to_string("/proc/loadavg").context("reading /proc/loadavg")?;
    text.split_whitespace()
        .next()
        .and_then(|word| word.parse().ok())
        .with_context(|| format!("/proc/loadavg says {text:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "cpu  100 5 50 1000 20 3 7 2 40 0\n\
                        cpu0 50 2 25 500 10 1 3 1 20 0\n\
                        cpu1 50 3 25 500 10 2 4 1 20 0\n\
                        intr 12345\n";

    fn times(busy: u64, total: u64, idle: u64, at_ns: u64) -> CpuTimes {
        CpuTimes {
            busy,
            total,
            idle,
            cpus: 2,
            at_ns,
        }
    }

    #[test]
    fn busy_is_user_nice_system_irq_softirq_of_all_cpus() {
        let times = parse(STAT, 7).expect("parses");
        assert_eq!(times.busy, 100 + 5 + 50 + 3 + 7);
        // guest (40) is inside user already
        assert_eq!(times.total, 100 + 5 + 50 + 1000 + 20 + 3 + 7 + 2);
        assert_eq!(times.idle, 1000 + 20 + 2);
        assert_eq!((times.cpus, times.at_ns), (2, 7));
    }

    #[test]
    fn a_short_or_missing_cpu_line_is_an_error() {
        assert!(parse("cpu0 1 2 3\n", 0).is_err());
        assert!(parse("cpu 1 2 3 4\n", 0).is_err());
        assert!(parse("cpu 1 2 x 4 5 6 7 8\ncpu0 1 2 3 4 5 6 7 8\n", 0).is_err());
        // no cpuN line: the machine's size is unknown
        assert!(parse("cpu 1 2 3 4 5 6 7 8\n", 0).is_err());
    }

    #[test]
    fn awake_is_wall_time_of_every_cpu_less_idle() {
        // 2 CPUs for 3 s: 6 CPU-seconds; 450 jiffies idle leave 1.5 s awake, whatever the
        // ticks counted busy (20 here: most of the work fell between ticks)
        let before = times(1_000, 10_000, 9_000, 1_000_000_000);
        let after = times(1_020, 10_470, 9_450, 4_000_000_000);
        let awake = awake(before, after).expect("time passed");
        assert!((awake.cpu_seconds - 1.5).abs() < 1e-9);
        assert!((awake.share - 0.25).abs() < 1e-9);
        let ticks = window(before, after).expect("time passed");
        assert!((ticks.cpu_seconds - 0.2).abs() < 1e-9);
        // no time, or a CPU gone, is no window
        assert_eq!(super::awake(before, before), None);
        let fewer = CpuTimes { cpus: 1, ..after };
        assert_eq!(super::awake(before, fewer), None);
    }

    #[test]
    fn a_window_is_busy_jiffies_over_all_jiffies() {
        // 2 CPUs for 3 s: 600 jiffies, 150 of them busy
        let before = times(1_000, 10_000, 9_000, 0);
        let after = times(1_150, 10_600, 9_450, 3_000_000_000);
        let window = window(before, after).expect("time passed");
        assert!((window.cpu_seconds - 1.5).abs() < 1e-9);
        assert!((window.share - 0.25).abs() < 1e-9);
        assert_eq!(window_of_nothing(), None);
        assert_eq!(super::window(after, before), None);
    }

    fn window_of_nothing() -> Option<Window> {
        let times = times(5, 9, 4, 0);
        window(times, times)
    }

    #[test]
    fn above_background_takes_the_others_share_off_every_cpu_second() {
        // 2 CPUs × 4 s = 8 CPU-seconds, half busy; a quarter was busy before
        let window = Window {
            cpu_seconds: 4.0,
            share: 0.5,
        };
        assert!((above_background(window, 0.25) - 2.0).abs() < 1e-9);
        assert_eq!(above_background(window, 0.75), 0.0);
        let idle = Window {
            cpu_seconds: 0.0,
            share: 0.0,
        };
        assert_eq!(above_background(idle, 0.1), 0.0);
    }

    #[test]
    fn a_process_is_user_plus_system_counted_after_its_name() {
        let stat = "4242 (ct (bench) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 130 7 9 20 0 \
                    9 0 12345 1000000 300 18446744073709551615";
        assert!((parse_process(stat).expect("parses") - 3.8).abs() < 1e-9);
        assert!(parse_process("4242 (cut short) S 1 2").is_err());
        assert!(parse_process("no name at all").is_err());
        // a name with a space and a parenthesis; utime 250, stime 50 ticks
        let stat = "42 (a b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 9 0 0";
        assert!((parse_process(stat).expect("parses") - 300.0 / USER_HZ).abs() < 1e-9);
        assert!(parse_process("42 (x) S 1").is_err());
    }

    #[test]
    fn per_gigabyte_scales_by_bytes() {
        assert_eq!(per_gigabyte(1.5, 500_000_000), Some(3.0));
        assert_eq!(per_gigabyte(1.5, 0), None);
    }
}
