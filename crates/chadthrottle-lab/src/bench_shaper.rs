//! What the shaping backend's control loop costs: one process with many TCP connections
//! all sending under one upload limit, the kernel's run-time statistics on, the sock_ops
//! program's time per second of traffic; and how long `limit` takes to shape that many
//! open sockets (the TCP iterator). The policer on the same connections is the reference.

use crate::lab_datapath::{install, limit, target};
use crate::{Lab, Proto};
use anyhow::Context as _;
use chadthrottle_core::Direction;
use chadthrottle_core::status::{DirectionLimit, Enforcement};
use chadthrottle_kernel::query;
use std::time::Instant;

/// One run: `sockets` connections under one limit.
#[derive(Debug, Clone)]
pub struct ShaperCost {
    pub enforcement: Enforcement,
    pub sockets: usize,
    /// Wall time of setting the limit on the open sockets (back-fill and iterator).
    pub limit_ms: f64,
    pub sock_ops_runs: u64,
    pub sock_ops_ns_per_run: f64,
    /// Share of one core the sock_ops program used while the sockets sent.
    pub sock_ops_core_share: f64,
    /// Goodput of all the sockets together, bytes per second.
    pub rate: f64,
}

/// Opens `sockets` connections from one client, limits its upload to `rate` with
/// `enforcement`, and lets every connection send for `seconds`.
pub fn shaper_cost(
    lab: &Lab,
    sockets: usize,
    rate: u64,
    enforcement: Enforcement,
    seconds: f64,
) -> anyhow::Result<ShaperCost> {
    chadthrottle_kernel::reset(lab.pin_dir())?;
    let mut datapath = install(lab)?;
    let mut server = lab.server(Proto::Tcp, crate::Family::V4, None)?;
    let mut client = lab.client(&server, Proto::Tcp, None, None)?;
    for _ in 1..sockets {
        client.open()?;
    }
    let who = target(lab, &client)?;
    let started = Instant::now();
    limit(
        &mut datapath,
        &who,
        Direction::Up,
        Some(DirectionLimit {
            rate,
            burst: crate::lab_datapath::default_burst(rate),
            enforcement,
            by_default: false,
        }),
    )?;
    let limit_ms = started.elapsed().as_secs_f64() * 1e3;
    let sock_ops = query::cgroup_programs(lab.cgroup())?
        .into_iter()
        .find(|program| program.name == chadthrottle_kernel::names::PROG_SOCK_OPS)
        .context("ct_sock_ops is attached")?;
    let stats = query::enable_run_time_stats()?;
    let before = query::program_run_times(&[sock_ops.id]);
    let sending = Instant::now();
    client.start_send_all(seconds, u64::MAX, sockets)?;
    let report = client.finish_send()?;
    let elapsed = sending.elapsed().as_nanos() as f64;
    let after = query::program_run_times(&[sock_ops.id]);
    drop(stats);
    let (runs, ns) = match (before.first(), after.first()) {
        (Some(early), Some(late)) => (late.runs - early.runs, (late.run_ns - early.run_ns) as f64),
        _ => (0, 0.0),
    };
    let summary = server.received_steady(&report, 1_000_000_000)?;
    client.quit()?;
    server.quit()?;
    Ok(ShaperCost {
        enforcement,
        sockets,
        limit_ms,
        sock_ops_runs: runs,
        sock_ops_ns_per_run: if runs > 0 { ns / runs as f64 } else { 0.0 },
        sock_ops_core_share: ns / elapsed,
        rate: summary.rate,
    })
}
