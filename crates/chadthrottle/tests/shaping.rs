//! Kernel tests of the shaping backend (the default): limits held by TCP itself, without
//! drops, on connections that were open before the limit, and each socket's own settings
//! given back when the limit goes.
//!
//! Same harness as datapath.rs: a private lab per test, the real binary confined to it,
//! ignored with the reason printed without root. The socket settings are read the way an
//! application would see them: the test takes a copy of the process's socket
//! (pidfd_getfd) and asks getsockopt. Tolerances are for a noisy 2-core machine; the exact
//! figures are in BENCHMARKS.md (`ct-bench --compare`).

pub mod common;

use anyhow::ensure;
use chadthrottle_lab::{Endpoint, Family, Lab, Proto};
use common::sockets::{SocketSettings, check, each_tcp_socket, socket_settings};
use common::{MAX_BYTES, MIB, Test, listed, pid, policed, run, steady};
use std::os::fd::RawFd;
use std::time::Duration;

const SECONDS: f64 = 8.0;
/// What `getsockopt(SO_MAX_PACING_RATE)` says of a socket without a cap.
const NO_PACING_CAP: u64 = u64::MAX;

/// `TCP_INFO` of a socket.
fn tcp_info(raw: RawFd) -> anyhow::Result<libc::tcp_info> {
    // SAFETY: tcp_info is plain data; zero is a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: info is a live tcp_info and len its size.
    let result = unsafe {
        libc::getsockopt(
            raw,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&raw mut info).cast(),
            &mut len,
        )
    };
    check(result.into(), "getsockopt TCP_INFO")?;
    Ok(info)
}

/// The smoothed and the receiver's round trip (µs) of each TCP socket of `pid`, as
/// `TCP_INFO` gives them: what a download's window is sized for.
fn round_trips(pid: u32) -> anyhow::Result<Vec<(u32, u32)>> {
    let mut trips = Vec::new();
    each_tcp_socket(pid, |raw| {
        let info = tcp_info(raw)?;
        trips.push((info.tcpi_rtt, info.tcpi_rcv_rtt));
        Ok(())
    })?;
    Ok(trips)
}

fn the_socket(pid: u32) -> anyhow::Result<SocketSettings> {
    let settings = socket_settings(pid)?;
    ensure!(settings.len() == 1, "one TCP socket expected: {settings:?}");
    Ok(settings[0])
}

/// `limit --pid CLIENT --up RATE` by the shaping backend, named: where shaping is
/// unavailable (5.10) the default is another backend, and the failure is to say why (the
/// default's own test is in datapath.rs). What `limit` printed.
fn limit_up_by_shaping(lab: &Lab, client: &Endpoint, rate: &str) -> anyhow::Result<String> {
    run(
        lab,
        &[
            "limit",
            "--pid",
            &pid(client),
            "--up",
            rate,
            "--upload-backend",
            "shaping",
        ],
    )
}

fn an_open_upload_is_paced_without_drops_and_gets_its_own_pacing_back() -> anyhow::Result<()> {
    let lab = Lab::new("shaped-up", None)?;
    let mut server = lab.server(Proto::Tcp, Family::V4, None)?;
    let client = lab.client(&server, Proto::Tcp, None, None)?;
    let before = the_socket(client.pid())?;
    ensure!(
        before.max_pacing_rate == NO_PACING_CAP,
        "an untouched socket has no pacing cap: {before:?}"
    );
    let printed = limit_up_by_shaping(&lab, &client, "2M")?;
    ensure!(
        printed.contains("[shaping]") && printed.contains("1 TCP socket shaped"),
        "limit said: {printed}"
    );
    let during = the_socket(client.pid())?;
    ensure!(
        during.max_pacing_rate > 0 && during.max_pacing_rate <= 2 << 20,
        "the open socket is paced at its share of 2 MiB/s: {during:?}"
    );
    let mut client = client;
    let report = client.send(SECONDS, MAX_BYTES)?;
    steady(&mut server, &report)?.held_smoothly("shaped upload", 2.0 * MIB, 0.05)?;
    let entry = listed(&lab, client.pid())?;
    ensure!(entry["backend"]["up"] == "shaping", "status: {entry}");
    let (dropped, passed) = policed(&entry, "up")?;
    ensure!(
        dropped * 1000 <= passed,
        "the policer behind the shaper dropped {dropped} of {passed} packets"
    );

    run(&lab, &["unlimit", "--pid", &pid(&client)])?;
    ensure!(
        the_socket(client.pid())? == before,
        "unlimit gives the socket its own settings back"
    );
    // and so does reset, for a socket that is still shaped when the datapath goes
    run(&lab, &["limit", "--pid", &pid(&client), "--up", "1M"])?;
    ensure!(the_socket(client.pid())?.max_pacing_rate <= 1 << 20);
    run(&lab, &["reset"])?;
    ensure!(
        the_socket(client.pid())? == before,
        "reset gives the socket its own settings back"
    );
    Ok(())
}

/// The congestion window (segments) of each TCP socket of `pid`, as `TCP_INFO` gives it.
fn congestion_windows(pid: u32) -> anyhow::Result<Vec<u32>> {
    let mut windows = Vec::new();
    each_tcp_socket(pid, |raw| {
        windows.push(tcp_info(raw)?.tcpi_snd_cwnd);
        Ok(())
    })?;
    Ok(windows)
}

/// Eight bbr connections at 1 MiB/s over the veth pair (a round trip of tens of µs): each
/// socket's share is 128 KiB/s, and at such round trips the kernel builds 64 KB TSO packets
/// whatever the pacing rate, so each socket sent one packet every half second and, in
/// runs of 8–20 s, 7–18 % of the 100 ms bins were empty (cv 50–70 %; one 8 s run of this
/// test without the clamp: cv 23.4 %, no bin empty — the bursts fall in step only at
/// times). The shaper clamps such a socket's congestion window to 4 ms of its cap, at
/// least four segments (share.h, `ct_share_burst_segs`): with a cap of at most 1 MiB/s,
/// four. That bound is what is asserted, during the transfer (bbr's own window was 118–140
/// segments), and given back by `unlimit`; the flow itself must hold without stalls. The
/// connections are open before the limit, as in `ct-bench --compare`; host only
/// (kernels.toml): before 6.12 an open socket gets no callbacks, so no clamp either.
fn eight_bbr_uploads_on_a_lan_are_sent_in_small_bursts() -> anyhow::Result<()> {
    const CONNECTIONS: usize = 8;
    const CLAMP: u32 = 4;
    let lab = Lab::new("shaped-bursts", None)?;
    let mut server = lab.server(Proto::Tcp, Family::V4, Some("bbr"))?;
    let mut client = lab.client(&server, Proto::Tcp, Some("bbr"), None)?;
    for _ in 1..CONNECTIONS {
        client.open()?;
    }
    limit_up_by_shaping(&lab, &client, "1M")?;
    client.start_send_all(SECONDS, MAX_BYTES, CONNECTIONS)?;
    std::thread::sleep(Duration::from_secs_f64(SECONDS / 2.0));
    let during = congestion_windows(client.pid())?;
    let report = client.finish_send()?;
    println!("  congestion windows during the transfer: {during:?}");
    ensure!(
        during.len() == CONNECTIONS && during.iter().all(|&cwnd| cwnd <= CLAMP),
        "every connection's window within {CLAMP} segments: {during:?}"
    );
    steady(&mut server, &report)?.held_without_stalls("eight bbr uploads", MIB, 0.05)?;
    let segments = (report.bytes / 1448).max(1);
    ensure!(
        report.retransmits * 100 <= segments,
        "{} of about {segments} segments retransmitted",
        report.retransmits
    );
    let entry = listed(&lab, client.pid())?;
    let (dropped, passed) = policed(&entry, "up")?;
    ensure!(
        dropped * 1000 <= passed,
        "the policer behind the shaper dropped {dropped} of {passed} packets"
    );

    run(&lab, &["unlimit", "--pid", &pid(&client)])?;
    client.start_send_all(1.0, MAX_BYTES, CONNECTIONS)?;
    std::thread::sleep(Duration::from_millis(500));
    let after = congestion_windows(client.pid())?;
    client.finish_send()?;
    println!("  congestion windows after unlimit: {after:?}");
    ensure!(
        after.iter().any(|&cwnd| cwnd > CLAMP),
        "unlimit gives the windows their own clamp back: {after:?}"
    );
    Ok(())
}

fn a_download_at_20ms_is_held_by_the_window_and_the_clamp_is_given_back() -> anyhow::Result<()> {
    let lab = Lab::new("shaped-down", Some(Duration::from_millis(20)))?;
    let delay = lab.delay_kind();
    println!("  the 20 ms round trip: {delay:?}");
    ensure!(delay.is_some(), "the lab has no delayed link");
    let server = lab.server(Proto::Tcp, Family::V4, None)?;
    let mut client = lab.client(&server, Proto::Tcp, None, None)?;
    let before = the_socket(client.pid())?;
    // named: with none, a download whose interface's ingress is free gets ifb
    let limit = [
        "limit",
        "--pid",
        &pid(&client),
        "--down",
        "1M",
        "--download-backend",
        "shaping",
    ];
    run(&lab, &limit)?;
    let during = the_socket(client.pid())?;
    // 1 MiB/s x 20 ms is about 21 KB. The first clamp is sized from the handshake's RTT
    // sample, which an emulated guest's scheduling stretches (74 KB, about 70 ms, in a 6.12
    // guest): three times the bound there; the rate checked below is what must hold.
    let most = if chadthrottle_lab::stats::emulated() {
        180_000
    } else {
        60_000
    };
    ensure!(
        (10_000..=most).contains(&during.window_clamp),
        "the window is clamped to rate x RTT: {during:?} (was {before:?})"
    );
    let mut server = server;
    server.start_send(SECONDS, MAX_BYTES)?;
    // the clamp each second: when the rate is off, whether the window was being corrected
    // (it dithers by a few hundred bytes around rate x RTT) or stayed where it started
    let mut clamps = Vec::new();
    let mut trips = Vec::new();
    for _second in 1..SECONDS as u32 {
        std::thread::sleep(Duration::from_secs(1));
        clamps.push(the_socket(client.pid())?.window_clamp);
        trips.extend(round_trips(client.pid())?);
    }
    let report = server.finish_send()?;
    println!("  window clamp each second: {clamps:?}");
    // under 1 ms by either, the window is given back and the policer holds the rate
    println!("  (smoothed, receiver's) round trip each second, µs: {trips:?}");
    // the shaper keeps the window within twice rate x RTT; the socket's own autotuning
    // raises a clamp nobody corrects (on 6.1 the iterator cannot ask an open socket for
    // the callbacks that correct it), and then the policer behind it holds the rate
    ensure!(
        clamps.iter().all(|&clamp| clamp <= most),
        "the window clamp was raised during the transfer: {clamps:?}"
    );
    // The window is corrected each 100 ms toward the rate, so it dithers across the
    // window-scale step (1 KiB here) and the average lands on the limit: 20 runs, 10 of
    // them with a core busy, were within -0.1…+0.3 % (cv 2.3…3.7 %). When the window was
    // sized from the receiver's smoothed RTT — the handshake's one sample, which the
    // delay line's neighbour resolution made 40…56 ms — it sat on its lower bound at
    // +1.2…1.5 %, and at +5.6…6.4 % in 3 of 10 runs with a core busy (the last held by
    // the policer, with drops): 1 % catches that. No policer drops and no
    // retransmissions show that the window holds the rate, not the policer behind it.
    steady(&mut client, &report)?.held_smoothly("shaped download", MIB, 0.01)?;
    let entry = listed(&lab, client.pid())?;
    ensure!(entry["backend"]["down"] == "shaping", "status: {entry}");
    let (dropped, passed) = policed(&entry, "down")?;
    println!(
        "  policer drops {dropped} of {passed} packets, {} segments retransmitted",
        report.retransmits
    );
    ensure!(
        dropped * 1000 <= passed,
        "the policer behind the shaper dropped {dropped} of {passed} packets"
    );
    ensure!(
        report.retransmits * 1000 <= report.bytes / 1448 + 1,
        "{} segments retransmitted",
        report.retransmits
    );
    // the sender's socket still holds the tail of the transfer: once the clamp is given
    // back, that tail would let autotuning raise it again (the socket's own behaviour)
    client.wait_received(&report, Duration::from_secs(10))?;
    run(&lab, &["unlimit", "--pid", &pid(&client), "--down"])?;
    let after = the_socket(client.pid())?;
    ensure!(
        after.window_clamp == before.window_clamp,
        "unlimit gives the socket its own clamp back: {after:?}, was {before:?}"
    );
    Ok(())
}

fn the_policer_backend_leaves_sockets_alone() -> anyhow::Result<()> {
    let lab = Lab::new("policer-only", None)?;
    let server = lab.server(Proto::Tcp, Family::V4, None)?;
    let client = lab.client(&server, Proto::Tcp, None, None)?;
    let before = the_socket(client.pid())?;
    let printed = run(
        &lab,
        &[
            "limit",
            "--pid",
            &pid(&client),
            "--up",
            "1M",
            "--down",
            "1M",
            "--upload-backend",
            "policer",
            "--download-backend",
            "policer",
        ],
    )?;
    ensure!(printed.contains("[policer]"), "limit said: {printed}");
    ensure!(
        the_socket(client.pid())? == before,
        "no socket setting changes"
    );
    let entry = listed(&lab, client.pid())?;
    ensure!(
        entry["backend"]["up"] == "policer" && entry["backend"]["down"] == "policer",
        "status: {entry}"
    );
    let refused = common::chadthrottle(
        &lab,
        &[
            "limit",
            "--pid",
            &pid(&client),
            "--up",
            "1M",
            "--upload-backend",
            "tc",
        ],
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    ensure!(
        !refused.status.success()
            && stderr
                .contains("unknown backend \"tc\"; known backends: shaping, policer, htb, ifb"),
        "an unknown backend is refused by name: {stderr}"
    );
    Ok(())
}

const TESTS: &[(&str, Test)] = &[
    (
        "an_open_upload_is_paced_without_drops_and_gets_its_own_pacing_back",
        an_open_upload_is_paced_without_drops_and_gets_its_own_pacing_back,
    ),
    (
        "a_download_at_20ms_is_held_by_the_window_and_the_clamp_is_given_back",
        a_download_at_20ms_is_held_by_the_window_and_the_clamp_is_given_back,
    ),
    (
        "eight_bbr_uploads_on_a_lan_are_sent_in_small_bursts",
        eight_bbr_uploads_on_a_lan_are_sent_in_small_bursts,
    ),
    (
        "the_policer_backend_leaves_sockets_alone",
        the_policer_backend_leaves_sockets_alone,
    ),
];

fn main() {
    common::main(TESTS);
}
