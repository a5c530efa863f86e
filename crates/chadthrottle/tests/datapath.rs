//! Kernel tests of the datapath and the command line, in the network lab.
//!
//! Each test builds its own lab (two network namespaces, veth, a private cgroup2
//! directory and a private pin directory, removed even when the test fails), runs the
//! real `chadthrottle` binary confined to it, and measures with the lab's traffic
//! generator. They need root and run in CI; without root each is reported as ignored,
//! with the reason printed first. Tolerances are wide enough for a noisy 2-core machine;
//! the exact figures are in the benchmark (BENCHMARKS.md).

pub mod common;

use anyhow::{Context as _, bail, ensure};
use chadthrottle_lab::stats::summarize;
use chadthrottle_lab::{Endpoint, Family, Lab, Proto};
use common::{
    KIB, MAX_BYTES, MIB, Test, chadthrottle, chadthrottle_with, pid, run, status, status_of,
    steady, within,
};
use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::Duration;

/// A policed TCP flow moves in bursts: any window can gain or lose up to one burst
/// (400 ms of the rate) at its edges. Transfers of 10 s leave an 8 s steady window, where
/// that is at most ±5 %, inside the ±10 % tolerance with room for the real error.
const POLICED_SECONDS: f64 = 10.0;

/// The policer alone (the shaping backend, the default, has its own tests in shaping.rs).
fn open_and_new_connections_are_limited_both_ways() -> anyhow::Result<()> {
    let lab = Lab::new("open-and-new", None)?;
    let mut server = lab.server(Proto::Tcp, Family::V4, None)?;
    let mut client = lab.client(&server, Proto::Tcp, None, None)?;
    // the connection is open before the datapath even exists
    let printed = run(
        &lab,
        &[
            "limit",
            "--pid",
            &pid(&client),
            "--up",
            "1M",
            "--down",
            "512K",
            "--upload-backend",
            "policer",
            "--download-backend",
            "policer",
        ],
    )?;
    ensure!(
        printed.contains("1 open socket attributed"),
        "limit said: {printed}"
    );

    let up = client.send(POLICED_SECONDS, MAX_BYTES)?;
    within(
        "upload on the open connection",
        &steady(&mut server, &up)?,
        MIB,
        0.10,
    )?;
    let down = server.send(POLICED_SECONDS, MAX_BYTES)?;
    within(
        "download on the open connection",
        &steady(&mut client, &down)?,
        512.0 * KIB,
        0.10,
    )?;

    client.open()?;
    let up = client.send(POLICED_SECONDS, MAX_BYTES)?;
    within(
        "upload on a new connection",
        &steady(&mut server, &up)?,
        MIB,
        0.10,
    )?;

    let entry = status_of(&lab, client.pid())?.context("the limit is listed")?;
    ensure!(
        entry["up"] == 1 << 20 && entry["down"] == 512 << 10,
        "status: {entry}"
    );
    ensure!(entry["backend"]["up"] == "policer", "status: {entry}");
    let (up_stats, down_stats) = (&entry["stats"]["up"], &entry["stats"]["down"]);
    ensure!(
        up_stats["bytes"].as_u64() > Some(10 << 20),
        "up stats: {up_stats}"
    );
    ensure!(
        up_stats["dropped_packets"].as_u64() > Some(0),
        "up stats: {up_stats}"
    );
    ensure!(
        down_stats["bytes"].as_u64() > Some(2 << 20),
        "down stats: {down_stats}"
    );
    Ok(())
}

/// What a user gets without naming a backend, on whatever kernel this is: `limit` takes
/// for each direction the available backend of highest priority that `backends` lists
/// (shaping here on 6.x; on 5.10, where the TCP iterator lacks socket storage and
/// `bpf_setsockopt`, htb up and ifb down), and that holds 2 MiB/s each way on a
/// connection that was open before the limit. The process holds a second, idle connection
/// opened before it, as iperf3 holds its control connection: before Linux 6.12 the TCP
/// iterator cannot ask for an open socket's callbacks, and the busy socket kept the half
/// of the budget it joined with (−51 % on 6.1) until such sockets were capped at the whole.
fn the_default_holds_an_open_connection_both_ways() -> anyhow::Result<()> {
    let lab = Lab::new("default", None)?;
    let listed: Value = serde_json::from_str(&run(&lab, &["backends", "--json"])?)?;
    let best = |direction: &str| {
        listed["backends"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|backend| backend["available"] == true && backend[direction] == true)
            .max_by_key(|backend| backend["priority"].as_u64())
            .map(|backend| backend["name"].clone())
            .with_context(|| format!("no backend available for {direction}: {listed}"))
    };
    // a download with no backend named gets ifb where it is free to install, as it is on
    // the lab's own veth (no ingress qdisc there), else the best available
    let ifb_available = listed["backends"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|backend| backend["name"] == "ifb" && backend["available"] == true);
    let best_up = best("upload")?;
    let best_down = if ifb_available {
        Value::from("ifb")
    } else {
        best("download")?
    };
    let mut server = lab.server(Proto::Tcp, Family::V4, None)?;
    let mut client = lab.client(&server, Proto::Tcp, None, None)?;
    // the first connection stays idle; the sends below use the second
    client.open()?;
    let printed = run(
        &lab,
        &[
            "limit",
            "--pid",
            &pid(&client),
            "--up",
            "2M",
            "--down",
            "2M",
        ],
    )?;
    let entry = status_of(&lab, client.pid())?.context("the limit is listed")?;
    ensure!(
        entry["backend"]["up"] == best_up && entry["backend"]["down"] == best_down,
        "limit chose {} up and {} down, expected {best_up} and {best_down} \
         (limit said: {printed})",
        entry["backend"]["up"],
        entry["backend"]["down"]
    );
    let up = client.send(POLICED_SECONDS, MAX_BYTES)?;
    within(
        &format!("upload on the open connection ({best_up})"),
        &steady(&mut server, &up)?,
        2.0 * MIB,
        0.10,
    )?;
    let down = server.send(POLICED_SECONDS, MAX_BYTES)?;
    within(
        &format!("download on the open connection ({best_down})"),
        &steady(&mut client, &down)?,
        2.0 * MIB,
        0.10,
    )?;
    run(&lab, &["unlimit", "--pid", &pid(&client)])?;
    Ok(())
}

fn ipv6_udp_and_tcp_are_limited_and_udp_sees_no_errors() -> anyhow::Result<()> {
    const UDP_LIMIT: f64 = 1e6;
    const UDP_TOLERANCE: f64 = 0.015;
    let lab = Lab::new("ipv6-udp", None)?;
    let mut udp_server = lab.server(Proto::Udp, Family::V6, None)?;
    let mut udp_client = lab.client(&udp_server, Proto::Udp, None, None)?;
    run(
        &lab,
        &[
            "limit",
            "--pid",
            &pid(&udp_client),
            "--up",
            "8mbit",
            "--down",
            "8mbit",
        ],
    )?;
    let up = udp_client.send(POLICED_SECONDS, MAX_BYTES)?;
    println!(
        "  UDP sender handed {} MiB to the socket, {} send errors",
        up.bytes >> 20,
        up.errors
    );
    ensure!(
        up.errors == 0,
        "a policed UDP sender saw {} send errors",
        up.errors
    );
    // the bucket charges transport payload, so 8 mbit/s lets 1 000 000 B of datagrams
    // through each second; charging IP bytes (48 more per 1400-byte datagram) would make
    // it 3.3 % less, which the tolerance tells apart (a policed UDP flow has no bursts)
    within(
        "IPv6 UDP upload",
        &steady(&mut udp_server, &up)?,
        UDP_LIMIT,
        UDP_TOLERANCE,
    )?;
    let down = udp_server.send(POLICED_SECONDS, MAX_BYTES)?;
    within(
        "IPv6 UDP download",
        &steady(&mut udp_client, &down)?,
        UDP_LIMIT,
        UDP_TOLERANCE,
    )?;

    let mut tcp_server = lab.server(Proto::Tcp, Family::V6, Some("cubic"))?;
    let mut tcp_client = lab.client(&tcp_server, Proto::Tcp, Some("cubic"), None)?;
    run(&lab, &["limit", "--pid", &pid(&tcp_client), "--down", "2M"])?;
    let down = tcp_server.send(POLICED_SECONDS, MAX_BYTES)?;
    within(
        "IPv6 TCP download",
        &steady(&mut tcp_client, &down)?,
        2.0 * MIB,
        0.10,
    )?;
    Ok(())
}

fn two_processes_hold_their_own_limits() -> anyhow::Result<()> {
    let lab = Lab::new("two-procs", None)?;
    let mut server = lab.server(Proto::Tcp, Family::V4, None)?;
    let mut slow = lab.client(&server, Proto::Tcp, None, None)?;
    let mut fast = lab.client(&server, Proto::Tcp, None, None)?;
    run(&lab, &["limit", "--pid", &pid(&slow), "--up", "1M"])?;
    run(&lab, &["limit", "--pid", &pid(&fast), "--up", "3M"])?;
    slow.start_send(POLICED_SECONDS, MAX_BYTES)?;
    fast.start_send(POLICED_SECONDS, MAX_BYTES)?;
    let slow_report = slow.finish_send()?;
    fast.finish_send()?;
    // the server counts both connections together; each sender's own share comes from
    // its status counters, and the sum from the server
    let total = steady(&mut server, &slow_report)?;
    within("both uploads together", &total, 4.0 * MIB, 0.10)?;
    let bytes = |entry: Value| entry["stats"]["up"]["bytes"].as_u64().unwrap_or(0) as f64;
    let slow_bytes = bytes(status_of(&lab, slow.pid())?.context("slow is listed")?);
    let fast_bytes = bytes(status_of(&lab, fast.pid())?.context("fast is listed")?);
    let share = slow_bytes / (slow_bytes + fast_bytes);
    println!(
        "  the 1M process sent {:.1} % of the bytes (ideal 25 %)",
        share * 100.0
    );
    ensure!(
        (0.20..=0.30).contains(&share),
        "the 1M process sent {:.1} % of all bytes, not ~25 %",
        share * 100.0
    );
    Ok(())
}

fn an_unlimited_neighbour_keeps_its_rate() -> anyhow::Result<()> {
    // The neighbour asks for a rate of its own, 16 times the limit and a small share of
    // what the lab carries, so that what it gets depends on the datapath and not on how
    // busy the CPUs are: a flow that takes all it can swung by −32…+30 % between 3 s
    // periods on this shared 2-core machine, alone as much as beside the limited one. At
    // 64 MiB/s a paced flow fell 2–3 % short with four CPU hogs on the two cores (and
    // once in CI); at 16 MiB/s it kept within 0.2 % with six. A limit that leaked to it
    // would cut it to 1 MiB/s.
    const NEIGHBOUR_RATE: f64 = 16.0 * MIB;
    const SECONDS: f64 = 4.0;
    const WARMUP_NS: u64 = 1_000_000_000;
    let lab = Lab::new("neighbour", None)?;
    let server = lab.server(Proto::Tcp, Family::V4, None)?;
    let mut free_server = lab.server(Proto::Tcp, Family::V4, None)?;
    let mut limited = lab.client(&server, Proto::Tcp, None, None)?;
    let mut free = lab.client(&free_server, Proto::Tcp, None, None)?;
    run(
        &lab,
        &[
            "limit",
            "--pid",
            &pid(&limited),
            "--up",
            "1M",
            "--down",
            "1M",
        ],
    )?;
    free.pace(NEIGHBOUR_RATE as u64)?;
    let alone = free.send(SECONDS, MAX_BYTES)?;
    let alone = free_server.received_steady(&alone, WARMUP_NS)?;
    limited.start_send(SECONDS + 1.0, MAX_BYTES)?;
    let beside = free.send(SECONDS, MAX_BYTES)?;
    limited.finish_send()?;
    let beside = free_server.received_steady(&beside, WARMUP_NS)?;
    // paced TCP at this rate lands within 0.2 % of it here, busy cores or not
    within("unlimited process alone", &alone, NEIGHBOUR_RATE, 0.02)?;
    within(
        "unlimited process beside a limited one",
        &beside,
        NEIGHBOUR_RATE,
        0.02,
    )
}

fn unlimit_restores_the_full_rate() -> anyhow::Result<()> {
    let lab = Lab::new("unlimit", None)?;
    let mut server = lab.server(Proto::Tcp, Family::V4, None)?;
    let mut client = lab.client(&server, Proto::Tcp, None, None)?;
    run(&lab, &["limit", "--pid", &pid(&client), "--up", "512K"])?;
    let limited = client.send(POLICED_SECONDS, MAX_BYTES)?;
    within(
        "limited upload",
        &steady(&mut server, &limited)?,
        512.0 * KIB,
        0.10,
    )?;
    let printed = run(&lab, &["unlimit", "--pid", &pid(&client)])?;
    ensure!(
        printed.contains("lifted the up limit"),
        "unlimit said: {printed}"
    );
    ensure!(
        status_of(&lab, client.pid())?.is_none(),
        "still listed after unlimit"
    );
    let free = client.send(POLICED_SECONDS, MAX_BYTES)?;
    let rate = steady(&mut server, &free)?.rate;
    println!("  after unlimit: {:.0} MiB/s", rate / MIB);
    ensure!(
        rate > 40.0 * 512.0 * KIB,
        "after unlimit only {:.1} MiB/s",
        rate / MIB
    );
    Ok(())
}

fn exit_removes_the_entries_and_a_reused_pid_is_free() -> anyhow::Result<()> {
    let lab = Lab::new("pid-reuse", None)?;
    let mut server = lab.server(Proto::Tcp, Family::V4, None)?;
    let mut first = lab.client(&server, Proto::Tcp, None, None)?;
    let reused = first.pid();
    run(&lab, &["limit", "--pid", &pid(&first), "--up", "256K"])?;
    // another PID limit set and lifted: the exit hook must still look for the first one
    // (it skips budgets only while no PID limit is left)
    let other = lab.client(&server, Proto::Tcp, None, None)?;
    run(&lab, &["limit", "--pid", &pid(&other), "--down", "1M"])?;
    run(&lab, &["unlimit", "--pid", &pid(&other)])?;
    other.quit()?;
    let in_kernel = |lab: &Lab| -> anyhow::Result<bool> {
        // read the table directly: `status` would prune dead entries itself, and this test
        // is about the kernel's exit hook
        use chadthrottle_core::backend::Backend;
        let datapath =
            chadthrottle_kernel::Datapath::open(lab.pin_dir())?.context("datapath installed")?;
        Ok(datapath
            .limits()?
            .iter()
            .any(|limit| limit.target.pid == reused))
    };
    first.run_thread()?;
    ensure!(
        in_kernel(&lab)?,
        "a thread's exit removed the process's limit"
    );
    first.quit()?;
    std::thread::sleep(Duration::from_millis(50));
    ensure!(
        !in_kernel(&lab)?,
        "the limit outlived its process in the kernel table"
    );

    // a new process with the very same PID: its start time differs, it must run free
    let mut second = lab.client(&server, Proto::Tcp, None, Some(reused))?;
    ensure!(
        second.pid() == reused,
        "the kernel gave PID {} instead of {reused}",
        second.pid()
    );
    ensure!(
        status_of(&lab, reused)?.is_none(),
        "the new process is listed as limited"
    );
    let report = second.send(3.0, MAX_BYTES)?;
    let rate = steady(&mut server, &report)?.rate;
    println!("  new process on PID {reused}: {:.0} MiB/s", rate / MIB);
    ensure!(
        rate > 40.0 * 256.0 * KIB,
        "the PID's new owner is throttled: {:.2} MiB/s",
        rate / MIB
    );
    Ok(())
}

/// The verifier's work on every program the datapath attaches, and on the task
/// iterator, stays far below its limit of 1 000 000 processed instructions: the
/// resolver's walk up the cgroup tree once took 5.10's and 6.1's verifiers 630 000 to
/// 760 000 per program (ARCHITECTURE.md, `ct_cgroup_better`), where a change that doubled
/// it would have failed to load there. Kernels report the count from 5.16.
fn every_program_leaves_the_verifier_room() -> anyhow::Result<()> {
    /// A fifth of the verifier's limit.
    const ROOM: u32 = 200_000;
    let lab = Lab::new("verifier", None)?;
    let _datapath =
        chadthrottle_kernel::Datapath::install(&lab.config()).context("install the datapath")?;
    let (major, minor) = kernel_line()?;
    let release = format!("{major}.{minor}");
    let reports = (major, minor) >= (5, 16);
    let work = chadthrottle_kernel::verifier_work::verifier_work(lab.pin_dir())?;
    for program in &work {
        match program.instructions {
            Some(count) => println!("  {}: {count} instructions processed", program.program),
            None => println!(
                "  {}: loaded (no count from Linux {release})",
                program.program
            ),
        }
    }
    for program in &work {
        match program.instructions {
            Some(count) => ensure!(
                count < ROOM,
                "the verifier processed {count} instructions of {}, over {ROOM} (a fifth of its limit)",
                program.program
            ),
            None => ensure!(
                !reports,
                "Linux {release} reports no verified instruction count for {}",
                program.program
            ),
        }
    }
    ensure!(work.len() == 8, "{} programs counted, not 8", work.len());
    Ok(())
}

/// The running kernel's release line as (major, minor): (5, 10) of "5.10.0-32-amd64".
fn kernel_line() -> anyhow::Result<(u32, u32)> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")?;
    let mut parts = release.trim().split(['.', '-']).map(str::parse::<u32>);
    match (parts.next(), parts.next()) {
        (Some(Ok(major)), Some(Ok(minor))) => Ok((major, minor)),
        _ => bail!("kernel release {release:?}"),
    }
}

/// The programs attached to the lab's cgroup, as `hook:program`. `ct_sock_owner` is listed
/// as the `ct_sock_create` it stands in for on a kernel without `bpf_get_current_task_btf`
/// (5.10): the same hook and link pin, one or the other.
fn datapath_programs(lab: &Lab) -> anyhow::Result<Vec<String>> {
    Ok(chadthrottle_kernel::query::cgroup_programs(lab.cgroup())?
        .into_iter()
        .map(|program| {
            let name = match program.name.as_str() {
                "ct_sock_owner" => "ct_sock_create",
                other => other,
            };
            format!("{}:{name}", program.attach_type)
        })
        .collect())
}

const ATTACHED: [&str; 4] = [
    "cgroup_inet_egress:ct_egress",
    "cgroup_inet_ingress:ct_ingress",
    "cgroup_inet_sock_create:ct_sock_create",
    "cgroup_sock_ops:ct_sock_ops",
];

fn reset_leaves_nothing_behind() -> anyhow::Result<()> {
    let lab = Lab::new("reset", None)?;
    let server = lab.server(Proto::Tcp, Family::V4, None)?;
    let client = lab.client(&server, Proto::Tcp, None, None)?;
    run(&lab, &["limit", "--pid", &pid(&client), "--up", "1M"])?;
    let mut programs = datapath_programs(&lab)?;
    programs.sort();
    ensure!(programs == ATTACHED, "attached: {programs:?}");
    let program_ids: Vec<u32> = chadthrottle_kernel::query::cgroup_programs(lab.cgroup())?
        .iter()
        .map(|program| program.id)
        .collect();
    let pinned = chadthrottle_kernel::query::pinned_maps(lab.pin_dir());
    use chadthrottle_kernel::names::{MAPS, PROGRAMS};
    ensure!(pinned.len() == MAPS.len(), "pinned maps: {pinned:?}");
    let limits = pinned
        .iter()
        .find(|map| map.name == "ct_limits")
        .context("ct_limits pinned")?;
    ensure!(
        limits.max_entries == 2 * 65_536,
        "ct_limits holds {} entries",
        limits.max_entries
    );
    let map_ids: Vec<u32> = pinned.iter().map(|map| map.id).collect();

    let printed = run(&lab, &["reset"])?;
    let pins = MAPS.len() + PROGRAMS.len();
    ensure!(
        printed.contains(&format!("removed {pins} pins")) && printed.contains("bpffs"),
        "reset said: {printed}"
    );
    ensure!(
        datapath_programs(&lab)?.is_empty(),
        "programs still attached"
    );
    std::thread::sleep(Duration::from_millis(100)); // programs and maps are freed after an RCU grace period
    let loaded = chadthrottle_kernel::query::loaded_program_ids();
    ensure!(
        program_ids.iter().all(|id| !loaded.contains(id)),
        "programs still loaded"
    );
    let maps = chadthrottle_kernel::query::loaded_map_ids();
    ensure!(
        map_ids.iter().all(|id| !maps.contains(id)),
        "maps still exist"
    );
    ensure!(!lab.pin_dir().exists(), "pin dir left");
    let bpffs = lab.pin_dir().parent().context("pin dir has a parent")?;
    ensure!(
        chadthrottle_kernel::mounts::mount_of(bpffs).is_none_or(|mount| mount.fs_type != "bpf"),
        "bpffs still mounted"
    );
    let again = run(&lab, &["reset"])?;
    ensure!(
        again.contains("nothing to remove"),
        "second reset said: {again}"
    );
    Ok(())
}

fn bad_input_is_refused_and_changes_nothing() -> anyhow::Result<()> {
    let lab = Lab::new("bad-input", None)?;
    let server = lab.server(Proto::Tcp, Family::V4, None)?;
    let client = lab.client(&server, Proto::Tcp, None, None)?;
    let client_pid = pid(&client);
    let thread = std::fs::read_dir(format!("/proc/{client_pid}/task"))?
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .find(|tid| *tid != client_pid)
        .context("the endpoint has a second thread")?;
    // refused values and options (exit 2) are tested without root in tests/cli.rs; here
    // the refusals that look at the process, and that none of them touched the kernel
    let free_pid = (4_000_000..4_100_000)
        .find(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())
        .unwrap_or(4_194_303)
        .to_string();
    for (bad_pid, expected) in [
        (free_pid.as_str(), "no process with PID"),
        ("2", "is a kernel thread"),
        (thread.as_str(), "is a thread of process"),
        ("1", "outside"),
    ] {
        let output = chadthrottle(&lab, &["limit", "--pid", bad_pid, "--up", "1M"]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        ensure!(
            output.status.code() == Some(1),
            "--pid {bad_pid} exited {:?}",
            output.status.code()
        );
        ensure!(
            stderr.lines().count() == 1 && stderr.contains(expected),
            "--pid {bad_pid} said: {stderr}"
        );
    }
    // a pin dir whose parent holds files: a bpffs mounted there would hide them
    let holder = tempfile::Builder::new().prefix("ct-hide-").tempdir()?;
    std::fs::write(holder.path().join("keep"), "kept")?;
    let hidden_pins = holder.path().join("pins");
    let output = chadthrottle_with(
        &lab,
        &[("CHADTHROTTLE_PIN_DIR", hidden_pins.as_os_str())],
        &["limit", "--pid", &client_pid, "--up", "1M"],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(
        output.status.code() == Some(1)
            && stderr.lines().count() == 1
            && stderr.contains("would hide"),
        "a pin dir over a parent with files: exit {:?}, said: {stderr}",
        output.status.code()
    );
    ensure!(
        chadthrottle_kernel::mounts::mount_of(holder.path())
            .is_none_or(|mount| mount.fs_type != "bpf")
            && std::fs::read_to_string(holder.path().join("keep"))? == "kept"
            && !hidden_pins.exists(),
        "a refused --pin-dir mounted a bpffs over its parent or created the pin dir"
    );
    ensure!(
        !lab.pin_dir().exists(),
        "a refused command created the pin dir"
    );
    ensure!(
        datapath_programs(&lab)?.is_empty(),
        "a refused command attached programs"
    );
    let unlimit = chadthrottle(&lab, &["unlimit", "--pid", &client_pid]);
    ensure!(
        unlimit.status.code() == Some(1),
        "unlimit of an unlimited PID succeeded"
    );
    Ok(())
}

fn a_crash_at_any_point_is_recovered_without_a_second_copy() -> anyhow::Result<()> {
    let lab = Lab::new("crash", None)?;
    let server = lab.server(Proto::Tcp, Family::V4, None)?;
    let client = lab.client(&server, Proto::Tcp, None, None)?;
    let points = [
        "mounted",
        "loaded",
        "meta",
        "attached:ct_sock_create",
        "attached:ct_egress",
    ];
    for point in points {
        let crashed = Command::new(env!("CARGO_BIN_EXE_chadthrottle"))
            .args(["limit", "--pid", &pid(&client), "--up", "1M"])
            .envs(lab.env())
            .env("CHADTHROTTLE_FAILPOINT", point)
            .stderr(Stdio::null())
            .status()?;
        ensure!(
            !crashed.success(),
            "the failpoint {point} did not stop the command"
        );
        run(&lab, &["limit", "--pid", &pid(&client), "--up", "1M"])
            .with_context(|| format!("limit after a crash at {point}"))?;
        let mut programs = datapath_programs(&lab)?;
        programs.sort();
        ensure!(
            programs == ATTACHED,
            "after a crash at {point}: {programs:?}"
        );
        ensure!(
            status_of(&lab, client.pid())?.is_some(),
            "after a crash at {point}: no limit"
        );
        run(&lab, &["reset"])?;
        ensure!(
            datapath_programs(&lab)?.is_empty(),
            "reset after a crash at {point} left programs"
        );
        ensure!(
            !lab.pin_dir().exists(),
            "reset after a crash at {point} left the pin dir"
        );
    }
    Ok(())
}

fn coexists_with_other_programs_on_the_cgroup() -> anyhow::Result<()> {
    let lab = Lab::new("coexist", None)?;
    let mut server = lab.server(Proto::Tcp, Family::V4, None)?;
    let mut client = lab.client(&server, Proto::Tcp, None, None)?;
    // a second, independent install on the same cgroup stands for any other cgroup
    // program (systemd's, a firewall's): both must run, neither may displace the other
    let other_pins = lab.pin_dir().with_file_name("other-pins");
    let other = |args: &[&str]| -> anyhow::Result<String> {
        let output = Command::new(env!("CARGO_BIN_EXE_chadthrottle"))
            .args(args)
            .envs(lab.env())
            .env("CHADTHROTTLE_PIN_DIR", &other_pins)
            .output()?;
        ensure!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    };
    // shaping named: the default's ifb would add a qdisc, not a cgroup program
    other(&[
        "limit",
        "--pid",
        &pid(&client),
        "--down",
        "1M",
        "--download-backend",
        "shaping",
    ])?;
    run(&lab, &["limit", "--pid", &pid(&client), "--up", "512K"])?;
    ensure!(
        datapath_programs(&lab)?.len() == 8,
        "attached: {:?}",
        datapath_programs(&lab)?
    );
    let up = client.send(POLICED_SECONDS, MAX_BYTES)?;
    within(
        "upload limited by the first install",
        &steady(&mut server, &up)?,
        512.0 * KIB,
        0.10,
    )?;
    let down = server.send(POLICED_SECONDS, MAX_BYTES)?;
    // a policed download at LAN round trips stalls on retransmission timeouts (on/off,
    // BENCHMARKS.md), and here two datapaths process every packet: this checks that the
    // second install's limit is the one in force, with room for those stalls
    within(
        "download limited by the second install",
        &steady(&mut client, &down)?,
        MIB,
        0.15,
    )?;
    other(&["reset"])?;
    let mut programs = datapath_programs(&lab)?;
    programs.sort();
    ensure!(programs == ATTACHED, "after the other reset: {programs:?}");
    let up = client.send(POLICED_SECONDS, MAX_BYTES)?;
    within(
        "upload after the other install left",
        &steady(&mut server, &up)?,
        512.0 * KIB,
        0.10,
    )?;
    Ok(())
}

fn a_limit_for_a_duration_lapses_in_the_kernel() -> anyhow::Result<()> {
    const LASTS: Duration = Duration::from_millis(6500);
    // a send measured before the lapse, from its first second on, and what is left
    // between its end and the lapse
    const SEND_SECONDS: f64 = 5.0;
    const SHORTEST_SEND: f64 = 2.5;
    const MARGIN: Duration = Duration::from_millis(300);
    let lab = Lab::new("expiry", None)?;
    let mut server = lab.server(Proto::Tcp, Family::V4, None)?;
    let mut client = lab.client(&server, Proto::Tcp, None, None)?;
    let limit = [
        "limit",
        "--pid",
        &pid(&client),
        "--up",
        "512K",
        "--for",
        "6500ms",
    ];
    // the kernel's expiry is `--for` after a moment between these two: the send before it
    // ends by the earliest, the one after it starts after the latest, however long setting
    // the limit took on a busy machine
    let asked = std::time::Instant::now();
    run(&lab, &limit)?;
    let set = std::time::Instant::now();
    let entry = status_of(&lab, client.pid())?.context("listed")?;
    ensure!(
        entry["expires_at"].as_u64().is_some(),
        "no expiry in status: {entry}"
    );
    let left = LASTS.saturating_sub(asked.elapsed() + MARGIN).as_secs_f64();
    ensure!(
        left >= SHORTEST_SEND,
        "setting the limit and listing it took {:?} of its {LASTS:?}: too little left to measure",
        asked.elapsed()
    );
    let seconds = left.min(SEND_SECONDS);
    println!(
        "  limit and status took {:.1} s; {seconds:.1} s sent before the lapse",
        asked.elapsed().as_secs_f64()
    );
    let limited = client.send(seconds, MAX_BYTES)?;
    let during = summarize(
        &server
            .bins()?
            .between(limited.start_ns + 1_000_000_000, limited.end_ns),
    );
    within("before the limit lapses", &during, 512.0 * KIB, 0.15)?;
    std::thread::sleep((set + LASTS + MARGIN).saturating_duration_since(std::time::Instant::now()));
    // no ChadThrottle process is running: the datapath itself lets the limit go
    let free = client.send(3.0, MAX_BYTES)?;
    let rate = steady(&mut server, &free)?.rate;
    println!("  after the limit lapsed: {:.0} MiB/s", rate / MIB);
    ensure!(
        rate > 40.0 * 512.0 * KIB,
        "still throttled after --for ran out: {:.2} MiB/s",
        rate / MIB
    );
    ensure!(
        status_of(&lab, client.pid())?.is_none(),
        "an expired limit is still listed"
    );
    Ok(())
}

fn a_full_table_is_a_clear_error() -> anyhow::Result<()> {
    let lab = Lab::new("capacity", None)?;
    let server = lab.server(Proto::Tcp, Family::V4, None)?;
    let clients: Vec<Endpoint> = (0..3)
        .map(|_| lab.client(&server, Proto::Tcp, None, None))
        .collect::<anyhow::Result<_>>()?;
    for client in &clients[..2] {
        run(
            &lab,
            &[
                "--max-limits",
                "2",
                "limit",
                "--pid",
                &pid(client),
                "--up",
                "1M",
            ],
        )?;
    }
    let output = chadthrottle(&lab, &["limit", "--pid", &pid(&clients[2]), "--up", "1M"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(
        !output.status.success(),
        "a third limit fit in a table of two"
    );
    ensure!(
        stderr.contains("limit table is full: 2 processes"),
        "said: {stderr}"
    );
    let listed = status(&lab)?["limits"].as_array().map_or(0, Vec::len);
    ensure!(listed == 2, "{listed} limits listed after the refusal");
    Ok(())
}

fn the_upstream_foreground_form_lifts_its_limit() -> anyhow::Result<()> {
    let lab = Lab::new("foreground", None)?;
    let server = lab.server(Proto::Tcp, Family::V4, None)?;
    let client = lab.client(&server, Proto::Tcp, None, None)?;
    let client_pid = pid(&client);
    let spawn = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_chadthrottle"))
            .args([
                "--pid",
                &client_pid,
                "--upload-limit",
                "1M",
                "--download-limit",
                "2M",
            ])
            .args(extra)
            .envs(lab.env())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
    };
    let wait_listed = |listed: bool| -> anyhow::Result<()> {
        for _ in 0..50 {
            if status_of(&lab, client.pid())?.is_some() == listed {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!(
            "the limit never became {}",
            if listed { "listed" } else { "unlisted" }
        )
    };
    let timed = spawn(&["--duration", "2"])?;
    if let Err(error) = wait_listed(true) {
        let output = timed.wait_with_output()?;
        bail!(
            "{error}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let output = timed.wait_with_output()?;
    ensure!(
        output.status.success(),
        "foreground form failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    ensure!(
        String::from_utf8_lossy(&output.stdout).contains("duration elapsed"),
        "no removal message"
    );
    ensure!(
        status_of(&lab, client.pid())?.is_none(),
        "the limit outlived --duration"
    );

    let interrupted = spawn(&[])?;
    wait_listed(true)?;
    // SAFETY: kill has no memory-safety preconditions; the PID is our own child.
    unsafe { libc::kill(interrupted.id() as libc::pid_t, libc::SIGINT) };
    let output = interrupted.wait_with_output()?;
    ensure!(
        output.status.success(),
        "interrupted foreground form failed"
    );
    ensure!(
        status_of(&lab, client.pid())?.is_none(),
        "the limit outlived Ctrl+C"
    );
    Ok(())
}

fn an_unprivileged_user_is_told_what_is_missing() -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt as _;
    let lab = Lab::new("unprivileged", None)?;
    // the user's own process: what stands in the way is the capabilities
    let own = common::users::UsersProcess::start(&lab)?;
    let output = Command::new(env!("CARGO_BIN_EXE_chadthrottle"))
        .args(["limit", "--pid", &own.pid(), "--up", "1M"])
        .envs(lab.env())
        .uid(common::users::NOBODY)
        .gid(common::users::NOBODY)
        .output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(
        output.status.code() == Some(1),
        "exited {:?}: {stderr}",
        output.status.code()
    );
    for needed in ["CAP_BPF", "CAP_NET_ADMIN", "sudo", "setcap"] {
        ensure!(
            stderr.contains(needed),
            "the refusal does not name {needed}: {stderr}"
        );
    }
    ensure!(
        datapath_programs(&lab)?.is_empty(),
        "an unprivileged attempt attached programs"
    );
    Ok(())
}

fn backends_names_all_and_proves_they_work() -> anyhow::Result<()> {
    let lab = Lab::new("backends", None)?;
    let listed: Value = serde_json::from_str(&run(&lab, &["backends", "--json"])?)?;
    let names: Vec<&Value> = listed["backends"]
        .as_array()
        .context("backends is an array")?
        .iter()
        .map(|backend| &backend["name"])
        .collect();
    ensure!(
        names == ["shaping", "policer", "htb", "ifb", "nftables", "tc_police"],
        "backends: {listed}"
    );
    // what an older kernel makes the datapath do without is named (5.10: two helpers of
    // 5.11); the message leaves the backends out, so on 5.10 a failure here is not taken
    // for the known one below
    let line = kernel_line()?;
    let without: Vec<&str> = listed["done_without"]
        .as_array()
        .context("done_without is an array")?
        .iter()
        .filter_map(|entry| entry["helper"].as_str())
        .collect();
    let expected: &[&str] = if line < (5, 11) {
        &["bpf_get_current_task_btf", "bpf_ktime_get_coarse_ns"]
    } else {
        &[]
    };
    ensure!(
        without == expected,
        "on {}.{} the datapath does without {without:?}, expected {expected:?}",
        line.0,
        line.1
    );
    for backend in listed["backends"].as_array().into_iter().flatten() {
        // on this 6.18 kernel every one must work (programs load, and the qdisc backends
        // build their qdiscs in a throwaway namespace): unavailable here is a failure;
        // tc_police needs act_police, which tc_police.rs checks against the kernel's modules
        if backend["name"] != "tc_police" {
            ensure!(backend["available"] == true, "backends: {listed}");
        }
    }
    let directions = |index: usize| {
        (
            listed["backends"][index]["upload"] == true,
            listed["backends"][index]["download"] == true,
        )
    };
    ensure!(
        directions(2) == (true, false)
            && directions(3) == (false, true)
            && directions(4) == (true, true)
            && directions(5) == (false, true),
        "htb limits uploads, ifb and tc_police downloads, nftables both: {listed}"
    );
    ensure!(
        listed["backends"][5]["priority"].as_u64() < listed["backends"][1]["priority"].as_u64(),
        "tc_police ranks below the eBPF backends: {listed}"
    );
    ensure!(
        listed["backends"][4]["priority"].as_u64() < listed["backends"][1]["priority"].as_u64(),
        "nftables ranks below the eBPF backends: {listed}"
    );
    ensure!(
        listed["backends"][0]["priority"].as_u64() > listed["backends"][1]["priority"].as_u64(),
        "shaping is preferred: {listed}"
    );
    // `--list-backends` prints the same probe as a table: its dispatch and rendering are
    // checked on the fake system (commands/backends.rs), so the kernel's probe runs once
    Ok(())
}

const TESTS: &[(&str, Test)] = &[
    (
        "open_and_new_connections_are_limited_both_ways",
        open_and_new_connections_are_limited_both_ways,
    ),
    (
        "ipv6_udp_and_tcp_are_limited_and_udp_sees_no_errors",
        ipv6_udp_and_tcp_are_limited_and_udp_sees_no_errors,
    ),
    (
        "two_processes_hold_their_own_limits",
        two_processes_hold_their_own_limits,
    ),
    (
        "an_unlimited_neighbour_keeps_its_rate",
        an_unlimited_neighbour_keeps_its_rate,
    ),
    (
        "unlimit_restores_the_full_rate",
        unlimit_restores_the_full_rate,
    ),
    (
        "exit_removes_the_entries_and_a_reused_pid_is_free",
        exit_removes_the_entries_and_a_reused_pid_is_free,
    ),
    ("reset_leaves_nothing_behind", reset_leaves_nothing_behind),
    (
        "every_program_leaves_the_verifier_room",
        every_program_leaves_the_verifier_room,
    ),
    (
        "bad_input_is_refused_and_changes_nothing",
        bad_input_is_refused_and_changes_nothing,
    ),
    (
        "a_crash_at_any_point_is_recovered_without_a_second_copy",
        a_crash_at_any_point_is_recovered_without_a_second_copy,
    ),
    (
        "the_default_holds_an_open_connection_both_ways",
        the_default_holds_an_open_connection_both_ways,
    ),
    (
        "coexists_with_other_programs_on_the_cgroup",
        coexists_with_other_programs_on_the_cgroup,
    ),
    (
        "a_limit_for_a_duration_lapses_in_the_kernel",
        a_limit_for_a_duration_lapses_in_the_kernel,
    ),
    (
        "a_full_table_is_a_clear_error",
        a_full_table_is_a_clear_error,
    ),
    (
        "the_upstream_foreground_form_lifts_its_limit",
        the_upstream_foreground_form_lifts_its_limit,
    ),
    (
        "an_unprivileged_user_is_told_what_is_missing",
        an_unprivileged_user_is_told_what_is_missing,
    ),
    (
        "backends_names_all_and_proves_they_work",
        backends_names_all_and_proves_they_work,
    ),
];

fn main() {
    common::main(TESTS);
}
