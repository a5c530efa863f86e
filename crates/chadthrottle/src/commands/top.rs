//! `chadthrottle top`: which processes use the network, from the datapath's accounting,
//! or from sock_diag when eBPF is out of reach (with the reason shown).

use crate::cli::{Global, TopArgs, TopBy};
use crate::top_view;
use chadthrottle_core::ProcessRef;
use chadthrottle_core::application::{self, ApplicationSnapshot};
use chadthrottle_core::monitor::Monitor;
use chadthrottle_core::system::{Processes, System, UsageSource as _};
use chadthrottle_core::table_order::SortKey;
use chadthrottle_core::usage::{ProcessUsage, Snapshot};
use serde::Serialize;
use std::collections::HashMap;
use std::io::{IsTerminal as _, Write};

fn focus(snapshot: &mut Snapshot, args: &TopArgs) {
    if let Some(pid) = args.pid {
        snapshot.processes.retain(|p| p.pid == pid);
        snapshot.connections.retain(|c| c.pid == pid);
    }
    if !args.connections {
        snapshot.connections.clear();
    }
}

fn print_json(
    document: &impl Serialize,
    args: &TopArgs,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    if args.once {
        writeln!(out, "{}", serde_json::to_string_pretty(document)?)?;
    } else {
        writeln!(out, "{}", serde_json::to_string(document)?)?;
    }
    Ok(out.flush()?)
}

fn print(
    snapshot: &Snapshot,
    grouped: Option<&ApplicationSnapshot>,
    args: &TopArgs,
    redraw: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    if args.json {
        return match grouped {
            Some(grouped) => print_json(grouped, args, out),
            None => print_json(snapshot, args, out),
        };
    }
    if redraw {
        write!(out, "\x1b[H\x1b[2J")?;
    }
    writeln!(out, "{}", top_view::heading(snapshot))?;
    if args.connections {
        write!(out, "{}", top_view::connections(snapshot))?;
    } else {
        match grouped {
            Some(grouped) => write!(out, "{}", top_view::applications(grouped))?,
            None => write!(out, "{}", top_view::processes(snapshot))?,
        }
        write!(out, "{}", top_view::interfaces(snapshot))?;
    }
    if !redraw {
        writeln!(out)?;
    }
    Ok(out.flush()?)
}

/// `snapshot` grouped by application, busiest first, each process's executable read once
/// while it runs and kept in `known` (`top --by app`, the daemon's metrics).
pub fn by_application<P: Processes>(
    processes: &P,
    snapshot: Snapshot,
    known: &mut HashMap<ProcessRef, Option<String>>,
) -> ApplicationSnapshot {
    let listed = snapshot
        .processes
        .iter()
        .map(ProcessUsage::process)
        .collect();
    let exes = super::access::executables(processes, &listed, known);
    let exe = |p: &ProcessUsage| exes.get(&p.process()).cloned();
    ApplicationSnapshot::of(snapshot, exe, SortKey::Busiest)
}

pub fn run<S: System>(
    system: &mut S,
    global: &Global,
    args: &TopArgs,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let fallback = if args.fallback {
        Some("fallback chosen with --fallback".to_owned())
    } else {
        super::access::fallback_reason(system, global)
    };
    let (mut source, note) = system.usage(&global.datapath(), fallback);
    let (kind, layer) = source.kind();
    let interval_ms = u64::try_from(args.interval.as_millis()).unwrap_or(u64::MAX);
    let mut monitor = Monitor::new(kind, layer, note, interval_ms);
    monitor.ingest(super::access::read(system, &mut source)?);
    let snapshots = if args.once {
        1
    } else {
        args.count.unwrap_or(u64::MAX)
    };
    let redraw = !args.json && !args.once && std::io::stdout().is_terminal();
    let mut known = HashMap::new();
    for _ in 0..snapshots {
        std::thread::sleep(args.interval);
        monitor.ingest(super::access::read(system, &mut source)?);
        let mut snapshot = monitor.snapshot(&source.limits()?);
        application::attribute_rules(&mut snapshot.processes, &source.rules()?);
        focus(&mut snapshot, args);
        let grouped =
            (args.by == TopBy::App).then(|| by_application(system, snapshot.clone(), &mut known));
        print(&snapshot, grouped.as_ref(), args, redraw, out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{machine, ok, with_readings};
    use chadthrottle_core::fake::{FakeProcess, FakeSystem};
    use chadthrottle_tui::fixtures::usage;

    /// The test machine with a second `curl` (4250), readings of both curls, `wget` and
    /// the kernel thread, and a rule that governs `wget`.
    fn two_curls_and_a_rule() -> FakeSystem {
        let mut system = machine();
        system.machine().spawn(FakeProcess::new(4250, 1, "curl"));
        let processes = [
            usage(4242, "curl", 1000),
            usage(4250, "curl", 500),
            usage(4343, "wget", 50),
            usage(2, "kthreadd", 10),
        ];
        with_readings(&system, &processes);
        ok(&mut system, &["limit", "--name", "wget", "--up", "2M"]);
        system
    }

    #[test]
    fn top_by_app_json_lists_applications_with_their_members_and_sums() {
        let mut system = two_curls_and_a_rule();
        let out = ok(
            &mut system,
            &[
                "top",
                "--once",
                "--json",
                "--by",
                "app",
                "--interval",
                "10ms",
            ],
        );
        let snapshot: serde_json::Value = serde_json::from_str(&out).expect("JSON");
        assert!(snapshot.get("processes").is_none(), "{snapshot}");
        let applications = snapshot["applications"].as_array().expect("applications");
        let keys: Vec<(&str, &str)> = applications
            .iter()
            .map(|a| {
                (
                    a["kind"].as_str().unwrap_or(""),
                    a["key"].as_str().unwrap_or(""),
                )
            })
            .collect();
        assert_eq!(
            keys,
            [
                ("exe", "/usr/bin/curl"),
                ("rule", "name wget"),
                ("name", "kthreadd")
            ],
            "busiest first: {snapshot}"
        );
        let curl = &applications[0];
        assert_eq!(curl["name"], "curl");
        assert_eq!(curl["process_count"], 2);
        let members = curl["processes"].as_array().expect("members");
        let sum = |field: &str| {
            members
                .iter()
                .filter_map(|p| p[field].as_u64())
                .sum::<u64>()
        };
        assert!(sum("rx_rate") > 0, "{snapshot}");
        for field in ["rx_rate", "tx_rate", "rx_bytes", "tx_bytes"] {
            assert_eq!(
                curl[field].as_u64(),
                Some(sum(field)),
                "{field}: {snapshot}"
            );
        }
        assert!(
            curl["rule"].is_null() && curl["limit"].is_null(),
            "{snapshot}"
        );
        let wget = &applications[1];
        assert_eq!(wget["rule"], "name wget");
        assert_eq!(wget["limit"]["up"], 2 << 20);
        assert_eq!(wget["processes"][0]["pid"], 4343);
        assert_eq!(wget["processes"][0]["rule"], "name wget");
    }

    #[test]
    fn top_by_app_prints_application_rows_with_their_processes_indented() {
        let mut system = two_curls_and_a_rule();
        let out = ok(
            &mut system,
            &["top", "--once", "--by", "app", "--interval", "10ms"],
        );
        let lines: Vec<&str> = out.lines().collect();
        let at = |prefix: &str| {
            lines
                .iter()
                .position(|l| l.starts_with(prefix))
                .unwrap_or_else(|| panic!("{prefix:?} in {out}"))
        };
        assert!(lines[at("curl ")].ends_with("/usr/bin/curl"), "{out}");
        assert_eq!(at("     4242 curl"), at("curl ") + 1, "{out}");
        assert_eq!(at("     4250 curl"), at("curl ") + 2, "{out}");
        assert!(
            lines[at("name wget ")].contains("rule \"name wget\""),
            "{out}"
        );
        assert_eq!(at("     4343 wget"), at("name wget ") + 1, "{out}");
        let plain = ok(&mut system, &["top", "--once", "--interval", "10ms"]);
        assert!(
            !plain.contains("APPLICATION"),
            "--by process is the default: {plain}"
        );
    }

    #[test]
    fn top_once_json_shows_the_processes_their_rates_and_limits() {
        let mut system = machine();
        let processes = [usage(4242, "curl", 1000), usage(4343, "wget", 50)];
        with_readings(&system, &processes);
        ok(&mut system, &["limit", "--pid", "4242", "--down", "1M"]);
        let out = ok(
            &mut system,
            &["top", "--once", "--json", "--interval", "10ms"],
        );
        let snapshot: serde_json::Value = serde_json::from_str(&out).expect("JSON");
        let pids: Vec<&serde_json::Value> = snapshot["processes"]
            .as_array()
            .expect("processes")
            .iter()
            .map(|p| &p["pid"])
            .collect();
        assert_eq!(pids, [4242, 4343], "busiest first: {snapshot}");
        assert_eq!(snapshot["processes"][0]["limit"]["down"], 1 << 20);
        assert_eq!(snapshot["source"], "ebpf");
        let out = ok(
            &mut system,
            &[
                "top",
                "--once",
                "--interval",
                "10ms",
                "--pid",
                "4343",
                "--fallback",
            ],
        );
        assert!(out.contains("wget") && !out.contains("curl"), "{out}");
        assert!(out.contains("fallback chosen"), "{out}");
    }

    #[test]
    fn top_json_names_the_rule_that_governs_a_process_and_shows_its_limit() {
        let mut system = machine();
        let processes = [usage(4242, "curl", 1000), usage(4343, "wget", 50)];
        with_readings(&system, &processes);
        ok(&mut system, &["limit", "--name", "wget", "--up", "2M"]);
        // curl's own PID limit outranks a rule that matches it too
        ok(&mut system, &["limit", "--pid", "4242", "--down", "1M"]);
        ok(&mut system, &["limit", "--name", "curl", "--up", "5M"]);
        let out = ok(
            &mut system,
            &["top", "--once", "--json", "--interval", "10ms"],
        );
        let snapshot: serde_json::Value = serde_json::from_str(&out).expect("JSON");
        let process = |pid: u32| {
            snapshot["processes"]
                .as_array()
                .expect("processes")
                .iter()
                .find(|p| p["pid"] == pid)
                .cloned()
                .unwrap_or_else(|| panic!("{pid} listed: {snapshot}"))
        };
        assert_eq!(process(4343)["rule"], "name wget", "{snapshot}");
        assert_eq!(process(4343)["limit"]["up"], 2 << 20, "{snapshot}");
        assert!(process(4242)["rule"].is_null(), "{snapshot}");
        assert_eq!(process(4242)["limit"]["down"], 1 << 20, "{snapshot}");
    }
}
