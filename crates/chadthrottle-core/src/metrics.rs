//! What the metrics endpoint exports, decided without a server: per-application counters
//! kept monotonic across samples, the cap on how many applications get their own labels,
//! the rules' limits as gauges, and the daemon's health figures.
//!
//! Counters are built from deltas, not copied from the snapshot. An application's figures
//! in a snapshot are its members' sums, and they fall when a member exits and the usage
//! source forgets it, or when the datapath is reset; a Prometheus counter that falls reads
//! as a reset, and `rate()` would then count the whole remaining total again. So every
//! process's figures are compared with its previous reading (keyed by PID and start time,
//! so a reused PID is a new process), and only what it added is added to its application.
//!
//! Cardinality: only the [`MetricsState::new`]'s `top` applications with the most bytes
//! counted (down + up, cumulative since the daemon started counting them) keep their own
//! `app` label; what every other application adds is added to `app="other"`. Ranking on
//! cumulative totals rather than on current rates keeps the set stable: an application
//! enters the top only by overtaking one in it over its whole lifetime, not by one busy
//! second. The trade-off, when the set does change:
//! - an application that enters the top starts a new series at its cumulative total; what
//!   it did before stays counted in `other`, and Prometheus does not count a new series'
//!   first value as an increase, so `sum(rate(…))` counts nothing twice;
//! - an application that leaves the top ends its series, and its later traffic goes to
//!   `other`; should it come back within Prometheus's staleness window (5 minutes), the
//!   growth while it was out is counted both in `other` and in its own series once;
//! - an application that is no longer in the snapshot (every member exited and was
//!   forgotten) is forgotten too; if it comes back, its series starts again from what its
//!   new processes counted, which Prometheus reads as a counter reset.
//!
//! `other` itself never falls: it only ever receives deltas.

use crate::application::{AppKey, ApplicationSnapshot, KeyKind};
use crate::direction::PerDirection;
use crate::process::ProcessRef;
use crate::status::{DirStats, StatusReport};
use crate::usage::ProcessUsage;
use std::collections::HashMap;
use std::time::Duration;

/// How many applications keep their own labels unless configured otherwise: enough for the
/// programs that matter on a desktop or a server, few enough that a Prometheus server does
/// not notice (about 600 series).
pub const DEFAULT_TOP_APPLICATIONS: usize = 50;

/// The `app` label of everything outside the top applications (its `kind` is `other` too,
/// so a process that happens to be named `other` stays apart).
pub const OTHER: &str = "other";

/// What an application counted, per direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counted {
    pub bytes: PerDirection<u64>,
    pub packets: PerDirection<u64>,
    /// Bytes exchanged with Internet peers and with local ones, from the connections the
    /// usage source saw; their sum may be less than `bytes`.
    pub internet_bytes: PerDirection<u64>,
    pub local_bytes: PerDirection<u64>,
    /// Dropped by the policer of the limit or rule that held its members.
    pub dropped_bytes: PerDirection<u64>,
    pub dropped_packets: PerDirection<u64>,
}

/// What to make of a figure lower than the one before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decrease {
    /// The counter started again from zero (a datapath reset, a limit set anew): all of
    /// the new figure is new.
    Restart,
    /// A sum lost a part (a rule's member exited): nothing is new, the figure is the
    /// new base.
    Rebase,
}

impl Counted {
    fn of_process(p: &ProcessUsage) -> Counted {
        Counted {
            bytes: PerDirection {
                up: p.tx_bytes,
                down: p.rx_bytes,
            },
            packets: PerDirection {
                up: p.tx_packets,
                down: p.rx_packets,
            },
            internet_bytes: PerDirection {
                up: p.internet.tx_bytes,
                down: p.internet.rx_bytes,
            },
            local_bytes: PerDirection {
                up: p.local.tx_bytes,
                down: p.local.rx_bytes,
            },
            ..Counted::default()
        }
    }

    fn of_drops(stats: &PerDirection<DirStats>) -> Counted {
        Counted {
            dropped_bytes: stats.map(|_, s| s.dropped_bytes),
            dropped_packets: stats.map(|_, s| s.dropped_packets),
            ..Counted::default()
        }
    }

    fn combine(&self, other: &Counted, f: impl Fn(u64, u64) -> u64) -> Counted {
        let pair = |a: &PerDirection<u64>, b: &PerDirection<u64>| {
            PerDirection::from_fn(|d| f(*a.get(d), *b.get(d)))
        };
        Counted {
            bytes: pair(&self.bytes, &other.bytes),
            packets: pair(&self.packets, &other.packets),
            internet_bytes: pair(&self.internet_bytes, &other.internet_bytes),
            local_bytes: pair(&self.local_bytes, &other.local_bytes),
            dropped_bytes: pair(&self.dropped_bytes, &other.dropped_bytes),
            dropped_packets: pair(&self.dropped_packets, &other.dropped_packets),
        }
    }

    fn plus(&self, other: &Counted) -> Counted {
        self.combine(other, u64::saturating_add)
    }

    /// What was counted between `before` and `self`.
    fn since(&self, before: &Counted, decrease: Decrease) -> Counted {
        self.combine(before, |now, was| match now.checked_sub(was) {
            Some(added) => added,
            None if decrease == Decrease::Restart => now,
            None => 0,
        })
    }

    /// Down and up together: what the top applications are ranked by.
    pub fn total_bytes(&self) -> u64 {
        self.bytes.up.saturating_add(self.bytes.down)
    }
}

/// One `app` label set and its figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppSeries {
    /// The application's key: a rule's name, an executable's path, a process name, or
    /// [`OTHER`].
    pub app: String,
    /// `rule`, `exe`, `name` or `other`.
    pub kind: &'static str,
    pub counted: Counted,
    /// Members running at the last sample (a gauge).
    pub processes: u64,
}

/// A rule's limit as a gauge: bytes per second per limited direction (0 blocks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleGauge {
    pub rule: String,
    pub limit: PerDirection<Option<u64>>,
    pub members: u64,
}

/// Everything one scrape shows but the daemon's health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exported {
    /// The top applications, most bytes first, then `other` (always present).
    pub applications: Vec<AppSeries>,
    /// Every rule in force, by name. Bounded by the datapath's rule table (4 096 by
    /// default) and made by hand, so no cap.
    pub rules: Vec<RuleGauge>,
    /// Processes under a limit of their own (by PID).
    pub pid_limits: u64,
    /// Applications in the last sample's usage, labelled or not (a rule without running
    /// members is not one).
    pub applications_seen: u64,
}

/// The daemon's own figures, as it hands them over.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DaemonHealth {
    /// Samples written to the database since the daemon started.
    pub samples_written: u64,
    /// How long ago the last sample was taken; `None` before the first.
    pub last_sample_age: Option<Duration>,
    /// The database's size on disk, bytes.
    pub database_bytes: u64,
}

#[derive(Debug, Clone, Default)]
struct AppCount {
    counted: Counted,
    processes: u64,
}

/// The counters between samples: what each process, PID limit and rule had counted at
/// the last sample, and what each application and `other` accumulated.
#[derive(Debug, Clone)]
pub struct MetricsState {
    top: usize,
    processes: HashMap<ProcessRef, Counted>,
    pid_limits: HashMap<ProcessRef, Counted>,
    rules_seen: HashMap<String, Counted>,
    applications: HashMap<AppKey, AppCount>,
    /// The top applications after the last sample, most bytes first.
    labelled: Vec<AppKey>,
    other: AppCount,
    rules: Vec<RuleGauge>,
    /// Applications in the last sample's usage.
    applications_seen: u64,
}

impl MetricsState {
    /// `top` applications keep their own labels (see the module doc).
    pub fn new(top: usize) -> MetricsState {
        MetricsState {
            top,
            processes: HashMap::new(),
            pid_limits: HashMap::new(),
            rules_seen: HashMap::new(),
            applications: HashMap::new(),
            labelled: Vec::new(),
            other: AppCount::default(),
            rules: Vec::new(),
            applications_seen: 0,
        }
    }

    /// Takes in one sample: the usage grouped by application and the limits in force.
    pub fn record(&mut self, usage: &ApplicationSnapshot, status: &StatusReport) {
        // Every application of this sample gets an entry, with zero added if need be, so
        // the entries are also the set of applications still present.
        let mut added: HashMap<AppKey, AppCount> = HashMap::new();
        let mut app_of: HashMap<ProcessRef, &AppKey> = HashMap::new();
        let mut processes = HashMap::with_capacity(self.processes.len());
        self.applications_seen = usage.applications.len() as u64;
        for app in &usage.applications {
            let entry = added.entry(app.key.clone()).or_default();
            for p in &app.processes {
                let now = Counted::of_process(p);
                let before = self
                    .processes
                    .get(&p.process())
                    .copied()
                    .unwrap_or_default();
                entry.counted = entry.counted.plus(&now.since(&before, Decrease::Restart));
                entry.processes += u64::from(!p.exited);
                processes.insert(p.process(), now);
                app_of.insert(p.process(), &app.key);
            }
        }
        self.processes = processes;

        let mut pid_limits = HashMap::with_capacity(status.limits.len());
        for limit in &status.limits {
            let process = ProcessRef {
                pid: limit.pid,
                start_time: limit.start_time,
            };
            let now = Counted::of_drops(&limit.stats);
            let before = self.pid_limits.get(&process).copied().unwrap_or_default();
            let key = app_of.get(&process).map_or_else(
                || AppKey::from_parts(None, None, &limit.name),
                |k| (*k).clone(),
            );
            let entry = added.entry(key).or_default();
            entry.counted = entry.counted.plus(&now.since(&before, Decrease::Restart));
            pid_limits.insert(process, now);
        }
        self.pid_limits = pid_limits;

        let mut rules_seen = HashMap::with_capacity(status.rules.len());
        for rule in &status.rules {
            let now = Counted::of_drops(&rule.stats);
            let before = self.rules_seen.get(&rule.name).copied().unwrap_or_default();
            let key = AppKey::from_parts(Some(&rule.name), None, "");
            let entry = added.entry(key).or_default();
            entry.counted = entry.counted.plus(&now.since(&before, Decrease::Rebase));
            rules_seen.insert(rule.name.clone(), now);
        }
        self.rules_seen = rules_seen;
        self.rules = status
            .rules
            .iter()
            .map(|rule| RuleGauge {
                rule: rule.name.clone(),
                limit: PerDirection {
                    up: rule.up,
                    down: rule.down,
                },
                members: rule.members.len() as u64,
            })
            .collect();

        self.applications.retain(|key, _| added.contains_key(key));
        for (key, now) in &added {
            let app = self.applications.entry(key.clone()).or_default();
            app.counted = app.counted.plus(&now.counted);
            app.processes = now.processes;
        }
        let mut ranked: Vec<(&AppKey, &AppCount)> = self.applications.iter().collect();
        ranked.sort_by(|(ka, a), (kb, b)| {
            (b.counted.total_bytes().cmp(&a.counted.total_bytes()))
                .then_with(|| kind_label(ka.kind).cmp(kind_label(kb.kind)))
                .then_with(|| ka.key.cmp(&kb.key))
        });
        self.labelled = ranked
            .iter()
            .take(self.top)
            .map(|(key, _)| (*key).clone())
            .collect();
        self.other.processes = 0;
        for (key, _) in ranked.iter().skip(self.top) {
            if let Some(now) = added.get(*key) {
                self.other.counted = self.other.counted.plus(&now.counted);
                self.other.processes += now.processes;
            }
        }
    }

    /// What a scrape shows now.
    pub fn export(&self) -> Exported {
        let mut applications: Vec<AppSeries> = self
            .labelled
            .iter()
            .filter_map(|key| {
                let app = self.applications.get(key)?;
                Some(AppSeries {
                    app: key.key.clone(),
                    kind: kind_label(key.kind),
                    counted: app.counted,
                    processes: app.processes,
                })
            })
            .collect();
        applications.push(AppSeries {
            app: OTHER.to_owned(),
            kind: OTHER,
            counted: self.other.counted,
            processes: self.other.processes,
        });
        Exported {
            applications,
            rules: self.rules.clone(),
            pid_limits: self.pid_limits.len() as u64,
            applications_seen: self.applications_seen,
        }
    }
}

/// The `kind` label of an application key.
pub const fn kind_label(kind: KeyKind) -> &'static str {
    match kind {
        KeyKind::Rule => "rule",
        KeyKind::Exe => "exe",
        KeyKind::Name => "name",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::application::group;
    use crate::status::{LimitStatus, RuleEntry};
    use crate::usage::{Layer, Source, Split};

    fn process(pid: u32, name: &str, rx_bytes: u64) -> ProcessUsage {
        ProcessUsage {
            pid,
            start_time: 7,
            name: name.into(),
            cmdline: String::new(),
            rx_rate: 0,
            tx_rate: 0,
            rx_bytes,
            tx_bytes: rx_bytes / 2,
            rx_packets: rx_bytes / 100,
            tx_packets: rx_bytes / 200,
            limit: None,
            rule: None,
            internet: Split {
                rx_bytes: rx_bytes / 4,
                tx_bytes: 1,
                ..Split::default()
            },
            local: Split::default(),
            exited: false,
        }
    }

    fn usage(processes: Vec<ProcessUsage>) -> ApplicationSnapshot {
        ApplicationSnapshot {
            interval_ms: 1000,
            source: Source::Ebpf,
            counted: Layer::TransportPayload,
            note: None,
            applications: group(processes, |p| Some(format!("/usr/bin/{}", p.name))),
            interfaces: vec![],
            connections: vec![],
        }
    }

    fn no_limits() -> StatusReport {
        StatusReport {
            limits: vec![],
            rules: vec![],
            member_table_full: 0,
        }
    }

    fn series<'a>(exported: &'a Exported, app: &str) -> &'a AppSeries {
        exported
            .applications
            .iter()
            .find(|s| s.app == app)
            .unwrap_or_else(|| panic!("no series {app} in {exported:?}"))
    }

    fn apps(exported: &Exported) -> Vec<&str> {
        exported
            .applications
            .iter()
            .map(|s| s.app.as_str())
            .collect()
    }

    fn drops(up: u64, down: u64) -> PerDirection<DirStats> {
        let stats = |dropped_bytes| DirStats {
            dropped_bytes,
            dropped_packets: dropped_bytes / 1000,
            ..DirStats::default()
        };
        PerDirection {
            up: stats(up),
            down: stats(down),
        }
    }

    #[test]
    fn an_application_is_labelled_by_its_key_with_its_members_counters() {
        let mut state = MetricsState::new(10);
        state.record(
            &usage(vec![
                process(1, "curl", 1000),
                process(2, "curl", 3000),
                process(3, "ssh", 10),
            ]),
            &no_limits(),
        );
        let exported = state.export();
        assert_eq!(apps(&exported), ["/usr/bin/curl", "/usr/bin/ssh", OTHER]);
        let curl = series(&exported, "/usr/bin/curl");
        assert_eq!(curl.kind, "exe");
        assert_eq!(curl.processes, 2);
        assert_eq!(
            (curl.counted.bytes.down, curl.counted.bytes.up),
            (4000, 2000)
        );
        assert_eq!(curl.counted.packets.down, 40);
        assert_eq!(curl.counted.internet_bytes.down, 1000);
        assert_eq!(curl.counted.internet_bytes.up, 2);
        assert_eq!(series(&exported, OTHER).counted, Counted::default());
        assert_eq!(exported.applications_seen, 2);
    }

    #[test]
    fn beyond_the_cap_applications_are_summed_into_other() {
        let mut state = MetricsState::new(2);
        let processes = (1..=5)
            .map(|i| process(i, &format!("app{i}"), u64::from(i) * 100))
            .collect();
        state.record(&usage(processes), &no_limits());
        let exported = state.export();
        assert_eq!(apps(&exported), ["/usr/bin/app5", "/usr/bin/app4", OTHER]);
        let other = series(&exported, OTHER);
        assert_eq!(other.kind, "other");
        assert_eq!(other.counted.bytes.down, 100 + 200 + 300);
        assert_eq!(other.processes, 3);
        assert_eq!(exported.applications_seen, 5);
    }

    #[test]
    fn a_process_named_other_is_not_the_other_series() {
        let mut state = MetricsState::new(5);
        let mut snapshot = usage(vec![process(1, "other", 100)]);
        snapshot.applications = group(snapshot.applications[0].processes.clone(), |_| None);
        state.record(&snapshot, &no_limits());
        let exported = state.export();
        let kinds: Vec<(&str, &str)> = exported
            .applications
            .iter()
            .map(|s| (s.app.as_str(), s.kind))
            .collect();
        assert_eq!(kinds, [("other", "name"), ("other", "other")]);
    }

    #[test]
    fn counters_never_fall_when_members_exit_or_the_datapath_is_reset() {
        let mut state = MetricsState::new(5);
        state.record(
            &usage(vec![process(1, "curl", 1000), process(2, "curl", 500)]),
            &no_limits(),
        );
        // PID 2 exited and was forgotten: the application's sum falls, its counter must not
        state.record(&usage(vec![process(1, "curl", 1200)]), &no_limits());
        assert_eq!(
            series(&state.export(), "/usr/bin/curl").counted.bytes.down,
            1700
        );
        // a reset: PID 1 counts from zero again, what it counts since is all new
        state.record(&usage(vec![process(1, "curl", 300)]), &no_limits());
        assert_eq!(
            series(&state.export(), "/usr/bin/curl").counted.bytes.down,
            2000
        );
        // PID 1 reused by a new process (another start time): counted from its zero
        let mut reused = process(1, "curl", 50);
        reused.start_time = 8;
        state.record(&usage(vec![reused]), &no_limits());
        assert_eq!(
            series(&state.export(), "/usr/bin/curl").counted.bytes.down,
            2050
        );
    }

    #[test]
    fn other_only_grows_when_applications_enter_and_leave_the_top() {
        let mut state = MetricsState::new(1);
        state.record(
            &usage(vec![process(1, "a", 1000), process(2, "b", 600)]),
            &no_limits(),
        );
        assert_eq!(apps(&state.export()), ["/usr/bin/a", OTHER]);
        assert_eq!(series(&state.export(), OTHER).counted.bytes.down, 600);
        // b overtakes a over its lifetime: b gets its own series at its whole total, the
        // 600 it did before stay in other, a's growth now goes to other
        state.record(
            &usage(vec![process(1, "a", 1100), process(2, "b", 2000)]),
            &no_limits(),
        );
        let exported = state.export();
        assert_eq!(apps(&exported), ["/usr/bin/b", OTHER]);
        assert_eq!(series(&exported, "/usr/bin/b").counted.bytes.down, 2000);
        assert_eq!(series(&exported, OTHER).counted.bytes.down, 700);
        // b is forgotten (exited): a is back in the top, other keeps what it had
        state.record(&usage(vec![process(1, "a", 1150)]), &no_limits());
        let exported = state.export();
        assert_eq!(apps(&exported), ["/usr/bin/a", OTHER]);
        assert_eq!(series(&exported, "/usr/bin/a").counted.bytes.down, 1150);
        assert_eq!(series(&exported, OTHER).counted.bytes.down, 700);
    }

    #[test]
    fn policer_drops_go_to_the_application_of_the_limited_process_or_rule() {
        let mut state = MetricsState::new(5);
        let mut steam = process(3, "steam", 10);
        steam.rule = Some("games".into());
        let snapshot = usage(vec![process(1, "curl", 100), steam]);
        let limit = |dropped: u64| LimitStatus {
            pid: 1,
            start_time: 7,
            name: "curl".into(),
            up: None,
            down: Some(1000),
            burst_up: None,
            burst_down: None,
            expires_at: None,
            backend: PerDirection::default(),
            download_by_default: false,
            stats: drops(0, dropped),
        };
        let rule = |dropped: u64| RuleEntry {
            name: "games".into(),
            target: "exe /usr/bin/steam".into(),
            kind: "exe".into(),
            resolved: "exe /usr/bin/steam".into(),
            mode: "shared".into(),
            order: 0,
            up: Some(0),
            down: Some(5000),
            burst_up: None,
            burst_down: None,
            backend: PerDirection::default(),
            members: vec![ProcessRef {
                pid: 3,
                start_time: 7,
            }],
            expires_at: None,
            stats: drops(dropped, 0),
        };
        let status = |limit_drops, rule_drops| StatusReport {
            limits: vec![limit(limit_drops)],
            rules: vec![rule(rule_drops)],
            member_table_full: 0,
        };
        state.record(&snapshot, &status(4000, 9000));
        let exported = state.export();
        let curl = series(&exported, "/usr/bin/curl");
        assert_eq!(curl.counted.dropped_bytes.down, 4000);
        assert_eq!(curl.counted.dropped_packets.down, 4);
        let games = series(&exported, "games");
        assert_eq!((games.kind, games.counted.dropped_bytes.up), ("rule", 9000));
        assert_eq!(exported.pid_limits, 1);
        assert_eq!(
            exported.rules,
            [RuleGauge {
                rule: "games".into(),
                limit: PerDirection {
                    up: Some(0),
                    down: Some(5000)
                },
                members: 1,
            }]
        );
        // the rule lost a member (its sum falls): nothing added, the new figure is the base;
        // the PID limit was set anew (its count restarts): all of it is new
        state.record(&snapshot, &status(500, 2000));
        state.record(&snapshot, &status(600, 2500));
        let exported = state.export();
        assert_eq!(
            series(&exported, "/usr/bin/curl")
                .counted
                .dropped_bytes
                .down,
            4600
        );
        assert_eq!(series(&exported, "games").counted.dropped_bytes.up, 9500);
        // a rule whose members are all gone: its gauges stay, it is no application
        state.record(&usage(vec![process(1, "curl", 100)]), &status(600, 0));
        let exported = state.export();
        assert_eq!(exported.applications_seen, 1);
        assert_eq!(exported.rules.len(), 1);
    }

    #[test]
    fn no_series_ever_falls_under_churn_resets_and_a_changing_top() {
        let mut state = MetricsState::new(3);
        let mut before: HashMap<(String, &str), Counted> = HashMap::new();
        for round in 0..40u32 {
            // a window of applications that moves on, figures that jump about (resets),
            // processes that come and go
            let processes = (round / 3..round / 3 + 8)
                .flat_map(|app| {
                    (0..1 + (app + round) % 3).map(move |member| {
                        let bytes = (u64::from(app) * 7919 + u64::from(round) * 104_729) % 5000;
                        process(app * 10 + member, &format!("app{app}"), bytes)
                    })
                })
                .collect();
            state.record(&usage(processes), &no_limits());
            let exported = state.export();
            assert_eq!(exported.applications.len(), 4, "3 and other");
            let mut now = HashMap::new();
            for s in &exported.applications {
                if let Some(was) = before.get(&(s.app.clone(), s.kind)) {
                    let fell = s.counted.combine(was, |n, w| u64::from(n < w));
                    assert_eq!(fell, Counted::default(), "{} fell in round {round}", s.app);
                }
                now.insert((s.app.clone(), s.kind), s.counted);
            }
            before = now;
        }
    }

    #[test]
    fn equal_totals_rank_by_key_so_the_labelled_set_does_not_flap() {
        let mut state = MetricsState::new(1);
        for _ in 0..3 {
            state.record(
                &usage(vec![process(1, "b", 100), process(2, "a", 100)]),
                &no_limits(),
            );
            assert_eq!(apps(&state.export()), ["/usr/bin/a", OTHER]);
        }
    }
}
