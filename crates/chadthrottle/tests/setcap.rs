//! Kernel tests of a ChadThrottle granted its capabilities with `setcap` and run by a
//! user who is not root: it acts on that user's own processes, and refuses — changing
//! nothing — everything that would reach other users' processes or the whole machine.
//!
//! As root, each test copies the binary into a directory of its own, grants the copy the
//! capabilities the README's `setcap` line names, and runs it as `nobody` in the lab
//! (the lab's cgroup and pin dir, installed there by root first). Without root they are
//! reported as ignored, with the reason printed first.

pub mod common;

use anyhow::{Context as _, ensure};
use chadthrottle_lab::{Family, Lab, Proto};
use common::users::{NOBODY, UsersProcess};
use common::{Test, pid, run};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The capabilities the README tells users to grant.
const CAPABILITIES: &str =
    "cap_bpf,cap_perfmon,cap_net_admin,cap_sys_ptrace,cap_sys_admin,cap_dac_override+ep";

/// A copy of the binary with file capabilities, in a directory `nobody` can reach;
/// removed on drop.
struct GrantedCopy {
    dir: PathBuf,
    binary: PathBuf,
}

impl GrantedCopy {
    fn new(test: &str) -> anyhow::Result<GrantedCopy> {
        let dir = std::env::temp_dir().join(format!("ct-setcap-{}-{test}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let copy = GrantedCopy {
            binary: dir.join("chadthrottle"),
            dir,
        };
        std::fs::set_permissions(&copy.dir, std::fs::Permissions::from_mode(0o755))?;
        std::fs::copy(env!("CARGO_BIN_EXE_chadthrottle"), &copy.binary)?;
        std::fs::set_permissions(&copy.binary, std::fs::Permissions::from_mode(0o755))?;
        let setcap = Command::new("setcap")
            .args([CAPABILITIES, &copy.binary.display().to_string()])
            .output()
            .context("setcap runs (Debian: libcap2-bin)")?;
        ensure!(
            setcap.status.success(),
            "setcap failed: {}",
            String::from_utf8_lossy(&setcap.stderr).trim()
        );
        Ok(copy)
    }

    /// Runs the copy as `nobody`, confined to `lab`, with `args`.
    fn run_as_nobody(&self, lab: &Lab, args: &[&str]) -> anyhow::Result<Output> {
        Ok(Command::new(&self.binary)
            .args(args)
            .envs(lab.env())
            .env_remove("CHADTHROTTLE_FAILPOINT")
            .env("HOME", &self.dir)
            .env_remove("XDG_STATE_HOME")
            .current_dir(&self.dir)
            .uid(NOBODY)
            .gid(NOBODY)
            .output()?)
    }
}

impl Drop for GrantedCopy {
    fn drop(&mut self) {
        let _gone = std::fs::remove_dir_all(&self.dir);
    }
}

/// The limits in force as `status --json` lists them, without their live counters.
fn status(lab: &Lab) -> anyhow::Result<Value> {
    let mut status = common::status(lab)?;
    for limit in status["limits"].as_array_mut().context("limits")? {
        limit.as_object_mut().context("a limit")?.remove("stats");
    }
    Ok(status)
}

/// Checks `output` is a one-line refusal (exit 1) containing `expected`.
fn refused(args: &[&str], output: &Output, expected: &str) -> anyhow::Result<()> {
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(
        output.status.code() == Some(1),
        "{args:?} as nobody exited {:?}: {stderr}",
        output.status.code()
    );
    ensure!(
        stderr.lines().count() == 1 && stderr.contains(expected),
        "{args:?} as nobody said: {stderr}"
    );
    println!("  refused {args:?}: {}", stderr.trim());
    Ok(())
}

fn a_user_acts_on_their_own_processes_only() -> anyhow::Result<()> {
    let lab = Lab::new("setcap", None)?;
    let copy = GrantedCopy::new("own")?;
    let server = lab.server(Proto::Tcp, Family::V4, None)?;
    let roots = lab.client(&server, Proto::Tcp, None, None)?;
    let mine = UsersProcess::start(&lab)?;
    // root installs the datapath in the lab and limits root's own client
    run(&lab, &["limit", "--pid", &pid(&roots), "--up", "10M"])?;
    let before = status(&lab)?;
    // what ChadThrottle keeps for itself is root's alone
    for dir in [lab.pin_dir(), Path::new("/run/chadthrottle")] {
        let meta = std::fs::metadata(dir).with_context(|| format!("{}", dir.display()))?;
        ensure!(
            meta.permissions().mode() & 0o777 == 0o700
                && std::os::unix::fs::MetadataExt::uid(&meta) == 0,
            "{} is mode {:o}, owner {}",
            dir.display(),
            meta.permissions().mode() & 0o777,
            std::os::unix::fs::MetadataExt::uid(&meta)
        );
    }

    let other_pin_dir = lab.pin_dir().with_extension("elsewhere");
    let other_pin_dir = other_pin_dir.display().to_string();
    let roots_pid = pid(&roots);
    let mine_pid = mine.pid();
    let refusals: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["limit", "--pid", &roots_pid, "--up", "1K"],
            "belongs to root: without root, ChadThrottle acts only on processes you could signal",
        ),
        (vec!["unlimit", "--pid", &roots_pid], "belongs to root"),
        (vec!["reset"], "`reset` affects every user of this machine"),
        (
            vec![
                "--upload-backend",
                "htb",
                "limit",
                "--pid",
                &mine_pid,
                "--up",
                "1M",
            ],
            "backend \"htb\" is unavailable: it changes network interfaces",
        ),
        (
            vec![
                "--download-backend",
                "ifb",
                "limit",
                "--pid",
                &mine_pid,
                "--down",
                "1M",
            ],
            "backend \"ifb\" is unavailable: it changes network interfaces",
        ),
        (
            vec!["--force", "limit", "--pid", &mine_pid, "--up", "1M"],
            "--force",
        ),
        (
            vec![
                "--max-limits",
                "8",
                "limit",
                "--pid",
                &mine_pid,
                "--up",
                "1M",
            ],
            "--max-limits 8",
        ),
        (
            vec![
                "--pin-dir",
                &other_pin_dir,
                "limit",
                "--pid",
                &mine_pid,
                "--up",
                "1M",
            ],
            "installing the datapath with --pin-dir",
        ),
    ];
    for (args, expected) in &refusals {
        let output = copy.run_as_nobody(&lab, args)?;
        refused(args, &output, expected)?;
        ensure!(
            status(&lab)? == before,
            "{args:?} as nobody changed the limits: {} became {}",
            before,
            status(&lab)?
        );
    }
    ensure!(
        !Path::new(&other_pin_dir).exists(),
        "a refused command created {other_pin_dir}"
    );

    // the user's own process: limited, listed, lifted
    let limit = copy.run_as_nobody(&lab, &["limit", "--pid", &mine_pid, "--up", "1M"])?;
    ensure!(
        limit.status.success(),
        "nobody could not limit its own process: {}",
        String::from_utf8_lossy(&limit.stderr)
    );
    let after = status(&lab)?;
    let entry = after["limits"]
        .as_array()
        .context("limits")?
        .iter()
        .find(|limit| limit["pid"] == mine.0.id())
        .cloned()
        .context("the user's own limit is in force")?;
    ensure!(entry["up"] == 1 << 20, "the user's limit: {entry}");
    ensure!(
        after["limits"].as_array().map(Vec::len) == Some(2),
        "root's limit stays beside it: {after}"
    );
    let unlimit = copy.run_as_nobody(&lab, &["unlimit", "--pid", &mine_pid])?;
    ensure!(
        unlimit.status.success(),
        "nobody could not lift its own limit: {}",
        String::from_utf8_lossy(&unlimit.stderr)
    );
    ensure!(status(&lab)? == before, "unlimit left: {}", status(&lab)?);
    Ok(())
}

const TESTS: &[(&str, Test)] = &[(
    "a_user_acts_on_their_own_processes_only",
    a_user_acts_on_their_own_processes_only,
)];

fn main() {
    common::main(TESTS);
}
