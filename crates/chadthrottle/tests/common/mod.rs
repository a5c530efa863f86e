//! What every kernel test binary shares: running the real `chadthrottle` binary confined
//! to a lab, and the harness that runs tests one at a time (or reports them ignored, with
//! the reason printed, without root).

use anyhow::ensure;
use chadthrottle_lab::{Endpoint, Lab};
use libtest_mimic::{Arguments, Failed, Trial};
use std::process::{Command, Output};

pub type Test = fn() -> anyhow::Result<()>;

/// Runs `chadthrottle args` confined to `lab` (its cgroup and pin dir).
pub fn chadthrottle(lab: &Lab, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chadthrottle"))
        .args(args)
        .envs(lab.env())
        .env_remove("CHADTHROTTLE_FAILPOINT")
        .output()
        .expect("the chadthrottle binary runs")
}

/// Runs `chadthrottle args` and returns its stdout, failing with its stderr.
pub fn run(lab: &Lab, args: &[&str]) -> anyhow::Result<String> {
    let output = chadthrottle(lab, args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(
        output.status.success(),
        "chadthrottle {}: {}",
        args.join(" "),
        stderr.trim()
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

pub fn pid(endpoint: &Endpoint) -> String {
    endpoint.pid().to_string()
}

/// The test binary's `main`: serves as a lab endpoint when re-executed as one, else runs
/// `tests` one at a time (measurements on a 2-core machine must not overlap).
pub fn main(tests: &[(&'static str, Test)]) {
    chadthrottle_lab::run_if_endpoint();
    let mut args = Arguments::from_args();
    args.test_threads = Some(1);
    let skip = chadthrottle_lab::unavailable();
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
