//! The benchmark's cases and measurements (the `ct-bench` binary prints them).
//!
//! A case is one limited flow: a fresh client process in the lab's cgroup, limited in one
//! direction, sending or receiving for a fixed time against a fresh server. Goodput is
//! read at the receiver in 100 ms bins.

use crate::stats::{Summary, summarize};
use crate::traffic::SendReport;
use crate::{Endpoint, Family, Lab, Proto};
use anyhow::Context as _;
use chadthrottle_core::backend::{Backend, LimitRequest, Target};
use chadthrottle_core::process::validate_target;
use chadthrottle_core::status::{DirectionLimit, Enforcement};
use chadthrottle_core::{Direction, PerDirection, ProcessRef};
use chadthrottle_kernel::Datapath;
use std::time::Duration;

/// Steady state begins this long after the transfer starts.
pub const WARMUP_NS: u64 = 3_000_000_000;
const MAX_BYTES: u64 = 64 << 30;

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
}

#[derive(Debug, Clone)]
pub struct Outcome {
    /// Over the whole transfer, from its first byte.
    pub whole: Summary,
    /// After the warm-up.
    pub steady: Summary,
    pub retransmits: u64,
    /// Packets the policer dropped.
    pub dropped_packets: u64,
    /// Segments the sender sent, estimated from its bytes (for retransmit shares).
    pub segments: u64,
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
    match limit {
        Some(limit) => {
            let mut set = PerDirection::default();
            *set.get_mut(direction) = Some(limit);
            datapath.apply(&LimitRequest {
                target: target.clone(),
                set,
                lasts: None,
            })?;
        }
        None => {
            datapath.remove(
                target.process.pid,
                PerDirection {
                    up: true,
                    down: true,
                },
            )?;
        }
    }
    Ok(())
}

fn dropped(datapath: &Datapath, process: ProcessRef, direction: Direction) -> u64 {
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
    let mut server = lab.server(Proto::Tcp, family, Some(case.cc))?;
    let mut client = lab.client(&server, Proto::Tcp, Some(case.cc), None)?;
    let target = target(lab, &client)?;
    let burst = case.burst.unwrap_or_else(|| {
        chadthrottle_core::bucket::default_burst(
            chadthrottle_core::Rate::new(case.rate).unwrap_or(chadthrottle_core::Rate::BLOCK),
        )
        .bytes()
    });
    limit(
        datapath,
        &target,
        case.direction,
        Some(DirectionLimit {
            rate: case.rate,
            burst,
            enforcement: case.enforcement,
        }),
    )?;
    std::thread::sleep(case.idle);
    let (sender, receiver) = match case.direction {
        Direction::Up => (&mut client, &mut server),
        Direction::Down => (&mut server, &mut client),
    };
    let report: SendReport = sender.send(case.seconds, MAX_BYTES)?;
    std::thread::sleep(Duration::from_millis(200));
    let bins = receiver.bins()?;
    let dropped_packets = dropped(datapath, target.process, case.direction);
    limit(datapath, &target, case.direction, None)?;
    let outcome = Outcome {
        whole: summarize(&bins.between(report.start_ns, report.end_ns)),
        steady: summarize(&bins.between(report.start_ns + WARMUP_NS, report.end_ns)),
        retransmits: report.retransmits,
        dropped_packets,
        segments: (report.bytes / 1448).max(1),
    };
    let _gone = (client.quit(), server.quit());
    Ok(outcome)
}

/// Throughput of one unlimited TCP upload for `seconds`, bytes per second.
pub fn unlimited_rate(lab: &Lab, seconds: f64) -> anyhow::Result<f64> {
    let mut server = lab.server(Proto::Tcp, Family::V4, None)?;
    let mut client = lab.client(&server, Proto::Tcp, None, None)?;
    let report = client.send(seconds, MAX_BYTES)?;
    std::thread::sleep(Duration::from_millis(100));
    let rate = summarize(
        &server
            .bins()?
            .between(report.start_ns + 500_000_000, report.end_ns),
    )
    .rate;
    let _gone = (client.quit(), server.quit());
    Ok(rate)
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
