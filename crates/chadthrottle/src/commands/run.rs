//! `run`: a command started under a tree rule rooted at its first process, set before
//! that process runs anything and lifted once the last process of the tree has exited.

use crate::cli::{Global, LimitArgs, RunArgs, TargetArgs};
use anyhow::Context as _;
use chadthrottle_core::access::Refusal;
use chadthrottle_core::backend::RuleBackend as _;
use chadthrottle_core::rule_target::{RULE_NAME_MAX, RuleTarget};
use chadthrottle_core::system::System;
use chadthrottle_kernel::launch::{self, Held, RunAs};
use std::ffi::OsStr;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

/// How often `run` looks whether the command's tree still has processes, once the
/// command itself has exited.
const MEMBERS_POLL: Duration = Duration::from_millis(500);

/// The command ended other than with status 0: `run` exits with this status, as a shell
/// would report it (the code, or 128 + the signal), and prints nothing of its own.
#[derive(Debug)]
pub struct CommandStatus(pub u8);

impl std::fmt::Display for CommandStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the command exited with status {}", self.0)
    }
}

impl std::error::Error for CommandStatus {}

/// The program's file name, as the rule's name shows it.
fn program_name(program: &OsStr) -> std::borrow::Cow<'_, str> {
    Path::new(program)
        .file_name()
        .unwrap_or(program)
        .to_string_lossy()
}

/// The rule's name: `run`, the first process's PID, the program's file name.
pub fn rule_name(pid: u32, program: &OsStr) -> String {
    let mut name = format!("run {pid} {}", program_name(program));
    let mut end = name.len().min(RULE_NAME_MAX);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name.truncate(end);
    name
}

/// Starts the command held, sets its rule, lets it run, waits for it and then for its
/// tree, and lifts the rule. A rule that cannot be set kills the command before it ran.
/// Writes nothing to stdout: that is the command's.
pub fn run<S: System>(system: &mut S, global: &Global, args: &RunArgs) -> anyhow::Result<()> {
    let program = args.command.first().context("no command given after --")?;
    if !system.caller().is_root() {
        // the same refusal as every rule's: the rule would outlive the check
        return Err(Refusal::Rule {
            target: format!("run {}", program_name(program)),
            hint: "",
        }
        .into());
    }
    let run_as = RunAs::invoking_user().context("cannot run as the user who invoked sudo")?;
    // taken before the command exists: a signal from now on reaches it
    let mut signals = launch::forwarded_signals().context("cannot catch signals")?;
    let shown = program.to_string_lossy();
    let held =
        Held::start(&args.command, run_as).with_context(|| format!("cannot start \"{shown}\""))?;
    let pid = held.pid();
    let name = rule_name(pid, program);
    // the rule's one-line summary is not the command's output: stdout is the command's
    let mut summary = Vec::new();
    if let Err(error) = set_rule(system, global, args, pid, &name, &mut summary) {
        held.kill();
        return Err(error);
    }
    // a signal while the rule was set (Ctrl+C from the terminal too: the held command, its
    // handlers still run's, let it pass) ends run before the command ran
    if let Some(origin) = signals.pending().next() {
        held.kill();
        lift(system, global, &name, &mut || true)?;
        return Err(CommandStatus(launch::signal_status(origin.signal)).into());
    }
    let mut child = match held.release() {
        Ok(child) => child,
        Err(error) => {
            lift(system, global, &name, &mut || true)?;
            return Err(error).with_context(|| format!("cannot run \"{shown}\""));
        }
    };
    let status = launch::wait_forwarding(&mut child, &mut signals)
        .with_context(|| format!("cannot wait for \"{shown}\""))?;
    // a signal now ends the wait for the tree's last processes
    lift(system, global, &name, &mut || {
        signals.pending().next().is_some()
    })?;
    match launch::shell_status(status) {
        0 => Ok(()),
        code => Err(CommandStatus(code).into()),
    }
}

/// Sets the tree rule `name` rooted at `pid` with `args`' limits, through `limit`'s path.
pub fn set_rule<S: System>(
    system: &mut S,
    global: &Global,
    args: &RunArgs,
    pid: u32,
    name: &str,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let limit = LimitArgs {
        target: TargetArgs {
            pid: Some(pid),
            tree: true,
            exe: None,
            name: None,
            unit: None,
            cgroup_path: None,
            container: None,
            user: None,
        },
        each: false,
        rates: args.rates.clone(),
        save: None,
    };
    let target = RuleTarget::Tree(pid);
    let given = super::rule_change::GivenName {
        name: name.to_owned(),
        order: None,
    };
    super::rule_change::set(system, global, &target, &limit, Some(given), out).map(drop)
}

/// Removes rule `name` once it governs no process (or at once when `stop` says so); a
/// rule already gone (lapsed with `--for`, removed by `unlimit` or `reset`) is left so.
pub fn lift<S: System>(
    system: &mut S,
    global: &Global,
    name: &str,
    stop: &mut dyn FnMut() -> bool,
) -> anyhow::Result<()> {
    // `stop` may say so once (a signal taken from the queue): remembered
    let mut stopped = false;
    let mut stop = || {
        stopped = stopped || stop();
        stopped
    };
    loop {
        // opened afresh each time: a `reset` meanwhile takes the datapath away
        let Some(mut backend) = system.open(&global.datapath())? else {
            return Ok(());
        };
        let Some(rule) = backend
            .rules()?
            .into_iter()
            .find(|rule| rule.spec.name == name)
        else {
            return Ok(());
        };
        if rule.members.is_empty() || stop() {
            backend
                .remove_rule(name)
                .with_context(|| format!("cannot remove rule \"{name}\""))?;
            return Ok(());
        }
        drop(backend);
        let until = Instant::now() + MEMBERS_POLL;
        while Instant::now() < until {
            if stop() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{STEAM, ok, refused, rules_machine};
    use super::*;
    use chadthrottle_core::process::Uids;
    use chadthrottle_core::status::Enforcement;
    use clap::Parser as _;

    fn run_args(args: &[&str]) -> RunArgs {
        let mut argv = vec!["chadthrottle", "run"];
        argv.extend_from_slice(args);
        match crate::cli::Cli::try_parse_from(argv)
            .expect("parses")
            .command
        {
            Some(crate::cli::Command::Run(args)) => args,
            other => panic!("not run: {other:?}"),
        }
    }

    fn global() -> Global {
        crate::cli::Cli::try_parse_from(["chadthrottle", "status"])
            .expect("parses")
            .global
    }

    #[test]
    fn the_rule_is_named_after_the_pid_and_the_program() {
        assert_eq!(
            rule_name(12345, OsStr::new("/usr/bin/curl")),
            "run 12345 curl"
        );
        assert_eq!(rule_name(7, OsStr::new("curl")), "run 7 curl");
        let long = "é".repeat(40);
        let name = rule_name(7, OsStr::new(&long));
        assert!(
            name.len() <= RULE_NAME_MAX && name.starts_with("run 7 é"),
            "{name}"
        );
    }

    #[test]
    fn the_rule_is_a_shared_tree_rule_with_the_limits_given() {
        let mut system = rules_machine();
        let args = run_args(&[
            "--up",
            "512K",
            "--down",
            "2M",
            "--burst-up",
            "128K",
            "--for",
            "10m",
            "--",
            "steam",
            "-silent",
        ]);
        assert_eq!(args.command, ["steam", "-silent"]);
        let name = rule_name(STEAM, &args.command[0]);
        let mut out = Vec::new();
        set_rule(&mut system, &global(), &args, STEAM, &name, &mut out).expect("set");
        let machine = system.machine();
        let [rule] = machine.rules.as_slice() else {
            panic!("one rule: {:?}", machine.rules);
        };
        let request = &rule.request;
        assert_eq!(request.spec.name, "run 5000 steam");
        assert_eq!(request.spec.target, RuleTarget::Tree(STEAM));
        assert_eq!(
            request.spec.mode,
            chadthrottle_core::rule_target::Mode::Shared
        );
        let up = request.limits.up.expect("up");
        assert_eq!((up.rate, up.burst), (512 << 10, 128 << 10));
        assert_eq!(up.enforcement, Enforcement::Shaping);
        assert_eq!(request.limits.down.map(|l| l.rate), Some(2 << 20));
        assert_eq!(request.lasts, Some(Duration::from_secs(600)));
        drop(machine);
        // the name is the one `rules` lists, and `unlimit --pid --tree` finds it
        assert!(ok(&mut system, &["rules"]).contains("run 5000 steam "));
        assert_eq!(
            ok(&mut system, &["unlimit", "--pid", "5000", "--tree"]),
            "rule \"run 5000 steam\" removed; it governed 2 processes\n"
        );
    }

    fn set_steam(system: &mut chadthrottle_core::fake::FakeSystem, args: &RunArgs) {
        let name = rule_name(STEAM, OsStr::new("steam"));
        set_rule(system, &global(), args, STEAM, &name, &mut Vec::new()).expect("set");
    }

    #[test]
    fn the_rule_goes_once_it_governs_nobody_or_when_stopped() {
        let mut system = rules_machine();
        let args = run_args(&["--down", "1M", "--", "steam"]);
        set_steam(&mut system, &args);
        // steam and its helper still run: only a stop lifts it
        let mut asked = 0;
        lift(&mut system, &global(), "run 5000 steam", &mut || {
            asked += 1;
            // once, as a signal is taken from the queue once
            asked == 4
        })
        .expect("lift");
        assert!(asked > 3, "waited for the members");
        assert!(system.machine().rules.is_empty());
        // without members it goes at once; one already gone is no error
        set_steam(&mut system, &args);
        system
            .machine()
            .processes
            .retain(|pid, _| *pid != STEAM && *pid != 5001);
        lift(&mut system, &global(), "run 5000 steam", &mut || false).expect("lift");
        assert!(system.machine().rules.is_empty());
        lift(&mut system, &global(), "run 5000 steam", &mut || false).expect("gone");
    }

    #[test]
    fn a_rule_that_cannot_be_set_is_refused_before_the_command_runs() {
        let mut system = rules_machine();
        let args = run_args(&["--up", "1M", "--", "steam"]);
        let mut global = global();
        global.upload_backend = Some("htb".into());
        let error = set_rule(
            &mut system,
            &global,
            &args,
            STEAM,
            "run 5000 steam",
            &mut Vec::new(),
        )
        .expect_err("htb holds no rule");
        assert!(error.to_string().contains("cannot hold a rule"), "{error}");
        assert!(system.machine().rules.is_empty());
    }

    #[test]
    fn without_root_run_is_refused_as_every_rule_is() {
        let mut system = rules_machine();
        system.machine().caller = Uids::of(1000);
        let error = refused(&mut system, &["run", "--up", "1M", "--", "/usr/bin/true"]);
        assert_eq!(
            error,
            "rule \"run true\": rules match processes of every user, present and future: only \
             root may set or remove them (run it with sudo)"
        );
        assert!(system.machine().rules.is_empty());
        assert_eq!(system.machine().requests, 0);
    }
}
