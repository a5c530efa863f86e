//! Made-up processes, readings and apps, for the unit and snapshot tests and the render
//! benchmark.

use crate::app::App;
use crate::grouping::Membership;
use chadthrottle_core::ProcessRef;
use chadthrottle_core::usage::{Counters, Layer, ProcessReading, Reading, Source};
use std::collections::HashMap;

/// A process that receives `rate` bytes per second (and sends a tenth of it).
pub fn usage(pid: u32, name: &str, rate: u64) -> (u32, String, u64) {
    (pid, name.to_owned(), rate)
}

/// A reading at `seconds` of `processes` that have kept their rates since 0.
pub fn reading(processes: &[(u32, String, u64)], seconds: u64) -> Reading {
    let at_ns = seconds * 1_000_000_000;
    Reading {
        at_ns,
        processes: processes
            .iter()
            .map(|(pid, name, rate)| ProcessReading {
                process: ProcessRef {
                    pid: *pid,
                    start_time: 1,
                },
                name: name.clone(),
                cmdline: format!("/usr/bin/{name}"),
                counters: Counters {
                    rx_bytes: 1 + rate * seconds,
                    tx_bytes: 1 + rate / 10 * seconds,
                    rx_packets: 1,
                    tx_packets: 1,
                },
                exited_at_ns: None,
            })
            .collect(),
        connections: vec![],
        interfaces: vec![],
    }
}

/// An empty app as the tests use it: eBPF source, 1 s interval, not read-only, no colors.
pub fn new_app() -> App {
    App::new(
        Source::Ebpf,
        Layer::TransportPayload,
        None,
        1000,
        None,
        false,
    )
}

/// An app (80×24, eBPF source, colors off) that has seen `processes` for two seconds,
/// with the top row selected.
pub fn app_with(processes: Vec<(u32, String, u64)>) -> App {
    let mut app = new_app();
    for second in 0..3 {
        app.ingest(reading(&processes, second), HashMap::new());
    }
    // the selection follows its process; start the tests on the top row
    app.select_row(0);
    app
}

/// An app with one process (PID 4242, `curl`) that has an Internet and a local connection.
pub fn app_with_connections() -> App {
    use chadthrottle_core::usage::{ConnectionReading, InterfaceReading, Protocol};
    let processes = [usage(4242, "curl", 1 << 20)];
    let connection = |id: u64, remote: &str, bytes: u64| ConnectionReading {
        id,
        process: ProcessRef {
            pid: 4242,
            start_time: 1,
        },
        protocol: Protocol::Tcp,
        local: "192.168.1.20:50000".parse().expect("address"),
        remote: remote.parse().expect("address"),
        state: "ESTABLISHED".into(),
        counters: Counters {
            rx_bytes: bytes,
            ..Counters::default()
        },
        last_active_ns: 0,
    };
    let mut app = new_app();
    for second in 0..3u64 {
        let mut reading = reading(&processes, second);
        reading.connections = vec![
            connection(1, "93.184.216.34:443", 1 + second * 900_000),
            connection(2, "192.168.1.1:53", 1 + second * 100_000),
        ];
        reading.interfaces = vec![InterfaceReading {
            name: "eth0".into(),
            rx_bytes: second * 2_000_000,
            tx_bytes: second * 100_000,
            addresses: vec!["192.168.1.20".parse().expect("address")],
        }];
        app.ingest(reading, HashMap::new());
    }
    app.select_row(0);
    app
}

/// An app (80×24) with two `firefox` processes (10, 11), `curl` (20), `wget` (30) under
/// the rule `downloads` (↓1MB/s) and the kernel thread `kthreadd` (2), whose executable
/// cannot be read; the runner has said what groups them; the table is not grouped yet.
pub fn app_with_applications() -> App {
    use chadthrottle_core::usage::LimitRates;
    let mut app = app_with(vec![
        usage(10, "firefox", 1 << 20),
        usage(11, "firefox", 300 << 10),
        usage(20, "curl", 500 << 10),
        usage(30, "wget", 50 << 10),
        usage(2, "kthreadd", 1 << 10),
    ]);
    let process = |pid| ProcessRef { pid, start_time: 1 };
    let limit = LimitRates {
        up: None,
        down: Some(1 << 20),
    };
    app.take_membership(Membership {
        exes: [(10, "firefox"), (11, "firefox"), (20, "curl"), (30, "wget")]
            .into_iter()
            .map(|(pid, name)| (process(pid), format!("/usr/bin/{name}")))
            .collect(),
        rules: HashMap::from([(process(30), ("downloads".to_owned(), limit))]),
    });
    app
}

/// A shared rule on executable `exe` limiting downloads to `down` bytes per second,
/// governing `members` (PIDs of processes that started at clock tick 1, as [`reading`]'s).
pub fn exe_rule(
    exe: &str,
    down: u64,
    members: &[u32],
) -> chadthrottle_core::rule_request::RuleStatus {
    use chadthrottle_core::rule_request::{ResolvedTarget, RuleStatus};
    use chadthrottle_core::rule_target::{Mode, RuleLimit, RuleSpec, RuleTarget};
    use chadthrottle_core::status::DirectionLimit;
    use chadthrottle_core::{PerDirection, Rate};
    let rate = Rate::new(down).expect("a rate the CLI takes");
    RuleStatus {
        spec: RuleSpec {
            name: format!("exe {exe}"),
            target: RuleTarget::Exe(exe.into()),
            limits: PerDirection {
                up: None,
                down: Some(RuleLimit {
                    rate,
                    burst: None,
                    backend: None,
                }),
            },
            mode: Mode::Shared,
            order: 0,
            enabled: true,
        },
        resolved: ResolvedTarget::Exe { path: exe.into() },
        limits: PerDirection {
            up: None,
            down: Some(DirectionLimit {
                rate: down,
                burst: 65536,
                enforcement: Default::default(),
                by_default: false,
            }),
        },
        members: members
            .iter()
            .map(|&pid| ProcessRef { pid, start_time: 1 })
            .collect(),
        stats: PerDirection::default(),
        expires_at: None,
    }
}

/// A History answer for `range`: Firefox (busiest), wget under the rule `downloads`, and
/// curl, over `days` UTC days ending 2026-11-30 10:00 UTC, each day's bytes growing
/// towards today.
pub fn history_rows(
    range: crate::history::HistoryRange,
    days: u64,
) -> crate::history::HistoryAnswer {
    use crate::history::{AppHistory, HistoryAnswer};
    use chadthrottle_core::usage_history::{Application, DAY, UsageRow, day_name};
    let until = 1_795_996_800 + 10 * 3600;
    let first_day = until - until % DAY - (days - 1) * DAY;
    let app = |exe: &str, rule: Option<&str>, per_day: u64| {
        let days: Vec<UsageRow> = (0..days)
            .map(|n| UsageRow {
                day: Some(day_name(first_day + n * DAY)),
                rx_bytes: per_day * (n + 1),
                tx_bytes: per_day * (n + 1) / 20,
                ..UsageRow::default()
            })
            .collect();
        let mut totals = UsageRow {
            rx_bytes: days.iter().map(|d| d.rx_bytes).sum(),
            tx_bytes: days.iter().map(|d| d.tx_bytes).sum(),
            ..UsageRow::default()
        };
        totals.charge_to(&Application::of(Some(exe), "x", rule));
        AppHistory { totals, days }
    };
    HistoryAnswer::Rows {
        range,
        since: match range {
            crate::history::HistoryRange::Today => until - until % DAY,
            _ => until - days * DAY + 1,
        },
        until,
        note: None,
        apps: vec![
            app("/usr/lib/firefox/firefox", None, 300 << 20),
            app("/usr/bin/wget", Some("downloads"), 40 << 20),
            app("/usr/bin/curl", None, 2 << 20),
        ],
    }
}
