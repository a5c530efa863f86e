//! The monitoring part of the benchmark: what the datapath's accounting costs per packet,
//! and the CPU of `chadthrottle top` (and of nethogs, if installed) at 1 s refresh.

use crate::lab_datapath::{install, target};
use crate::{Family, Lab, Proto};
use anyhow::{Context as _, bail};
use chadthrottle_core::PerDirection;
use chadthrottle_core::backend::{Backend, Change, LimitRequest};
use chadthrottle_core::status::DirectionLimit;
use chadthrottle_kernel::query;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One program's cost while an unthrottled flow ran.
#[derive(Debug, Clone)]
pub struct ProgramCost {
    pub name: String,
    pub runs: u64,
    pub ns_per_run: f64,
    /// Share of one core the program used during the flow.
    pub core_share: f64,
}

/// Runs an unthrottled TCP upload for `seconds` with the datapath attached and the
/// kernel's run-time statistics on; returns the flow's rate and each program's cost.
pub fn program_costs(
    lab: &Lab,
    seconds: f64,
    accounting: bool,
) -> anyhow::Result<(f64, Vec<ProgramCost>)> {
    chadthrottle_kernel::reset(lab.pin_dir())?;
    let _datapath = crate::lab_datapath::install_with(lab, accounting)?;
    let ids: Vec<u32> = query::cgroup_programs(lab.cgroup())?
        .into_iter()
        .map(|program| program.id)
        .collect();
    let stats = query::enable_run_time_stats()?;
    let before = query::program_run_times(&ids);
    let started = Instant::now();
    let rate = crate::bench::unlimited_rate(lab, seconds)?;
    let elapsed = started.elapsed().as_nanos() as f64;
    let after = query::program_run_times(&ids);
    drop(stats);
    let costs = after
        .iter()
        .filter_map(|late| {
            let early = before.iter().find(|early| early.id == late.id)?;
            let runs = late.runs - early.runs;
            let ns = (late.run_ns - early.run_ns) as f64;
            Some(ProgramCost {
                name: late.name.clone(),
                runs,
                ns_per_run: if runs > 0 { ns / runs as f64 } else { 0.0 },
                core_share: ns / elapsed,
            })
        })
        .collect();
    Ok((rate, costs))
}

/// CPU time (user + system) a command used, from its exit.
fn cpu_of(command: &mut Command) -> anyhow::Result<Duration> {
    let child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot start the measured command")?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value to be overwritten.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our child; status and usage are valid for writes.
    if unsafe { libc::wait4(pid, &mut status, 0, &mut usage) } != pid {
        bail!("wait4: {}", std::io::Error::last_os_error());
    }
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        bail!("the measured command failed (status {status})");
    }
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    Ok(time(usage.ru_utime) + time(usage.ru_stime))
}

/// `chadthrottle top --json` at 1 s refresh for `refreshes` refreshes, confined to the lab.
fn top_cpu(lab: &Lab, chadthrottle: &Path, refreshes: u32) -> anyhow::Result<Duration> {
    cpu_of(
        Command::new(chadthrottle)
            .args(["top", "--json", "--interval", "1s", "--count"])
            .arg(refreshes.to_string())
            .envs(lab.env()),
    )
}

/// nethogs in trace mode at 1 s refresh on the lab client's veth, if it is installed.
fn nethogs_cpu(client_pid: u32, refreshes: u32) -> Option<anyhow::Result<Duration>> {
    let found = Command::new("nethogs").arg("-V").output().is_ok();
    found.then(|| {
        cpu_of(
            Command::new("nsenter")
                .arg(format!("--net=/proc/{client_pid}/ns/net"))
                .args(["nethogs", "-t", "-d", "1", "-c"])
                .arg(refreshes.to_string())
                .arg("veth-c"),
        )
    })
}

/// CPU per refresh of `top` (and nethogs) in two scenes: 1000 connections in the table,
/// and a 1 Gbit/s flow.
pub struct TopCost {
    pub scene: String,
    pub top_ms_per_refresh: f64,
    pub nethogs_ms_per_refresh: Option<f64>,
}

pub fn top_costs(lab: &Lab, chadthrottle: &Path) -> anyhow::Result<Vec<TopCost>> {
    const REFRESHES: u32 = 10;
    let per_refresh = |cpu: Duration| cpu.as_secs_f64() * 1000.0 / f64::from(REFRESHES);
    let mut datapath = install(lab)?;
    let server = lab.server(Proto::Tcp, Family::V4, None)?;
    let mut client = lab.client(&server, Proto::Tcp, None, None)?;
    let churned = client.churn(1000)?;
    let mut costs = vec![TopCost {
        scene: format!("{churned} connections in the table, idle"),
        top_ms_per_refresh: per_refresh(top_cpu(lab, chadthrottle, REFRESHES)?),
        nethogs_ms_per_refresh: None,
    }];

    let gigabit = chadthrottle_core::Rate::new(125_000_000).context("1 Gbit/s is a rate")?;
    datapath.apply(&LimitRequest {
        target: target(lab, &client)?,
        change: PerDirection {
            up: Change::Set(DirectionLimit {
                rate: gigabit.bytes_per_sec(),
                burst: chadthrottle_core::bucket::default_burst(gigabit).bytes(),
                // the figures compare with the earlier, policer-only runs
                enforcement: chadthrottle_core::status::Enforcement::Policer,
                by_default: false,
            }),
            down: Change::Keep,
        },
        lasts: None,
    })?;
    let seconds = f64::from(REFRESHES) + 2.0;
    client.start_send(seconds, u64::MAX)?;
    let top = per_refresh(top_cpu(lab, chadthrottle, REFRESHES)?);
    let nethogs = nethogs_cpu(client.pid(), REFRESHES)
        .transpose()?
        .map(per_refresh);
    let report = client.finish_send()?;
    let rate = report.bytes as f64 / ((report.end_ns - report.start_ns) as f64 / 1e9);
    costs.push(TopCost {
        scene: format!(
            "one flow limited to 1 Gbit/s ({:.0} Mbit/s sent)",
            rate * 8.0 / 1e6
        ),
        top_ms_per_refresh: top,
        nethogs_ms_per_refresh: nethogs,
    });
    Ok(costs)
}

/// Throughput of an unthrottled flow alone and while nethogs watches the link, in
/// alternating rounds; `None` if nethogs is not installed.
pub fn nethogs_overhead(lab: &Lab, rounds: usize) -> anyhow::Result<Option<(Vec<f64>, Vec<f64>)>> {
    if Command::new("nethogs").arg("-V").output().is_err() {
        return Ok(None);
    }
    let (mut alone, mut watched) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        alone.push(crate::bench::unlimited_rate(lab, 3.0)?);
        let server = lab.server(Proto::Tcp, Family::V4, None)?;
        let probe = lab.client(&server, Proto::Tcp, None, None)?;
        let mut nethogs = Command::new("nsenter")
            .arg(format!("--net=/proc/{}/ns/net", probe.pid()))
            .args(["nethogs", "-t", "-d", "1", "veth-c"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        std::thread::sleep(Duration::from_millis(500));
        let rate = crate::bench::unlimited_rate(lab, 3.0);
        let _stopped = nethogs.kill();
        let _reaped = nethogs.wait();
        watched.push(rate?);
    }
    Ok(Some((alone, watched)))
}
