//! The rules of `core::access` applied to a command's request: who asks, what the machine
//! says of the target and of the datapath the options name.

use crate::cli::Global;
use chadthrottle_core::access::{self, Refusal, Sight};
use chadthrottle_core::backend::{Availability, BackendDescriptor};
use chadthrottle_core::process::ProcessInfo;
use chadthrottle_core::process::Uids;
use chadthrottle_core::rule_target::RuleTarget;
use chadthrottle_core::status::Enforcement;
use chadthrottle_core::system::{Processes, System, UsageSource};
use chadthrottle_core::usage::Reading;
use chadthrottle_core::{ProcessRef, usage::ProcessDetails};
use std::collections::{HashMap, HashSet};

/// Refuses a datapath the caller may not install or use (see `core::access`).
pub fn datapath<S: System>(system: &S, global: &Global) -> anyhow::Result<()> {
    let caller = system.caller();
    if caller.is_root() {
        return Ok(());
    }
    let options = global.datapath();
    access::check_datapath(caller, &options, &system.requested(&options)?)?;
    Ok(())
}

/// Why `top` and the TUI must take the sock_diag fallback without trying the datapath:
/// the caller may not use the one the options name.
pub fn fallback_reason<S: System>(system: &S, global: &Global) -> Option<String> {
    datapath(system, global).err().map(|error| {
        format!(
            "eBPF accounting unavailable, so TCP only and only processes whose /proc/PID/fd \
             is readable: {}",
            chadthrottle_kernel::describe(error.as_ref())
        )
    })
}

/// Refuses `target` unless the caller could signal it.
pub fn target<P: Processes>(processes: &P, target: &ProcessInfo) -> Result<(), Refusal> {
    access::check_target(processes.caller(), target, |uid| processes.user_name(uid))
}

/// Refuses a rule's target unless the caller is root (see `core::access::check_rule`).
pub fn rule<P: Processes>(processes: &P, target: &RuleTarget) -> Result<(), Refusal> {
    access::check_rule(processes.caller(), target)
}

/// Refuses the PID `pid` if a process runs with it that the caller could not signal (a
/// gone process's leftover limit may be lifted by anyone: it holds nobody back).
pub fn pid<P: Processes>(processes: &P, pid: u32) -> Result<(), Refusal> {
    match processes.inspect(pid) {
        Some(info) => target(processes, &info),
        None => Ok(()),
    }
}

/// Whether `caller` may use `backend` at all: the qdisc backends change network
/// interfaces, which only root may.
pub fn backend(caller: Uids, backend: &BackendDescriptor) -> Option<Availability> {
    let qdisc = Enforcement::from_name(backend.name).is_some_and(Enforcement::is_qdisc);
    (qdisc && !caller.is_root()).then(|| {
        Availability::Unavailable(
            "it changes network interfaces, which only root may do (run it with sudo)".to_owned(),
        )
    })
}

/// What the caller sees of `process`, whose owner /proc tells while it runs.
fn sight<P: Processes>(processes: &P, process: ProcessRef) -> Sight {
    let caller = processes.caller();
    let hidepid = processes.hidepid();
    if caller.is_root() || hidepid == access::HidePid::Off {
        return Sight::Full;
    }
    let owner = processes
        .inspect(process.pid)
        .filter(|info| info.start_time == process.start_time)
        .map(|info| info.uids);
    access::sight(caller, owner, hidepid)
}

/// Takes out of `reading` what /proc would not show the caller of other users'
/// processes: their command lines (`hidepid=1`), or the processes and their connections
/// (`hidepid=2`), as `ps` would.
pub fn redact<P: Processes>(processes: &P, reading: &mut Reading) {
    let mut hidden = std::collections::HashSet::new();
    for process in &mut reading.processes {
        match sight(processes, process.process) {
            Sight::Full => {}
            Sight::WithoutDetails => process.cmdline.clear(),
            Sight::Hidden => {
                hidden.insert(process.process);
            }
        }
    }
    reading.processes.retain(|p| !hidden.contains(&p.process));
    reading.connections.retain(|c| !hidden.contains(&c.process));
}

/// A reading of `source` with what the caller may not see taken out.
pub fn read<P: Processes, U: UsageSource>(
    processes: &P,
    source: &mut U,
) -> Result<Reading, U::Error> {
    let mut reading = source.read()?;
    redact(processes, &mut reading);
    Ok(reading)
}

/// The System tab's details of `process`, if the caller may see them.
pub fn details<P: Processes>(processes: &P, process: ProcessRef) -> Option<ProcessDetails> {
    match sight(processes, process) {
        Sight::Full => processes.details(process),
        Sight::WithoutDetails | Sight::Hidden => None,
    }
}

/// The executable of `process`, if it still runs and the caller may see its details (the
/// same as the System tab's): what groups it with its application.
fn exe<P: Processes>(processes: &P, process: ProcessRef) -> Option<String> {
    let visible = sight(processes, process) == Sight::Full && processes.is_alive(process);
    visible.then(|| processes.exe(process.pid)).flatten()
}

/// The executables of the `listed` processes (see `exe`), each read once and kept in
/// `known`, so a process that has exited stays in the application it had while it ran;
/// processes no longer listed are forgotten.
pub fn executables<P: Processes>(
    processes: &P,
    listed: &HashSet<ProcessRef>,
    known: &mut HashMap<ProcessRef, Option<String>>,
) -> HashMap<ProcessRef, String> {
    known.retain(|process, _| listed.contains(process));
    for &process in listed {
        known
            .entry(process)
            .or_insert_with(|| exe(processes, process));
    }
    known
        .iter()
        .filter_map(|(process, exe)| Some((*process, exe.clone()?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::testing::{CURL, machine, ok, refused, run};
    use chadthrottle_core::access::HidePid;
    use chadthrottle_core::fake::{FakeProcess, FakeSystem};
    use chadthrottle_core::process::Uids;
    use chadthrottle_tui::fixtures::usage;

    const NOBODY: u32 = 65_534;
    const MINE: u32 = 5000;

    /// The test machine, with a process of `nobody`'s, and `nobody` asking.
    fn as_nobody() -> FakeSystem {
        let system = machine();
        {
            let mut machine = system.machine();
            machine.spawn(FakeProcess::new(MINE, 300, "mine").owned_by(NOBODY));
            machine.users.insert(NOBODY, "nobody".into());
            machine.caller = Uids::of(NOBODY);
        }
        system
    }

    #[test]
    fn a_user_limits_their_own_processes_only() {
        let mut system = as_nobody();
        let error = refused(&mut system, &["limit", "--pid", "4242", "--up", "1K"]);
        assert_eq!(
            error,
            "PID 4242 (curl) belongs to root: without root, ChadThrottle acts only on processes \
             you could signal with kill (your uid 65534 is not its real or saved uid); run it \
             with sudo to limit other users' processes"
        );
        assert!(
            system.machine().installs.is_empty(),
            "a refusal installed the datapath"
        );
        ok(&mut system, &["limit", "--pid", "5000", "--up", "1K"]);
        let machine = system.machine();
        assert_eq!(machine.limits.keys().copied().collect::<Vec<_>>(), [MINE]);
    }

    #[test]
    fn a_user_cannot_lift_other_users_limits_or_reset() {
        let mut system = as_nobody();
        system.machine().caller = Uids::of(0);
        ok(&mut system, &["limit", "--pid", "4242", "--up", "1K"]);
        ok(&mut system, &["limit", "--pid", "5000", "--up", "1K"]);
        system.machine().caller = Uids::of(NOBODY);
        let error = refused(&mut system, &["unlimit", "--pid", "4242"]);
        assert!(
            error.starts_with("PID 4242 (curl) belongs to root"),
            "{error}"
        );
        let error = refused(&mut system, &["reset"]);
        assert_eq!(
            error,
            "`reset` affects every user of this machine: only root may do it (run it with sudo)"
        );
        assert_eq!(system.machine().limits.len(), 2, "nothing changed");
        // a limit root set on the user's own process is the user's to lift
        ok(&mut system, &["unlimit", "--pid", "5000"]);
        assert_eq!(
            system.machine().limits.keys().copied().collect::<Vec<_>>(),
            [CURL]
        );
    }

    #[test]
    fn what_changes_interfaces_or_the_datapath_is_root_only() {
        let mut system = as_nobody();
        let error = refused(
            &mut system,
            &[
                "--upload-backend",
                "htb",
                "limit",
                "--pid",
                "5000",
                "--up",
                "1K",
            ],
        );
        assert_eq!(
            error,
            "backend \"htb\" is unavailable: it changes network interfaces, which only root \
             may do (run it with sudo)"
        );
        // the default passes the qdisc backends by for a user, even where they rank first
        system
            .machine()
            .unavailable
            .insert("shaping", "not here".into());
        ok(&mut system, &["limit", "--pid", "5000", "--up", "1K"]);
        let limit = system.machine().limits[&MINE].limits.up.expect("set");
        assert_eq!(limit.enforcement.name(), "policer");
        ok(&mut system, &["unlimit", "--pid", "5000"]);

        let error = refused(
            &mut system,
            &["--force", "limit", "--pid", "5000", "--up", "1K"],
        );
        assert!(error.starts_with("--force"), "{error}");
        let error = refused(
            &mut system,
            &[
                "--pin-dir",
                "/tmp/elsewhere",
                "limit",
                "--pid",
                "5000",
                "--up",
                "1K",
            ],
        );
        assert!(
            error.starts_with("installing the datapath with --pin-dir"),
            "{error}"
        );
        assert_eq!(
            system.machine().installs.len(),
            1,
            "only the default install"
        );
        // root installs it there; the user may then use it as it is, not resize it
        system.machine().caller = Uids::of(0);
        ok(
            &mut system,
            &[
                "--pin-dir",
                "/tmp/elsewhere",
                "limit",
                "--pid",
                "4242",
                "--up",
                "1K",
            ],
        );
        system.machine().caller = Uids::of(NOBODY);
        ok(
            &mut system,
            &[
                "--pin-dir",
                "/tmp/elsewhere",
                "limit",
                "--pid",
                "5000",
                "--up",
                "1K",
            ],
        );
        let error = refused(
            &mut system,
            &[
                "--pin-dir",
                "/tmp/elsewhere",
                "--max-limits",
                "8",
                "limit",
                "--pid",
                "5000",
                "--up",
                "1K",
            ],
        );
        assert!(error.starts_with("--max-limits 8"), "{error}");
    }

    #[test]
    fn top_falls_back_rather_than_use_a_datapath_it_may_not() {
        let mut system = as_nobody();
        super::super::testing::with_readings(&system, &[usage(MINE, "mine", 10)]);
        let (out, result) = run(
            &mut system,
            &[
                "--cgroup",
                "/elsewhere",
                "top",
                "--once",
                "--interval",
                "10ms",
            ],
        );
        assert_eq!(result, Ok(()));
        assert!(
            out.contains("eBPF accounting unavailable")
                && out.contains("installing the datapath with --cgroup"),
            "{out}"
        );
    }

    #[test]
    fn others_command_lines_follow_hidepid() {
        let mut system = as_nobody();
        super::super::testing::with_readings(
            &system,
            &[usage(CURL, "curl", 1000), usage(MINE, "mine", 10)],
        );
        let cmdline = |system: &mut FakeSystem, pid: u32| {
            let out = ok(system, &["top", "--once", "--json", "--interval", "10ms"]);
            let snapshot: serde_json::Value = serde_json::from_str(&out).expect("JSON");
            snapshot["processes"]
                .as_array()
                .expect("processes")
                .iter()
                .find(|p| p["pid"] == pid)
                .map(|p| p["cmdline"].as_str().unwrap_or_default().to_owned())
        };
        assert_eq!(cmdline(&mut system, CURL).as_deref(), Some("/usr/bin/curl"));
        system.machine().hidepid = HidePid::NoAccess;
        assert_eq!(cmdline(&mut system, CURL).as_deref(), Some(""));
        assert_eq!(cmdline(&mut system, MINE).as_deref(), Some("/usr/bin/mine"));
        system.machine().hidepid = HidePid::Invisible;
        assert_eq!(cmdline(&mut system, CURL), None, "hidden, as ps would");
        system.machine().caller = Uids::of(0);
        assert_eq!(cmdline(&mut system, CURL).as_deref(), Some("/usr/bin/curl"));
    }
}
