//! Kernel tests of `chadthrottle top`: the datapath's accounting against the lab's
//! traffic generator, short-lived processes, bounded maps, the fallback and the JSON
//! contract. Like tests/datapath.rs they need root (CI) and are reported ignored, with
//! the reason, without it.

pub mod common;

use anyhow::{Context as _, ensure};
use chadthrottle_lab::protocol::UDP_PAYLOAD;
use chadthrottle_lab::{Endpoint, Family, Lab, Proto};
use common::{MAX_BYTES, Test, listed, pid, policed, run};
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

/// Accounting must match what the generator sent and received within this share.
const ACCURACY: f64 = 0.01;

/// `top --once --json` (interval 200 ms), confined to the lab.
fn top(lab: &Lab, extra: &[&str]) -> anyhow::Result<Value> {
    let mut args = vec!["top", "--once", "--json", "--interval", "200ms"];
    args.extend_from_slice(extra);
    Ok(serde_json::from_str(&run(lab, &args)?)?)
}

fn process_in(snapshot: &Value, pid: u32) -> anyhow::Result<Value> {
    snapshot["processes"]
        .as_array()
        .context("processes is an array")?
        .iter()
        .find(|p| p["pid"] == pid)
        .cloned()
        .with_context(|| format!("PID {pid} is not in the snapshot: {snapshot}"))
}

fn bytes(process: &Value, field: &str) -> anyhow::Result<u64> {
    process[field]
        .as_u64()
        .with_context(|| format!("{field} is not an integer in {process}"))
}

fn matches(what: &str, counted: u64, generator: u64) -> anyhow::Result<()> {
    roughly(what, counted, generator, ACCURACY)
}

/// Like [`matches`] with another tolerance (retransmissions are counted as sent).
fn roughly(what: &str, counted: u64, generator: u64, tolerance: f64) -> anyhow::Result<()> {
    common::counted_within(what, counted, generator, tolerance)
}

/// Bytes `receiver` got in total.
fn received(receiver: &mut Endpoint) -> anyhow::Result<u64> {
    std::thread::sleep(Duration::from_millis(300));
    Ok(receiver.bins()?.bytes.iter().sum())
}

fn accounting_matches_the_generator_tcp_and_udp_both_ways() -> anyhow::Result<()> {
    let lab = Lab::new("acct-accuracy", None)?;
    top(&lab, &[])?; // installs the accounting before the sockets exist
    let mut server = lab.server(Proto::Tcp, Family::V4, None)?;
    let mut client = lab.client(&server, Proto::Tcp, None, None)?;
    let up = client.send(2.0, MAX_BYTES)?;
    let up_received = received(&mut server)?;
    let down = server.send(2.0, MAX_BYTES)?;
    let down_received = received(&mut client)?;
    ensure!(
        up_received == up.bytes && down_received == down.bytes,
        "TCP lost bytes: {up_received} of {} up, {down_received} of {} down",
        up.bytes,
        down.bytes
    );
    let process = process_in(&top(&lab, &["--pid", &pid(&client)])?, client.pid())?;
    matches(
        "TCP upload (offloaded)",
        bytes(&process, "tx_bytes")?,
        up.bytes,
    )?;
    matches(
        "TCP download (offloaded)",
        bytes(&process, "rx_bytes")?,
        down_received,
    )?;
    // 198.18.0.0/15 is not a local range: the lab's traffic counts as Internet
    matches(
        "TCP upload to an Internet address",
        bytes(&process["internet"], "tx_bytes")?,
        up.bytes,
    )?;

    let mut udp_server = lab.server(Proto::Udp, Family::V6, None)?;
    let mut udp_client = lab.client(&udp_server, Proto::Udp, None, None)?;
    // with a download limit, what the datapath counts as received is what passed the
    // policer: both of the rules below are checked at once
    run(&lab, &["limit", "--pid", &pid(&udp_client), "--down", "4M"])?;
    let udp_up = udp_client.send(2.0, 200 << 20)?;
    ensure!(udp_up.errors == 0, "UDP send errors: {}", udp_up.errors);
    let _ = received(&mut udp_server)?;
    udp_server.send(3.0, MAX_BYTES)?;
    let (udp_down_read, queues) = udp_client.udp_read_all(Duration::from_secs(10))?;
    let process = process_in(&top(&lab, &["--pid", &pid(&udp_client)])?, udp_client.pid())?;
    // the endpoint's one 22-byte hello datagram each way is within the tolerance
    matches(
        "IPv6 UDP upload",
        bytes(&process, "tx_bytes")?,
        udp_up.bytes,
    )?;
    // A process receives what reached its socket: what it read, and also the datagrams
    // its socket dropped because it did not read fast enough (a receiver on a busy
    // machine falls behind). What the policer dropped never reached the socket and is not
    // received; the kernel's drop counter of the socket counts both kinds of drop, so the
    // policer's own count is taken off it.
    let socket_drops = queues.dropped;
    let (policer_drops, _) = policed(&listed(&lab, udp_client.pid())?, "down")?;
    ensure!(
        socket_drops >= policer_drops,
        "the socket counted {socket_drops} drops, fewer than the policer's {policer_drops}"
    );
    let overflowed = socket_drops - policer_drops;
    println!(
        "  the UDP receiver read {udp_down_read} B; its socket dropped {overflowed} datagrams \
         that reached it ({policer_drops} more were policed)"
    );
    matches(
        "IPv6 UDP download",
        bytes(&process, "rx_bytes")?,
        udp_down_read + overflowed * UDP_PAYLOAD as u64,
    )?;
    Ok(())
}

fn a_short_lived_process_is_still_attributed() -> anyhow::Result<()> {
    let lab = Lab::new("acct-short", None)?;
    top(&lab, &[])?;
    let server = lab.server(Proto::Tcp, Family::V4, None)?;
    let born = std::time::Instant::now();
    let mut client = lab.client(&server, Proto::Tcp, None, None)?;
    let short_pid = client.pid();
    let sent = client.send(0.15, 1 << 20)?;
    std::thread::sleep(Duration::from_millis(200));
    client.quit()?;
    println!(
        "  PID {short_pid} sent {} B and exited {} ms after it was started",
        sent.bytes,
        born.elapsed().as_millis()
    );
    let process = process_in(&top(&lab, &[])?, short_pid)?;
    ensure!(process["exited"] == true, "not shown as exited: {process}");
    let name = process["name"].as_str().unwrap_or_default();
    ensure!(!name.is_empty() && name != "?", "no name kept: {process}");
    // all of it, and at most a few retransmitted segments more (counted as sent: a
    // 1 MiB transfer on veth sometimes retransmits a burst, which is 5 % of it)
    let counted = bytes(&process, "tx_bytes")?;
    ensure!(
        counted >= sent.bytes,
        "only {counted} of {} B counted",
        sent.bytes
    );
    roughly("short-lived upload", counted, sent.bytes, 0.10)
}

fn ten_thousand_short_connections_leave_the_maps_bounded() -> anyhow::Result<()> {
    const CAPACITY: u32 = 1024;
    let lab = Lab::new("acct-churn", None)?;
    run(
        &lab,
        &[
            "--max-connections",
            &CAPACITY.to_string(),
            "top",
            "--once",
            "--interval",
            "100ms",
        ],
    )?;
    let conns_map = chadthrottle_kernel::query::pinned_maps(lab.pin_dir())
        .into_iter()
        .find(|map| map.name == chadthrottle_kernel::names::MAP_CONNS)
        .context("the connection table is pinned")?;
    ensure!(
        conns_map.max_entries == CAPACITY,
        "the connection table was made for {} entries, not {CAPACITY}",
        conns_map.max_entries
    );
    let server = lab.server(Proto::Tcp, Family::V4, None)?;
    let mut client = lab.client(&server, Proto::Tcp, None, None)?;
    let connected = client.churn(10_000)?;
    ensure!(
        connected == 10_000,
        "only {connected} of 10000 connections opened"
    );
    // the kernel table itself: `top` keeps connections it saw in earlier readings for a
    // while, so its list may hold more than the table ever did
    let in_table = chadthrottle_kernel::Accounting::install(&lab.config())?
        .read()?
        .connections
        .len();
    let process = process_in(&top(&lab, &["--pid", &pid(&client)])?, client.pid())?;
    let sent = bytes(&process, "tx_bytes")?;
    println!(
        "  10000 connections: {in_table} entries in the kernel table (capacity {CAPACITY}), \
         {sent} B counted"
    );
    ensure!(
        in_table <= CAPACITY as usize,
        "{in_table} connection entries exceed the capacity {CAPACITY}"
    );
    // an LRU table that ten times its capacity went through is full, less what its
    // per-CPU free lists hold back: a table that never filled would prove nothing
    ensure!(
        in_table >= CAPACITY as usize / 2,
        "only {in_table} entries after 10000 connections: the table never filled"
    );
    // per-process accounting is not per connection: every byte is still counted
    ensure!(sent >= 10_000, "only {sent} of 10000 bytes counted");
    // and accounting goes on for new connections after the table filled
    let mut fresh = lab.client(&server, Proto::Tcp, None, None)?;
    let report = fresh.send(0.5, 16 << 20)?;
    let process = process_in(&top(&lab, &["--pid", &pid(&fresh)])?, fresh.pid())?;
    // a server holding 10 000 spent connections may make the sender retransmit, which
    // is counted as sent: this checks that counting goes on, not its last percent
    roughly(
        "upload after the churn",
        bytes(&process, "tx_bytes")?,
        report.bytes,
        0.05,
    )
}

fn the_fallback_counts_tcp_without_ebpf() -> anyhow::Result<()> {
    let lab = Lab::new("acct-fallback", None)?;
    let mut server = lab.server(Proto::Tcp, Family::V4, None)?;
    let mut client = lab.client(&server, Proto::Tcp, None, None)?;
    let client_pid = pid(&client);
    let netns = format!("--net=/proc/{client_pid}/ns/net");
    let top_in_lab = |extra: &[&str]| -> anyhow::Result<Value> {
        let output = Command::new("nsenter")
            .args([netns.as_str(), "--", env!("CARGO_BIN_EXE_chadthrottle")])
            .args([
                "top",
                "--once",
                "--json",
                "--interval",
                "200ms",
                "--fallback",
            ])
            .args(extra)
            .envs(lab.env())
            .output()?;
        ensure!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(serde_json::from_slice(&output.stdout)?)
    };
    let first = top_in_lab(&[])?; // totals count from the first reading
    ensure!(
        first["source"] == "sock_diag",
        "source: {}",
        first["source"]
    );
    let up = client.send(1.0, MAX_BYTES)?;
    received(&mut server)?;
    let down = server.send(1.0, MAX_BYTES)?;
    let down_received = received(&mut client)?;
    ensure!(down_received == down.bytes, "TCP lost bytes");
    let process = process_in(&top_in_lab(&["--pid", &client_pid])?, client.pid())?;
    // sock_diag's totals are since the socket opened: all of both transfers
    matches(
        "fallback TCP upload",
        bytes(&process, "tx_bytes")?,
        up.bytes,
    )?;
    matches(
        "fallback TCP download",
        bytes(&process, "rx_bytes")?,
        down_received,
    )?;
    ensure!(
        datapath_pins(&lab).is_empty(),
        "the fallback installed the datapath"
    );
    Ok(())
}

fn datapath_pins(lab: &Lab) -> Vec<String> {
    std::fs::read_dir(lab.pin_dir())
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn without_root_top_falls_back_and_says_why() -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt as _;
    let lab = Lab::new("acct-unprivileged", None)?;
    let output = Command::new(env!("CARGO_BIN_EXE_chadthrottle"))
        .args(["top", "--once", "--json", "--interval", "100ms"])
        .envs(lab.env())
        .uid(65_534)
        .gid(65_534)
        .output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(output.status.success(), "top failed without root: {stderr}");
    let snapshot: Value = serde_json::from_slice(&output.stdout)?;
    ensure!(
        snapshot["source"] == "sock_diag",
        "source: {}",
        snapshot["source"]
    );
    let note = snapshot["note"].as_str().unwrap_or_default();
    ensure!(
        note.contains("CAP_BPF"),
        "the note does not say what is missing: {note}"
    );
    ensure!(
        datapath_pins(&lab).is_empty(),
        "an unprivileged top installed pins"
    );
    Ok(())
}

fn top_json_keeps_its_contract() -> anyhow::Result<()> {
    let lab = Lab::new("acct-json", None)?;
    top(&lab, &[])?;
    let server = lab.server(Proto::Tcp, Family::V4, None)?;
    let mut client = lab.client(&server, Proto::Tcp, None, None)?;
    run(&lab, &["limit", "--pid", &pid(&client), "--up", "8M"])?;
    client.send(0.5, 1 << 20)?;
    let snapshot = top(&lab, &[])?;
    ensure!(
        snapshot["interval_ms"] == 200,
        "interval_ms: {}",
        snapshot["interval_ms"]
    );
    let process = process_in(&snapshot, client.pid())?;
    for field in ["pid", "rx_rate", "tx_rate", "rx_bytes", "tx_bytes"] {
        ensure!(
            process[field].is_u64(),
            "{field} is not an integer: {process}"
        );
    }
    for field in ["name", "cmdline"] {
        ensure!(
            process[field].is_string(),
            "{field} is not a string: {process}"
        );
    }
    ensure!(
        process["limit"]["up"] == 8 << 20,
        "limit: {}",
        process["limit"]
    );
    ensure!(
        process["limit"]["down"].is_null(),
        "limit: {}",
        process["limit"]
    );
    let interfaces = snapshot["interfaces"].as_array().context("interfaces")?;
    ensure!(!interfaces.is_empty(), "no interfaces");
    for interface in interfaces {
        ensure!(
            interface["name"].is_string()
                && interface["rx_rate"].is_u64()
                && interface["tx_rate"].is_u64(),
            "interface: {interface}"
        );
    }
    Ok(())
}

const TESTS: &[(&str, Test)] = &[
    (
        "accounting_matches_the_generator_tcp_and_udp_both_ways",
        accounting_matches_the_generator_tcp_and_udp_both_ways,
    ),
    (
        "a_short_lived_process_is_still_attributed",
        a_short_lived_process_is_still_attributed,
    ),
    (
        "ten_thousand_short_connections_leave_the_maps_bounded",
        ten_thousand_short_connections_leave_the_maps_bounded,
    ),
    (
        "the_fallback_counts_tcp_without_ebpf",
        the_fallback_counts_tcp_without_ebpf,
    ),
    (
        "without_root_top_falls_back_and_says_why",
        without_root_top_falls_back_and_says_why,
    ),
    ("top_json_keeps_its_contract", top_json_keeps_its_contract),
];

fn main() {
    common::main(TESTS);
}
