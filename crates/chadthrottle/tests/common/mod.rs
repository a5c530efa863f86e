//! What every kernel test binary shares: running the real `chadthrottle` binary confined
//! to a lab, reading its limits back, measuring a transfer's steady state, and the harness
//! that runs tests one at a time (or reports them ignored, with the reason printed,
//! without root).
//!
//! Each test binary declares it `pub mod common`: it uses only part of it, and public
//! items of a binary's public module are not reported as unused.

pub mod containers;
pub mod sockets;
pub mod users;

use anyhow::{Context as _, ensure};
use chadthrottle_lab::protocol::SendReport;
use chadthrottle_lab::stats::Summary;
use chadthrottle_lab::{Endpoint, Lab};
use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::Value;
use std::ffi::OsStr;
use std::process::{Command, Output};

pub type Test = fn() -> anyhow::Result<()>;

pub const KIB: f64 = 1024.0;
pub const MIB: f64 = 1024.0 * 1024.0;
/// A transfer's steady state starts this long after it starts: slow start, the first
/// burst and the shaper's first divisions are over by then.
pub const WARMUP_NS: u64 = 2_000_000_000;
/// Every transfer is bounded in bytes as well as in seconds.
pub const MAX_BYTES: u64 = 20 << 30;

/// Variables a test adds to the confined binary's environment (`NAME`, value).
pub type Env<'a> = &'a [(&'a str, &'a OsStr)];

/// Runs `chadthrottle args` confined to `lab` (its cgroup and pin dir).
pub fn chadthrottle(lab: &Lab, args: &[&str]) -> Output {
    chadthrottle_with(lab, &[], args)
}

/// [`chadthrottle`] with `env` added to its environment.
pub fn chadthrottle_with(lab: &Lab, env: Env<'_>, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chadthrottle"))
        .args(args)
        .envs(lab.env())
        .envs(env.iter().copied())
        .env_remove("CHADTHROTTLE_FAILPOINT")
        .output()
        .expect("the chadthrottle binary runs")
}

/// Runs `chadthrottle args` and returns its stdout, failing with its stderr.
pub fn run(lab: &Lab, args: &[&str]) -> anyhow::Result<String> {
    run_with(lab, &[], args)
}

/// [`run`] with `env` added to the binary's environment.
pub fn run_with(lab: &Lab, env: Env<'_>, args: &[&str]) -> anyhow::Result<String> {
    let output = chadthrottle_with(lab, env, args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(
        output.status.success(),
        "chadthrottle {}: {}",
        args.join(" "),
        stderr.trim()
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Runs `chadthrottle args` and checks that it was refused: exit status 1 and one line
/// on stderr that contains `names` (the bad value, or why).
pub fn refused(lab: &Lab, args: &[&str], names: &str) -> anyhow::Result<()> {
    let output = chadthrottle(lab, args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(
        output.status.code() == Some(1),
        "chadthrottle {}: exit {:?}, stderr {stderr}",
        args.join(" "),
        output.status.code()
    );
    ensure!(
        stderr.trim().lines().count() == 1 && stderr.contains(names),
        "chadthrottle {}: one line naming {names:?} expected, got {stderr:?}",
        args.join(" ")
    );
    Ok(())
}

pub fn pid(endpoint: &Endpoint) -> String {
    endpoint.pid().to_string()
}

/// `status --json`.
pub fn status(lab: &Lab) -> anyhow::Result<Value> {
    Ok(serde_json::from_str(&run(lab, &["status", "--json"])?)?)
}

/// `rules --json`'s rules.
pub fn rules(lab: &Lab) -> anyhow::Result<Vec<Value>> {
    rules_with(lab, &[])
}

/// [`rules`] with `env` added to the binary's environment.
pub fn rules_with(lab: &Lab, env: Env<'_>) -> anyhow::Result<Vec<Value>> {
    let report: Value = serde_json::from_str(&run_with(lab, env, &["rules", "--json"])?)?;
    Ok(report["rules"]
        .as_array()
        .context("rules --json has a rules array")?
        .clone())
}

/// The entry of `pid` in `status --json`, if it has one.
pub fn status_of(lab: &Lab, pid: u32) -> anyhow::Result<Option<Value>> {
    let status = status(lab)?;
    let limits = status["limits"].as_array().context("limits is an array")?;
    Ok(limits.iter().find(|limit| limit["pid"] == pid).cloned())
}

/// The entry of `pid` in `status --json`, which must be there.
pub fn listed(lab: &Lab, pid: u32) -> anyhow::Result<Value> {
    status_of(lab, pid)?.with_context(|| format!("PID {pid} has no limit listed"))
}

/// Packets the policer dropped in direction `dir` (`up`, `down`) of a status entry, and
/// packets it let through.
pub fn policed(entry: &Value, dir: &str) -> anyhow::Result<(u64, u64)> {
    let stats = &entry["stats"][dir];
    let counter = |name: &str| {
        stats[name]
            .as_u64()
            .with_context(|| format!("stats.{dir}.{name} is not a count: {entry}"))
    };
    Ok((counter("dropped_packets")?, counter("packets")?))
}

/// Steady-state goodput `receiver` saw during `report`'s transfer.
pub fn steady(receiver: &mut Endpoint, report: &SendReport) -> anyhow::Result<Summary> {
    receiver.received_steady(report, WARMUP_NS)
}

/// Whether `summary`'s rate is within `tolerance` (a fraction; doubled in an emulated
/// guest, `chadthrottle_lab::stats::EMULATED_ENV`) of `limit`; prints it.
pub fn within(what: &str, summary: &Summary, limit: f64, tolerance: f64) -> anyhow::Result<()> {
    let tolerance = chadthrottle_lab::stats::tolerance(tolerance);
    let error = (summary.rate - limit) / limit;
    println!(
        "  {what}: {:.1} KiB/s against {:.1} KiB/s ({:+.1} %)",
        summary.rate / KIB,
        limit / KIB,
        error * 100.0
    );
    ensure!(
        error.abs() <= tolerance,
        "{what}: {:.1} KiB/s is {:+.1} % off the limit {:.1} KiB/s (tolerance ±{:.0} %)",
        summary.rate / KIB,
        error * 100.0,
        limit / KIB,
        tolerance * 100.0
    );
    Ok(())
}

/// Whether `counted` bytes are within `tolerance` (a fraction) of what `generator`
/// says it moved; prints both.
pub fn counted_within(
    what: &str,
    counted: u64,
    generator: u64,
    tolerance: f64,
) -> anyhow::Result<()> {
    let error = (counted as f64 - generator as f64) / generator as f64;
    println!(
        "  {what}: counted {counted} B, generator {generator} B ({:+.3} %)",
        error * 100.0
    );
    ensure!(
        error.abs() <= tolerance,
        "{what}: counted {counted} B but the generator says {generator} B ({:+.2} %, tolerance ±{:.1} %)",
        error * 100.0,
        tolerance * 100.0
    );
    Ok(())
}

/// The test binary's `main`: serves as a lab endpoint when re-executed as one, else runs
/// `tests` one at a time (measurements on a 2-core machine must not overlap).
pub fn main(tests: &[(&'static str, Test)]) {
    main_unless(tests, None);
}

/// [`main`] for tests that need more than the lab: they are ignored, with `missing`
/// printed, when it says what this machine lacks.
pub fn main_unless(tests: &[(&'static str, Test)], missing: Option<String>) {
    chadthrottle_lab::run_if_endpoint();
    let mut args = Arguments::from_args();
    args.test_threads = Some(1);
    let skip = chadthrottle_lab::unavailable().or(missing);
    if let Some(reason) = &skip {
        println!("kernel tests skipped: {reason}");
    }
    let trials = tests
        .iter()
        .map(|&(name, test)| {
            Trial::test(name, move || {
                test().map_err(|error| Failed::from(format!("{error:#}")))
            })
            .with_ignored_flag(skip.is_some())
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}
