//! Kernel test of the usage history: `chadthrottle daemon` running in a lab while the
//! traffic generator moves a known number of bytes, `kill -9`'d once and restarted once
//! during the transfers, the datapath reset under it once; `usage` must then report
//! exactly what the datapath counted, and what the generator moved within 0.5 %; its
//! metrics endpoint, scraped during the run, shows the generator's bytes. And `usage` run
//! by a user who is only a member of the database's group reads it, while one outside the
//! group is told in one line. Needs root (CI); reported ignored, with the reason, without
//! it.

pub mod common;

use anyhow::{Context as _, ensure};
use chadthrottle_lab::daemon::{DaemonSetup, INSTALLED_AGAIN};
use chadthrottle_lab::{Family, Lab, Proto};
use common::{MAX_BYTES, Test, counted_within, run};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// The usage history must match the generator within this share.
const ACCURACY: f64 = 0.005;

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

fn usage_survives_a_kill_a_restart_and_a_reset() -> anyhow::Result<()> {
    let lab = Lab::new("usage-history", None)?;
    let setup = DaemonSetup::new(Path::new(env!("CARGO_BIN_EXE_chadthrottle")), "1s")?;
    let mut daemon = setup.start(&lab)?;
    let mut server = lab.server(Proto::Tcp, Family::V4, None)?;
    let mut client = lab.client(&server, Proto::Tcp, None, None)?;
    let mut sent = 0;
    let mut received = 0;

    // uploads; the daemon is killed with SIGKILL in the middle of the first
    client.start_send(3.0, MAX_BYTES)?;
    std::thread::sleep(Duration::from_millis(1500));
    daemon.kill()?;
    std::thread::sleep(Duration::from_millis(700));
    daemon = setup.start(&lab)?;
    sent += client.finish_send()?.bytes;
    // downloads; the daemon is stopped and started again in the middle
    server.start_send(3.0, MAX_BYTES)?;
    std::thread::sleep(Duration::from_millis(1200));
    daemon.stop()?;
    daemon = setup.start(&lab)?;
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
    // the uploads start once it counts again (what is sent between a reset and the
    // reinstall is in no counter, and the reinstall took over a second on a slow machine)
    setup.wait_for_log(&mut daemon, INSTALLED_AGAIN, 1)?;
    std::thread::sleep(Duration::from_millis(500));
    let sent_before_reset = sent;
    sent += client.send(2.0, MAX_BYTES)?.bytes;
    println!(
        "  the generator sent {sent_before_reset} B before the reset, {} B after it",
        sent - sent_before_reset
    );
    std::thread::sleep(Duration::from_millis(2500));
    let metrics = setup.scrape()?;
    daemon.stop()?;
    let after = counted_by_datapath(&lab, client.pid())?;
    println!("  daemon log:\n{}", setup.log_text());

    let row = setup.usage_of(&lab, client.pid(), "1h")?;
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

/// Sets `path`'s group to `gid` and its mode to `mode`, root keeping it.
fn hand_to_group(path: &Path, gid: u32, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::os::unix::fs::chown(path, Some(0), Some(gid))
        .with_context(|| format!("chown {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", path.display()))?;
    Ok(())
}

/// `chadthrottle usage --json` with `config`, run as `nobody` with only `groups` (none:
/// `--clear-groups`) by setpriv.
fn usage_as_nobody(config: &Path, groups: Option<u32>) -> anyhow::Result<std::process::Output> {
    let mut command = std::process::Command::new("setpriv");
    command.args(["--reuid=65534", "--regid=65534"]);
    match groups {
        Some(gid) => command.arg(format!("--groups={gid}")),
        None => command.arg("--clear-groups"),
    };
    command
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_chadthrottle"))
        .args(["usage", "--since", "1d", "--json", "--config"])
        .arg(config);
    command.output().context("run setpriv")
}

fn usage_reads_for_members_of_the_database_group_only() -> anyhow::Result<()> {
    use chadthrottle_core::ProcessRef;
    use chadthrottle_core::tally::{Bytes, Checkpoint, Increment};
    use chadthrottle_core::usage_history::Application;
    use chadthrottle_store::{Sample, Store};
    // a group no account has: a gid is a number, the machine needs no group for it
    const GROUP: u32 = 64_917;
    let data = tempfile::tempdir()?;
    let database = data.path().join("usage.db");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let mut store = Store::open(&database)?;
    let sample = Sample {
        increment: Increment {
            process: ProcessRef {
                pid: 7,
                start_time: 1,
            },
            internet: Bytes {
                rx_bytes: 4321,
                tx_bytes: 12,
            },
            local: Bytes::default(),
            rx_packets: 3,
            tx_packets: 1,
        },
        name: "curl".into(),
        application: Application::of(Some("/usr/bin/curl"), "curl", None),
        user: "root".into(),
    };
    let checkpoint = Checkpoint {
        epoch: "e".into(),
        counters: std::collections::HashMap::new(),
    };
    store.record(now - 60, &[sample], &checkpoint)?;
    // closed, as while the daemon is stopped: no write-ahead log left
    drop(store);
    hand_to_group(data.path(), GROUP, 0o750)?;
    hand_to_group(&database, GROUP, 0o640)?;
    // the configuration where anyone may read it, so that only the database is guarded
    let settings = tempfile::tempdir()?;
    let config = settings.path().join("config.toml");
    std::fs::write(&config, format!("database = \"{}\"\n", database.display()))?;
    hand_to_group(settings.path(), 0, 0o755)?;
    hand_to_group(&config, 0, 0o644)?;

    let member = usage_as_nobody(&config, Some(GROUP))?;
    let stderr = String::from_utf8_lossy(&member.stderr);
    ensure!(member.status.success(), "a member of the group: {stderr}");
    let report: Value = serde_json::from_slice(&member.stdout)?;
    let rows = report["rows"].as_array().context("rows is an array")?;
    ensure!(
        rows.len() == 1 && rows[0]["app"] == "/usr/bin/curl" && rows[0]["rx_bytes"] == 4321,
        "a member of the group read {report}"
    );
    println!("  a member of group {GROUP} (uid 65534) read: {}", rows[0]);

    let outsider = usage_as_nobody(&config, None)?;
    let stderr = String::from_utf8_lossy(&outsider.stderr);
    println!("  outside the group: {}", stderr.trim());
    ensure!(
        !outsider.status.success() && outsider.stdout.is_empty(),
        "a caller outside the group was answered: {}",
        String::from_utf8_lossy(&outsider.stdout)
    );
    ensure!(
        stderr.lines().count() == 1
            && stderr.contains(&database.display().to_string())
            && stderr.contains("permission denied"),
        "a caller outside the group is told in one line naming the database and why: \
         {stderr:?}"
    );
    Ok(())
}

const TESTS: &[(&str, Test)] = &[
    (
        "usage_survives_a_kill_a_restart_and_a_reset",
        usage_survives_a_kill_a_restart_and_a_reset,
    ),
    (
        "usage_reads_for_members_of_the_database_group_only",
        usage_reads_for_members_of_the_database_group_only,
    ),
];

fn main() {
    common::main(TESTS);
}
