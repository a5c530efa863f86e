//! The terminal UI end to end: the real binary in tmux, confined to a lab, throttles a
//! lab process with keystrokes, and the limit is checked through `status --json` and the
//! traffic generator; a limit saved by an earlier version comes back, and the dialog's
//! rule on the process's executable is read back through `rules --json` and the rules
//! file. Needs root and tmux (CI installs it); reported ignored without root.

pub mod common;

use anyhow::{Context as _, ensure};
use chadthrottle_core::saved::{SavedLimit, SavedLimits};
use chadthrottle_lab::stats::summarize;
use chadthrottle_lab::{Family, Lab, Proto};
use common::{Test, pid, rules, run, status, status_of};
use serde_json::Value;
use std::process::Command;
use std::time::{Duration, Instant};

/// A tmux server of our own (`-L`), killed with everything in it when dropped, and its
/// socket file removed (tmux leaves it behind). Its pane stays when the TUI exits, so
/// that the test can read how it ended.
struct Tmux {
    socket: String,
    socket_path: Option<std::path::PathBuf>,
}

impl Tmux {
    fn start(command: &str, lab: &Lab) -> anyhow::Result<Tmux> {
        let mut tmux = Tmux {
            socket: format!("ct-test-{}", std::process::id()),
            socket_path: None,
        };
        let mut env = String::new();
        for (key, value) in lab.env() {
            env.push_str(&format!("{key}={} ", value.display()));
        }
        let status = Command::new("tmux")
            .args([
                "-L",
                &tmux.socket,
                "new-session",
                "-d",
                "-x",
                "120",
                "-y",
                "30",
            ])
            .arg(format!("env {env}{command}"))
            .args([";", "set-option", "-g", "remain-on-exit", "on"])
            .status()
            .context("tmux is needed for this test (apt-get install tmux)")?;
        ensure!(status.success(), "tmux new-session failed");
        let path = Command::new("tmux")
            .args([
                "-L",
                &tmux.socket,
                "display-message",
                "-p",
                "#{socket_path}",
            ])
            .output()?;
        let path = String::from_utf8_lossy(&path.stdout).trim().to_owned();
        tmux.socket_path = (!path.is_empty()).then(|| path.into());
        Ok(tmux)
    }

    fn keys(&self, keys: &[&str]) -> anyhow::Result<()> {
        for key in keys {
            let status = Command::new("tmux")
                .args(["-L", &self.socket, "send-keys", key])
                .status()?;
            ensure!(status.success(), "tmux send-keys {key} failed");
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    /// Runs a tmux command against this server and returns what it printed.
    fn ask(&self, args: &[&str]) -> anyhow::Result<String> {
        let output = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()?;
        ensure!(
            output.status.success(),
            "tmux {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    fn screen(&self) -> anyhow::Result<String> {
        self.ask(&["capture-pane", "-p"])
    }

    /// The PID of the process in the pane (the TUI).
    fn pane_pid(&self) -> anyhow::Result<i32> {
        let pid = self.ask(&["display-message", "-p", "#{pane_pid}"])?;
        pid.trim()
            .parse()
            .with_context(|| format!("pane PID {pid:?}"))
    }

    /// Waits (at most `timeout`) until the TUI has exited; returns how it ended.
    ///
    /// The kernel says so as soon as the process is a zombie (its exit status is field 52
    /// of /proc/PID/stat); tmux 3.3 on a loaded machine was seen to leave it unreaped for
    /// more than 10 s while calling the pane dead without a status.
    fn wait_exit(&self, timeout: Duration) -> anyhow::Result<Ended> {
        let started = Instant::now();
        let pid = self.pane_pid()?;
        loop {
            if let Some(ended) = self.ended(pid)? {
                println!(
                    "  the TUI ended {:?} after it was told to",
                    started.elapsed()
                );
                return Ok(ended);
            }
            ensure!(
                started.elapsed() < timeout,
                "the TUI (PID {pid}) has not ended after {timeout:?}; screen:\n{}",
                self.screen()?
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// How the pane's process `pid` ended, if it has.
    fn ended(&self, pid: i32) -> anyhow::Result<Option<Ended>> {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => {
                // the fields after the command name, which may hold spaces: state first
                let fields: Vec<&str> = stat
                    .rsplit_once(") ")
                    .map(|(_, rest)| rest.split(' ').collect())
                    .unwrap_or_default();
                if fields.first() != Some(&"Z") {
                    return Ok(None);
                }
                let code: i32 = fields
                    .get(49)
                    .and_then(|code| code.trim().parse().ok())
                    .with_context(|| format!("no exit code in {stat}"))?;
                Ok(Some(if code & 0x7f == 0 {
                    Ended::Status(code >> 8)
                } else {
                    Ended::Signal(code & 0x7f)
                }))
            }
            // reaped: tmux has its status, or (3.3 has no format for it) the signal on
            // the dead pane
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let status = self.ask(&["display-message", "-p", "#{pane_dead_status}"])?;
                if let Ok(status) = status.trim().parse() {
                    return Ok(Some(Ended::Status(status)));
                }
                let screen = self.screen()?;
                Ok(screen
                    .split("Pane is dead (signal ")
                    .nth(1)
                    .and_then(|rest| rest.split(',').next())
                    .and_then(|signal| signal.parse().ok())
                    .map(Ended::Signal))
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Waits (at most `seconds`) until the screen shows `text`.
    fn wait_for(&self, text: &str, seconds: u64) -> anyhow::Result<String> {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        loop {
            let screen = self.screen()?;
            if screen.contains(text) {
                return Ok(screen);
            }
            ensure!(
                Instant::now() < deadline,
                "the TUI never showed {text:?}; screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// How the process in the pane ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    Status(i32),
    Signal(i32),
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _gone = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
        if let Some(path) = &self.socket_path {
            let _removed = std::fs::remove_file(path);
        }
    }
}

/// Waits (at most `timeout`) until `pid` has a limit in `status --json`; returns its entry.
fn wait_listed(lab: &Lab, pid: u32, timeout: Duration) -> anyhow::Result<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(entry) = status_of(lab, pid)? {
            return Ok(entry);
        }
        ensure!(
            Instant::now() < deadline,
            "PID {pid} has no limit {timeout:?} after the keystrokes"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Writes the saved-limits file an earlier version of the TUI wrote after limiting `pid`'s
/// upload to `up` (this version saves rules instead, and still reads that file).
fn save_as_earlier_versions(lab: &Lab, pid: u32, up: u64) -> anyhow::Result<()> {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe"))?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // field 22 of stat, counted after the command name, which may hold spaces
    let start_time = stat
        .rsplit_once(") ")
        .and_then(|(_, rest)| rest.split(' ').nth(19))
        .and_then(|field| field.parse().ok())
        .with_context(|| format!("no start time in {stat}"))?;
    let mut saved = SavedLimits::default();
    saved.set(SavedLimit {
        pid,
        exe: exe.display().to_string(),
        start_time,
        name: "endpoint".into(),
        up: Some(up),
        down: None,
    });
    std::fs::write(lab.saved_limits(), serde_json::to_vec(&saved)?)?;
    Ok(())
}

/// Waits (at most `timeout`) until `until` holds of the rules `rules --json` lists.
fn wait_rules(
    lab: &Lab,
    timeout: Duration,
    until: impl Fn(&[Value]) -> bool,
) -> anyhow::Result<Vec<Value>> {
    let deadline = Instant::now() + timeout;
    loop {
        let listed = rules(lab)?;
        if until(&listed) {
            return Ok(listed);
        }
        ensure!(
            Instant::now() < deadline,
            "the rules are not as expected {timeout:?} after the keystrokes: {listed:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn throttling_with_keystrokes_holds_the_limit() -> anyhow::Result<()> {
    const LIMIT: f64 = 1024.0 * 1024.0;
    let lab = Lab::new("tui-e2e", None)?;
    let mut server = lab.server(Proto::Tcp, Family::V4, None)?;
    let mut client = lab.client(&server, Proto::Tcp, None, None)?;
    let pid = pid(&client);
    let tui = Tmux::start(env!("CARGO_BIN_EXE_chadthrottle"), &lab)?;
    client.start_send(16.0, 64 << 30)?;
    tui.wait_for(&pid, 10)?;
    // t opens the dialog on the download field; Tab to upload; 1M; Enter
    tui.keys(&["t", "Tab", "1", "M", "Enter"])?;
    // read back from the kernel (how the TUI draws a limit is the TUI crate's tests' job)
    let limit = wait_listed(&lab, client.pid(), Duration::from_secs(10))?;
    let limited_at = chadthrottle_lab::now_ns();
    let screen = tui.screen()?;
    println!("{}", screen.lines().take(3).collect::<Vec<_>>().join("\n"));
    ensure!(limit["up"] == 1 << 20, "status says up = {}", limit["up"]);
    // the TUI chooses backends as `limit` does: shaping by default
    ensure!(
        limit["backend"]["up"] == "shaping",
        "status says the backend is {}",
        limit["backend"]["up"]
    );
    ensure!(
        limit["down"].is_null(),
        "status says down = {}",
        limit["down"]
    );

    // `a` groups the table by application, closed: the client's PID leaves the table; `→`
    // opens the selected application (the client's, where the selection was): it is back,
    // under its application's row; `a` again lists processes
    let starts_a_row = |screen: &str| screen.lines().any(|line| line.starts_with(&pid));
    tui.keys(&["a"])?;
    let grouped = tui.wait_for("grouped by application", 5)?;
    ensure!(
        grouped.contains('▸') && !starts_a_row(&grouped),
        "applications, closed:\n{grouped}"
    );
    tui.keys(&["Right"])?;
    let opened = tui.wait_for("▾", 5)?;
    let lines: Vec<&str> = opened.lines().collect();
    let app_row = lines.iter().position(|line| line.contains('▾'));
    let own_row = lines.iter().position(|line| line.starts_with(&pid));
    ensure!(
        matches!((app_row, own_row), (Some(app), Some(own)) if own > app),
        "the client's row under its open application:\n{opened}"
    );
    tui.keys(&["a"])?;
    tui.wait_for("one row per process", 5)?;

    let report = client.finish_send()?;
    std::thread::sleep(Duration::from_millis(150));
    let bins = server.bins()?;
    let steady = summarize(&bins.between(limited_at + 3_000_000_000, report.end_ns));
    let error = (steady.rate - LIMIT) / LIMIT;
    println!(
        "  upload after the keystrokes: {:.1} KiB/s against 1024 KiB/s ({:+.1} %, {} bins)",
        steady.rate / 1024.0,
        error * 100.0,
        steady.bins
    );
    ensure!(
        steady.bins >= 50,
        "too short a steady window: {} bins",
        steady.bins
    );
    ensure!(
        error.abs() <= 0.10,
        "the limit set in the TUI does not hold: {:+.1} %",
        error * 100.0
    );

    tui.keys(&["q"])?;
    let ended = tui.wait_exit(Duration::from_secs(5))?;
    ensure!(
        ended == Ended::Status(0),
        "the TUI ended with {ended:?} on q"
    );
    // the limit outlives the TUI, as limits do
    let limits = |lab: &Lab| -> anyhow::Result<usize> {
        Ok(status(lab)?["limits"]
            .as_array()
            .context("limits is an array")?
            .len())
    };
    ensure!(limits(&lab)? == 1, "the limit went away with the TUI");
    drop(tui);

    // a PID limit is not saved any more: it lasts as long as its process
    ensure!(!lab.saved_limits().exists(), "the TUI saved a PID limit");
    // an earlier version's saved limit: after a reset, --no-restore leaves it off, the
    // default sets it again
    run(&lab, &["reset"])?;
    save_as_earlier_versions(&lab, client.pid(), 1 << 20)?;
    let binary = env!("CARGO_BIN_EXE_chadthrottle");
    let tui = Tmux::start(&format!("{binary} --no-restore"), &lab)?;
    tui.wait_for("↓ RATE", 10)?;
    std::thread::sleep(Duration::from_secs(2));
    ensure!(limits(&lab)? == 0, "--no-restore restored");
    tui.keys(&["q"])?;
    drop(tui);
    // traffic again, so that this run of the TUI lists the client
    client.start_send(10.0, 64 << 30)?;
    let rules_file = lab.saved_limits().with_file_name("rules.toml");
    let command = format!("{binary} --rules-file {}", rules_file.display());
    let tui = Tmux::start(&command, &lab)?;
    tui.wait_for("restored 1 saved limit", 10)?;
    ensure!(limits(&lab)? == 1, "the saved limit was not restored");

    // lifted with r, it is forgotten
    tui.wait_for(&pid, 10)?;
    tui.keys(&["r"])?;
    tui.wait_for("limit removed", 10)?;
    ensure!(limits(&lab)? == 0, "r left the limit");
    let saved: SavedLimits = serde_json::from_slice(&std::fs::read(lab.saved_limits())?)?;
    ensure!(saved.limits.is_empty(), "the lifted limit is still saved");

    // its executable: t, then → → past this process and its tree; 2M up; Enter
    tui.keys(&["t", "Right", "Right", "Tab", "2", "M", "Enter"])?;
    let exe = std::fs::read_link(format!("/proc/{}/exe", client.pid()))?;
    let target = format!("exe {}", exe.display());
    let listed = wait_rules(&lab, Duration::from_secs(10), |rules| !rules.is_empty())?;
    ensure!(listed.len() == 1, "one rule expected: {listed:?}");
    let rule = &listed[0];
    ensure!(rule["target"] == target.as_str(), "rule {rule}");
    ensure!(
        rule["up"] == 2 << 20 && rule["down"].is_null(),
        "rule {rule}"
    );
    ensure!(rule["mode"] == "shared", "rule {rule}");
    let members = rule["members"].as_array().context("members")?;
    ensure!(
        members.iter().any(|m| m["pid"] == client.pid()),
        "the client is not a member of {rule}"
    );
    // the rule is set first, then written into the file
    let deadline = Instant::now() + Duration::from_secs(10);
    let file = loop {
        match std::fs::read_to_string(&rules_file) {
            Ok(file) => break file,
            Err(error) if Instant::now() < deadline => {
                ensure!(error.kind() == std::io::ErrorKind::NotFound, "{error}");
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(error) => anyhow::bail!(
                "the rule was not saved in {}: {error}; screen:\n{}",
                rules_file.display(),
                tui.screen()?
            ),
        }
    };
    ensure!(
        file.contains(&format!("exe = \"{}\"", exe.display())) && file.contains("up = \"2MB\""),
        "the rules file holds:\n{file}"
    );
    println!("  the dialog's rule: {target}, saved as\n{file}");
    client.finish_send()?;

    // SIGTERM ends it at once
    let tui_pid = tui.pane_pid()?;
    // SAFETY: kill(2) with a PID this test's tmux server started and a signal number.
    ensure!(
        unsafe { libc::kill(tui_pid, libc::SIGTERM) } == 0,
        "kill failed"
    );
    let ended = tui.wait_exit(Duration::from_secs(5))?;
    println!("  on SIGTERM the TUI ended: {ended:?}");
    Ok(())
}

const TESTS: &[(&str, Test)] = &[(
    "throttling_with_keystrokes_holds_the_limit",
    throttling_with_keystrokes_holds_the_limit,
)];

fn main() {
    common::main(TESTS);
}
