//! The usage history's part of the benchmark: what `chadthrottle daemon` costs in CPU
//! while many processes hold sockets and a fast flow runs, and how close its `usage`
//! totals come to the traffic generator's over a long run with the daemon stopped,
//! started and killed on the way.

use crate::daemon::{self, DaemonSetup};
use crate::{Endpoint, Family, Lab, Proto};
use anyhow::{Context as _, ensure};
use std::path::Path;
use std::time::{Duration, Instant};

/// The daemon's sampling interval in both runs: its default.
const INTERVAL: Duration = Duration::from_secs(10);

/// What the daemon cost over a measured window.
#[derive(Debug)]
pub struct DaemonCost {
    /// Lab processes holding a connection while the daemon ran.
    pub processes: usize,
    /// What the flow carried during the run, bytes per second.
    pub carried: f64,
    /// The window's length: it starts one interval after the processes and the flow
    /// were up, so that the daemon's first look at each process (its executable and user,
    /// read once per process) is not in it.
    pub window: Duration,
    /// The daemon's CPU time over the window, in shares of one core.
    pub window_share: f64,
    /// Its CPU time from its start (the datapath's install, and the processes arriving)
    /// to the window's end, in shares of one core.
    pub whole_share: f64,
    /// `chadthrottle_daemon_samples_written_total` at the window's end.
    pub samples_written: f64,
}

/// Raises this process's open-file limit to its hard limit: each endpoint handle holds
/// three descriptors, and the listening endpoint (which inherits the limit) one per
/// connection.
fn raise_open_files(needed: u64) -> anyhow::Result<()> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: limit is valid for writes.
    ensure!(
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0,
        "getrlimit: {}",
        std::io::Error::last_os_error()
    );
    limit.rlim_cur = limit.rlim_max;
    // SAFETY: limit is a valid rlimit.
    ensure!(
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } == 0,
        "setrlimit: {}",
        std::io::Error::last_os_error()
    );
    ensure!(
        limit.rlim_cur >= needed,
        "{needed} open files are needed; the hard limit is {}",
        limit.rlim_cur
    );
    Ok(())
}

/// Runs `binary daemon` at its default interval in `lab` while `processes` lab clients
/// hold a TCP connection each and one more sends at `rate` bytes per second; measures the
/// daemon's CPU over `seconds` once all are up. Every process lives in the lab's cgroup
/// and ends with it; the flow is bounded by its seconds and by `rate` times them.
pub fn daemon_cost(
    lab: &Lab,
    binary: &Path,
    processes: usize,
    rate: u64,
    seconds: f64,
) -> anyhow::Result<DaemonCost> {
    raise_open_files(4 * processes as u64 + 256)?;
    let setup = DaemonSetup::new(binary, &format!("{}s", INTERVAL.as_secs()))?;
    let started = Instant::now();
    let daemon = setup.start(lab)?;
    let idle_server = lab.server(Proto::Tcp, Family::V4, None)?;
    let holders: Vec<Endpoint> = (0..processes)
        .map(|_| lab.client(&idle_server, Proto::Tcp, None, None))
        .collect::<anyhow::Result<_>>()
        .context("starting the processes that hold a connection")?;
    let server = lab.server(Proto::Tcp, Family::V4, None)?;
    let mut sender = lab.client(&server, Proto::Tcp, None, None)?;
    sender.pace(rate)?;
    let flow_seconds = seconds + 2.0;
    let flow_seconds = flow_seconds + INTERVAL.as_secs_f64();
    sender.start_send(flow_seconds, (rate as f64 * flow_seconds) as u64)?;
    std::thread::sleep(INTERVAL + Duration::from_secs(1));
    if let Some(pid) = daemon.pid() {
        println!("(the daemon is PID {pid}; the window starts now)");
    }
    let window_start = Instant::now();
    let cpu_start = daemon.cpu_time()?;
    std::thread::sleep(Duration::from_secs_f64(seconds));
    let cpu_end = daemon.cpu_time()?;
    let window = window_start.elapsed();
    let whole = started.elapsed();
    let scrape = setup.scrape()?;
    let report = sender.finish_send()?;
    daemon.stop()?;
    drop(holders);
    let samples_written = daemon::metric(&scrape, "chadthrottle_daemon_samples_written_total")
        .with_context(|| format!("the scrape has no samples written:\n{scrape}"))?;
    let flow = Duration::from_nanos(report.end_ns.saturating_sub(report.start_ns));
    Ok(DaemonCost {
        processes,
        carried: report.bytes as f64 / flow.as_secs_f64(),
        window,
        window_share: (cpu_end - cpu_start).as_secs_f64() / window.as_secs_f64(),
        whole_share: cpu_end.as_secs_f64() / whole.as_secs_f64(),
        samples_written,
    })
}

/// A long run's totals: what the generator moved and what `usage` reports for the
/// process that moved it.
#[derive(Debug)]
pub struct Accuracy {
    pub sent: u64,
    pub received: u64,
    pub usage_sent: u64,
    pub usage_received: u64,
    /// What was done to the daemon and when, seconds into the run.
    pub events: Vec<(f64, &'static str)>,
}

/// What happens to the daemon in the middle of a transfer.
#[derive(Clone, Copy)]
enum Event {
    Restart,
    Kill,
}

/// `seconds` of traffic at `rate` bytes per second each way in turn (four transfers: up,
/// down, up, down), the daemon (at its default interval) restarted with SIGTERM in the
/// middle of the first, killed with SIGKILL and started again in the middle of the second,
/// restarted in the middle of the third; then `usage --by process` of the client against
/// the bytes the generator moved.
pub fn usage_accuracy(
    lab: &Lab,
    binary: &Path,
    rate: u64,
    seconds: f64,
) -> anyhow::Result<Accuracy> {
    const EVENTS: [Option<Event>; 4] = [
        Some(Event::Restart),
        Some(Event::Kill),
        Some(Event::Restart),
        None,
    ];
    let setup = DaemonSetup::new(binary, &format!("{}s", INTERVAL.as_secs()))?;
    let started = Instant::now();
    let mut daemon = setup.start(lab)?;
    let mut server = lab.server(Proto::Tcp, Family::V4, None)?;
    let mut client = lab.client(&server, Proto::Tcp, None, None)?;
    client.pace(rate)?;
    server.pace(rate)?;
    let transfer = seconds / EVENTS.len() as f64;
    let bound = (rate as f64 * transfer) as u64;
    let mut accuracy = Accuracy {
        sent: 0,
        received: 0,
        usage_sent: 0,
        usage_received: 0,
        events: Vec::new(),
    };
    for (index, event) in EVENTS.into_iter().enumerate() {
        let upload = index % 2 == 0;
        let sender = if upload { &mut client } else { &mut server };
        sender.start_send(transfer, bound)?;
        std::thread::sleep(Duration::from_secs_f64(transfer / 2.0));
        let at = started.elapsed().as_secs_f64();
        daemon = match event {
            Some(Event::Restart) => {
                daemon.stop()?;
                accuracy.events.push((at, "SIGTERM, started again"));
                setup.start(lab)?
            }
            Some(Event::Kill) => {
                daemon.kill()?;
                std::thread::sleep(Duration::from_secs(1));
                accuracy
                    .events
                    .push((at, "kill -9, started again 1 s later"));
                setup.start(lab)?
            }
            None => daemon,
        };
        let report = sender.finish_send()?;
        if upload {
            accuracy.sent += report.bytes;
        } else {
            accuracy.received += report.bytes;
        }
    }
    // two samples after the traffic, then the stop
    std::thread::sleep(2 * INTERVAL + Duration::from_secs(2));
    daemon.stop()?;
    let row = setup
        .usage_of(lab, client.pid(), "1d")
        .with_context(|| format!("daemon log:\n{}", setup.log_text()))?;
    let field = |name: &str| {
        row[name]
            .as_u64()
            .with_context(|| format!("{name} is not a count in {row}"))
    };
    accuracy.usage_sent = field("tx_bytes")?;
    accuracy.usage_received = field("rx_bytes")?;
    Ok(accuracy)
}
