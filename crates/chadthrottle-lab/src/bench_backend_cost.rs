//! Issue 16's measurement (`ct-bench --backend-cost`): what each backend costs the whole
//! machine in CPU while 8 TCP connections of one limited client carry a set rate, beside an
//! unlimited client paced to the same rate, and how fast a limit takes hold of flows that
//! were running unlimited — the limit call's own time (the library path `chadthrottle
//! limit` takes; the tc-htb script's commands) and the time until the receiver's rate,
//! polled every 10 ms, stays within 1.2× the limit. An unpaced unlimited client gives the
//! transport's own cost per byte at full speed. One run per backend and rate per round;
//! rounds alternate the backends so that the shared machine's drifts hit them all alike.

use crate::bench::client_in;
use crate::cgroup::TestCgroup;
use crate::compare::Backend;
use crate::endpoint::Endpoint;
use crate::machine_cpu::{self, CpuTimes};
use crate::taking_effect::{Poll, time_to_effect};
use crate::{Family, Lab, Proto, htb_script, lab_datapath, table};
use chadthrottle_core::Direction;
use chadthrottle_core::status::DirectionLimit;
use std::time::{Duration, Instant};

/// The client's connections, all sending at once.
pub const CONNECTIONS: usize = 8;
/// The flows run unlimited this long before the limit is set.
const UNLIMITED_LEAD: Duration = Duration::from_secs(1);
/// How long the receiver is polled from just before the limit call.
const POLL_SPAN: Duration = Duration::from_millis(1500);
const POLL_EVERY: Duration = Duration::from_millis(10);
/// The rate counts as limited within this multiple of the limit…
pub const EFFECT_CEILING: f64 = 1.2;
/// …for this many polling intervals in a row.
pub const EFFECT_HOLD: usize = 3;
/// From the end of polling to the CPU window's start: the flows settle at the limit.
const SETTLE: Duration = Duration::from_millis(500);
/// How long the machine is watched without the flows, just before them.
const BACKGROUND: Duration = Duration::from_secs(1);
const MAX_BYTES: u64 = 64 << 30;
/// Congestion control of every flow: the kernel's default on most distributions.
const CC: &str = "cubic";

/// What limits the flows of one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// No limit: the client paces each connection to its share of the rate, so that it
    /// carries the same bytes as a limited one.
    Unlimited,
    /// No limit and no pacing: the transport's own cost per byte at full speed, since
    /// pacing itself costs (smaller packets, a timer per burst).
    Unpaced,
    Backend(Backend),
}

impl Subject {
    pub fn name(self) -> &'static str {
        match self {
            Subject::Unlimited => "unlimited (paced)",
            Subject::Unpaced => "unlimited (unpaced)",
            Subject::Backend(backend) => backend.name(),
        }
    }

    /// The direction its flows go: uploads, but downloads for a backend that limits
    /// those only.
    pub fn direction(self) -> Direction {
        match self {
            Subject::Backend(backend) if !backend.limits(Direction::Up) => Direction::Down,
            _ => Direction::Up,
        }
    }
}

/// One run's figures.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    /// Bytes the receiver got during the CPU window, per second.
    pub carried: f64,
    /// The whole machine's CPU-seconds (wall time less idle, see `machine_cpu`) per GB.
    pub cpu_per_gb: Option<f64>,
    /// Busy share of all the machine's CPUs over the window.
    pub share: f64,
    /// CPU-seconds per GB by the busy jiffies (user + nice + system + irq + softirq),
    /// which miss work in bursts shorter than a tick.
    pub ticks_cpu_per_gb: Option<f64>,
    /// Busy share of the machine over the second before the flows started: other work
    /// on a shared machine, which the window's share holds too.
    pub background: f64,
    /// CPU-seconds per GB of what the window used above that background (an estimate:
    /// the background moves during the window).
    pub net_cpu_per_gb: Option<f64>,
    /// CPU-seconds per GB of the two lab processes (sender and receiver, with the softirq
    /// ticks that landed while they ran): blind to the other work on the machine, and to
    /// the part of the limit's work done elsewhere (timers firing in other processes,
    /// ksoftirqd).
    pub processes_cpu_per_gb: Option<f64>,
    /// The limit call's wall time (`None`: no limit).
    pub call_ms: Option<f64>,
    /// From the call's start until the rate held within the ceiling (`None`: no limit, or
    /// it did not within the polling span; see `effect_seen`).
    pub effect_ms: Option<f64>,
    pub effect_seen: bool,
    pub load_1min: f64,
}

/// The limit as it is in place.
enum Applied<'a> {
    None,
    Datapath {
        datapath: Box<chadthrottle_kernel::Datapath>,
        target: chadthrottle_core::backend::Target,
    },
    Script(htb_script::Installed<'a>),
}

/// What `subject`'s limit call needs in place before the clock starts: the datapath, which
/// the daemon or the first `limit` loads once, not every limit.
fn prepare<'a>(lab: &'a Lab, subject: Subject, client: &Endpoint) -> anyhow::Result<Applied<'a>> {
    Ok(match subject {
        Subject::Backend(backend) if backend.enforcement().is_some() => Applied::Datapath {
            datapath: Box::new(lab_datapath::install(lab)?),
            target: lab_datapath::target(lab, client)?,
        },
        _ => Applied::None,
    })
}

/// The limit call itself, timed by its caller.
fn call<'a>(
    lab: &'a Lab,
    subject: Subject,
    applied: &mut Applied<'a>,
    rate: u64,
) -> anyhow::Result<()> {
    let direction = subject.direction();
    match (subject, applied) {
        (Subject::Backend(backend), Applied::Datapath { datapath, target }) => {
            let limit = DirectionLimit {
                rate,
                burst: lab_datapath::default_burst(rate),
                enforcement: backend.enforcement().unwrap_or_default(),
                by_default: false,
            };
            lab_datapath::limit(datapath, target, direction, Some(limit))
        }
        (Subject::Backend(Backend::HtbScript), slot @ Applied::None) => {
            *slot = Applied::Script(htb_script::install(
                &lab.client_ns,
                direction,
                lab.client_device(),
                rate,
            )?);
            Ok(())
        }
        (subject, _) => anyhow::bail!("{} is not measured here", subject.name()),
    }
}

/// The receiver's bytes so far, stamped halfway through the exchange.
fn poll(receiver: &mut Endpoint) -> anyhow::Result<Poll> {
    let asked = crate::now_ns();
    let bytes = receiver.bins()?.bytes.iter().sum();
    let answered = crate::now_ns();
    Ok(Poll {
        at_ns: asked + (answered - asked) / 2,
        bytes,
    })
}

/// One run: `subject` limiting (or, unlimited, pacing) `CONNECTIONS` flows to `rate`
/// bytes per second, the CPU window `window` long.
pub fn run(lab: &Lab, subject: Subject, rate: u64, window: Duration) -> anyhow::Result<Run> {
    let direction = subject.direction();
    let mut server = lab.server(Proto::Tcp, Family::V4, Some(CC))?;
    // nftables matches a process by its cgroup: the client is alone in one
    let own_cgroup = (subject == Subject::Backend(Backend::Nftables))
        .then(|| TestCgroup::under(lab.cgroup(), "limited"))
        .transpose()?;
    let mut client = match &own_cgroup {
        Some(cgroup) => client_in(lab, &server, CC, cgroup.path())?,
        None => lab.client(&server, Proto::Tcp, Some(CC), None)?,
    };
    for _ in 1..CONNECTIONS {
        client.open()?;
    }
    if subject == Subject::Unlimited {
        client.pace(rate / CONNECTIONS as u64)?;
    }
    let mut applied = prepare(lab, subject, &client)?;
    // what the rest of the (shared) machine does just before: the window's figure holds it too
    let quiet_before = machine_cpu::read()?;
    std::thread::sleep(BACKGROUND);
    let background = machine_cpu::awake(quiet_before, machine_cpu::read()?)
        .map_or(f64::NAN, |window| window.share);
    let flow = UNLIMITED_LEAD + POLL_SPAN + SETTLE + window + Duration::from_millis(500);
    let (sender, receiver) = match direction {
        Direction::Up => (&mut client, &mut server),
        Direction::Down => (&mut server, &mut client),
    };
    sender.start_send_all(flow.as_secs_f64(), MAX_BYTES, CONNECTIONS)?;
    std::thread::sleep(UNLIMITED_LEAD);
    let (polls, call_start, call_ms) = std::thread::scope(|scope| {
        let poller = scope.spawn(|| -> anyhow::Result<Vec<Poll>> {
            let until = Instant::now() + POLL_SPAN;
            let mut polls = Vec::new();
            while Instant::now() < until {
                polls.push(poll(receiver)?);
                std::thread::sleep(POLL_EVERY);
            }
            Ok(polls)
        });
        // the poller's first answers come before the call
        std::thread::sleep(3 * POLL_EVERY);
        let call_start = crate::now_ns();
        let started = Instant::now();
        let called = match subject {
            Subject::Unlimited | Subject::Unpaced => Ok(None),
            Subject::Backend(_) => call(lab, subject, &mut applied, rate)
                .map(|()| Some(started.elapsed().as_secs_f64() * 1e3)),
        };
        let polls = poller
            .join()
            .map_err(|_| anyhow::anyhow!("the poller panicked"))?;
        anyhow::Ok((polls?, call_start, called?))
    })?;
    // an unlimited row has no limit to take hold
    let effect_ns = call_ms.and_then(|_| {
        time_to_effect(
            &polls,
            call_start,
            EFFECT_CEILING * rate as f64,
            EFFECT_HOLD,
        )
    });
    std::thread::sleep(SETTLE);
    let pids = [client.pid(), server.pid()];
    let processes = || -> anyhow::Result<f64> {
        pids.iter()
            .map(|&pid| machine_cpu::process_seconds(pid))
            .sum()
    };
    let receiver = match direction {
        Direction::Up => &mut server,
        Direction::Down => &mut client,
    };
    let (cpu_before, first, processes_before) =
        (machine_cpu::read()?, poll(receiver)?, processes()?);
    std::thread::sleep(window);
    let (cpu_after, last, processes_after) = (machine_cpu::read()?, poll(receiver)?, processes()?);
    let load_1min = machine_cpu::load_1min()?;
    let sender = match direction {
        Direction::Up => &mut client,
        Direction::Down => &mut server,
    };
    sender.finish_send()?;
    let lifted = lift(lab, applied);
    let _gone = (client.quit(), server.quit());
    drop(own_cgroup);
    lifted?;
    figures(
        subject,
        (cpu_before, first),
        (cpu_after, last),
        call_ms,
        effect_ns,
        (background, processes_after - processes_before, load_1min),
    )
}

fn lift(lab: &Lab, applied: Applied<'_>) -> anyhow::Result<()> {
    match applied {
        Applied::None => Ok(()),
        // the pins outlive the handle: a reset detaches the programs and removes the
        // qdiscs the htb and ifb backends added
        Applied::Datapath { datapath, .. } => {
            drop(datapath);
            chadthrottle_kernel::reset(lab.pin_dir())?;
            Ok(())
        }
        Applied::Script(installed) => installed.remove(),
    }
}

fn figures(
    subject: Subject,
    (cpu_before, first): (CpuTimes, Poll),
    (cpu_after, last): (CpuTimes, Poll),
    call_ms: Option<f64>,
    effect_ns: Option<u64>,
    (background, processes_seconds, load_1min): (f64, f64, f64),
) -> anyhow::Result<Run> {
    let cpu = machine_cpu::awake(cpu_before, cpu_after)
        .ok_or_else(|| anyhow::anyhow!("/proc/stat did not advance over the window"))?;
    let ticks = machine_cpu::window(cpu_before, cpu_after)
        .ok_or_else(|| anyhow::anyhow!("/proc/stat did not advance over the window"))?;
    let bytes = last.bytes.saturating_sub(first.bytes);
    let seconds = last.at_ns.saturating_sub(first.at_ns) as f64 / 1e9;
    Ok(Run {
        carried: bytes as f64 / seconds,
        cpu_per_gb: machine_cpu::per_gigabyte(cpu.cpu_seconds, bytes),
        share: cpu.share,
        ticks_cpu_per_gb: machine_cpu::per_gigabyte(ticks.cpu_seconds, bytes),
        background,
        net_cpu_per_gb: machine_cpu::per_gigabyte(
            machine_cpu::above_background(cpu, background),
            bytes,
        ),
        processes_cpu_per_gb: machine_cpu::per_gigabyte(processes_seconds, bytes),
        call_ms,
        effect_ms: effect_ns.map(|ns| ns as f64 / 1e6),
        effect_seen: matches!(subject, Subject::Unlimited | Subject::Unpaced)
            || effect_ns.is_some(),
        load_1min,
    })
}

/// The smallest and the median of `values` (the upper one of an even count); `None` if
/// empty.
pub fn min_median(values: &[f64]) -> Option<(f64, f64)> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    Some((*sorted.first()?, sorted[sorted.len() / 2]))
}

/// `min / median` of `values` as `format` writes each; "—" if there are none.
fn cell(values: &[f64], format: impl Fn(f64) -> String) -> String {
    min_median(values).map_or("—".to_owned(), |(min, median)| {
        format!("{} / {}", format(min), format(median))
    })
}

/// The summary table's columns.
pub const COLUMNS: [&str; 14] = [
    "backend",
    "dir",
    "target",
    "carried (median)",
    "CPU-s per GB, min / median",
    "% of the machine, min / median",
    "CPU-s per GB by busy jiffies, min / median",
    "% busy the second before, min / median",
    "CPU-s per GB above that, min / median",
    "lab processes' CPU-s per GB, min / median",
    "limit call, ms, min / median",
    "to ≤ 1.2× limit, ms, min / median",
    "load (1 min) range",
    "note",
];

/// `rate` in decimal units, as the issue states its targets.
pub fn decimal_rate(rate: f64) -> String {
    format!("{:.0} MB/s ({:.2} Gbit/s)", rate / 1e6, rate * 8.0 / 1e9)
}

/// The summary row of `subject` at `rate` over its rounds' `runs`.
pub fn summary_row(subject: Subject, rate: u64, runs: &[Run]) -> String {
    let pick = |get: fn(&Run) -> Option<f64>| runs.iter().filter_map(get).collect::<Vec<_>>();
    let carried = pick(|run| Some(run.carried));
    let loads = pick(|run| Some(run.load_1min));
    let mut notes = Vec::new();
    if runs.is_empty() {
        notes.push("no run worked (their lines above say why)".to_owned());
    }
    if let Some((_, median)) = min_median(&carried)
        && median < 0.9 * rate as f64
    {
        notes.push(format!(
            "the lab reached only {:.0} % of the target",
            median / rate as f64 * 100.0
        ));
    }
    let unseen = runs.iter().filter(|run| !run.effect_seen).count();
    if unseen > 0 {
        notes.push(format!(
            "{unseen} of {} runs never held within 1.2× in {} ms",
            runs.len(),
            POLL_SPAN.as_millis()
        ));
    }
    let load = match (min_median(&loads), loads.iter().copied().reduce(f64::max)) {
        (Some((min, _)), Some(max)) => format!("{min:.2}–{max:.2}"),
        _ => "—".to_owned(),
    };
    table::row(&[
        subject.name().to_owned(),
        subject.direction().to_string(),
        match subject {
            Subject::Unlimited => format!("paced to {}", decimal_rate(rate as f64)),
            Subject::Unpaced => "as fast as it goes".to_owned(),
            Subject::Backend(_) => format!("limit {}", decimal_rate(rate as f64)),
        },
        min_median(&carried).map_or("—".to_owned(), |(_, median)| {
            format!("{:.0} MB/s", median / 1e6)
        }),
        cell(&pick(|run| run.cpu_per_gb), |value| format!("{value:.2}")),
        cell(&pick(|run| Some(run.share)), |value| {
            format!("{:.1}", value * 100.0)
        }),
        cell(&pick(|run| run.ticks_cpu_per_gb), |value| {
            format!("{value:.2}")
        }),
        cell(&pick(|run| Some(run.background)), |value| {
            format!("{:.1}", value * 100.0)
        }),
        cell(&pick(|run| run.net_cpu_per_gb), |value| {
            format!("{value:.2}")
        }),
        cell(&pick(|run| run.processes_cpu_per_gb), |value| {
            format!("{value:.2}")
        }),
        cell(&pick(|run| run.call_ms), |value| format!("{value:.1}")),
        cell(&pick(|run| run.effect_ms), |value| format!("{value:.0}")),
        load,
        notes.join("; "),
    ])
}

/// The one row of a backend the kernel refuses.
pub fn refused_row(backend: Backend, reason: &str) -> String {
    let mut cells = vec![
        backend.name().to_owned(),
        String::new(),
        String::new(),
        format!("n/a: the kernel refuses it: {reason}"),
    ];
    cells.resize(COLUMNS.len(), String::new());
    table::row(&cells)
}

/// One run's line in the raw log (every round, as it came).
pub fn run_line(round: usize, subject: Subject, rate: u64, run: &anyhow::Result<Run>) -> String {
    let what = format!(
        "round {round}: {} at {:.0} MB/s",
        subject.name(),
        rate as f64 / 1e6
    );
    match run {
        Ok(run) => format!(
            "{what}: carried {:.0} MB/s, {} CPU-s/GB, {:.1} % of the machine (busy jiffies: {} \
             CPU-s/GB; {:.1} % the second \
             before; {} CPU-s/GB above it; lab processes {} CPU-s/GB), call {}, effect {}, \
             load {:.2}",
            run.carried / 1e6,
            run.cpu_per_gb
                .map_or("—".to_owned(), |value| format!("{value:.2}")),
            run.share * 100.0,
            run.ticks_cpu_per_gb
                .map_or("—".to_owned(), |value| format!("{value:.2}")),
            run.background * 100.0,
            run.net_cpu_per_gb
                .map_or("—".to_owned(), |value| format!("{value:.2}")),
            run.processes_cpu_per_gb
                .map_or("—".to_owned(), |value| format!("{value:.2}")),
            run.call_ms
                .map_or("—".to_owned(), |ms| format!("{ms:.1} ms")),
            run.effect_ms
                .map_or("—".to_owned(), |ms| format!("{ms:.0} ms")),
            run.load_1min
        ),
        Err(error) => format!("{what}: failed: {error:#}"),
    }
}

/// Every backend of `backends` (trickle, with no limit call, and the default, which is
/// shaping up and ifb down, are left out) and the unlimited baseline at every one of
/// `rates`, `rounds` times in turn; `emit` gets each run's line as it comes, then the
/// summary table. A failed run gets its line and the rest
/// go on; the summary counts the runs that worked.
pub fn measure(
    lab: &Lab,
    backends: &[Backend],
    rates: &[u64],
    rounds: usize,
    window: Duration,
    mut emit: impl FnMut(String),
) -> anyhow::Result<()> {
    let mut refused = Vec::new();
    let mut subjects = vec![Subject::Unpaced, Subject::Unlimited];
    // trickle has no limit call; the default is the shaping row up and the ifb row down
    for &backend in backends
        .iter()
        .filter(|&&backend| !matches!(backend, Backend::Trickle | Backend::Default))
    {
        match backend.enforcement().and_then(lab_datapath::refusal) {
            Some(reason) => refused.push((backend, reason)),
            None => subjects.push(Subject::Backend(backend)),
        }
    }
    let mut runs: Vec<Vec<Run>> = vec![Vec::new(); subjects.len() * rates.len()];
    for round in 1..=rounds {
        for (index, &subject) in subjects.iter().enumerate() {
            for (slot, &rate) in rates.iter().enumerate() {
                chadthrottle_kernel::reset(lab.pin_dir())?;
                let run = run(lab, subject, rate, window);
                emit(run_line(round, subject, rate, &run));
                if let Ok(run) = run {
                    runs[index * rates.len() + slot].push(run);
                }
            }
        }
    }
    emit(String::new());
    emit(table::header(&COLUMNS));
    for (slot, &rate) in rates.iter().enumerate() {
        for (index, &subject) in subjects.iter().enumerate() {
            emit(summary_row(
                subject,
                rate,
                &runs[index * rates.len() + slot],
            ));
        }
    }
    for (backend, reason) in refused {
        emit(refused_row(backend, &reason));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(cpu_per_gb: f64, call_ms: Option<f64>, effect_ms: Option<f64>) -> Run {
        Run {
            carried: 124e6,
            cpu_per_gb: Some(cpu_per_gb),
            share: cpu_per_gb * 0.124 / 2.0,
            ticks_cpu_per_gb: Some(cpu_per_gb / 5.0),
            background: 0.1,
            net_cpu_per_gb: Some(cpu_per_gb / 2.0),
            processes_cpu_per_gb: Some(cpu_per_gb / 4.0),
            call_ms,
            effect_ms,
            effect_seen: effect_ms.is_some() || call_ms.is_none(),
            load_1min: 2.5,
        }
    }

    #[test]
    fn min_median_takes_the_upper_middle_of_an_even_count() {
        assert_eq!(min_median(&[3.0, 1.0, 2.0]), Some((1.0, 2.0)));
        assert_eq!(min_median(&[4.0, 1.0, 3.0, 2.0]), Some((1.0, 3.0)));
        assert_eq!(min_median(&[]), None);
    }

    #[test]
    fn a_row_is_as_wide_as_the_header_and_gives_min_then_median() {
        let runs = [
            run(2.0, Some(5.0), Some(30.0)),
            run(1.0, Some(4.0), Some(20.0)),
            run(3.0, Some(6.0), None),
        ];
        let line = summary_row(Subject::Backend(Backend::Policer), 125_000_000, &runs);
        assert_eq!(line.matches(" | ").count(), COLUMNS.len() - 1, "{line}");
        assert!(
            line.starts_with(
                "| policer | up | limit 125 MB/s (1.00 Gbit/s) | 124 MB/s | 1.00 / 2.00 | "
            ),
            "{line}"
        );
        assert!(
            line.contains(
                "| 0.20 / 0.40 | 10.0 / 10.0 | 0.50 / 1.00 | 0.25 / 0.50 | 4.0 / 5.0 | 20 / 30 |"
            ),
            "{line}"
        );
        assert!(line.contains("1 of 3 runs never held"), "{line}");
    }

    #[test]
    fn a_rate_the_lab_cannot_reach_is_said() {
        let line = summary_row(Subject::Unlimited, 400_000_000, &[run(1.0, None, None)]);
        assert!(line.contains("reached only 31 % of the target"), "{line}");
        assert!(line.contains("| — | — |"), "{line}");
    }

    #[test]
    fn a_row_without_runs_says_so() {
        let line = summary_row(Subject::Backend(Backend::Htb), 125_000_000, &[]);
        assert_eq!(line.matches(" | ").count(), COLUMNS.len() - 1, "{line}");
        assert!(line.contains("| no run worked"), "{line}");
    }

    #[test]
    fn download_only_backends_run_downloads() {
        assert_eq!(Subject::Backend(Backend::Ifb).direction(), Direction::Down);
        assert_eq!(
            Subject::Backend(Backend::TcPolice).direction(),
            Direction::Down
        );
        assert_eq!(Subject::Backend(Backend::Htb).direction(), Direction::Up);
        assert_eq!(Subject::Unlimited.direction(), Direction::Up);
    }

    #[test]
    fn a_refused_backend_is_one_full_row() {
        let line = refused_row(Backend::TcPolice, "no act_police");
        assert_eq!(line.matches(" | ").count(), COLUMNS.len() - 1);
        assert!(
            line.contains("n/a: the kernel refuses it: no act_police"),
            "{line}"
        );
    }
}
