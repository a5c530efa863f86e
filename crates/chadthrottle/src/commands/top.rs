//! `chadthrottle top`: which processes use the network, from the datapath's accounting,
//! or from sock_diag when eBPF is out of reach (with the reason shown).

use crate::cli::{Global, TopArgs};
use crate::top_view;
use chadthrottle_core::ProcessRef;
use chadthrottle_core::backend::Backend;
use chadthrottle_core::monitor::Monitor;
use chadthrottle_core::usage::{Layer, LimitRates, Reading, Snapshot, Source};
use chadthrottle_kernel::sockdiag::SockDiag;
use chadthrottle_kernel::{Accounting, Datapath, mounts};
use std::collections::HashMap;
use std::io::{IsTerminal as _, Write as _};

/// Where the figures come from.
enum UsageSource {
    Ebpf {
        accounting: Box<Accounting>,
        limits: Option<Box<Datapath>>,
    },
    Fallback(SockDiag),
}

impl UsageSource {
    /// The datapath's accounting if it can be had, else the fallback and why.
    fn open(global: &Global, fallback: bool) -> (UsageSource, Option<String>) {
        if fallback {
            return (
                UsageSource::Fallback(SockDiag::new()),
                Some("fallback chosen with --fallback".to_owned()),
            );
        }
        let ebpf = || -> anyhow::Result<UsageSource> {
            let config = super::config(global)?;
            let mut accounting = Accounting::install(&config)?;
            accounting.adopt_open_sockets(&mounts::cgroup_scope(&config.cgroup)?);
            Ok(UsageSource::Ebpf {
                accounting: Box::new(accounting),
                limits: Datapath::open(&config.pin_dir)?.map(Box::new),
            })
        };
        match ebpf() {
            Ok(source) => (source, None),
            Err(error) => (
                UsageSource::Fallback(SockDiag::new()),
                Some(format!(
                    "eBPF accounting unavailable, so TCP only and only processes whose /proc/PID/fd \
                     is readable: {error:#}"
                )),
            ),
        }
    }

    const fn kind(&self) -> (Source, Layer) {
        match self {
            UsageSource::Ebpf { .. } => (Source::Ebpf, Layer::TransportPayload),
            UsageSource::Fallback(_) => (Source::SockDiag, Layer::TcpStream),
        }
    }

    fn read(&mut self) -> anyhow::Result<Reading> {
        Ok(match self {
            UsageSource::Ebpf { accounting, .. } => accounting.read()?,
            UsageSource::Fallback(diag) => diag.read()?,
        })
    }

    fn limits(&mut self) -> anyhow::Result<HashMap<ProcessRef, LimitRates>> {
        let UsageSource::Ebpf {
            limits: Some(datapath),
            ..
        } = self
        else {
            return Ok(HashMap::new());
        };
        Ok(datapath
            .limits()?
            .into_iter()
            .map(|limit| {
                let rate = |d: Option<chadthrottle_core::status::DirectionLimit>| d.map(|d| d.rate);
                (
                    limit.target,
                    LimitRates {
                        up: rate(limit.limits.up),
                        down: rate(limit.limits.down),
                    },
                )
            })
            .collect())
    }
}

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
