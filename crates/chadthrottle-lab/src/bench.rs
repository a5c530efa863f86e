//! The benchmark's cases and measurements (the `ct-bench` binary prints them).
//!
//! A case is one limited flow: a fresh client process in the lab's cgroup with one or more
//! connections, limited in one direction, sending or receiving on all of them for a fixed
//! time against a fresh server. Goodput is read at the receiver in 100 ms bins. What
//! limits it is a [`Limiter`]: ChadThrottle's datapath, or a peer for comparison.

use crate::latency::{self, Extra, Probe};
use crate::limiter::Limiter;
use crate::stats::{Summary, summarize};
use crate::{Endpoint, Family, Lab, Proto};
use anyhow::Context as _;
use chadthrottle_core::backend::{Backend, Change, LimitRequest, Target};
use chadthrottle_core::process::validate_target;
use chadthrottle_core::status::{DirectionLimit, Enforcement};
use chadthrottle_core::{Direction, PerDirection, ProcessRef};
use chadthrottle_kernel::Datapath;
use std::time::Duration;

/// Steady state begins this long after the transfer starts (see [`warmup_ns`]).
pub const WARMUP_NS: u64 = 3_000_000_000;
const MAX_BYTES: u64 = 64 << 30;
/// How long the latency probe runs alone, before the transfer.
const PROBE_ALONE_SECONDS: f64 = 1.0;

/// The warm-up of a `seconds` transfer: 3 s, or 30 % of a transfer shorter than 10 s (so
/// that short trial runs still have a steady part).
pub fn warmup_ns(seconds: f64) -> u64 {
    WARMUP_NS.min((seconds * 0.3 * 1e9) as u64)
}

/// A lab for a round-trip time of `rtt_ms` (0: the plain veth pair).
pub fn lab(rtt_ms: u64) -> anyhow::Result<Lab> {
    let delay = (rtt_ms > 0).then(|| Duration::from_millis(rtt_ms));
    Lab::new(&format!("bench-rtt{rtt_ms}"), delay)
}

#[derive(Debug, Clone)]
pub struct Case {
    pub direction: Direction,
    /// Bytes per second.
    pub rate: u64,
    /// Bytes; `None`: the default for the rate.
    pub burst: Option<u64>,
    pub cc: &'static str,
    pub seconds: f64,
    /// Idle time between setting the limit and the transfer (lets the bucket fill).
    pub idle: Duration,
    pub enforcement: Enforcement,
    /// TCP connections of the client, all carrying the transfer at once.
    pub connections: usize,
}

#[derive(Debug, Clone)]
pub struct Outcome {
    /// Over the whole transfer, from its first byte.
    pub whole: Summary,
    /// After the warm-up.
    pub steady: Summary,
    pub retransmits: u64,
    /// Packets the policer dropped (`None`: not limited by the datapath).
    pub dropped_packets: Option<u64>,
    /// Segments the sender sent, estimated from its bytes (for retransmit shares).
    pub segments: u64,
    /// What the transfer's steady state added to the latency probe's round trips
    /// (`None`: not probed; an error: no figure, and why).
    pub latency: Option<Result<Extra, String>>,
}

/// `ProcessRef` and name of a lab process, checked as `chadthrottle limit` checks it.
pub fn target(lab: &Lab, endpoint: &Endpoint) -> anyhow::Result<Target> {
    let scope = chadthrottle_kernel::mounts::cgroup_scope(lab.cgroup())?;
    let pid = endpoint.pid();
    let (process, name) = validate_target(
        pid,
        chadthrottle_kernel::procs::inspect(pid),
        std::process::id(),
        &scope,
    )?;
    Ok(Target { process, name })
}

/// Limits `target` in one direction, or lifts its limit with `None`.
pub fn limit(
    datapath: &mut Datapath,
    target: &Target,
    direction: Direction,
    limit: Option<DirectionLimit>,
) -> anyhow::Result<()> {
    let mut change = PerDirection::default();
    *change.get_mut(direction) = Change::set_or_lift(limit);
    datapath.apply(&LimitRequest {
        target: target.clone(),
        change,
        lasts: None,
    })?;
    Ok(())
}

/// Packets the datapath dropped for `process` in `direction` since its limit was set.
pub fn dropped(datapath: &Datapath, process: ProcessRef, direction: Direction) -> u64 {
    datapath
        .stats(process, direction)
        .ok()
        .flatten()
        .map_or(0, |stats| stats.dropped_packets)
}

/// Runs one case in `lab` with the installed `datapath`.
pub fn run_case(
    lab: &Lab,
    datapath: &mut Datapath,
    family: Family,
    case: &Case,
) -> anyhow::Result<Outcome> {
    run_limited(lab, &mut Limiter::Datapath(datapath), family, case, false)
}

/// Runs one case in `lab` limited by `limiter`. With `probe`, an unlimited process pair
/// measures round trips alone before the limit is set, then during the transfer.
pub fn run_limited(
    lab: &Lab,
    limiter: &mut Limiter<'_>,
    family: Family,
    case: &Case,
    probe: bool,
) -> anyhow::Result<Outcome> {
    let mut server = lab.server(Proto::Tcp, family, Some(case.cc))?;
    let wrapper = limiter.wrapper(case);
    let mut client = lab.client_under(&server, Proto::Tcp, Some(case.cc), &wrapper)?;
    for _ in 1..case.connections {
        client.open()?;
    }
    limiter.check(&client)?;
    let mut probe = probe.then(|| Probe::start(lab, family)).transpose()?;
    let alone = probe
        .as_mut()
        .map(|probe| probe.run(PROBE_ALONE_SECONDS))
        .transpose()?;
    let applied = limiter.apply(lab, &client, case)?;
    std::thread::sleep(case.idle);
    let (sender, receiver) = match case.direction {
        Direction::Up => (&mut client, &mut server),
        Direction::Down => (&mut server, &mut client),
    };
    sender.start_send_all(case.seconds, MAX_BYTES, case.connections)?;
    if let Some(probe) = probe.as_mut() {
        probe.begin(case.seconds)?;
    }
    let report = sender.finish_send()?;
    let during = probe.as_mut().map(Probe::finish).transpose()?;
    std::thread::sleep(Duration::from_millis(200));
    let bins = receiver.bins()?;
    let dropped_packets = applied.lift()?;
    let steady_ns = report.start_ns + warmup_ns(case.seconds);
    let outcome = Outcome {
        whole: summarize(&bins.between(report.start_ns, report.end_ns)),
        steady: summarize(&bins.between(steady_ns, report.end_ns)),
        retransmits: report.retransmits,
        dropped_packets,
        segments: (report.bytes / 1448).max(1),
        latency: alone
            .zip(during)
            .map(|(alone, during)| latency::measure(&alone, &during, steady_ns, report.end_ns)),
    };
    let _gone = (
        client.quit(),
        server.quit(),
        probe.map(Probe::quit).transpose(),
    );
    limiter.verify(&outcome, case)?;
    Ok(outcome)
}

/// Throughput of one unlimited TCP upload for `seconds`, bytes per second.
pub fn unlimited_rate(lab: &Lab, seconds: f64) -> anyhow::Result<f64> {
    let mut server = lab.server(Proto::Tcp, Family::V4, None)?;
    let mut client = lab.client(&server, Proto::Tcp, None, None)?;
    let report = client.send(seconds, MAX_BYTES)?;
    let rate = server.received_steady(&report, 500_000_000)?.rate;
    let _gone = (client.quit(), server.quit());
    Ok(rate)
}

/// The burst `chadthrottle limit` gives `rate` by default, in bytes.
pub fn default_burst(rate: u64) -> u64 {
    chadthrottle_core::bucket::default_burst(
        chadthrottle_core::Rate::new(rate).unwrap_or(chadthrottle_core::Rate::BLOCK),
    )
    .bytes()
}

/// Installs the datapath confined to `lab`.
pub fn install(lab: &Lab) -> anyhow::Result<Datapath> {
    install_with(lab, true)
}

/// Installs the datapath confined to `lab`, with or without its accounting.
pub fn install_with(lab: &Lab, accounting: bool) -> anyhow::Result<Datapath> {
    let config = chadthrottle_kernel::Config {
        accounting,
        ..lab.config()
    };
    Datapath::install(&config).context("cannot install the datapath in the lab")
}
