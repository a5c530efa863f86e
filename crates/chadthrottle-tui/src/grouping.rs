//! The table grouped by application (`a`): application rows, each with its processes
//! indented under it while it is expanded, built from the table's process rows and what
//! the runner says about each process (its executable, the rule that governs it).
//!
//! Applications are the core's (`chadthrottle_core::application`): the processes a rule
//! governs, else one executable's, else one name's. They start collapsed, as a list of
//! applications is what grouping is asked for; `→`/`Space`/`Enter` open one.

use crate::sort::Column;
use chadthrottle_core::ProcessRef;
use chadthrottle_core::application::{self, AppKey, Application};
use chadthrottle_core::table_order;
use chadthrottle_core::usage::{LimitRates, ProcessUsage};
use std::collections::{HashMap, HashSet};

/// What the runner knows about processes beyond their usage: what groups them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Membership {
    /// Each process's executable, where the caller may read it.
    pub exes: HashMap<ProcessRef, String>,
    /// The rule governing each process a rule governs: its name and rates.
    pub rules: HashMap<ProcessRef, (String, LimitRates)>,
}

impl Membership {
    /// Takes `newer` in: its rules replace the old ones (a rule may have gone); its
    /// executables are added to those known, so a process that exits (whose executable
    /// can no longer be read) stays in its application. Processes not in `listed` are
    /// forgotten.
    pub fn update(&mut self, newer: Membership, listed: &HashSet<ProcessRef>) {
        self.exes.extend(newer.exes);
        self.exes.retain(|process, _| listed.contains(process));
        self.rules = newer.rules;
    }

    /// The name of the application `process` belongs to, as its row shows it.
    pub fn application_name(&self, process: &ProcessUsage) -> String {
        let at = process.process();
        let rule = self.rules.get(&at).map(|(name, _)| name.as_str());
        let exe = self.exes.get(&at).map(String::as_str);
        AppKey::from_parts(rule, exe, &process.name).display_name()
    }
}

/// One line of the grouped table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line {
    /// The application at this index of [`Grouping::applications`].
    App(usize),
    /// A member of an expanded application: indices into the applications and its members.
    Process { app: usize, member: usize },
}

/// The grouped table's state: applications as shown, which are open, the lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grouping {
    pub applications: Vec<Application>,
    pub lines: Vec<Line>,
    expanded: HashSet<AppKey>,
    /// The application whose row is selected, when the selection is on one (the app's
    /// `selected` process is then the one its row stands for).
    pub selected_app: Option<AppKey>,
}

impl Grouping {
    /// Groups `rows` (already filtered and in order); applications are sorted by `sort`,
    /// or keep the order of their first member when the order is frozen (`None`).
    pub fn rebuild(
        &mut self,
        rows: &[ProcessUsage],
        membership: &Membership,
        sort: Option<Column>,
    ) {
        let mut rows = rows.to_vec();
        application::attribute_rules(&mut rows, &membership.rules);
        let exe = |p: &ProcessUsage| membership.exes.get(&p.process()).cloned();
        self.applications = application::group(rows, exe);
        if let Some(column) = sort {
            table_order::sort(&mut self.applications, column.key());
        }
        let keys: HashSet<&AppKey> = self.applications.iter().map(|a| &a.key).collect();
        self.expanded.retain(|key| keys.contains(key));
        self.lines.clear();
        for (index, app) in self.applications.iter().enumerate() {
            self.lines.push(Line::App(index));
            if self.expanded.contains(&app.key) {
                self.lines.extend(
                    (0..app.processes.len()).map(|member| Line::Process { app: index, member }),
                );
            }
        }
    }

    pub fn is_expanded(&self, key: &AppKey) -> bool {
        self.expanded.contains(key)
    }

    /// Opens or closes `key`'s application (the caller rebuilds the lines).
    pub fn set_expanded(&mut self, key: &AppKey, open: bool) {
        if open {
            self.expanded.insert(key.clone());
        } else {
            self.expanded.remove(key);
        }
    }

    pub fn application_at(&self, line: Line) -> &Application {
        let (Line::App(app) | Line::Process { app, .. }) = line;
        &self.applications[app]
    }

    /// The process a line stands for: the member, or an application's first process.
    pub fn process_at(&self, line: Line) -> Option<&ProcessUsage> {
        match line {
            Line::App(app) => self.applications[app].first_process(),
            Line::Process { app, member } => self.applications[app].processes.get(member),
        }
    }

    /// The line of the application with `key`.
    pub fn app_line(&self, key: &AppKey) -> Option<usize> {
        self.lines
            .iter()
            .position(|&line| matches!(line, Line::App(_)) && &self.application_at(line).key == key)
    }

    /// The line of `process`: its own if its application is open, else its application's.
    pub fn process_line(&self, process: ProcessRef) -> Option<usize> {
        let is = |p: &ProcessUsage| p.process() == process;
        let own = self.lines.iter().position(|&line| {
            matches!(line, Line::Process { .. }) && self.process_at(line).is_some_and(is)
        });
        own.or_else(|| {
            let app = self
                .applications
                .iter()
                .find(|a| a.processes.iter().any(is))?;
            self.app_line(&app.key)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(pids: &[u32]) -> HashSet<ProcessRef> {
        pids.iter()
            .map(|&pid| ProcessRef { pid, start_time: 1 })
            .collect()
    }

    fn membership(exes: &[(u32, &str)]) -> Membership {
        Membership {
            exes: exes
                .iter()
                .map(|&(pid, exe)| (ProcessRef { pid, start_time: 1 }, exe.to_owned()))
                .collect(),
            rules: HashMap::new(),
        }
    }

    #[test]
    fn an_exited_process_keeps_its_executable_and_the_rules_are_replaced() {
        let mut known = membership(&[(1, "/usr/bin/a"), (2, "/usr/bin/b")]);
        let limit = LimitRates {
            up: Some(1),
            down: None,
        };
        known.rules.insert(
            ProcessRef {
                pid: 1,
                start_time: 1,
            },
            ("old".into(), limit),
        );
        // 1 exited: its executable is no longer read; 2 is gone from the table
        known.update(membership(&[(3, "/usr/bin/c")]), &refs(&[1, 3]));
        assert_eq!(
            known.exes,
            membership(&[(1, "/usr/bin/a"), (3, "/usr/bin/c")]).exes
        );
        assert!(known.rules.is_empty(), "the rule went");
    }
}
