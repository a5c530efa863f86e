//! `chadthrottle top`: which processes use the network, from the datapath's accounting,
//! or from sock_diag when eBPF is out of reach (with the reason shown).

use crate::cli::{Global, TopArgs};
use crate::top_view;
use chadthrottle_core::ProcessRef;
use chadthrottle_core::monitor::Monitor;
use chadthrottle_core::system::{System, UsageSource as _};
use chadthrottle_core::usage::Snapshot;
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

fn print(
    snapshot: &Snapshot,
    args: &TopArgs,
    redraw: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    if args.json {
        if args.once {
            writeln!(out, "{}", serde_json::to_string_pretty(snapshot)?)?;
        } else {
            writeln!(out, "{}", serde_json::to_string(snapshot)?)?;
        }
        return Ok(out.flush()?);
    }
    if redraw {
        write!(out, "\x1b[H\x1b[2J")?;
    }
    writeln!(out, "{}", top_view::heading(snapshot))?;
    if args.connections {
        write!(out, "{}", top_view::connections(snapshot))?;
    } else {
        write!(out, "{}", top_view::processes(snapshot))?;
        write!(out, "{}", top_view::interfaces(snapshot))?;
    }
    if !redraw {
        writeln!(out)?;
    }
    Ok(out.flush()?)
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
    for _ in 0..snapshots {
        std::thread::sleep(args.interval);
        monitor.ingest(super::access::read(system, &mut source)?);
        let mut snapshot = monitor.snapshot(&source.limits()?);
        let rules = source.rules()?;
        for process in &mut snapshot.processes {
            let key = ProcessRef {
                pid: process.pid,
                start_time: process.start_time,
            };
            if let Some((rule, limit)) = rules.get(&key) {
                process.rule = Some(rule.clone());
                process.limit = Some(*limit);
            }
        }
        focus(&mut snapshot, args);
        print(&snapshot, args, redraw, out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{machine, ok, with_readings};
    use chadthrottle_tui::fixtures::usage;

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
