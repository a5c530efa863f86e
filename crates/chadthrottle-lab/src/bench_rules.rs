//! What rules cost, from the kernel's run-time statistics: the policer program's time per
//! packet of an unlimited process and of a rule member, with no rule and with many (most
//! matching nothing, one governing many sleeping processes), and the exec, fork and exit
//! hooks' time per run while a shell starts short processes (a shell no rule governs, and
//! one a rule governs); and how long `set_rule` takes (it runs the task iterator over
//! every process each time) and one `set_rules` of the many. Optionally the member table
//! is filled to near its capacity with entries no process can own (tgids above the
//! kernel's PID_MAX_LIMIT, 2^22), written with `bpftool batch`, to show that a full-sized
//! table does not change the per-packet cost.

use crate::{Family, Lab, Proto};
use anyhow::{Context as _, ensure};
use chadthrottle_core::PerDirection;
use chadthrottle_core::status::{DirectionLimit, Enforcement};
use chadthrottle_kernel::Datapath;
use chadthrottle_kernel::names::{
    PROG_EGRESS, PROG_PROCESS_EXEC, PROG_PROCESS_EXIT, PROG_PROCESS_FORK, link_pin,
};
use chadthrottle_kernel::query;
use chadthrottle_kernel::rule_keys::{name_key, uid_key};
use chadthrottle_kernel::rules::{RuleEntry, RuleTarget};
use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

/// `nobody`: the members' user.
const NOBODY: u32 = 65_534;

/// One run's figures.
#[derive(Debug, Clone)]
pub struct RulesCost {
    pub rules: usize,
    pub members: usize,
    /// Mean wall time of one `set_rule` (the first two rules).
    pub set_rule_ms: f64,
    /// Wall time of one `set_rules` with the rest of the rules.
    pub set_rest_ms: f64,
    /// Wall time of listing every rule with its members and counters (`rules`; the TUI's
    /// rules view lists them once a second).
    pub list_ms: f64,
    /// `ct_egress` per run, an unlimited process sending.
    pub unlimited_ns: f64,
    /// `ct_egress` per run, a member of a shared rule (a rate it never reaches) sending.
    pub member_ns: f64,
    /// The entries in `ct_members` while the packets were counted.
    pub member_entries: usize,
    pub exec_ns: f64,
    pub exec_runs: u64,
    pub fork_ns: f64,
    pub fork_runs: u64,
    /// The hooks while a shell that the user rule governs (with rules) starts processes.
    pub member_exec_ns: f64,
    pub member_fork_ns: f64,
    /// The exit hook per run: the shell no rule governs (its 500 processes and itself),
    /// and the member shell.
    pub exit_ns: f64,
    pub member_exit_ns: f64,
}

/// No process has a tgid this high (PID_MAX_LIMIT on 64-bit kernels is 2^22).
const FIRST_FAKE_TGID: u32 = 1 << 22;

/// Fills the pinned `ct_members` with `count` entries of tgids no process can have, in
/// one `bpftool batch` (one update per entry).
fn fill_members(lab: &Lab, count: usize) -> anyhow::Result<()> {
    let map = lab.pin_dir().join(chadthrottle_kernel::names::MAP_MEMBERS);
    let hex = |bytes: &[u8]| {
        bytes
            .iter()
            .map(|byte| format!("0x{byte:02x}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    // struct ct_member: start_time 0, rule 1 (the user rule), padding
    let mut value = [0u8; 16];
    value[8..12].copy_from_slice(&1u32.to_ne_bytes());
    let value = hex(&value);
    let mut batch = String::new();
    for index in 0..u32::try_from(count)? {
        let key = hex(&(FIRST_FAKE_TGID + index).to_ne_bytes());
        batch.push_str(&format!(
            "map update pinned {} key {key} value {value}\n",
            map.display()
        ));
    }
    let file = std::env::temp_dir().join(format!("ct-fill-members-{}.batch", std::process::id()));
    std::fs::write(&file, batch)?;
    let output = Command::new("bpftool")
        .args(["batch", "file"])
        .arg(&file)
        .output()
        .context("run bpftool batch")?;
    let _gone = std::fs::remove_file(&file);
    ensure!(
        output.status.success(),
        "bpftool batch: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

/// Entries of the pinned map `name` (bpftool, which fails loudly).
fn entries(lab: &Lab, name: &str) -> anyhow::Result<usize> {
    let output = Command::new("bpftool")
        .args(["-j", "map", "dump", "pinned"])
        .arg(lab.pin_dir().join(name))
        .output()
        .context("run bpftool")?;
    ensure!(output.status.success(), "bpftool map dump: {output:?}");
    let dump: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    Ok(dump.as_array().context("a dump is an array")?.len())
}

/// A shell in the lab's cgroup that starts 500 `/bin/true` when told to.
fn starter(lab: &Lab, uid: Option<u32>) -> anyhow::Result<Gated> {
    Gated::start(lab, "for i in $(seq 500); do /bin/true; done", uid)
}

/// The (exec, fork, exit) hooks' (runs, ns per run) while `starter` runs.
fn hooks(programs: [u32; 3], mut starter: Gated) -> anyhow::Result<[(u64, f64); 3]> {
    let stats = query::enable_run_time_stats()?;
    let before = query::program_run_times(&programs);
    starter.go()?;
    let status = starter.0.wait()?;
    let after = query::program_run_times(&programs);
    drop(stats);
    ensure!(
        status.success(),
        "the shell of short processes failed: {status}"
    );
    let per_run = |id: u32| {
        let early = before.iter().find(|p| p.id == id);
        let late = after.iter().find(|p| p.id == id);
        match (early, late) {
            (Some(early), Some(late)) if late.runs > early.runs => {
                let runs = late.runs - early.runs;
                (runs, (late.run_ns - early.run_ns) as f64 / runs as f64)
            }
            _ => (0, 0.0),
        }
    };
    Ok(programs.map(per_run))
}

/// A shell in the lab's cgroup that runs `script` when told to (a line on its stdin);
/// killed on drop with every process it started (its process group).
struct Gated(Child);

impl Gated {
    fn start(lab: &Lab, script: &str, uid: Option<u32>) -> anyhow::Result<Gated> {
        let mut command = Command::new("sh");
        command
            .args(["-c", &format!("read line; {script}")])
            .stdin(Stdio::piped())
            .process_group(0);
        if let Some(uid) = uid {
            command.uid(uid).gid(uid);
        }
        let gated = Gated(command.spawn().context("start sh")?);
        std::fs::write(lab.cgroup().join("cgroup.procs"), gated.0.id().to_string())
            .context("move sh into the lab's cgroup")?;
        Ok(gated)
    }

    fn go(&mut self) -> anyhow::Result<()> {
        writeln!(self.0.stdin.as_mut().context("stdin")?, "go")?;
        Ok(())
    }
}

impl Drop for Gated {
    fn drop(&mut self) {
        if let Ok(group) = i32::try_from(self.0.id()) {
            // SAFETY: kill(2) with a negative PID signals that process group; no memory.
            unsafe { libc::kill(-group, libc::SIGKILL) };
        }
        let _reaped = self.0.wait();
    }
}

/// The id of the program the pinned link `program` holds.
fn linked_program(lab: &Lab, program: &str) -> anyhow::Result<u32> {
    let output = Command::new("bpftool")
        .args(["-j", "link", "show", "pinned"])
        .arg(lab.pin_dir().join(link_pin(program)))
        .output()
        .context("run bpftool")?;
    ensure!(output.status.success(), "bpftool link show: {output:?}");
    let link: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    link["prog_id"]
        .as_u64()
        .and_then(|id| u32::try_from(id).ok())
        .with_context(|| format!("no prog_id in {link}"))
}

/// (runs, ns per run) of program `id` while `work` runs.
fn timed(id: u32, work: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<(u64, f64)> {
    let stats = query::enable_run_time_stats()?;
    let before = query::program_run_times(&[id]);
    work()?;
    let after = query::program_run_times(&[id]);
    drop(stats);
    Ok(match (before.first(), after.first()) {
        (Some(early), Some(late)) if late.runs > early.runs => {
            let runs = late.runs - early.runs;
            (runs, (late.run_ns - early.run_ns) as f64 / runs as f64)
        }
        _ => (0, 0.0),
    })
}

fn rule(id: u32, rank: u8, target: RuleTarget, rate: u64) -> RuleEntry {
    RuleEntry {
        id,
        order: id,
        rank,
        each: false,
        target,
        limits: PerDirection {
            up: Some(DirectionLimit {
                rate,
                burst: rate,
                enforcement: Enforcement::Policer,
                by_default: false,
            }),
            down: None,
        },
        expires_at_ns: 0,
    }
}

/// `rules` rules (at least 2: a tree rule for the sending member, one for `members` sleeping
/// processes of `nobody`, the rest name rules that match nothing), then the costs.
pub fn rules_cost(
    lab: &Lab,
    rules: usize,
    members: usize,
    filled: usize,
    seconds: f64,
) -> anyhow::Result<RulesCost> {
    // the bpffs of the previous row is sometimes busy for a moment
    let mut tries = 0;
    while let Err(error) = chadthrottle_kernel::reset(lab.pin_dir()) {
        tries += 1;
        ensure!(tries < 20, "reset the previous row: {error}");
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    let mut datapath: Datapath = crate::lab_datapath::install(lab)?;
    let server = lab.server(Proto::Tcp, Family::V4, None)?;
    let mut unlimited = lab.client(&server, Proto::Tcp, None, None)?;
    let mut member = lab.client(&server, Proto::Tcp, None, None)?;
    let mut sleepers = Gated::start(
        lab,
        &format!("for i in $(seq {members}); do sleep 600 & done; wait"),
        Some(NOBODY),
    )?;
    sleepers.go()?;
    // started before the rules, so that the task iterator makes it a member of the user
    // rule (moved into the lab's cgroup after its exec, no hook would)
    let member_starter = starter(lab, Some(NOBODY))?;
    let mut set_ms = Vec::new();
    let mut set_rest_ms = 0.0;
    let mut list_ms = 0.0;
    if rules > 0 {
        let started = Instant::now();
        datapath.set_rule(&rule(1, 5, RuleTarget::Match(uid_key(NOBODY)), 1 << 30))?;
        set_ms.push(started.elapsed().as_secs_f64() * 1e3);
        let started = Instant::now();
        datapath.set_rule(&rule(2, 1, RuleTarget::Tree(member.pid()), 4 << 30))?;
        set_ms.push(started.elapsed().as_secs_f64() * 1e3);
        let rest: Vec<RuleEntry> = (3..=u32::try_from(rules)?)
            .map(|id| {
                rule(
                    id,
                    3,
                    RuleTarget::Match(name_key(&format!("ctb-{id:05}"))),
                    1 << 20,
                )
            })
            .collect();
        if !rest.is_empty() {
            let started = Instant::now();
            datapath.set_rules(&rest)?;
            set_rest_ms = started.elapsed().as_secs_f64() * 1e3;
        }
        // the tree rule took one client: the other one stays unlimited
        let started = Instant::now();
        let listed = datapath.rules()?;
        list_ms = started.elapsed().as_secs_f64() * 1e3;
        let governed: usize = listed.iter().map(|rule| rule.members.len()).sum();
        ensure!(
            governed >= members,
            "{governed} processes governed, {members} sleepers asked for"
        );
        let shell = member_starter.0.id();
        ensure!(
            listed
                .iter()
                .any(|rule| rule.members.iter().any(|member| member.pid == shell)),
            "the shell of nobody is no member"
        );
    }
    if filled > 0 {
        // the entries beyond this row's sleepers (the previous row's may not all have
        // exited yet) count towards the fill, so that the table does not overflow
        let present = entries(lab, chadthrottle_kernel::names::MAP_MEMBERS)?;
        fill_members(lab, filled.saturating_sub(present.saturating_sub(members)))?;
    }
    let member_entries = entries(lab, chadthrottle_kernel::names::MAP_MEMBERS)?;
    let egress = query::cgroup_programs(lab.cgroup())?
        .into_iter()
        .find(|program| program.name == PROG_EGRESS)
        .context("ct_egress is attached")?
        .id;
    let (_, unlimited_ns) = timed(egress, || unlimited.send(seconds, u64::MAX).map(drop))?;
    let (_, member_ns) = timed(egress, || member.send(seconds, u64::MAX).map(drop))?;
    let programs = [
        linked_program(lab, PROG_PROCESS_EXEC)?,
        linked_program(lab, PROG_PROCESS_FORK)?,
        linked_program(lab, PROG_PROCESS_EXIT)?,
    ];
    let [(exec_runs, exec_ns), (fork_runs, fork_ns), (_, exit_ns)] =
        hooks(programs, starter(lab, None)?)?;
    let [
        (_, member_exec_ns),
        (_, member_fork_ns),
        (_, member_exit_ns),
    ] = hooks(programs, member_starter)?;
    drop(sleepers);
    server.quit()?;
    Ok(RulesCost {
        rules,
        members,
        set_rule_ms: if set_ms.is_empty() {
            0.0
        } else {
            set_ms.iter().sum::<f64>() / set_ms.len() as f64
        },
        set_rest_ms,
        list_ms,
        unlimited_ns,
        member_ns,
        member_entries,
        exec_ns,
        exec_runs,
        fork_ns,
        fork_runs,
        exit_ns,
        member_exec_ns,
        member_fork_ns,
        member_exit_ns,
    })
}
