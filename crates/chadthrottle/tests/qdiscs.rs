//! Kernel tests of the qdisc backends: `htb` (uploads, an HTB at the root of the interface
//! in use) and `ifb` (downloads, redirected to an IFB device with an HTB). They hold the
//! limit, refuse a root qdisc they did not create unless --force, and leave every
//! interface exactly as they found it on unlimit and reset; a download with no backend
//! named gets ifb where the interface's ingress is free, shaping where it is not.
//!
//! Same harness as datapath.rs. The interfaces are the lab's own, in its client namespace;
//! the test reads them with iproute2 (`tc -j`, `ip -j`) from inside that namespace, the
//! way an administrator would look.

pub mod common;
pub mod iproute;

use anyhow::{Context as _, ensure};
use chadthrottle_core::backend::Backend as _;
use chadthrottle_kernel::Datapath;
use chadthrottle_lab::programs::Programs;
use chadthrottle_lab::protocol::SendReport;
use chadthrottle_lab::stats::summarize;
use chadthrottle_lab::{Endpoint, Family, Lab, Proto};
use common::sockets::socket_settings;
use common::{
    KIB, MAX_BYTES, MIB, Test, WARMUP_NS, listed, pid, policed, run, status_of, steady, within,
};
use iproute::{DEVICE, ifb_devices, iproute};
use serde_json::Value;

const SECONDS: f64 = 8.0;

/// Every qdisc of the lab's client interface, as `tc -j` reports it.
fn qdiscs(inside: &Endpoint) -> anyhow::Result<Value> {
    Ok(serde_json::from_str(&iproute(
        inside,
        "tc",
        &["-j", "qdisc", "show", "dev", DEVICE],
    )?)?)
}

/// Prints how many of the transfer's segments were retransmitted; more than 1 % fails.
fn at_most_one_percent_retransmitted(report: &SendReport) -> anyhow::Result<()> {
    let segments = report.bytes / 1448 + 1;
    println!(
        "  {} of {segments} segments retransmitted",
        report.retransmits
    );
    ensure!(
        report.retransmits * 100 <= segments,
        "{} of {segments} segments retransmitted",
        report.retransmits
    );
    Ok(())
}

fn kinds(qdiscs: &Value) -> Vec<String> {
    qdiscs
        .as_array()
        .map(|list| {
            list.iter()
                .map(|q| format!("{} {}", q["kind"].as_str().unwrap_or("?"), q["handle"]))
                .collect()
        })
        .unwrap_or_default()
}

fn htb_holds_an_upload_and_puts_the_default_root_back() -> anyhow::Result<()> {
    let lab = Lab::new("htb-up", None)?;
    let mut server = lab.server(Proto::Tcp, Family::V4, None)?;
    let mut client = lab.client(&server, Proto::Tcp, None, None)?;
    let before = qdiscs(&client)?;
    let printed = run(
        &lab,
        &[
            "limit",
            "--pid",
            &pid(&client),
            "--up",
            "2M",
            "--upload-backend",
            "htb",
        ],
    )?;
    ensure!(printed.contains("[htb]"), "limit said: {printed}");
    let during = qdiscs(&client)?;
    ensure!(
        kinds(&during).contains(&"htb \"c7:\"".to_owned()),
        "an HTB is at the root of {DEVICE}: {:?}",
        kinds(&during)
    );
    let classes = iproute(&client, "tc", &["class", "show", "dev", DEVICE])?;
    ensure!(
        classes.contains("class htb c7:1 root"),
        "classes: {classes}"
    );

    let report = client.send(SECONDS, MAX_BYTES)?;
    steady(&mut server, &report)?.held_smoothly("htb upload", 2.0 * MIB, 0.05)?;
    let entry = listed(&lab, client.pid())?;
    ensure!(entry["backend"]["up"] == "htb", "status: {entry}");
    let (dropped, passed) = policed(&entry, "up")?;
    println!("  the policer behind HTB dropped {dropped} of {passed} packets");
    ensure!(
        dropped * 1000 <= passed,
        "the policer behind HTB dropped {dropped} of {passed} packets"
    );

    run(&lab, &["unlimit", "--pid", &pid(&client)])?;
    ensure!(
        qdiscs(&client)? == before,
        "unlimit puts the default root back: {:?}, was {:?}",
        kinds(&qdiscs(&client)?),
        kinds(&before)
    );
    Ok(())
}

fn a_foreign_root_qdisc_is_refused_and_with_force_put_back_exactly() -> anyhow::Result<()> {
    let lab = Lab::new("htb-foreign", None)?;
    let server = lab.server(Proto::Tcp, Family::V4, None)?;
    let client = lab.client(&server, Proto::Tcp, None, None)?;
    // someone's own root qdisc, with settings of its own
    iproute(
        &client,
        "tc",
        &[
            "qdisc", "replace", "dev", DEVICE, "root", "handle", "50:", "tbf", "rate", "3gbit",
            "burst", "123kb", "latency", "7ms",
        ],
    )?;
    let before = qdiscs(&client)?;
    let args = [
        "limit",
        "--pid",
        &pid(&client),
        "--up",
        "1M",
        "--upload-backend",
        "htb",
    ];
    let refused = common::chadthrottle(&lab, &args);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    ensure!(
        !refused.status.success()
            && stderr.contains(&format!(
                "interface {DEVICE} has a root qdisc ChadThrottle did not create (tbf 50:)"
            ))
            && stderr.contains("--force"),
        "refused with the reason: {stderr}"
    );
    ensure!(stderr.trim().lines().count() == 1, "one line: {stderr}");
    ensure!(qdiscs(&client)? == before, "nothing changed on refusal");
    ensure!(
        status_of(&lab, client.pid())?.is_none(),
        "no limit is left from the refused command"
    );

    let mut forced = args.to_vec();
    forced.push("--force");
    run(&lab, &forced)?;
    ensure!(
        kinds(&qdiscs(&client)?).contains(&"htb \"c7:\"".to_owned()),
        "--force replaced it: {:?}",
        kinds(&qdiscs(&client)?)
    );
    run(&lab, &["unlimit", "--pid", &pid(&client)])?;
    ensure!(
        qdiscs(&client)? == before,
        "unlimit puts the same qdisc back, settings and handle: {}, was {}",
        qdiscs(&client)?,
        before
    );
    Ok(())
}

fn ifb_holds_a_download_and_reset_leaves_nothing_behind() -> anyhow::Result<()> {
    let lab = Lab::new("ifb-down", None)?;
    let mut server = lab.server(Proto::Tcp, Family::V4, None)?;
    let mut client = lab.client(&server, Proto::Tcp, None, None)?;
    let before = qdiscs(&client)?;
    let client_pid = pid(&client);
    let limit = ifb_download(&client_pid, "2M");
    let printed = run(&lab, &limit)?;
    ensure!(printed.contains("[ifb]"), "limit said: {printed}");
    ensure!(
        ifb_devices(&client)?.len() == 1,
        "one IFB device: {:?}",
        ifb_devices(&client)?
    );
    ensure!(
        kinds(&qdiscs(&client)?).contains(&"ingress \"ffff:\"".to_owned()),
        "an ingress qdisc on {DEVICE}: {:?}",
        kinds(&qdiscs(&client)?)
    );

    let report = server.send(SECONDS, MAX_BYTES)?;
    steady(&mut client, &report)?.held_without_stalls("ifb download", 2.0 * MIB, 0.05)?;
    let entry = listed(&lab, client.pid())?;
    ensure!(entry["backend"]["down"] == "ifb", "status: {entry}");
    at_most_one_percent_retransmitted(&report)?;

    run(&lab, &["unlimit", "--pid", &pid(&client)])?;
    ensure!(ifb_devices(&client)?.is_empty(), "unlimit removes the IFB");
    ensure!(qdiscs(&client)? == before, "and the ingress qdisc");

    // reset takes both backends away
    run(&lab, &limit)?;
    let mut up = limit.to_vec();
    up[3] = "--up";
    up[5] = "--upload-backend";
    up[6] = "htb";
    run(&lab, &up)?;
    run(&lab, &["reset"])?;
    ensure!(ifb_devices(&client)?.is_empty(), "reset removes the IFB");
    ensure!(
        qdiscs(&client)? == before,
        "reset puts every qdisc back: {:?}",
        kinds(&qdiscs(&client)?)
    );
    Ok(())
}

/// Eight cubic downloads ifb holds at 100 KB/s, on the LAN.
const CONNECTIONS: usize = 8;
const RATE: f64 = 100.0 * KIB;

/// A lab with `CONNECTIONS` cubic connections from one client, whose downloads ifb holds
/// at `RATE`: the lab, the server and the client, the client's PID and its IFB device.
fn slow_ifb_downloads(name: &str) -> anyhow::Result<(Lab, Endpoint, Endpoint, String, String)> {
    let lab = Lab::new(name, None)?;
    let server = lab.server(Proto::Tcp, Family::V4, Some("cubic"))?;
    let mut client = lab.client(&server, Proto::Tcp, Some("cubic"), None)?;
    for _ in 1..CONNECTIONS {
        client.open()?;
    }
    slow_ifb_limit(lab, server, client)
}

/// Limits `client`'s downloads to `RATE` with ifb (see `slow_ifb_downloads`).
fn slow_ifb_limit(
    lab: Lab,
    server: Endpoint,
    client: Endpoint,
) -> anyhow::Result<(Lab, Endpoint, Endpoint, String, String)> {
    let client_pid = pid(&client);
    let printed = run(&lab, &ifb_download(&client_pid, "100K"))?;
    ensure!(printed.contains("[ifb]"), "limit said: {printed}");
    let mut devices = ifb_devices(&client)?;
    ensure!(devices.len() == 1, "one IFB device: {devices:?}");
    let device = devices.remove(0);
    Ok((lab, server, client, client_pid, device))
}

/// Eight cubic downloads held by ifb at 100 KB/s on the LAN. Their receive windows
/// start at 64 KiB each, so 512 KiB is queued in the IFB class's leaf within seconds of
/// the start, whatever the rate. With the leaf's queue at 3 s of the rate (300 KB) the
/// leaf dropped segments in every run, and with seconds of queue in front of each
/// retransmission the rate fell (−5.6 to −16.7 %; bbr −50 %, BENCHMARKS.md); with the
/// 1 MiB floor it held 427 KB at most in 8 s and dropped nothing. Asserted: the leaf
/// drops nothing, and the rate is held without stalls.
fn ifb_queues_eight_downloads_windows_at_100_kbs_without_a_drop() -> anyhow::Result<()> {
    let (lab, mut server, mut client, client_pid, device) = slow_ifb_downloads("ifb-8-slow")?;
    server.start_send_all(SECONDS, MAX_BYTES, CONNECTIONS)?;
    let report = server.finish_send()?;
    let leaf = ifb_leaf(&client, &device)?;
    let (drops, sent) = (leaf["drops"].as_u64(), leaf["bytes"].as_u64());
    println!("  the leaf sent {sent:?} B and dropped {drops:?} packets");
    ensure!(
        sent.is_some_and(|bytes| bytes > 0),
        "the downloads went through the leaf: {leaf}"
    );
    ensure!(
        drops == Some(0),
        "the leaf's queue holds eight connections' windows: {leaf}"
    );
    steady(&mut client, &report)?.held_without_stalls("eight ifb downloads", RATE, 0.05)?;
    run(&lab, &["unlimit", "--pid", &client_pid])?;
    ensure!(ifb_devices(&client)?.is_empty(), "unlimit removes the IFB");
    Ok(())
}

/// The IFB class's tbf leaf on `device`, with its counters (`tc -s -j`).
fn ifb_leaf(inside: &Endpoint, device: &str) -> anyhow::Result<Value> {
    let stats: Value = serde_json::from_str(&iproute(
        inside,
        "tc",
        &["-s", "-j", "qdisc", "show", "dev", device],
    )?)?;
    stats
        .as_array()
        .into_iter()
        .flatten()
        .find(|q| q["kind"] == "tbf")
        .cloned()
        .with_context(|| format!("a tbf leaf on {device}: {stats}"))
}

/// Eight cubic downloads held by ifb at 100 KB/s on the LAN for 20 s, the IFB leaf's
/// backlog read every 250 ms. Receive autotuning follows the round trip, which the queue
/// lengthens, so with nothing bounding the windows the queue grew by ~37 KB a second,
/// past 480 KB at 10 s and to the leaf's 1 MiB limit in ~25 s (BENCHMARKS.md, "The IFB
/// queue bounded by the windows"). The windows are now clamped to each socket's share x
/// (least RTT + 150 ms) + 4 segments: ~62 KB in all, 0.6 s at this rate. Asserted: after
/// the first 10 s (the initial windows drained) the backlog stays under 200 KB (2 s), the
/// leaf drops nothing, and the rate holds without stalls; the sockets' clamps add up to at
/// most 100 KB while the limit holds, and are their own again after `unlimit` (or above:
/// autotuning resumes). Host only
/// (not in kernels.toml's `every`): before 6.12 the iterator cannot ask for the callbacks
/// of sockets open before `limit`, as these are, so they keep their own windows there.
fn ifb_bounds_the_queue_of_eight_downloads_at_100_kbs() -> anyhow::Result<()> {
    const TRANSFER: f64 = 20.0;
    const SETTLED: f64 = 10.0;
    const BOUND: u64 = 200_000;
    let lab = Lab::new("ifb-8-queue", None)?;
    let server = lab.server(Proto::Tcp, Family::V4, Some("cubic"))?;
    let mut client = lab.client(&server, Proto::Tcp, Some("cubic"), None)?;
    for _ in 1..CONNECTIONS {
        client.open()?;
    }
    let own = clamps(client.pid())?;
    let (lab, mut server, mut client, client_pid, device) = slow_ifb_limit(lab, server, client)?;
    server.start_send_all(TRANSFER, MAX_BYTES, CONNECTIONS)?;
    let start = std::time::Instant::now();
    let (mut settled_max, mut early_max) = (0_u64, 0_u64);
    while start.elapsed().as_secs_f64() < TRANSFER - 0.5 {
        std::thread::sleep(std::time::Duration::from_millis(250));
        let backlog = ifb_leaf(&client, &device)?["backlog"].as_u64().unwrap_or(0);
        if start.elapsed().as_secs_f64() >= SETTLED {
            settled_max = settled_max.max(backlog);
        } else {
            early_max = early_max.max(backlog);
        }
    }
    let report = server.finish_send()?;
    // each a share of 12.8 KB/s x (under 1 ms + 150 ms) + 4 segments, about 7.7 KB
    let during = clamps(client.pid())?;
    ensure!(
        during.len() == CONNECTIONS && during.iter().sum::<u32>() <= 100_000,
        "the windows are clamped to a second of the rate in all: {during:?} (own {own:?})"
    );
    let leaf = ifb_leaf(&client, &device)?;
    println!(
        "  the leaf's backlog: at most {early_max} B in the first {SETTLED} s, {settled_max} B \
         after; {} packets dropped",
        leaf["drops"]
    );
    ensure!(
        settled_max <= BOUND,
        "the windows bound the queue: {settled_max} B queued after {SETTLED} s, over {BOUND} B"
    );
    ensure!(
        leaf["drops"].as_u64() == Some(0),
        "the leaf dropped: {leaf}"
    );
    steady(&mut client, &report)?.held_without_stalls("eight ifb downloads", RATE, 0.05)?;
    run(&lab, &["unlimit", "--pid", &client_pid])?;
    ensure!(ifb_devices(&client)?.is_empty(), "unlimit removes the IFB");
    let after = clamps(client.pid())?;
    println!("  window clamps: {during:?} limited, {after:?} after unlimit");
    // what is still queued at the sender arrives after `unlimit`, and receive autotuning
    // raises a clamp from there (two of eight sockets grew to 0.6 and 2.2 MB in one run):
    // none is below its own any more
    ensure!(
        after.len() == own.len() && after.iter().zip(&own).all(|(now, was)| now >= was),
        "unlimit gives the sockets their own window clamps back: {after:?}, was {own:?}"
    );
    Ok(())
}

/// The receive window clamps of `pid`'s TCP sockets, sorted.
fn clamps(pid: u32) -> anyhow::Result<Vec<u32>> {
    let mut clamps: Vec<u32> = socket_settings(pid)?
        .iter()
        .map(|settings| settings.window_clamp)
        .collect();
    clamps.sort_unstable();
    Ok(clamps)
}

/// A shared rule's download held by ifb: two processes of one executable, at the lab's
/// round trip (RTT 0), share one HTB class on one IFB device and are held together within
/// the process test's bounds; unlimit and reset take the class, filter and device away.
/// Left to the default, the rule gets ifb as a process would (the members' ingress is
/// free).
fn ifb_holds_a_shared_rules_download_and_reset_leaves_nothing_behind() -> anyhow::Result<()> {
    let lab = Lab::new("ifb-rule", None)?;
    let programs = Programs::new("ifb-rule")?;
    let app = programs.install("ct-ifb-rule")?;
    let app_text = app.to_string_lossy().into_owned();
    let mut server = lab.server(Proto::Tcp, Family::V4, None)?;
    let mut clients = [
        lab.client_program(&server, Proto::Tcp, &app)?,
        lab.client_program(&server, Proto::Tcp, &app)?,
    ];
    let before = qdiscs(&clients[0])?;
    let limit = [
        "limit",
        "--exe",
        &app_text,
        "--down",
        "2M",
        "--download-backend",
        "ifb",
    ];
    let printed = run(&lab, &limit)?;
    ensure!(
        printed.contains("[ifb]") && printed.contains("2 processes now"),
        "limit said: {printed}"
    );
    let devices = ifb_devices(&clients[0])?;
    ensure!(devices.len() == 1, "one IFB device: {devices:?}");
    let classes = iproute(&clients[0], "tc", &["class", "show", "dev", &devices[0]])?;
    ensure!(
        classes
            .lines()
            .filter(|line| line.starts_with("class htb"))
            .count()
            == 1,
        "one class for the rule: {classes:?}"
    );
    let rules: Value = serde_json::from_str(&run(&lab, &["rules", "--json"])?)?;
    ensure!(
        rules["rules"][0]["backend"]["down"] == "ifb",
        "rules --json says ifb: {rules}"
    );
    let table = run(&lab, &["rules"])?;
    ensure!(
        table
            .lines()
            .nth(1)
            .is_some_and(|line| line.contains("  ifb  ")),
        "the rules table says ifb: {table}"
    );

    server.start_send_all(SECONDS, MAX_BYTES, clients.len())?;
    let report = server.finish_send()?;
    std::thread::sleep(std::time::Duration::from_millis(200));
    let (start, end) = (report.start_ns + WARMUP_NS, report.end_ns);
    let mut sum: Vec<u64> = Vec::new();
    for client in &mut clients {
        let bins = client.bins()?.between(start, end);
        sum.resize(sum.len().max(bins.len()), 0);
        for (total, bytes) in sum.iter_mut().zip(bins) {
            *total += bytes;
        }
    }
    summarize(&sum).held_without_stalls("a shared rule's ifb download", 2.0 * MIB, 0.05)?;
    at_most_one_percent_retransmitted(&report)?;

    run(&lab, &["unlimit", "--exe", &app_text])?;
    ensure!(
        ifb_devices(&clients[0])?.is_empty(),
        "unlimit removes the IFB"
    );
    ensure!(qdiscs(&clients[0])? == before, "and the ingress qdisc");

    // left to the default, the rule gets ifb too (its members' ingress is free), and
    // reset takes the rule's class, filter and device away
    let printed = run(&lab, &limit[..5])?;
    ensure!(
        printed.contains("[ifb (default)]")
            && printed.contains(&format!(
                "download backend ifb: default: the ingress of {DEVICE} is free"
            )),
        "limit said: {printed}"
    );
    ensure!(ifb_devices(&clients[0])?.len() == 1, "the rule's IFB again");
    run(&lab, &["reset"])?;
    ensure!(
        ifb_devices(&clients[0])?.is_empty(),
        "reset removes the IFB"
    );
    ensure!(
        qdiscs(&clients[0])? == before,
        "reset puts every qdisc back: {:?}",
        kinds(&qdiscs(&clients[0])?)
    );
    Ok(())
}

/// `limit` of the process `pid` to `rate` down, held by ifb.
fn ifb_download<'a>(pid: &'a str, rate: &'a str) -> [&'a str; 7] {
    [
        "limit",
        "--pid",
        pid,
        "--down",
        rate,
        "--download-backend",
        "ifb",
    ]
}

/// Every qdisc of `device` in the namespace of `inside`, as kinds and handles.
fn kinds_on(inside: &Endpoint, device: &str) -> anyhow::Result<Vec<String>> {
    let listed: Value = serde_json::from_str(&iproute(
        inside,
        "tc",
        &["-j", "qdisc", "show", "dev", device],
    )?)?;
    Ok(kinds(&listed))
}

/// An interface that comes up after a process's limit (a VPN, a second link) carries its
/// downloads with only the policer behind them until `Backend::follow` — the daemon's,
/// once a sample — puts ifb there too; a second follow changes nothing, and unlimit takes
/// both away.
fn follow_puts_ifb_on_an_interface_that_came_up_after_the_limit() -> anyhow::Result<()> {
    const VPN: &str = "ct-vpn0";
    let lab = Lab::new("ifb-follow", None)?;
    let server = lab.server(Proto::Tcp, Family::V4, None)?;
    let client = lab.client(&server, Proto::Tcp, None, None)?;
    run(&lab, &ifb_download(&pid(&client), "2M"))?;
    ensure!(ifb_devices(&client)?.len() == 1, "one IFB device");
    // a link with the default route, in the lab's client namespace (gone with it)
    iproute(
        &client,
        "ip",
        &[
            "link", "add", VPN, "type", "veth", "peer", "name", "ct-vpn1",
        ],
    )?;
    iproute(&client, "ip", &["link", "set", VPN, "up"])?;
    iproute(&client, "ip", &["link", "set", "ct-vpn1", "up"])?;
    iproute(&client, "ip", &["route", "add", "default", "dev", VPN])?;
    let ingress = "ingress \"ffff:\"".to_owned();
    ensure!(
        !kinds_on(&client, VPN)?.contains(&ingress),
        "nothing on {VPN} before a follow: {:?}",
        kinds_on(&client, VPN)?
    );
    let mut datapath =
        Datapath::open(lab.pin_dir())?.ok_or_else(|| anyhow::anyhow!("no datapath installed"))?;
    let started = std::time::Instant::now();
    datapath.follow()?;
    println!(
        "  a follow that installs ifb on {VPN}: {:?}",
        started.elapsed()
    );
    ensure!(
        kinds_on(&client, VPN)?.contains(&ingress),
        "an ingress qdisc on {VPN} after a follow: {:?}",
        kinds_on(&client, VPN)?
    );
    let devices = ifb_devices(&client)?;
    ensure!(
        devices.len() == 2,
        "an IFB device for each link: {devices:?}"
    );
    let started = std::time::Instant::now();
    datapath.follow()?;
    println!("  a follow that finds nothing new: {:?}", started.elapsed());
    ensure!(
        ifb_devices(&client)? == devices,
        "a second follow changes nothing: {:?}",
        ifb_devices(&client)?
    );
    run(&lab, &["unlimit", "--pid", &pid(&client)])?;
    ensure!(
        ifb_devices(&client)?.is_empty(),
        "unlimit removes both IFBs"
    );
    ensure!(
        !kinds_on(&client, VPN)?.contains(&ingress),
        "and {VPN}'s ingress qdisc: {:?}",
        kinds_on(&client, VPN)?
    );
    Ok(())
}

/// No backend named: a LAN download gets ifb (its ingress is free) and is held without
/// stalls or retransmissions; with someone's clsact on the interface it keeps shaping,
/// says why, and leaves that qdisc as it was.
fn the_default_download_is_ifb_where_free_and_shaping_beside_a_busy_ingress() -> anyhow::Result<()>
{
    let lab = Lab::new("auto-ifb", None)?;
    let mut server = lab.server(Proto::Tcp, Family::V4, None)?;
    let mut client = lab.client(&server, Proto::Tcp, None, None)?;
    let before = qdiscs(&client)?;
    let limit = ["limit", "--pid", &pid(&client), "--down", "4M"];
    let printed = run(&lab, &limit)?;
    ensure!(
        printed.contains("[ifb (default)]")
            && printed.contains(&format!(
                "download backend ifb: default: the ingress of {DEVICE} is free"
            )),
        "limit said: {printed}"
    );
    ensure!(ifb_devices(&client)?.len() == 1, "one IFB device");
    let report = server.send(SECONDS, MAX_BYTES)?;
    let summary = steady(&mut client, &report)?;
    // the noise-proof bounds: the rate, no stall (no empty 100 ms bin) and under
    // 1 % retransmitted; cv is printed, not bounded (22 % in one run of two, on a machine
    // at load 5-12, where the other run had 2.8 %)
    within("default LAN download", &summary, 4.0 * MIB, 0.05)?;
    println!(
        "  cv {:.1} %, {:.1} % empty bins",
        summary.cv * 100.0,
        summary.empty_share * 100.0
    );
    ensure!(
        chadthrottle_lab::stats::emulated() || summary.empty_share == 0.0,
        "{:.1} % of the steady 100 ms bins empty",
        summary.empty_share * 100.0
    );
    let segments = report.bytes / 1448 + 1;
    println!(
        "  {} of {segments} segments retransmitted",
        report.retransmits
    );
    ensure!(
        report.retransmits * 100 < segments,
        "{} of {segments} segments retransmitted",
        report.retransmits
    );
    let entry = listed(&lab, client.pid())?;
    ensure!(
        entry["backend"]["down"] == "ifb" && entry["download_by_default"] == true,
        "status says ifb, chosen by default: {entry}"
    );
    run(&lab, &["unlimit", "--pid", &pid(&client)])?;
    ensure!(qdiscs(&client)? == before, "unlimit puts the ingress back");
    ensure!(ifb_devices(&client)?.is_empty(), "unlimit removes the IFB");

    // someone else's clsact on the interface: the default keeps shaping and says why
    iproute(&client, "tc", &["qdisc", "add", "dev", DEVICE, "clsact"])?;
    let busy = qdiscs(&client)?;
    let printed = run(&lab, &limit)?;
    ensure!(
        printed.contains("[shaping (default)]")
            && printed.contains(&format!(
                "download backend shaping: default: {DEVICE} has an ingress qdisc ChadThrottle \
                 did not add (clsact)"
            )),
        "limit said: {printed}"
    );
    ensure!(
        ifb_devices(&client)?.is_empty() && qdiscs(&client)? == busy,
        "nothing added beside the clsact: {:?}",
        kinds(&qdiscs(&client)?)
    );
    ensure!(
        listed(&lab, client.pid())?["backend"]["down"] == "shaping",
        "status says shaping"
    );
    run(&lab, &["reset"])?;
    ensure!(qdiscs(&client)? == busy, "reset leaves the clsact alone");
    iproute(&client, "tc", &["qdisc", "del", "dev", DEVICE, "clsact"])?;
    Ok(())
}

const TESTS: &[(&str, Test)] = &[
    (
        "htb_holds_an_upload_and_puts_the_default_root_back",
        htb_holds_an_upload_and_puts_the_default_root_back,
    ),
    (
        "a_foreign_root_qdisc_is_refused_and_with_force_put_back_exactly",
        a_foreign_root_qdisc_is_refused_and_with_force_put_back_exactly,
    ),
    (
        "ifb_holds_a_download_and_reset_leaves_nothing_behind",
        ifb_holds_a_download_and_reset_leaves_nothing_behind,
    ),
    (
        "ifb_queues_eight_downloads_windows_at_100_kbs_without_a_drop",
        ifb_queues_eight_downloads_windows_at_100_kbs_without_a_drop,
    ),
    (
        "ifb_bounds_the_queue_of_eight_downloads_at_100_kbs",
        ifb_bounds_the_queue_of_eight_downloads_at_100_kbs,
    ),
    (
        "ifb_holds_a_shared_rules_download_and_reset_leaves_nothing_behind",
        ifb_holds_a_shared_rules_download_and_reset_leaves_nothing_behind,
    ),
    (
        "the_default_download_is_ifb_where_free_and_shaping_beside_a_busy_ingress",
        the_default_download_is_ifb_where_free_and_shaping_beside_a_busy_ingress,
    ),
    (
        "follow_puts_ifb_on_an_interface_that_came_up_after_the_limit",
        follow_puts_ifb_on_an_interface_that_came_up_after_the_limit,
    ),
];

fn main() {
    common::main(TESTS);
}
