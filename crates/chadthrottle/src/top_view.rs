//! Text `chadthrottle top` prints: the process table or the application table
//! (`--by app`), a process's connections and the interfaces. Pure functions of a
//! snapshot, tested without a kernel.

use chadthrottle_core::application::{ApplicationSnapshot, KeyKind};
use chadthrottle_core::rate::{format_bytes, format_rate};
use chadthrottle_core::usage::{Layer, LimitRates, Snapshot, Source};
use std::fmt::Write as _;

/// The line above the tables: where the figures come from and what they count.
pub fn heading(snapshot: &Snapshot) -> String {
    let source = match snapshot.source {
        Source::Ebpf => "eBPF datapath, every process, TCP and UDP",
        Source::SockDiag => "fallback: sock_diag TCP counters",
    };
    let counted = match snapshot.counted {
        Layer::TransportPayload => "transport payload bytes",
        Layer::TcpStream => "TCP bytes acknowledged/received",
    };
    let mut line = format!("source: {source} ({counted})");
    if let Some(note) = &snapshot.note {
        let _ = write!(line, "\n{note}");
    }
    line
}

/// The process table, like `nethogs -t`: PID, name, ↓/↑ rate, ↓/↑ total, limit.
pub fn processes(snapshot: &Snapshot) -> String {
    let mut out = format!(
        "{:>7}  {:<16} {:>12} {:>12} {:>10} {:>10}  {}\n",
        "PID", "NAME", "↓ RATE", "↑ RATE", "↓ TOTAL", "↑ TOTAL", "LIMIT"
    );
    for p in &snapshot.processes {
        let name = if p.exited {
            format!("{} (exited)", p.name)
        } else {
            p.name.clone()
        };
        let _ = writeln!(
            out,
            "{:>7}  {:<16} {:>12} {:>12} {:>10} {:>10}  {}",
            p.pid,
            name,
            format_rate(p.rx_rate),
            format_rate(p.tx_rate),
            format_bytes(p.rx_bytes),
            format_bytes(p.tx_bytes),
            limit_text(p.limit),
        );
    }
    if snapshot.processes.is_empty() {
        out.push_str("        (no process has used the network yet)\n");
    }
    out
}

/// `⚡ ↓… ↑…`, or nothing without a limit.
fn limit_text(limit: Option<LimitRates>) -> String {
    limit.map(|l| l.to_string()).unwrap_or_default()
}

/// `top --by app`: a row per application — its name, how many processes, the members'
/// rates and totals added up, the rule's limit and what the application is (the rule, or
/// the executable's path) — and its processes indented under it, with their own limits
/// when no rule holds them.
pub fn applications(grouped: &ApplicationSnapshot) -> String {
    let mut out = format!(
        "{:<28} {:>5} {:>12} {:>12} {:>10} {:>10}  {}\n",
        "APPLICATION / PID", "PROCS", "↓ RATE", "↑ RATE", "↓ TOTAL", "↑ TOTAL", "LIMIT"
    );
    let exited = |name: &str, exited: bool| match exited {
        true => format!("{name} (exited)"),
        false => name.to_owned(),
    };
    for app in &grouped.applications {
        let what = match app.key.kind {
            KeyKind::Rule => format!("rule \"{}\"", app.key.key),
            KeyKind::Exe => app.key.key.clone(),
            KeyKind::Name => String::new(),
        };
        let limit = limit_text(app.limit);
        let _ = writeln!(
            out,
            "{:<28} {:>5} {:>12} {:>12} {:>10} {:>10}  {}",
            exited(&app.name, app.exited),
            app.process_count,
            format_rate(app.rx_rate),
            format_rate(app.tx_rate),
            format_bytes(app.rx_bytes),
            format_bytes(app.tx_bytes),
            [limit, what].join(" ").trim(),
        );
        for p in &app.processes {
            let member = format!("  {:>7} {}", p.pid, exited(&p.name, p.exited));
            let limit = match app.rule {
                Some(_) => String::new(),
                None => limit_text(p.limit),
            };
            let line = format!(
                "{:<28} {:>5} {:>12} {:>12} {:>10} {:>10}  {}",
                member,
                "",
                format_rate(p.rx_rate),
                format_rate(p.tx_rate),
                format_bytes(p.rx_bytes),
                format_bytes(p.tx_bytes),
                limit,
            );
            let _ = writeln!(out, "{}", line.trim_end());
        }
    }
    if grouped.applications.is_empty() {
        out.push_str("        (no process has used the network yet)\n");
    }
    out
}

/// The connections of the snapshot (already filtered to one process by the caller).
pub fn connections(snapshot: &Snapshot) -> String {
    let mut out = format!(
        "{:<5} {:<28} {:<28} {:<12} {:>12} {:>12} {:>10} {:>10}\n",
        "PROTO", "LOCAL", "REMOTE", "STATE", "↓ RATE", "↑ RATE", "↓ TOTAL", "↑ TOTAL"
    );
    for c in &snapshot.connections {
        let protocol = serde_json::to_value(c.protocol)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{:<5} {:<28} {:<28} {:<12} {:>12} {:>12} {:>10} {:>10}",
            protocol,
            c.local.to_string(),
            c.remote.to_string(),
            c.state,
            format_rate(c.rx_rate),
            format_rate(c.tx_rate),
            format_bytes(c.rx_bytes),
            format_bytes(c.tx_bytes),
        );
    }
    out
}

/// One line per interface with traffic.
pub fn interfaces(snapshot: &Snapshot) -> String {
    let mut out = String::new();
    for i in &snapshot.interfaces {
        if i.rx_bytes + i.tx_bytes == 0 {
            continue;
        }
        let _ = writeln!(
            out,
            "{:<12} ↓ {:>12}  ↑ {:>12}",
            i.name,
            format_rate(i.rx_rate),
            format_rate(i.tx_rate)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chadthrottle_core::usage::{InterfaceUsage, LimitRates, ProcessUsage, Split};

    fn snapshot() -> Snapshot {
        Snapshot {
            interval_ms: 1000,
            source: Source::Ebpf,
            counted: Layer::TransportPayload,
            note: None,
            processes: vec![ProcessUsage {
                pid: 4242,
                start_time: 1,
                name: "curl".into(),
                cmdline: "curl -O x".into(),
                rx_rate: 1 << 20,
                tx_rate: 0,
                rx_bytes: 10 << 20,
                tx_bytes: 2048,
                rx_packets: 0,
                tx_packets: 0,
                limit: Some(LimitRates {
                    up: Some(0),
                    down: Some(1 << 20),
                }),
                rule: None,
                internet: Split::default(),
                local: Split::default(),
                exited: false,
            }],
            interfaces: vec![InterfaceUsage {
                name: "eth0".into(),
                rx_rate: 1 << 20,
                tx_rate: 1024,
                rx_bytes: 1,
                tx_bytes: 1,
                addresses: vec![],
            }],
            connections: vec![],
        }
    }

    #[test]
    fn process_rows_show_rates_totals_and_the_limit() {
        let text = processes(&snapshot());
        let row = text.lines().nth(1).unwrap();
        assert!(row.contains("4242"), "{row}");
        assert!(row.contains("curl"), "{row}");
        assert!(row.contains("1MB/s"), "{row}");
        assert!(row.contains("10MB"), "{row}");
        assert!(row.contains("2KB"), "{row}");
        assert!(row.contains("⚡ ↓1MB/s ↑blocked"), "{row}");
    }

    #[test]
    fn application_rows_add_up_their_members_and_name_the_rule() {
        use chadthrottle_core::table_order::SortKey;
        let mut s = snapshot();
        let mut second = s.processes[0].clone();
        second.pid = 4243;
        second.tx_rate = 2048;
        let mut other = s.processes[0].clone();
        other.pid = 7;
        other.name = "wget".into();
        other.limit = None;
        s.processes.extend([second, other]);
        for p in &mut s.processes[..2] {
            p.rule = Some("downloads".into());
        }
        let grouped = ApplicationSnapshot::of(
            s,
            |p| Some(format!("/usr/bin/{}", p.name)),
            SortKey::Busiest,
        );
        let text = applications(&grouped);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 6, "{text}");
        let app = lines[1];
        assert!(app.starts_with("downloads "), "{text}");
        assert!(app.contains("    2 "), "{text}");
        assert!(
            app.contains("2MB/s") && app.contains("2KB/s") && app.contains("20MB"),
            "{text}"
        );
        assert!(
            app.contains("⚡ ↓1MB/s ↑blocked rule \"downloads\""),
            "{text}"
        );
        // members busiest first, like the applications
        assert!(lines[2].starts_with("     4243 curl"), "{text}");
        assert!(
            !lines[2].contains('⚡'),
            "the rule's limit is on its row: {text}"
        );
        assert!(lines[3].starts_with("     4242 curl"), "{text}");
        assert!(
            lines[4].starts_with("wget ") && lines[4].ends_with("/usr/bin/wget"),
            "{text}"
        );
        assert!(lines[5].starts_with("        7 wget"), "{text}");
    }

    #[test]
    fn heading_names_the_source_the_layer_and_the_reason() {
        let mut s = snapshot();
        assert!(heading(&s).contains("transport payload"));
        s.source = Source::SockDiag;
        s.counted = Layer::TcpStream;
        s.note = Some("eBPF unavailable: CAP_BPF missing".into());
        let text = heading(&s);
        assert!(
            text.contains("sock_diag") && text.contains("CAP_BPF missing"),
            "{text}"
        );
    }

    #[test]
    fn empty_and_interface_views() {
        let mut s = snapshot();
        s.processes.clear();
        assert!(processes(&s).contains("no process"));
        assert!(interfaces(&s).starts_with("eth0"));
    }
}
