//! Text the command line prints: pure functions of the data, tested without a kernel.

use chadthrottle_core::backend::{Availability, BackendDescriptor};
use chadthrottle_core::rate::format_bytes;
use chadthrottle_core::rule_request::RuleStatus;
use chadthrottle_core::rule_target::RuleSpec;
use chadthrottle_core::status::{ActiveLimit, DirStats, DirectionLimit};
use chadthrottle_core::usage::LimitRates;
use chadthrottle_core::{Direction, PerDirection, ProcessRef, Rate};
use std::fmt::Write as _;

fn rate(limit: &DirectionLimit) -> String {
    Rate::new(limit.rate).map_or_else(
        || format!("{}B/s", limit.rate),
        |rate| {
            if rate.is_block() {
                "blocked".to_owned()
            } else {
                rate.to_string()
            }
        },
    )
}

/// `up 1MB/s (burst 100KB)`, or `up unlimited`.
fn direction(direction: Direction, limit: Option<&DirectionLimit>) -> String {
    match limit {
        Some(limit) => format!(
            "{direction} {} (burst {})",
            rate(limit),
            format_bytes(limit.burst)
        ),
        None => format!("{direction} unlimited"),
    }
}

/// `in 4m 10s`, from seconds.
pub fn remaining(seconds: u64) -> String {
    match span(seconds) {
        span if span.is_empty() => "now".to_owned(),
        span => format!("in {span}"),
    }
}

/// A `--for` as given: `500ms`, `1s`, `1m 30s`.
pub fn lasting(lasts: std::time::Duration) -> String {
    match lasts.as_secs() {
        0 => format!("{}ms", lasts.as_millis()),
        seconds => span(seconds),
    }
}

/// `1m 30s`, `2d 3h`: the two largest units of `seconds`; empty for 0.
pub fn span(seconds: u64) -> String {
    let (d, h, m, s) = (
        seconds / 86_400,
        seconds / 3600 % 24,
        seconds / 60 % 60,
        seconds % 60,
    );
    let parts: Vec<String> = [(d, "d"), (h, "h"), (m, "m"), (s, "s")]
        .into_iter()
        .skip_while(|(value, _)| *value == 0)
        .take(2)
        .filter(|(value, _)| *value != 0)
        .map(|(value, unit)| format!("{value}{unit}"))
        .collect();
    parts.join(" ")
}

fn expiry(expires_at: Option<u64>, now_unix: u64) -> String {
    expires_at.map_or_else(
        || "until removed".to_owned(),
        |at| format!("expires {}", remaining(at.saturating_sub(now_unix))),
    )
}

/// The backend holding one direction of a limit, marked where the download default chose
/// it (the reason `limit` printed then).
fn backend_name(limit: &DirectionLimit) -> String {
    let name = limit.enforcement.name();
    if limit.by_default {
        format!("{name} (default)")
    } else {
        name.to_owned()
    }
}

/// The backends enforcing a limit or rule, for its one-line summary: one name when both
/// directions agree, else one per direction.
fn backends(limits: &PerDirection<Option<DirectionLimit>>) -> String {
    let names: Vec<(Direction, String)> = limits
        .iter()
        .filter_map(|(dir, set)| set.as_ref().map(|set| (dir, backend_name(set))))
        .collect();
    match names.as_slice() {
        [] => "counting only".to_owned(),
        [(_, one)] => one.clone(),
        [(_, up), (_, down)] if up == down => up.clone(),
        many => many
            .iter()
            .map(|(dir, name)| format!("{dir} {name}"))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// One line for `limit` and the upstream foreground form.
pub fn limit_summary(limit: &ActiveLimit, now_unix: u64) -> String {
    format!(
        "PID {} ({}): {}, {}, {} [{}]",
        limit.target.pid,
        limit.name,
        direction(Direction::Up, limit.limits.up.as_ref()),
        direction(Direction::Down, limit.limits.down.as_ref()),
        expiry(limit.expires_at, now_unix),
        backends(&limit.limits),
    )
}

/// One line for a rule `limit` set: `rule exe /usr/bin/steam ↓5MB/s (shared), until
/// removed [shaping]`, its name in quotes first when it is not its target.
pub fn rule_summary(rule: &RuleStatus, now_unix: u64) -> String {
    format!(
        "{}, {} [{}]",
        rule_heading(&rule.spec),
        expiry(rule.expires_at, now_unix),
        backends(&rule.limits)
    )
}

/// `rule "steam": exe /usr/bin/steam ↓5MB/s (shared)`; the name only where it is not the
/// target.
pub fn rule_heading(spec: &RuleSpec) -> String {
    let named = if spec.name == spec.target.to_string() {
        String::new()
    } else {
        format!("\"{}\": ", spec.name)
    };
    format!("rule {named}{}", spec.summary())
}

/// How many processes, and the first PIDs: `3: 4242, 4343, 4444`, `5: 1, 2, 3, …`.
fn members(members: &[ProcessRef]) -> String {
    const SHOWN: usize = 3;
    if members.is_empty() {
        return "0".to_owned();
    }
    let pids: Vec<String> = members
        .iter()
        .take(SHOWN)
        .map(|m| m.pid.to_string())
        .collect();
    let more = if members.len() > SHOWN { ", …" } else { "" };
    format!("{}: {}{more}", members.len(), pids.join(", "))
}

/// The `rules` table: a line per rule, in precedence order among equal ranks.
/// The line under the rules that says processes went ungoverned for want of room (the
/// kernel's count); nothing while there were none.
pub fn member_table_full(times: u64) -> String {
    match times {
        0 => String::new(),
        _ => format!(
            "\n{times} {} a process matched a rule but the member table was full: it is not \
             limited until a rule change finds it room (remove rules or narrow their \
             targets)\n",
            if times == 1 { "time" } else { "times" }
        ),
    }
}

pub fn rules_table(rules: &[RuleStatus], now_unix: u64) -> String {
    if rules.is_empty() {
        return "no rules\n".to_owned();
    }
    let mut rows = vec![
        [
            "NAME", "TARGET", "MODE", "LIMIT", "BACKEND", "MEMBERS", "PASSED", "DROPPED", "EXPIRES",
        ]
        .map(str::to_owned),
    ];
    let both = |rule: &RuleStatus, pick: fn(&DirStats) -> u64| {
        format!(
            "↓{} ↑{}",
            format_bytes(pick(&rule.stats.down)),
            format_bytes(pick(&rule.stats.up))
        )
    };
    for rule in rules {
        let rate = |direction: Direction| rule.limits.get(direction).map(|l| l.rate);
        rows.push([
            rule.spec.name.clone(),
            rule.resolved.to_string(),
            rule.spec.mode.to_string(),
            LimitRates {
                up: rate(Direction::Up),
                down: rate(Direction::Down),
            }
            .to_string(),
            backends(&rule.limits),
            members(&rule.members),
            both(rule, |s| s.bytes),
            both(rule, |s| s.dropped_bytes),
            rule.expires_at.map_or_else(
                || "never".to_owned(),
                |at| remaining(at.saturating_sub(now_unix)),
            ),
        ]);
    }
    table(&rows)
}

/// The `status` table: a line per process and direction.
pub fn status_table(limits: &[ActiveLimit], now_unix: u64) -> String {
    if limits.is_empty() {
        return "no active limits\n".to_owned();
    }
    let mut rows = vec![
        [
            "PID", "NAME", "DIR", "LIMIT", "BURST", "BYTES", "PACKETS", "DROPPED", "BACKEND",
            "EXPIRES",
        ]
        .map(str::to_owned),
    ];
    for limit in limits {
        for (dir, set) in limit.limits.iter() {
            let stats = limit.stats.get(dir);
            let first = dir == Direction::Up;
            rows.push([
                if first {
                    limit.target.pid.to_string()
                } else {
                    String::new()
                },
                if first {
                    limit.name.clone()
                } else {
                    String::new()
                },
                dir.to_string(),
                set.as_ref().map_or_else(|| "-".to_owned(), rate),
                set.as_ref()
                    .map_or_else(|| "-".to_owned(), |l| format_bytes(l.burst)),
                format_bytes(stats.bytes),
                stats.packets.to_string(),
                format!(
                    "{} ({} pkts)",
                    format_bytes(stats.dropped_bytes),
                    stats.dropped_packets
                ),
                set.as_ref().map_or_else(|| "-".to_owned(), backend_name),
                if first {
                    limit.expires_at.map_or_else(
                        || "never".to_owned(),
                        |at| remaining(at.saturating_sub(now_unix)),
                    )
                } else {
                    String::new()
                },
            ]);
        }
    }
    table(&rows)
}

/// The `backends` table.
pub fn backends_table(backends: &[(BackendDescriptor, Availability)]) -> String {
    let mut rows =
        vec![["BACKEND", "PRIORITY", "UPLOAD", "DOWNLOAD", "AVAILABLE"].map(str::to_owned)];
    let mut notes = String::new();
    let yes_no = |flag: bool| if flag { "yes" } else { "no" }.to_owned();
    for (backend, availability) in backends {
        rows.push([
            backend.name.to_owned(),
            backend.priority.to_string(),
            yes_no(backend.directions.up),
            yes_no(backend.directions.down),
            yes_no(availability.is_available()),
        ]);
        let _infallible = writeln!(notes, "\n{}: {}", backend.name, backend.summary);
        if let Availability::Unavailable(reason) = availability {
            let _infallible = writeln!(notes, "  unavailable: {reason}");
        }
    }
    table(&rows) + &notes
}

fn table<const N: usize>(rows: &[[String; N]]) -> String {
    let widths: Vec<usize> = (0..N)
        .map(|column| {
            rows.iter()
                .map(|row| row[column].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// Which directions a command touches, from `--up`/`--down` flags (neither: both).
pub fn directions_from_flags(up: bool, down: bool) -> PerDirection<bool> {
    if up || down {
        PerDirection { up, down }
    } else {
        PerDirection {
            up: true,
            down: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chadthrottle_core::status::Enforcement;

    fn sample() -> ActiveLimit {
        ActiveLimit {
            target: ProcessRef {
                pid: 4242,
                start_time: 9,
            },
            name: "curl".into(),
            limits: PerDirection {
                up: Some(DirectionLimit {
                    rate: 1 << 20,
                    burst: 104_857,
                    enforcement: Enforcement::Shaping,
                    by_default: false,
                }),
                down: Some(DirectionLimit {
                    rate: 0,
                    burst: 65_536,
                    enforcement: Enforcement::Policer,
                    by_default: false,
                }),
            },
            expires_at: Some(1_090),
            stats: PerDirection {
                up: DirStats {
                    bytes: 3 << 20,
                    packets: 2200,
                    dropped_bytes: 1 << 20,
                    dropped_packets: 700,
                },
                down: DirStats::default(),
            },
        }
    }

    #[test]
    fn summary_shows_rates_in_input_units() {
        assert_eq!(
            limit_summary(&sample(), 1_000),
            "PID 4242 (curl): up 1MB/s (burst 102.4KB), down blocked (burst 64KB), expires in 1m 30s [up shaping, down policer]"
        );
        let mut both = sample();
        both.limits.down = None;
        assert!(limit_summary(&both, 1_000).ends_with("[shaping]"));
    }

    #[test]
    fn status_table_lines_up() {
        let text = status_table(&[sample()], 1_000);
        let expected = "\
PID   NAME  DIR   LIMIT    BURST    BYTES  PACKETS  DROPPED         BACKEND  EXPIRES
4242  curl  up    1MB/s    102.4KB  3MB    2200     1MB (700 pkts)  shaping  in 1m 30s
            down  blocked  64KB     0B     0        0B (0 pkts)     policer
";
        assert_eq!(text, expected);
        assert_eq!(status_table(&[], 0), "no active limits\n");
    }

    #[test]
    fn rules_table_lines_up_and_shows_the_first_members() {
        use chadthrottle_core::rule_request::{ResolvedTarget, RuleStatus};
        use chadthrottle_core::rule_target::{Mode, RuleLimit, RuleSpec, RuleTarget, UserSpec};
        let limit = sample().limits.up;
        let members: Vec<ProcessRef> = (1..=5)
            .map(|pid| ProcessRef { pid, start_time: 1 })
            .collect();
        let rule = RuleStatus {
            spec: RuleSpec {
                name: "user alice".into(),
                target: RuleTarget::User(UserSpec::Name("alice".into())),
                limits: PerDirection {
                    up: Some(RuleLimit {
                        rate: Rate::new(1 << 20).expect("valid"),
                        burst: None,
                        backend: None,
                    }),
                    down: None,
                },
                mode: Mode::Each,
                order: 0,
                enabled: true,
            },
            resolved: ResolvedTarget::Uid(1000),
            limits: PerDirection {
                up: limit,
                down: None,
            },
            members,
            stats: sample().stats,
            expires_at: Some(1_090),
        };
        let expected = "\
NAME        TARGET    MODE  LIMIT        BACKEND  MEMBERS        PASSED    DROPPED   EXPIRES
user alice  uid 1000  each  ⚡ ↓- ↑1MB/s  shaping  5: 1, 2, 3, …  ↓0B ↑3MB  ↓0B ↑1MB  in 1m 30s
";
        assert_eq!(rules_table(std::slice::from_ref(&rule), 1_000), expected);
        assert_eq!(rules_table(&[], 0), "no rules\n");
        assert_eq!(
            rule_summary(&rule, 1_000),
            "rule user alice ↑1MB/s (each), expires in 1m 30s [shaping]"
        );
        let named = RuleStatus {
            spec: RuleSpec {
                name: "steam".into(),
                ..rule.spec.clone()
            },
            ..rule
        };
        assert!(rule_summary(&named, 1_000).starts_with("rule \"steam\": user alice ↑1MB/s"));
    }

    #[test]
    fn remaining_time_is_two_units_at_most() {
        assert_eq!(remaining(0), "now");
        assert_eq!(remaining(59), "in 59s");
        assert_eq!(remaining(3600 + 5), "in 1h");
        assert_eq!(remaining(90_061), "in 1d 1h");
    }
}
