//! Kernel test of the usage history: `chadthrottle daemon` running in a lab while the
//! traffic generator moves a known number of bytes, `kill -9`'d once and restarted once
//! during the transfers, the datapath reset under it once; `usage` must then report
//! exactly what the datapath counted, and what the generator moved within 0.5 %; its
//! metrics endpoint, scraped during the run, shows the generator's bytes. Needs root (CI);
//! reported ignored, with the reason, without it.

pub mod common;

use anyhow::{Context as _, ensure};
use chadthrottle_lab::{Family, Lab, Proto};
use common::{MAX_BYTES, Test, counted_within, run};
use serde_json::Value;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The usage history must match the generator within this share.
const ACCURACY: f64 = 0.005;

/// The daemon, started confined to `lab`, writing its log to `log`.
fn start_daemon(lab: &Lab, config: &Path, log: &Path) -> anyhow::Result<Child> {
    let output = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let child = Command::new(env!("CARGO_BIN_EXE_chadthrottle"))
        .args(["daemon", "--config"])
        .arg(config)
        .args(["--rules", "/nonexistent/rules.toml"])
        .envs(lab.env())
        .stdout(output.try_clone()?)
        .stderr(output)
        .stdin(Stdio::null())
        .spawn()
        .context("start the daemon")?;
    // its first sample (installing the datapath, or resuming) is taken at once
    std::thread::sleep(Duration::from_millis(1500));
    Ok(child)
}

/// Stops the daemon with SIGTERM (as systemd does) and waits for it.
fn stop_daemon(mut child: Child) -> anyhow::Result<()> {
    let pid = libc::pid_t::try_from(child.id())?;
    // SAFETY: kill(2) on the PID of a child we started and have not reaped
    let sent = unsafe { libc::kill(pid, libc::SIGTERM) };
    ensure!(
        sent == 0,
        "SIGTERM to the daemon: {}",
        std::io::Error::last_os_error()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait()? {
            ensure!(status.success(), "the daemon exited with {status}");
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill()?;
    anyhow::bail!("the daemon did not stop within 10 s of SIGTERM")
}

/// What the datapath counted for `pid` (`top`), upload and download: the figures the
/// daemon reads, to tell its errors from the accounting's.
fn counted_by_datapath(lab: &Lab, pid: u32) -> anyhow::Result<(u64, u64)> {
    let top: Value = serde_json::from_str(&run(
        lab,
        &[
            "top",
            "--once",
            "--json",
            "--interval",
            "200ms",
            "--pid",
            &pid.to_string(),
        ],
    )?)?;
    let process = &top["processes"][0];
    let field = |name: &str| {
        process[name]
            .as_u64()
            .with_context(|| format!("{name} of PID {pid} is not a count: {top}"))
    };
    let counted = (field("tx_bytes")?, field("rx_bytes")?);
    println!("  the datapath counted (tx, rx): {counted:?}");
    Ok(counted)
}

/// The `usage --by process` row of `pid`.
fn usage_of(lab: &Lab, config: &Path, pid: u32) -> anyhow::Result<Value> {
    let config = config.display().to_string();
    let out = run(
        lab,
        &[
            "usage", "--config", &config, "--since", "1h", "--by", "process", "--json",
        ],
    )?;
    let report: Value = serde_json::from_str(&out)?;
    report["rows"]
        .as_array()
        .context("rows is an array")?
        .iter()
        .find(|row| row["pid"] == pid)
        .cloned()
        .with_context(|| format!("PID {pid} is not in the usage report: {report}"))
}

/// The running daemon's metrics: the address is the last one its log names (it listens on
/// a port the system picks), the answer's body returned.
fn scrape(log: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(log)?;
    let address = text
        .lines()
        .rev()
        .find_map(|line| line.split("metrics on http://").nth(1))
        .and_then(|rest| rest.strip_suffix("/metrics"))
        .with_context(|| format!("the daemon's log names no metrics address:\n{text}"))?;
    let mut stream = TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .with_context(|| format!("not an HTTP answer: {answer}"))?;
    ensure!(
        head.starts_with("HTTP/1.1 200"),
        "the scrape answered {head}"
    );
    Ok(body.to_owned())
}

fn usage_survives_a_kill_a_restart_and_a_reset() -> anyhow::Result<()> {
    let lab = Lab::new("usage-history", None)?;
    let dir = tempfile::tempdir()?;
    let config: PathBuf = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "interval = \"1s\"\ndatabase = \"{}\"\n[metrics]\nlisten = \"127.0.0.1:0\"\n",
            dir.path().join("usage.db").display()
        ),
    )?;
    let log = dir.path().join("daemon.log");
    let mut daemon = start_daemon(&lab, &config, &log)?;
    let mut server = lab.server(Proto::Tcp, Family::V4, None)?;
    let mut client = lab.client(&server, Proto::Tcp, None, None)?;
    let mut sent = 0;
    let mut received = 0;

    // uploads; the daemon is killed with SIGKILL in the middle of the first
    client.start_send(3.0, MAX_BYTES)?;
    std::thread::sleep(Duration::from_millis(1500));
    daemon.kill()?;
    daemon.wait()?;
    std::thread::sleep(Duration::from_millis(700));
    daemon = start_daemon(&lab, &config, &log)?;
    sent += client.finish_send()?.bytes;
    // downloads; the daemon is stopped and started again in the middle
    server.start_send(3.0, MAX_BYTES)?;
    std::thread::sleep(Duration::from_millis(1200));
    stop_daemon(daemon)?;
    daemon = start_daemon(&lab, &config, &log)?;
    received += server.finish_send()?.bytes;
    std::thread::sleep(Duration::from_millis(300));
    ensure!(
        client.bins()?.bytes.iter().sum::<u64>() == received,
        "TCP lost bytes on the way down"
    );
    // two more samples after the traffic; what the datapath counted so far
    std::thread::sleep(Duration::from_millis(2500));
    let before = counted_by_datapath(&lab, client.pid())?;
    // a reset while the daemon runs: it installs the datapath again, which adopts the
    // open sockets, and follows the new counters; more uploads then
    run(&lab, &["reset"])?;
    std::thread::sleep(Duration::from_millis(2500));
    sent += client.send(2.0, MAX_BYTES)?.bytes;
    std::thread::sleep(Duration::from_millis(2500));
    let metrics = scrape(&log)?;
    stop_daemon(daemon)?;
    let after = counted_by_datapath(&lab, client.pid())?;
    println!(
        "  daemon log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );

    let row = usage_of(&lab, &config, client.pid())?;
    let field = |name: &str| {
        row[name]
            .as_u64()
            .with_context(|| format!("{name} is not a count in {row}"))
    };
    // the daemon's own promise: every byte the datapath counted, once (the traffic was
    // over two samples before the reset and before the daemon stopped)
    let expected = (before.0 + after.0, before.1 + after.1);
    ensure!(
        (field("tx_bytes")?, field("rx_bytes")?) == expected,
        "usage says tx {} rx {} where the datapath counted {expected:?} (before the reset \
         {before:?}, after it {after:?})",
        row["tx_bytes"],
        row["rx_bytes"]
    );
    counted_within(
        "upload, across a kill -9 and a reset",
        field("tx_bytes")?,
        sent,
        ACCURACY,
    )?;
    counted_within(
        "download, across a restart",
        field("rx_bytes")?,
        received,
        ACCURACY,
    )?;
    // the endpoint counts from the last start: the uploads after the reset, at least
    let uploaded: f64 = metrics
        .lines()
        .filter(|line| {
            line.starts_with("chadthrottle_application_bytes_total{")
                && line.contains("direction=\"up\"")
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    ensure!(
        uploaded >= 0.9 * (after.0 as f64)
            && metrics.contains("chadthrottle_daemon_samples_written_total "),
        "the scrape counted {uploaded} bytes up where the datapath counted {} since the \
         reset:\n{metrics}",
        after.0
    );
    Ok(())
}

const TESTS: &[(&str, Test)] = &[(
    "usage_survives_a_kill_a_restart_and_a_reset",
    usage_survives_a_kill_a_restart_and_a_reset,
)];

fn main() {
    common::main(TESTS);
}
