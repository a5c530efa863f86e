//! Made-up usage for the metrics endpoint's tests and its scrape benchmark (`ct-bench
//! --metrics-scrape`): many applications, some governed by rules, some under PID limits.

use crate::application::{ApplicationSnapshot, group};
use crate::direction::PerDirection;
use crate::process::ProcessRef;
use crate::status::{DirStats, LimitStatus, RuleEntry, StatusReport};
use crate::usage::{Layer, ProcessUsage, Source, Split};

/// `applications` applications of two processes each, every tenth governed by a rule and
/// every seventh's first process under a PID limit; `round` scales every counter, so
/// successive rounds read as traffic going on.
pub fn busy_machine(applications: u32, round: u64) -> (ApplicationSnapshot, StatusReport) {
    let round = round.max(1);
    let mut processes = Vec::new();
    let mut rules = Vec::new();
    let mut limits = Vec::new();
    for app in 0..applications {
        let weight = u64::from(app % 97 + 1) * round;
        let rule = (app % 10 == 0).then(|| format!("rule-{app}"));
        let mut members = Vec::new();
        for member in 0..2 {
            let pid = 1000 + app * 2 + member;
            let bytes = weight * 10_000 + u64::from(member);
            members.push(ProcessRef { pid, start_time: 1 });
            processes.push(ProcessUsage {
                pid,
                start_time: 1,
                name: format!("app{app}"),
                cmdline: String::new(),
                rx_rate: weight,
                tx_rate: weight / 2,
                rx_bytes: bytes,
                tx_bytes: bytes / 3,
                rx_packets: bytes / 1400,
                tx_packets: bytes / 4200,
                limit: None,
                rule: rule.clone(),
                internet: Split {
                    rx_bytes: bytes / 2,
                    tx_bytes: bytes / 6,
                    ..Split::default()
                },
                local: Split {
                    rx_bytes: bytes / 4,
                    tx_bytes: bytes / 12,
                    ..Split::default()
                },
                exited: false,
            });
        }
        let dropped = |bytes| DirStats {
            dropped_bytes: bytes,
            dropped_packets: bytes / 1400,
            ..DirStats::default()
        };
        if let Some(name) = rule {
            rules.push(RuleEntry {
                name,
                target: format!("exe /opt/app{app}/bin/app{app}"),
                kind: "exe".into(),
                resolved: format!("exe /opt/app{app}/bin/app{app}"),
                mode: "shared".into(),
                order: app,
                up: Some(1 << 20),
                down: Some(5 << 20),
                burst_up: None,
                burst_down: None,
                backend: PerDirection::default(),
                members,
                expires_at: None,
                stats: PerDirection {
                    up: dropped(weight * 10),
                    down: dropped(weight * 100),
                },
            });
        } else if app % 7 == 0 {
            limits.push(LimitStatus {
                pid: 1000 + app * 2,
                start_time: 1,
                name: format!("app{app}"),
                up: None,
                down: Some(1 << 20),
                burst_up: None,
                burst_down: None,
                expires_at: None,
                backend: PerDirection::default(),
                download_by_default: false,
                stats: PerDirection {
                    up: DirStats::default(),
                    down: dropped(weight * 50),
                },
            });
        }
    }
    let usage = ApplicationSnapshot {
        interval_ms: 10_000,
        source: Source::Ebpf,
        counted: Layer::TransportPayload,
        note: None,
        applications: group(processes, |p| {
            let app = p.name.trim_start_matches("app");
            Some(format!("/opt/app{app}/bin/app{app}"))
        }),
        interfaces: vec![],
        connections: vec![],
    };
    (
        usage,
        StatusReport {
            limits,
            rules,
            member_table_full: 0,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::application::KeyKind;

    #[test]
    fn the_machine_has_the_applications_rules_and_limits_it_says() {
        let (usage, status) = busy_machine(100, 1);
        assert_eq!(usage.applications.len(), 100);
        let by_rule = usage
            .applications
            .iter()
            .filter(|a| a.key.kind == KeyKind::Rule)
            .count();
        assert_eq!((by_rule, status.rules.len()), (10, 10));
        assert_eq!(
            status.limits.len(),
            13,
            "multiples of 7 below 100 but not of 10"
        );
        let (later, _) = busy_machine(100, 2);
        assert!(later.applications[1].rx_bytes > usage.applications[1].rx_bytes);
    }
}
