//! `chadthrottle top`: which processes use the network, from the datapath's accounting,
//! or from sock_diag when eBPF is out of reach (with the reason shown).

use crate::cli::{Global, TopArgs};
use crate::top_view;
use crate::usage_source::UsageSource;
use chadthrottle_core::monitor::Monitor;
use chadthrottle_core::usage::Snapshot;
use std::io::{IsTerminal as _, Write as _};

fn focus(snapshot: &mut Snapshot, args: &TopArgs) {
    if let Some(pid) = args.pid {
        snapshot.processes.retain(|p| p.pid == pid);
        snapshot.connections.retain(|c| c.pid == pid);
    }
    if !args.connections {
        snapshot.connections.clear();
    }
}

fn print(snapshot: &Snapshot, args: &TopArgs, redraw: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
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

pub fn run(global: &Global, args: &TopArgs) -> anyhow::Result<()> {
    let (mut source, note) = UsageSource::open(global, args.fallback);
    let (kind, layer) = source.kind();
    let interval_ms = u64::try_from(args.interval.as_millis()).unwrap_or(u64::MAX);
    let mut monitor = Monitor::new(kind, layer, note, interval_ms);
    monitor.ingest(source.read()?);
    let snapshots = if args.once {
        1
    } else {
        args.count.unwrap_or(u64::MAX)
    };
    let redraw = !args.json && !args.once && std::io::stdout().is_terminal();
    for _ in 0..snapshots {
        std::thread::sleep(args.interval);
        monitor.ingest(source.read()?);
        let mut snapshot = monitor.snapshot(&source.limits()?);
        focus(&mut snapshot, args);
        print(&snapshot, args, redraw)?;
    }
    Ok(())
}
