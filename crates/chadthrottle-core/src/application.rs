//! Processes grouped by application, the way `top --by app` and the TUI's grouped table
//! show them: one row per application with its members' combined rates and totals and
//! the rule that governs it, its processes under it.
//!
//! Which processes are one application: a user who set a rule thinks of what the rule
//! holds as one thing ("Steam gets 5 MB/s"), so the processes a rule governs are one
//! application, named for the rule, whatever they run. Other processes are grouped by the
//! executable they run (`/proc/PID/exe`): every Firefox content process together, but
//! `/usr/bin/python3` apart from `/opt/tool/python3`. A file replaced while it runs (a
//! package upgrade) reads as `PATH (deleted)`; it is still the same application as the
//! new file at the path. A process whose executable cannot be read — a kernel thread,
//! another user's process without the privilege, one that has exited — falls back to its
//! name (comm), as `ps` shows it.

use crate::process::ProcessRef;
use crate::table_order::{self, Figures, Ranked, SortKey};
use crate::usage::{
    ConnectionUsage, InterfaceUsage, Layer, LimitRates, ProcessUsage, Snapshot, Source, Split,
};
use serde::Serialize;
use std::collections::HashMap;
use std::path::Path;

/// What the application key is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    /// The name of the rule that governs the processes.
    Rule,
    /// The executable's path.
    Exe,
    /// The process name (comm), when the executable cannot be read.
    Name,
}

/// What makes processes one application: the same [`KeyKind`] and the same text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct AppKey {
    pub kind: KeyKind,
    pub key: String,
}

impl AppKey {
    /// The application `process` belongs to, `exe` being its executable if it can be read.
    pub fn of(process: &ProcessUsage, exe: Option<&str>) -> AppKey {
        AppKey::from_parts(process.rule.as_deref(), exe, &process.name)
    }

    /// The application of a process governed by `rule`, running `exe`, named `name`.
    pub fn from_parts(rule: Option<&str>, exe: Option<&str>, name: &str) -> AppKey {
        let (kind, key) = match (rule, exe) {
            (Some(rule), _) => (KeyKind::Rule, rule),
            (None, Some(exe)) => (KeyKind::Exe, exe.strip_suffix(" (deleted)").unwrap_or(exe)),
            (None, None) => (KeyKind::Name, name),
        };
        AppKey {
            kind,
            key: key.to_owned(),
        }
    }

    /// How the application is named in a table: the rule's name, the executable's file
    /// name, or the process name.
    pub fn display_name(&self) -> String {
        match self.kind {
            KeyKind::Exe => Path::new(&self.key)
                .file_name()
                .map_or_else(|| self.key.clone(), |n| n.to_string_lossy().into_owned()),
            KeyKind::Rule | KeyKind::Name => self.key.clone(),
        }
    }
}

/// One application: its key, its members' figures added up, its rule, its members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Application {
    #[serde(flatten)]
    pub key: AppKey,
    /// As a table shows it (see [`AppKey::display_name`]).
    pub name: String,
    /// The rule that governs every member, if a rule does.
    pub rule: Option<String>,
    /// The rule's rates (a shared rule's rate is the budget of all the members together);
    /// `None` without a rule: the members' own PID limits are on their rows.
    pub limit: Option<LimitRates>,
    pub process_count: usize,
    pub rx_rate: u64,
    pub tx_rate: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub internet: Split,
    pub local: Split,
    /// Every member has exited.
    pub exited: bool,
    /// The members, in the order they were given.
    pub processes: Vec<ProcessUsage>,
}

impl Application {
    fn new(key: AppKey, first: &ProcessUsage) -> Application {
        let rule = (key.kind == KeyKind::Rule).then(|| key.key.clone());
        Application {
            name: key.display_name(),
            key,
            limit: rule.as_ref().and(first.limit),
            rule,
            process_count: 0,
            rx_rate: 0,
            tx_rate: 0,
            rx_bytes: 0,
            tx_bytes: 0,
            rx_packets: 0,
            tx_packets: 0,
            internet: Split::default(),
            local: Split::default(),
            exited: true,
            processes: Vec::new(),
        }
    }

    fn add(&mut self, p: ProcessUsage) {
        let add = |total: &mut u64, more: u64| *total = total.saturating_add(more);
        let add_split = |total: &mut Split, more: &Split| {
            add(&mut total.rx_bytes, more.rx_bytes);
            add(&mut total.tx_bytes, more.tx_bytes);
            add(&mut total.rx_rate, more.rx_rate);
            add(&mut total.tx_rate, more.tx_rate);
        };
        self.process_count += 1;
        add(&mut self.rx_rate, p.rx_rate);
        add(&mut self.tx_rate, p.tx_rate);
        add(&mut self.rx_bytes, p.rx_bytes);
        add(&mut self.tx_bytes, p.tx_bytes);
        add(&mut self.rx_packets, p.rx_packets);
        add(&mut self.tx_packets, p.tx_packets);
        add_split(&mut self.internet, &p.internet);
        add_split(&mut self.local, &p.local);
        self.exited &= p.exited;
        self.processes.push(p);
    }

    /// The member the application's row stands for where one process is needed (the
    /// TUI's throttle dialog, graph and detail): the first one listed that still runs.
    pub fn first_process(&self) -> Option<&ProcessUsage> {
        self.processes
            .iter()
            .find(|p| !p.exited)
            .or_else(|| self.processes.first())
    }
}

impl Ranked for Application {
    fn figures(&self) -> Figures<'_> {
        Figures {
            pid: self.processes.iter().map(|p| p.pid).min().unwrap_or(0),
            name: &self.name,
            rx_rate: self.rx_rate,
            tx_rate: self.tx_rate,
            rx_bytes: self.rx_bytes,
            tx_bytes: self.tx_bytes,
            limit: self.limit,
        }
    }
}

/// `processes` grouped by application, `exe` giving each one's executable when it can be
/// read. Applications come in the order of their first member, members in the order
/// given; sort with [`crate::table_order::sort`].
pub fn group(
    processes: impl IntoIterator<Item = ProcessUsage>,
    exe: impl Fn(&ProcessUsage) -> Option<String>,
) -> Vec<Application> {
    let mut at: HashMap<AppKey, usize> = HashMap::new();
    let mut applications: Vec<Application> = Vec::new();
    for p in processes {
        let key = AppKey::of(&p, exe(&p).as_deref());
        let index = match at.get(&key) {
            Some(&index) => index,
            None => {
                applications.push(Application::new(key.clone(), &p));
                at.insert(key, applications.len() - 1);
                applications.len() - 1
            }
        };
        applications[index].add(p);
    }
    applications
}

/// What `top --by app --json` prints: a [`Snapshot`] whose processes are grouped into
/// applications, each with its members as `top --json` lists processes. The field names
/// are a contract, like the snapshot's (a test pins them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApplicationSnapshot {
    pub interval_ms: u64,
    pub source: Source,
    pub counted: Layer,
    pub note: Option<String>,
    pub applications: Vec<Application>,
    pub interfaces: Vec<InterfaceUsage>,
    pub connections: Vec<ConnectionUsage>,
}

impl ApplicationSnapshot {
    /// `snapshot` grouped (see [`group`]), applications and members ordered by `order`.
    pub fn of(
        snapshot: Snapshot,
        exe: impl Fn(&ProcessUsage) -> Option<String>,
        order: SortKey,
    ) -> ApplicationSnapshot {
        let mut processes = snapshot.processes;
        table_order::sort(&mut processes, order);
        let mut applications = group(processes, exe);
        table_order::sort(&mut applications, order);
        ApplicationSnapshot {
            interval_ms: snapshot.interval_ms,
            source: snapshot.source,
            counted: snapshot.counted,
            note: snapshot.note,
            applications,
            interfaces: snapshot.interfaces,
            connections: snapshot.connections,
        }
    }
}

/// Names the rule that governs each process a rule governs and shows the rule's rates as
/// its limit, as the usage source reports them (a PID limit outranks every rule, so such
/// a process is not in `rules`).
pub fn attribute_rules(
    processes: &mut [ProcessUsage],
    rules: &HashMap<ProcessRef, (String, LimitRates)>,
) {
    for p in processes {
        if let Some((rule, limit)) = rules.get(&p.process()) {
            p.rule = Some(rule.clone());
            p.limit = Some(*limit);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table_order::sort;

    fn process(pid: u32, name: &str, rx_rate: u64) -> ProcessUsage {
        ProcessUsage {
            pid,
            start_time: 1,
            name: name.into(),
            cmdline: String::new(),
            rx_rate,
            tx_rate: rx_rate / 10,
            rx_bytes: rx_rate * 10,
            tx_bytes: rx_rate,
            rx_packets: 3,
            tx_packets: 2,
            limit: None,
            rule: None,
            internet: Split {
                rx_bytes: rx_rate * 9,
                tx_bytes: 0,
                rx_rate,
                tx_rate: 0,
            },
            local: Split {
                rx_bytes: rx_rate,
                tx_bytes: rx_rate,
                rx_rate: 0,
                tx_rate: rx_rate / 10,
            },
            exited: false,
        }
    }

    /// `/usr/bin/NAME` for every process but the kernel thread `kworker` and PID 99.
    fn exe(p: &ProcessUsage) -> Option<String> {
        (p.name != "kworker" && p.pid != 99).then(|| format!("/usr/bin/{}", p.name))
    }

    /// The names of `value`'s fields, sorted.
    fn field_names(value: &serde_json::Value) -> Vec<&str> {
        let mut names: Vec<&str> = value
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .collect();
        names.sort_unstable();
        names
    }

    fn keys(applications: &[Application]) -> Vec<String> {
        applications.iter().map(|a| a.key.key.clone()).collect()
    }

    #[test]
    fn processes_of_one_executable_are_one_application_with_their_sums() {
        let processes = [
            process(10, "firefox", 1000),
            process(20, "curl", 500),
            process(11, "firefox", 300),
        ];
        let applications = group(processes.clone(), exe);
        assert_eq!(keys(&applications), ["/usr/bin/firefox", "/usr/bin/curl"]);
        let firefox = &applications[0];
        assert_eq!(firefox.key.kind, KeyKind::Exe);
        assert_eq!(firefox.name, "firefox");
        assert_eq!(firefox.process_count, 2);
        let members: Vec<u32> = firefox.processes.iter().map(|p| p.pid).collect();
        assert_eq!(members, [10, 11]);
        assert_eq!((firefox.rx_rate, firefox.tx_rate), (1300, 130));
        assert_eq!((firefox.rx_bytes, firefox.tx_bytes), (13_000, 1300));
        assert_eq!((firefox.rx_packets, firefox.tx_packets), (6, 4));
        assert_eq!(firefox.internet.rx_bytes, 11_700);
        assert_eq!(firefox.internet.rx_rate, 1300);
        assert_eq!(firefox.local.tx_rate, 130);
        assert_eq!(firefox.local.tx_bytes, 1300);
        assert_eq!((firefox.rule.as_deref(), firefox.limit), (None, None));
    }

    #[test]
    fn a_rule_makes_its_members_one_application_whatever_they_run() {
        let limit = LimitRates {
            up: None,
            down: Some(5 << 20),
        };
        let mut processes = [
            process(10, "steam", 100),
            process(11, "steamwebhelper", 200),
            process(12, "steam", 50),
        ];
        let rules: HashMap<ProcessRef, (String, LimitRates)> = [10, 11]
            .map(|pid| (ProcessRef { pid, start_time: 1 }, ("steam".into(), limit)))
            .into();
        attribute_rules(&mut processes, &rules);
        assert_eq!(processes[1].rule.as_deref(), Some("steam"));
        assert_eq!(processes[1].limit, Some(limit));
        assert_eq!(processes[2].rule, None, "no rule for 12");
        let applications = group(processes.clone(), exe);
        assert_eq!(keys(&applications), ["steam", "/usr/bin/steam"]);
        let rule = &applications[0];
        assert_eq!(rule.key.kind, KeyKind::Rule);
        assert_eq!(rule.name, "steam");
        assert_eq!(rule.rule.as_deref(), Some("steam"));
        assert_eq!(rule.limit, Some(limit));
        assert_eq!((rule.process_count, rule.rx_rate), (2, 300));
        // the process outside the rule keeps its own (PID) limit on its row, not the app's
        assert_eq!(applications[1].limit, None);
    }

    #[test]
    fn a_pid_limit_is_the_members_own_and_not_the_applications() {
        let mut limited = process(10, "curl", 100);
        limited.limit = Some(LimitRates {
            up: Some(1),
            down: None,
        });
        let applications = group([limited, process(11, "curl", 100)], exe);
        assert_eq!(applications.len(), 1);
        assert_eq!(applications[0].limit, None);
        assert!(applications[0].processes[0].limit.is_some());
    }

    #[test]
    fn without_a_readable_executable_the_name_is_the_key() {
        let processes = [
            process(2, "kworker", 0),
            process(3, "kworker", 0),
            process(99, "curl", 10),
            process(20, "curl", 10),
        ];
        let applications = group(processes.clone(), exe);
        let kinds: Vec<(KeyKind, &str)> = applications
            .iter()
            .map(|a| (a.key.kind, a.key.key.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [
                (KeyKind::Name, "kworker"),
                (KeyKind::Name, "curl"),
                (KeyKind::Exe, "/usr/bin/curl"),
            ]
        );
        assert_eq!(applications[0].process_count, 2);
    }

    #[test]
    fn a_replaced_executable_is_the_same_application_as_the_new_file() {
        let processes = [process(1, "app", 1), process(2, "app", 1)];
        let applications = group(processes.clone(), |p| {
            Some(if p.pid == 1 {
                "/usr/bin/app (deleted)".into()
            } else {
                "/usr/bin/app".into()
            })
        });
        assert_eq!(keys(&applications), ["/usr/bin/app"]);
        assert_eq!(applications[0].process_count, 2);
    }

    #[test]
    fn applications_sort_by_their_combined_figures_and_first_pid() {
        let processes = [
            process(30, "big", 900),
            process(5, "many", 500),
            process(6, "many", 500),
            process(40, "idle", 0),
            process(41, "idle2", 0),
        ];
        let mut applications = group(processes.clone(), exe);
        sort(&mut applications, SortKey::Busiest);
        assert_eq!(
            keys(&applications),
            [
                "/usr/bin/many",
                "/usr/bin/big",
                "/usr/bin/idle",
                "/usr/bin/idle2"
            ]
        );
        sort(&mut applications, SortKey::Pid);
        assert_eq!(applications[0].key.key, "/usr/bin/many", "first pid 5");
        sort(&mut applications, SortKey::Name);
        assert_eq!(applications[0].name, "big");
    }

    #[test]
    fn an_application_has_exited_when_every_member_has() {
        let mut gone = process(1, "a", 0);
        gone.exited = true;
        let applications = group([gone.clone(), process(2, "a", 0)], exe);
        assert!(!applications[0].exited);
        assert_eq!(applications[0].first_process().map(|p| p.pid), Some(2));
        let applications = group([gone], exe);
        assert!(applications[0].exited);
        assert_eq!(applications[0].first_process().map(|p| p.pid), Some(1));
    }

    #[test]
    fn json_names_are_a_contract() {
        let applications = group([process(1, "curl", 1)], exe);
        let value = serde_json::to_value(&applications[0]).expect("JSON");
        assert_eq!(
            field_names(&value),
            [
                "exited",
                "internet",
                "key",
                "kind",
                "limit",
                "local",
                "name",
                "process_count",
                "processes",
                "rule",
                "rx_bytes",
                "rx_packets",
                "rx_rate",
                "tx_bytes",
                "tx_packets",
                "tx_rate"
            ]
        );
        assert_eq!(value["kind"], "exe");
        assert_eq!(value["processes"][0]["pid"], 1);
    }

    #[test]
    fn a_snapshot_by_application_keeps_everything_but_the_process_list() {
        let snapshot = Snapshot {
            interval_ms: 500,
            source: Source::Ebpf,
            counted: Layer::TransportPayload,
            note: Some("why".into()),
            processes: vec![process(1, "a", 10), process(2, "b", 20), process(3, "a", 5)],
            interfaces: vec![],
            connections: vec![],
        };
        let grouped = ApplicationSnapshot::of(snapshot, exe, SortKey::Busiest);
        assert_eq!(keys(&grouped.applications), ["/usr/bin/b", "/usr/bin/a"]);
        let members: Vec<u32> = grouped.applications[1]
            .processes
            .iter()
            .map(|p| p.pid)
            .collect();
        assert_eq!(members, [1, 3], "members busiest first");
        let value = serde_json::to_value(&grouped).expect("JSON");
        assert_eq!(
            field_names(&value),
            [
                "applications",
                "connections",
                "counted",
                "interfaces",
                "interval_ms",
                "note",
                "source"
            ]
        );
        assert_eq!(value["interval_ms"], 500);
    }
}
