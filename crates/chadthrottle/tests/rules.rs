//! Kernel tests of rules (limits by application) in the network lab, through the kernel
//! crate's API (`Datapath::set_rule`, `remove_rule`, `rules`): which processes the
//! datapath's resolver makes members — at exec, at fork, at a socket, by the task
//! iterator — and what their budgets hold. Root only; ignored with the reason printed
//! otherwise, like the other kernel tests.

pub mod common;

use anyhow::{Context as _, ensure};
use chadthrottle_core::status::{DirectionLimit, Enforcement};
use chadthrottle_core::{PerDirection, ProcessRef};
use chadthrottle_kernel::Datapath;
use chadthrottle_kernel::rule_keys::{cgroup_key, exe_key, name_key, uid_key};
use chadthrottle_kernel::rules::{RuleEntry, RuleTarget};
use chadthrottle_lab::programs::Programs;
use chadthrottle_lab::{Endpoint, Family, Lab, Proto};
use common::users::{NOBODY, UsersProcess};
use common::{KIB, MAX_BYTES, MIB, Test, steady, within};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// As the PID tests (datapath.rs): a policed transfer of 10 s, ±10 %.
const POLICED_SECONDS: f64 = 10.0;
const TOLERANCE: f64 = 0.10;

fn policer(rate: u64, burst: u64) -> Option<DirectionLimit> {
    Some(DirectionLimit {
        rate,
        burst,
        enforcement: Enforcement::Policer,
        by_default: false,
    })
}

fn rule(id: u32, rank: u8, target: RuleTarget, up: Option<DirectionLimit>) -> RuleEntry {
    RuleEntry {
        id,
        order: id,
        rank,
        each: false,
        target,
        limits: PerDirection { up, down: None },
        expires_at_ns: 0,
    }
}

fn install(lab: &Lab) -> anyhow::Result<Datapath> {
    Datapath::install(&lab.config()).context("install the datapath")
}

/// The PIDs rule `id` governs now, as the kernel's `ct_members` says.
fn members(datapath: &Datapath, id: u32) -> anyhow::Result<Vec<u32>> {
    let rules = datapath.rules()?;
    let rule = rules
        .iter()
        .find(|rule| rule.id == id)
        .with_context(|| format!("rule {id} is not listed"))?;
    Ok(rule
        .members
        .iter()
        .map(|member: &ProcessRef| member.pid)
        .collect())
}

/// Waits (at most 2 s) until `pid`'s membership of rule `id` is `wanted`.
fn await_member(datapath: &Datapath, id: u32, pid: u32, wanted: bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let now = members(datapath, id)?;
        if now.contains(&pid) == wanted {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "PID {pid} {} a member of rule {id}: members {now:?}",
            if wanted { "is not" } else { "is still" }
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The entries of the pinned map `name`, read with bpftool (which fails loudly).
fn entries(lab: &Lab, name: &str) -> anyhow::Result<usize> {
    let path = lab.pin_dir().join(name);
    let output = Command::new("bpftool")
        .args(["-j", "map", "dump", "pinned"])
        .arg(&path)
        .output()
        .context("run bpftool")?;
    ensure!(
        output.status.success(),
        "bpftool map dump {}: {}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let dump: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    Ok(dump.as_array().context("a dump is an array")?.len())
}

/// Waits (at most 2 s) until the pinned map `name` holds `wanted` entries; `after` says
/// what should have brought them there.
fn await_entries(lab: &Lab, name: &str, wanted: usize, after: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let now = entries(lab, name)?;
        if now == wanted {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "{name} has {now} entries {after}, not {wanted}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Four clients of one executable, two started before the rule and two after, share one
/// budget: together they move what it allows, and no more.
fn a_shared_exe_rule_holds_four_processes_to_one_budget() -> anyhow::Result<()> {
    let lab = Lab::new("rules-shared", None)?;
    let programs = Programs::new("shared")?;
    let app = programs.install("ct-app")?;
    let mut server = lab.server(Proto::Tcp, Family::V4, None)?;
    let mut clients = vec![
        lab.client_program(&server, Proto::Tcp, &app)?,
        lab.client_program(&server, Proto::Tcp, &app)?,
    ];
    let mut datapath = install(&lab)?;
    let applied = datapath.set_rule(&rule(
        1,
        2,
        RuleTarget::Match(exe_key(&app)?),
        policer(2 << 20, 512 << 10),
    ))?;
    println!("  set: {applied:?}");
    ensure!(
        applied.members == 2 && applied.backfilled_sockets >= 2,
        "the two clients already running are members with their sockets: {applied:?}"
    );
    clients.push(lab.client_program(&server, Proto::Tcp, &app)?);
    clients.push(lab.client_program(&server, Proto::Tcp, &app)?);
    let mut now = members(&datapath, 1)?;
    now.sort_unstable();
    let mut pids: Vec<u32> = clients.iter().map(Endpoint::pid).collect();
    pids.sort_unstable();
    ensure!(now == pids, "members {now:?}, clients {pids:?}");
    for client in &mut clients {
        client.start_send(POLICED_SECONDS, MAX_BYTES)?;
    }
    let mut reports = Vec::new();
    for client in &mut clients {
        reports.push(client.finish_send()?);
    }
    within(
        "four members' uploads together",
        &steady(&mut server, &reports[0])?,
        2.0 * MIB,
        TOLERANCE,
    )?;
    let listed = datapath.rules()?;
    let stats = &listed[0].stats.up;
    ensure!(
        stats.dropped_packets > 0 && stats.bytes > 10 << 20,
        "the shared budget counted: {stats:?}"
    );
    Ok(())
}

/// A shared shaping rule: its one budget is divided among the sockets of all its
/// members, so two processes together are paced to it, with (almost) nothing left for the
/// policer behind the shapers to drop.
fn a_shared_shaping_rule_paces_its_members_together() -> anyhow::Result<()> {
    let lab = Lab::new("rules-shaped", None)?;
    let programs = Programs::new("shaped")?;
    let app = programs.install("ct-shaped")?;
    let mut server = lab.server(Proto::Tcp, Family::V4, None)?;
    let mut first = lab.client_program(&server, Proto::Tcp, &app)?;
    let mut second = lab.client_program(&server, Proto::Tcp, &app)?;
    let mut datapath = install(&lab)?;
    let shaped = Some(DirectionLimit {
        rate: 2 << 20,
        burst: 2 << 20,
        enforcement: Enforcement::Shaping,
        by_default: false,
    });
    let applied = datapath.set_rule(&rule(1, 2, RuleTarget::Match(exe_key(&app)?), shaped))?;
    ensure!(
        applied.members == 2 && applied.shaped_sockets == 2,
        "both members' open connections shaped: {applied:?}"
    );
    first.start_send(POLICED_SECONDS, MAX_BYTES)?;
    second.start_send(POLICED_SECONDS, MAX_BYTES)?;
    let report = first.finish_send()?;
    second.finish_send()?;
    // the aggregate, not its smoothness: two paced flows in 100 ms bins vary more than one
    within(
        "two members shaped together",
        &steady(&mut server, &report)?,
        2.0 * MIB,
        0.05,
    )?;
    let stats = datapath.rules()?[0].stats.up;
    println!(
        "  the policer behind dropped {} of {} packets",
        stats.dropped_packets, stats.packets
    );
    ensure!(
        stats.dropped_packets * 100 <= stats.packets,
        "more than 1 % dropped: the shapers did not hold it: {stats:?}"
    );
    Ok(())
}

/// `each`: every member gets the whole rate for itself.
fn each_member_of_an_each_rule_has_its_own_budget() -> anyhow::Result<()> {
    let lab = Lab::new("rules-each", None)?;
    let programs = Programs::new("each")?;
    let app = programs.install("ct-each")?;
    let mut server = lab.server(Proto::Tcp, Family::V4, None)?;
    let mut first = lab.client_program(&server, Proto::Tcp, &app)?;
    let mut datapath = install(&lab)?;
    let each = RuleEntry {
        each: true,
        ..rule(
            1,
            2,
            RuleTarget::Match(exe_key(&app)?),
            policer(MIB as u64, 512 << 10),
        )
    };
    datapath.set_rule(&each)?;
    let mut second = lab.client_program(&server, Proto::Tcp, &app)?;
    first.start_send(POLICED_SECONDS, MAX_BYTES)?;
    second.start_send(POLICED_SECONDS, MAX_BYTES)?;
    let report = first.finish_send()?;
    second.finish_send()?;
    within(
        "two members' uploads together",
        &steady(&mut server, &report)?,
        2.0 * MIB,
        TOLERANCE,
    )?;
    let listed = datapath.rules()?;
    ensure!(
        listed[0].members.len() == 2,
        "members: {:?}",
        listed[0].members
    );
    // a member's own budget is the rule's, not a PID limit: `status` lists none
    for pid in [first.pid(), second.pid()] {
        let entry = common::status_of(&lab, pid)?;
        ensure!(entry.is_none(), "status lists member {pid}: {entry:?}");
    }
    // a PID limit replaces a member's budget; lifted, the member gets its budget back
    let first_pid = common::pid(&first);
    common::run(&lab, &["limit", "--pid", &first_pid, "--up", "3M"])?;
    ensure!(
        common::status_of(&lab, first.pid())?.is_some(),
        "the PID limit is listed"
    );
    common::run(&lab, &["unlimit", "--pid", &first_pid])?;
    let found = entries(&lab, "ct_limits")?;
    ensure!(
        found == 4,
        "ct_limits has {found} entries, not each member's two"
    );
    Ok(())
}

/// A process started under a rule is held from its first packet: what reaches the server
/// in its first 200 ms is the burst and 200 ms of the rate, not what the veth carries.
fn a_process_execd_under_a_rule_is_limited_from_its_first_packet() -> anyhow::Result<()> {
    const RATE: u64 = 256 << 10;
    const BURST: u64 = 64 << 10;
    let lab = Lab::new("rules-first", None)?;
    let programs = Programs::new("first")?;
    let app = programs.install("ct-first")?;
    let mut server = lab.server(Proto::Tcp, Family::V4, None)?;
    let mut datapath = install(&lab)?;
    datapath.set_rule(&rule(
        1,
        2,
        RuleTarget::Match(exe_key(&app)?),
        policer(RATE, BURST),
    ))?;
    let mut client = lab.client_program(&server, Proto::Tcp, &app)?;
    client.send(1.0, MAX_BYTES)?;
    let bins = server.bins()?;
    let first: Vec<u64> = bins
        .bytes
        .iter()
        .copied()
        .skip_while(|&bytes| bytes == 0)
        .take(2)
        .collect();
    let early: u64 = first.iter().sum();
    let allowed = BURST + RATE / 5;
    println!(
        "  first 200 ms: {} KiB (allowed {} KiB)",
        early >> 10,
        allowed >> 10
    );
    // 10 % for packets in flight across the bins' edges
    ensure!(
        early as f64 <= allowed as f64 * 1.1,
        "the first 200 ms moved {early} bytes, more than the burst and the rate allow ({allowed})"
    );
    ensure!(early > 0, "nothing arrived");
    Ok(())
}

/// Name, uid and cgroup rules match the processes they name; a process that takes or
/// drops the name, becomes the user, or is moved out of a cgroup target, follows at its
/// next socket.
fn name_uid_and_cgroup_rules_match_and_a_changed_process_follows() -> anyhow::Result<()> {
    let lab = Lab::new("rules-kinds", None)?;
    let programs = Programs::new("kinds")?;
    let named = programs.install("ct-named")?;
    let server = lab.server(Proto::Tcp, Family::V4, None)?;
    let mut datapath = install(&lab)?;
    let limit = policer(MIB as u64, 512 << 10);

    datapath.set_rule(&rule(1, 3, RuleTarget::Match(name_key("ct-named")), limit))?;
    let by_name = lab.client_program(&server, Proto::Tcp, &named)?;
    await_member(&datapath, 1, by_name.pid(), true)?;

    // a process that takes the name later follows the rule from its next socket
    let mut renamed = lab.client(&server, Proto::Tcp, None, None)?;
    ensure!(renamed.rename("ct-named")? == "ct-named", "renamed");
    ensure!(
        !members(&datapath, 1)?.contains(&renamed.pid()),
        "no hook ran since the rename"
    );
    renamed.open()?;
    await_member(&datapath, 1, renamed.pid(), true)?;
    renamed.rename("ct-other")?;
    renamed.open()?;
    await_member(&datapath, 1, renamed.pid(), false)?;

    let user = UsersProcess::start(&lab)?;
    datapath.set_rule(&rule(2, 5, RuleTarget::Match(uid_key(NOBODY)), limit))?;
    await_member(&datapath, 2, user.0.id(), true)?;
    ensure!(
        !members(&datapath, 2)?.contains(&by_name.pid()),
        "a root process is not nobody's"
    );
    // a process that becomes nobody follows the user rule from its next socket
    let mut setuid = lab.client(&server, Proto::Tcp, None, None)?;
    ensure!(setuid.become_user(NOBODY)? == NOBODY, "became nobody");
    ensure!(
        !members(&datapath, 2)?.contains(&setuid.pid()),
        "no hook ran since setuid"
    );
    setuid.open()?;
    await_member(&datapath, 2, setuid.pid(), true)?;

    let sub = SubCgroup::new(&lab)?;
    let mut moved = lab.client(&server, Proto::Tcp, None, None)?;
    sub.enter(moved.pid())?;
    datapath.set_rule(&rule(
        3,
        4,
        RuleTarget::Match(cgroup_key(&sub.0, lab.cgroup())?),
        limit,
    ))?;
    await_member(&datapath, 3, moved.pid(), true)?;
    std::fs::write(lab.cgroup().join("cgroup.procs"), moved.pid().to_string())
        .context("move the client back")?;
    // still a member until it creates a socket
    ensure!(members(&datapath, 3)?.contains(&moved.pid()));
    moved.open()?;
    await_member(&datapath, 3, moved.pid(), false)?;

    // a cgroup outside the datapath's is refused
    let outside = chadthrottle_kernel::mounts::cgroup2_root()?;
    ensure!(
        cgroup_key(&outside, lab.cgroup()).is_err(),
        "the cgroup2 root is outside the lab's"
    );
    Ok(())
}

/// One rule governs a process: the lowest rank (tree, exe, name, cgroup, user), then the
/// lowest order; removing the governing rule hands the process to the next it matches.
fn the_lowest_rank_then_the_lowest_order_governs() -> anyhow::Result<()> {
    let lab = Lab::new("rules-order", None)?;
    let programs = Programs::new("order")?;
    let app = programs.install("ct-order")?;
    let server = lab.server(Proto::Tcp, Family::V4, None)?;
    let sub = SubCgroup::new(&lab)?;
    let client = lab.client_program(&server, Proto::Tcp, &app)?;
    sub.enter(client.pid())?;
    let mut datapath = install(&lab)?;
    let limit = policer(MIB as u64, 512 << 10);
    let pid = client.pid();
    let governs = |datapath: &Datapath, id: u32| -> anyhow::Result<()> {
        for rule in datapath.rules()? {
            let member = rule.members.iter().any(|member| member.pid == pid);
            ensure!(
                member == (rule.id == id),
                "rule {} {} PID {pid}; rule {id} should govern it alone",
                rule.id,
                if member { "governs" } else { "does not govern" }
            );
        }
        Ok(())
    };
    // two cgroup rules match it (its own cgroup and the lab's, above it): order decides
    let by_order = |id: u32, order: u32, cgroup: &Path| -> anyhow::Result<RuleEntry> {
        Ok(RuleEntry {
            order,
            ..rule(
                id,
                4,
                RuleTarget::Match(cgroup_key(cgroup, lab.cgroup())?),
                limit,
            )
        })
    };
    datapath.set_rules(&[by_order(10, 2, &sub.0)?, by_order(11, 1, lab.cgroup())?])?;
    governs(&datapath, 11)?;
    datapath.set_rule(&by_order(10, 0, &sub.0)?)?;
    governs(&datapath, 10)?;
    // a name rule (rank 3) beats both, an exe rule (rank 2) the name rule
    datapath.set_rule(&rule(12, 3, RuleTarget::Match(name_key("ct-order")), limit))?;
    governs(&datapath, 12)?;
    datapath.set_rule(&rule(13, 2, RuleTarget::Match(exe_key(&app)?), limit))?;
    governs(&datapath, 13)?;
    // a tree rule (rank 1) beats everything
    datapath.set_rule(&rule(14, 1, RuleTarget::Tree(pid), limit))?;
    governs(&datapath, 14)?;
    // each removal hands it to the next rule it matches
    for (removed, next) in [(14, 13), (13, 12), (12, 10), (10, 11)] {
        ensure!(datapath.remove_rule(removed)?, "rule {removed} was there");
        governs(&datapath, next)?;
    }
    Ok(())
}

/// A full rule or member table is an error that names it, and the rule that did not fit
/// leaves nothing behind.
fn a_full_rule_or_member_table_is_a_clear_error() -> anyhow::Result<()> {
    let lab = Lab::new("rules-full", None)?;
    let programs = Programs::new("full")?;
    let app = programs.install("ct-full")?;
    let server = lab.server(Proto::Tcp, Family::V4, None)?;
    let _clients = [
        lab.client_program(&server, Proto::Tcp, &app)?,
        lab.client_program(&server, Proto::Tcp, &app)?,
        lab.client_program(&server, Proto::Tcp, &app)?,
    ];
    let config = chadthrottle_kernel::Config {
        max_rules: 2,
        max_members: 2,
        ..lab.config()
    };
    let mut datapath = Datapath::install(&config)?;
    let limit = policer(MIB as u64, 512 << 10);
    let error = datapath
        .set_rule(&rule(1, 2, RuleTarget::Match(exe_key(&app)?), limit))
        .expect_err("three members in a table of two");
    println!("  {error}");
    ensure!(
        error
            .to_string()
            .contains("the rule members table is full (2)"),
        "{error}"
    );
    for map in ["ct_rules", "ct_match", "ct_members", "ct_limits"] {
        let found = entries(&lab, map)?;
        ensure!(found == 0, "{map} kept {found} entries of the refused rule");
    }
    datapath.set_rules(&[
        rule(2, 3, RuleTarget::Match(name_key("ct-none-a")), limit),
        rule(3, 3, RuleTarget::Match(name_key("ct-none-b")), limit),
    ])?;
    let error = datapath
        .set_rule(&rule(4, 3, RuleTarget::Match(name_key("ct-none-c")), limit))
        .expect_err("a third rule in a table of two");
    println!("  {error}");
    ensure!(
        error.to_string().contains("the rules table is full (2)"),
        "{error}"
    );
    ensure!(datapath.rules()?.len() == 2, "the two rules stay");
    Ok(())
}

/// A process exec'd while the member table is full is not governed, and the kernel counts
/// it: the count `status` and `rules` report.
fn a_process_left_out_of_a_full_member_table_is_counted() -> anyhow::Result<()> {
    let lab = Lab::new("rules-uncounted", None)?;
    let programs = Programs::new("uncounted")?;
    let app = programs.install("ct-uncounted")?;
    let server = lab.server(Proto::Tcp, Family::V4, None)?;
    let before = [
        lab.client_program(&server, Proto::Tcp, &app)?,
        lab.client_program(&server, Proto::Tcp, &app)?,
    ];
    let config = chadthrottle_kernel::Config {
        max_members: 2,
        ..lab.config()
    };
    let mut datapath = Datapath::install(&config)?;
    let limit = policer(MIB as u64, 512 << 10);
    datapath.set_rule(&rule(1, 2, RuleTarget::Match(exe_key(&app)?), limit))?;
    ensure!(
        members(&datapath, 1)?.len() == before.len(),
        "the table holds two"
    );
    ensure!(datapath.ungoverned()? == 0, "nobody left out yet");
    let late = lab.client_program(&server, Proto::Tcp, &app)?;
    let deadline = Instant::now() + Duration::from_secs(2);
    while datapath.ungoverned()? == 0 {
        ensure!(
            Instant::now() < deadline,
            "the exec into a full table was not counted"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    println!("  counted {} times", datapath.ungoverned()?);
    ensure!(
        !members(&datapath, 1)?.contains(&late.pid()),
        "PID {} is a member of a full table",
        late.pid()
    );
    Ok(())
}

/// A cgroup below the lab's, removed (its processes ended) on drop.
struct SubCgroup(PathBuf);

impl SubCgroup {
    fn new(lab: &Lab) -> anyhow::Result<SubCgroup> {
        let path = lab.cgroup().join("sub");
        std::fs::create_dir(&path).context("create a cgroup below the lab's")?;
        Ok(SubCgroup(path))
    }

    fn enter(&self, pid: u32) -> anyhow::Result<()> {
        std::fs::write(self.0.join("cgroup.procs"), pid.to_string())
            .with_context(|| format!("move PID {pid} into {}", self.0.display()))
    }
}

impl Drop for SubCgroup {
    fn drop(&mut self) {
        chadthrottle_lab::cgroup::remove(&self.0);
    }
}

/// A shell in the lab's cgroup that forks a child when told to (a line on its stdin).
struct Forker(std::process::Child);

impl Forker {
    fn start(lab: &Lab) -> anyhow::Result<Forker> {
        Forker::running(lab, "read line; sleep 60; true")
    }

    /// One that runs `script` (which forks once it has read a line).
    fn running(lab: &Lab, script: &str) -> anyhow::Result<Forker> {
        let child = Command::new("sh")
            .args(["-c", script])
            .stdin(Stdio::piped())
            .spawn()
            .context("start sh")?;
        let forker = Forker(child);
        std::fs::write(lab.cgroup().join("cgroup.procs"), forker.0.id().to_string())
            .context("move sh into the lab's cgroup")?;
        Ok(forker)
    }

    /// Lets it fork; returns the child's PID.
    fn fork(&mut self) -> anyhow::Result<u32> {
        use std::io::Write as _;
        let parent = self.0.id();
        writeln!(self.0.stdin.as_mut().context("stdin")?, "go")?;
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let child = chadthrottle_kernel::procs::parents()
                .into_iter()
                .find(|&(_, ppid, _)| ppid == parent)
                .map(|(pid, _, _)| pid);
            if let Some(child) = child {
                return Ok(child);
            }
            ensure!(Instant::now() < deadline, "sh {parent} forked no child");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Forker {
    fn drop(&mut self) {
        let _gone = self.0.kill();
        let _reaped = self.0.wait();
    }
}

/// A tree rule covers its root and the children the root forks after the rule is set.
fn a_tree_rule_covers_children_forked_later() -> anyhow::Result<()> {
    let lab = Lab::new("rules-tree", None)?;
    let mut root = Forker::start(&lab)?;
    let mut datapath = install(&lab)?;
    let root_pid = root.0.id();
    let applied = datapath.set_rule(&rule(
        1,
        1,
        RuleTarget::Tree(root_pid),
        policer(MIB as u64, 512 << 10),
    ))?;
    ensure!(applied.members == 1, "the root alone: {applied:?}");
    let child = root.fork()?;
    await_member(&datapath, 1, child, true)?;
    ensure!(members(&datapath, 1)?.contains(&root_pid));
    // the sleep that ran before the child did is not in the tree
    ensure!(
        !members(&datapath, 1)?.contains(&std::process::id()),
        "the test itself is not in the tree"
    );
    Ok(())
}

/// A member's child is resolved at fork, before it execs anything: the fork hook passes
/// over only the children of processes no rule governs.
fn a_members_child_is_a_member_from_its_fork() -> anyhow::Result<()> {
    let lab = Lab::new("rules-fork", None)?;
    // the subshell forks and waits without exec
    let mut parent = Forker::running(&lab, "read line; (read more; true); sleep 60")?;
    let mut datapath = install(&lab)?;
    let limit = policer(MIB as u64, 512 << 10);
    datapath.set_rule(&rule(1, 5, RuleTarget::Match(uid_key(0)), limit))?;
    ensure!(
        members(&datapath, 1)?.contains(&parent.0.id()),
        "the shell of root is a member"
    );
    let child = parent.fork()?;
    await_member(&datapath, 1, child, true)?;
    let comm = std::fs::read_to_string(format!("/proc/{child}/comm"))?;
    ensure!(
        comm.trim() == "sh",
        "the child is the subshell, not exec'd: {comm}"
    );
    Ok(())
}

/// The child of an each-mode rule's member, like its parent, is given the parent's rule at
/// fork without a resolve, and with it a budget of its own: two entries in ct_limits.
fn an_each_members_child_has_its_own_budget_from_its_fork() -> anyhow::Result<()> {
    let lab = Lab::new("rules-fork-each", None)?;
    let mut parent = Forker::running(&lab, "read line; (read more; true); read last")?;
    let mut datapath = install(&lab)?;
    let each = RuleEntry {
        each: true,
        ..rule(
            1,
            5,
            RuleTarget::Match(uid_key(0)),
            policer(MIB as u64, 512 << 10),
        )
    };
    datapath.set_rule(&each)?;
    ensure!(
        members(&datapath, 1)? == [parent.0.id()],
        "the shell of root alone is a member: {:?}",
        members(&datapath, 1)?
    );
    let before = entries(&lab, "ct_limits")?;
    ensure!(
        before == 2,
        "ct_limits has {before} entries, not the shell's two"
    );
    let child = parent.fork()?;
    await_member(&datapath, 1, child, true)?;
    let after = entries(&lab, "ct_limits")?;
    ensure!(
        after == 4,
        "ct_limits has {after} entries, not the shell's two and its child's two"
    );
    // the child's exit takes its budgets with it (the exit hook looks them up for a
    // member of an each-mode rule, and skips them for a shared rule's)
    {
        use std::io::Write as _;
        writeln!(parent.0.stdin.as_mut().context("stdin")?, "more")?;
    }
    await_entries(
        &lab,
        "ct_limits",
        2,
        "after the child exited (the shell's two)",
    )?;
    Ok(())
}

/// A PID limit beats the rule its process matches: its packets are charged to the PID
/// limit, the rule's budget counts none of them.
fn a_pid_limit_beats_a_rule() -> anyhow::Result<()> {
    let lab = Lab::new("rules-pid", None)?;
    let programs = Programs::new("pid")?;
    let app = programs.install("ct-pid")?;
    let mut server = lab.server(Proto::Tcp, Family::V4, None)?;
    let mut client = lab.client_program(&server, Proto::Tcp, &app)?;
    let mut datapath = install(&lab)?;
    datapath.set_rule(&rule(
        1,
        2,
        RuleTarget::Match(exe_key(&app)?),
        policer(4 << 20, 1 << 20),
    ))?;
    common::run(
        &lab,
        &[
            "limit",
            "--pid",
            &common::pid(&client),
            "--up",
            "1M",
            "--upload-backend",
            "policer",
        ],
    )?;
    let report = client.send(POLICED_SECONDS, MAX_BYTES)?;
    within(
        "the PID limit, under a 4M rule",
        &steady(&mut server, &report)?,
        MIB,
        TOLERANCE,
    )?;
    let rule_stats = datapath.rules()?[0].stats.up;
    ensure!(
        rule_stats.bytes == 0,
        "the rule's budget was charged: {rule_stats:?}"
    );
    Ok(())
}

/// An exe rule for a file that does not exist yet matches it once it appears, and keeps
/// matching after the file is replaced by a rename (a package upgrade: a new inode).
fn an_exe_rule_matches_a_file_to_come_and_its_replacement() -> anyhow::Result<()> {
    let lab = Lab::new("rules-rename", None)?;
    let programs = Programs::new("rename")?;
    let server = lab.server(Proto::Tcp, Family::V4, None)?;
    let mut datapath = install(&lab)?;
    let path = programs.path("ct-upgrade");
    datapath.set_rule(&rule(
        1,
        2,
        RuleTarget::Match(exe_key(&path)?),
        policer(MIB as u64, 512 << 10),
    ))?;
    programs.install("ct-upgrade")?;
    let before = lab.client_program(&server, Proto::Tcp, &path)?;
    await_member(&datapath, 1, before.pid(), true)?;
    let inode = |path: &Path| -> anyhow::Result<u64> {
        Ok(std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(
            path,
        )?))
    };
    let old_inode = inode(&path)?;
    programs.install("ct-upgrade")?;
    ensure!(inode(&path)? != old_inode, "the rename made a new inode");
    let after = lab.client_program(&server, Proto::Tcp, &path)?;
    await_member(&datapath, 1, after.pid(), true)?;
    Ok(())
}

/// `remove_rule` leaves no entry of the rule in any map, and its members' traffic runs
/// free again; `reset` takes the new maps and programs out with the rest.
fn remove_rule_and_reset_leave_no_entries() -> anyhow::Result<()> {
    let lab = Lab::new("rules-remove", None)?;
    let programs = Programs::new("remove")?;
    let app = programs.install("ct-remove")?;
    let mut server = lab.server(Proto::Tcp, Family::V4, None)?;
    let mut client = lab.client_program(&server, Proto::Tcp, &app)?;
    let mut datapath = install(&lab)?;
    let shaped = Some(DirectionLimit {
        rate: 256 << 10,
        burst: 256 << 10,
        enforcement: Enforcement::Shaping,
        by_default: false,
    });
    let each = RuleEntry {
        each: true,
        ..rule(1, 2, RuleTarget::Match(exe_key(&app)?), shaped)
    };
    let shared = RuleEntry {
        each: false,
        ..rule(2, 3, RuleTarget::Match(name_key("ct-nobody-has")), shaped)
    };
    // both in one change
    let applied = datapath.set_rules(&[each, shared.clone()])?;
    ensure!(applied.members == 1, "the client alone: {applied:?}");
    // prune drops PID limits of dead processes, never a rule's budgets
    let pruned = chadthrottle_core::backend::Backend::prune(&mut datapath)?;
    ensure!(pruned.is_empty(), "pruned {pruned:?}");
    for (map, wanted) in [
        ("ct_rules", 2),
        ("ct_match", 2),
        ("ct_members", 1),
        // the each member's two budgets and the shared rule's two
        ("ct_limits", 4),
    ] {
        let found = entries(&lab, map)?;
        ensure!(found == wanted, "{map} has {found} entries, not {wanted}");
    }
    let report = client.send(3.0, MAX_BYTES)?;
    let held = server.received_steady(&report, 1_000_000_000)?;
    println!("  under the rule: {:.0} KiB/s", held.rate / KIB);
    ensure!(held.rate < MIB, "not held: {:.0} B/s", held.rate);
    ensure!(datapath.remove_rule(1)?, "rule 1 was there");
    ensure!(datapath.remove_rule(2)?, "rule 2 was there");
    ensure!(!datapath.remove_rule(2)?, "rule 2 is gone");
    for map in [
        "ct_rules",
        "ct_match",
        "ct_tree",
        "ct_members",
        "ct_limits",
        "ct_stats",
    ] {
        let found = entries(&lab, map)?;
        ensure!(found == 0, "{map} has {found} entries left");
    }
    // its socket's own settings are back: far more than the 256K it was shaped to
    let report = client.send(2.0, MAX_BYTES)?;
    let free = server.received_steady(&report, 500_000_000)?;
    println!("  after remove_rule: {:.0} KiB/s", free.rate / KIB);
    ensure!(free.rate > 4.0 * MIB, "still held: {:.0} B/s", free.rate);

    datapath.set_rule(&RuleEntry { id: 3, ..shared })?;
    drop(datapath);
    let report = chadthrottle_kernel::reset(lab.pin_dir())?;
    for name in [
        "ct_rules",
        "ct_match",
        "ct_tree",
        "ct_members",
        "link_ct_process_exec",
    ] {
        ensure!(
            report.removed.iter().any(|removed| removed == name),
            "reset did not remove {name}: {report:?}"
        );
    }
    ensure!(!lab.pin_dir().exists(), "the pin dir is gone");
    Ok(())
}

/// The resolver runs on every process of the machine but changes only those in the
/// datapath's cgroup: an exe rule for this very test binary makes the lab's client a
/// member and leaves the server, the same executable outside the cgroup, alone.
fn processes_outside_the_lab_cgroup_are_never_members() -> anyhow::Result<()> {
    let lab = Lab::new("rules-outside", None)?;
    let server = lab.server(Proto::Tcp, Family::V4, None)?;
    let client = lab.client(&server, Proto::Tcp, None, None)?;
    let mut datapath = install(&lab)?;
    let applied = datapath.set_rule(&rule(
        1,
        2,
        RuleTarget::Match(exe_key(&std::env::current_exe()?)?),
        policer(MIB as u64, 512 << 10),
    ))?;
    let now = members(&datapath, 1)?;
    ensure!(
        now == [client.pid()] && applied.members == 1,
        "members {now:?}: the client {} alone, not the server {} nor this test {}",
        client.pid(),
        server.pid(),
        std::process::id()
    );
    let found = entries(&lab, "ct_members")?;
    ensure!(found == 1, "ct_members has {found} entries");
    Ok(())
}

fn main() {
    let tests: &[(&'static str, Test)] = &[
        (
            "a_shared_exe_rule_holds_four_processes_to_one_budget",
            a_shared_exe_rule_holds_four_processes_to_one_budget,
        ),
        (
            "a_shared_shaping_rule_paces_its_members_together",
            a_shared_shaping_rule_paces_its_members_together,
        ),
        (
            "each_member_of_an_each_rule_has_its_own_budget",
            each_member_of_an_each_rule_has_its_own_budget,
        ),
        (
            "a_process_execd_under_a_rule_is_limited_from_its_first_packet",
            a_process_execd_under_a_rule_is_limited_from_its_first_packet,
        ),
        (
            "name_uid_and_cgroup_rules_match_and_a_changed_process_follows",
            name_uid_and_cgroup_rules_match_and_a_changed_process_follows,
        ),
        (
            "the_lowest_rank_then_the_lowest_order_governs",
            the_lowest_rank_then_the_lowest_order_governs,
        ),
        (
            "a_full_rule_or_member_table_is_a_clear_error",
            a_full_rule_or_member_table_is_a_clear_error,
        ),
        (
            "a_process_left_out_of_a_full_member_table_is_counted",
            a_process_left_out_of_a_full_member_table_is_counted,
        ),
        (
            "a_tree_rule_covers_children_forked_later",
            a_tree_rule_covers_children_forked_later,
        ),
        (
            "a_members_child_is_a_member_from_its_fork",
            a_members_child_is_a_member_from_its_fork,
        ),
        (
            "an_each_members_child_has_its_own_budget_from_its_fork",
            an_each_members_child_has_its_own_budget_from_its_fork,
        ),
        ("a_pid_limit_beats_a_rule", a_pid_limit_beats_a_rule),
        (
            "an_exe_rule_matches_a_file_to_come_and_its_replacement",
            an_exe_rule_matches_a_file_to_come_and_its_replacement,
        ),
        (
            "remove_rule_and_reset_leave_no_entries",
            remove_rule_and_reset_leave_no_entries,
        ),
        (
            "processes_outside_the_lab_cgroup_are_never_members",
            processes_outside_the_lab_cgroup_are_never_members,
        ),
    ];
    common::main(tests);
}
