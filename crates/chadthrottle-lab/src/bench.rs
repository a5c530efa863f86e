//! The benchmark's cases and measurements (the `ct-bench` binary prints them).
//!
//! A case is one limited flow: a fresh client process in the lab's cgroup (for nftables,
//! in a cgroup of its own below it) with one or more connections, limited in one
//! direction, sending or receiving on all of them for a fixed time against a fresh
//! server. Goodput is read at the receiver in 100 ms bins. What
//! limits it is a [`Limiter`]: ChadThrottle's datapath, or a peer for comparison.

use crate::case::{Case, Outcome};
use crate::cgroup::TestCgroup;
use crate::latency::{self, Probe};
use crate::limiter::Limiter;
use crate::protocol::{EndpointArgs, Role};
use crate::spawn::Placement;
use crate::stats::summarize;
use crate::{Endpoint, Family, Lab, Proto};
use chadthrottle_core::Direction;
use chadthrottle_core::status::Enforcement;
use chadthrottle_kernel::Datapath;
use std::path::Path;
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
    let lab = Lab::new(&format!("bench-rtt{rtt_ms}"), delay)?;
    // what a table was measured over belongs in the report beside it
    if let Some(kind) = lab.delay_kind() {
        eprintln!("lab: a {rtt_ms} ms round trip over {kind}");
    }
    if let Some(qdisc) = lab.client_qdisc() {
        eprintln!("lab: {qdisc} is the root qdisc of the client's interface");
    }
    Ok(lab)
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
    // nftables takes a process only alone in a cgroup (its rule matches the cgroup), as a
    // user would run it under `systemd-run --scope`; the probe's client is in the lab's
    let own_cgroup = (case.enforcement == Enforcement::Nftables
        && matches!(limiter, Limiter::Datapath(_)))
    .then(|| TestCgroup::under(lab.cgroup(), "limited"))
    .transpose()?;
    let mut client = match &own_cgroup {
        Some(cgroup) => client_in(lab, &server, case.cc, cgroup.path())?,
        None => lab.client_under(&server, Proto::Tcp, Some(case.cc), &wrapper)?,
    };
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

/// A TCP client of `server` in the lab's client namespace and in `cgroup` (below the
/// lab's), with congestion control `cc`.
pub fn client_in(
    lab: &Lab,
    server: &Endpoint,
    cc: &str,
    cgroup: &Path,
) -> anyhow::Result<Endpoint> {
    let args = EndpointArgs {
        role: Role::Connect,
        proto: Proto::Tcp,
        addr: server.ready.addr,
        cc: Some(cc.to_owned()),
    };
    let placement = Placement {
        netns: Some(&lab.client_ns),
        cgroup: Some(cgroup),
        ..Placement::default()
    };
    Endpoint::start(&args, &placement)
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
