//! The app state and what changes it: the monitor that readings go into, the table as
//! shown (filtered, faded, ordered) and the selection on it. Every event comes in through
//! [`App::handle`] (in `dispatch`); the screens only read.

use crate::grouping::{Grouping, Line, Membership};
use crate::history::History;
use crate::layout::Layout;
use crate::mode::Mode;
use crate::sort::{self, Column};
use chadthrottle_core::ProcessRef;
use chadthrottle_core::backend::{Availability, BackendDescriptor};
use chadthrottle_core::locality::Locality;
use chadthrottle_core::meter::HistoryPoint;
use chadthrottle_core::monitor::Monitor;
use chadthrottle_core::rule_request::RuleStatus;
use chadthrottle_core::usage::{
    Layer, LimitRates, ProcessDetails, ProcessUsage, Reading, Snapshot, Source,
};
use std::collections::HashMap;

/// How long an exited process stays in the table, fading, after its exit was seen.
pub const FADE_NS: u64 = 5_000_000_000;

/// `l`: which traffic the table's rates and totals count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrafficView {
    All,
    Internet,
    Local,
}

impl TrafficView {
    pub const fn next(self) -> TrafficView {
        match self {
            TrafficView::All => TrafficView::Internet,
            TrafficView::Internet => TrafficView::Local,
            TrafficView::Local => TrafficView::All,
        }
    }

    pub const fn title(self) -> &'static str {
        match self {
            TrafficView::All => "all traffic",
            TrafficView::Internet => "Internet traffic",
            TrafficView::Local => "local traffic",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub text: String,
    pub error: bool,
}

#[derive(Debug)]
pub struct App {
    monitor: Monitor,
    limits: HashMap<ProcessRef, LimitRates>,
    snapshot: Snapshot,
    /// The table as shown: filtered, faded exits dropped, in order.
    pub rows: Vec<ProcessUsage>,
    pub sort: Column,
    /// `f`: the order the table had when frozen.
    pub frozen: Option<Vec<ProcessRef>>,
    pub selected: Option<ProcessRef>,
    pub filter: String,
    pub mode: Mode,
    pub message: Option<Message>,
    /// Why limits cannot be set (the monitoring fallback): shown as a banner.
    pub read_only: Option<String>,
    /// `false` with `NO_COLOR`: styles use only bold, dim and reverse.
    pub color: bool,
    /// Terminal size: what [`App::layout`] divides.
    pub size: (u16, u16),
    /// First row of the table shown (scrolling).
    pub offset: usize,
    pub traffic: TrafficView,
    /// `i`: only traffic through this interface (by the connections' local addresses).
    pub interface: Option<String>,
    /// First row shown of the detail view's connection list (scrolling).
    pub detail_offset: usize,
    /// What /proc said about the process in the detail view.
    pub details: Option<ProcessDetails>,
    pub backends: Vec<(BackendDescriptor, Availability)>,
    /// What the kernel makes the datapath do without, shown under the backends.
    pub degraded: chadthrottle_core::kernel_floor::Degraded,
    /// What groups the processes into applications, as the runner last said.
    pub membership: Membership,
    /// `a`: the table grouped by application; `None` lists processes.
    pub grouping: Option<Grouping>,
    /// The rules in force, as last listed (the rules view), and the one selected there.
    pub rules: Vec<RuleStatus>,
    pub rule_selected: usize,
    /// The History view's range, rows and selection.
    pub history: History,
    exited_seen: HashMap<ProcessRef, u64>,
    now_ns: u64,
}

/// `p` as the interface filter shows it: the rates and totals of its connections whose
/// local address is on `interface` (and in the traffic view); `None` if it has none.
fn on_interface(
    p: &ProcessUsage,
    snapshot: &Snapshot,
    interface: &str,
    view: TrafficView,
) -> Option<ProcessUsage> {
    let addresses = &snapshot
        .interfaces
        .iter()
        .find(|i| i.name == interface)?
        .addresses;
    let wanted = |locality: Locality| match view {
        TrafficView::All => true,
        TrafficView::Internet => locality == Locality::Internet,
        TrafficView::Local => locality == Locality::Local,
    };
    let connections: Vec<_> = snapshot
        .connections
        .iter()
        .filter(|c| c.pid == p.pid && addresses.contains(&c.local.ip()) && wanted(c.locality))
        .collect();
    (!connections.is_empty()).then(|| ProcessUsage {
        rx_rate: connections.iter().map(|c| c.rx_rate).sum(),
        tx_rate: connections.iter().map(|c| c.tx_rate).sum(),
        rx_bytes: connections.iter().map(|c| c.rx_bytes).sum(),
        tx_bytes: connections.iter().map(|c| c.tx_bytes).sum(),
        ..p.clone()
    })
}

/// `p` as the traffic view shows it: its Internet or Local rates and totals in place of
/// the whole; `None` if it has no such traffic.
fn in_view(p: &ProcessUsage, view: TrafficView) -> Option<ProcessUsage> {
    let split = match view {
        TrafficView::All => return Some(p.clone()),
        TrafficView::Internet => p.internet,
        TrafficView::Local => p.local,
    };
    (split.rx_bytes + split.tx_bytes > 0).then(|| ProcessUsage {
        rx_rate: split.rx_rate,
        tx_rate: split.tx_rate,
        rx_bytes: split.rx_bytes,
        tx_bytes: split.tx_bytes,
        ..p.clone()
    })
}

pub const fn process_ref(p: &ProcessUsage) -> ProcessRef {
    p.process()
}

impl App {
    pub fn new(
        source: Source,
        layer: Layer,
        note: Option<String>,
        interval_ms: u64,
        read_only: Option<String>,
        color: bool,
    ) -> App {
        let monitor = Monitor::new(source, layer, note, interval_ms);
        let snapshot = monitor.snapshot(&HashMap::new());
        App {
            monitor,
            limits: HashMap::new(),
            snapshot,
            rows: Vec::new(),
            sort: Column::DownRate,
            frozen: None,
            selected: None,
            filter: String::new(),
            mode: Mode::Normal,
            message: None,
            read_only,
            color,
            size: (80, 24),
            offset: 0,
            traffic: TrafficView::All,
            interface: None,
            detail_offset: 0,
            details: None,
            backends: Vec::new(),
            degraded: chadthrottle_core::kernel_floor::Degraded::default(),
            membership: Membership::default(),
            grouping: None,
            rules: Vec::new(),
            rule_selected: 0,
            history: History::default(),
            exited_seen: HashMap::new(),
            now_ns: 0,
        }
    }

    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// Takes a new reading and the limits in force.
    pub fn ingest(&mut self, reading: Reading, limits: HashMap<ProcessRef, LimitRates>) {
        self.now_ns = reading.at_ns;
        self.monitor.ingest(reading);
        self.limits = limits;
        self.refresh();
    }

    /// Takes what the runner read about the processes: executables and rules.
    pub fn take_membership(&mut self, membership: Membership) {
        let listed = self.snapshot.processes.iter().map(process_ref).collect();
        self.membership.update(membership, &listed);
        self.refresh();
    }

    /// `a`: groups the table by application, or lists processes again.
    pub fn toggle_grouping(&mut self) {
        self.grouping = match self.grouping {
            Some(_) => None,
            None => Some(Grouping::default()),
        };
        self.refresh();
    }

    pub fn resize(&mut self, width: u16, height: u16) {
        self.size = (width, height);
        self.keep_selection_visible();
    }

    /// The line above everything: why limits cannot be set, or what the source lacks.
    pub fn banner(&self) -> Option<String> {
        self.read_only
            .as_ref()
            .map(|reason| format!("read-only (limits cannot be set): {reason}"))
            .or_else(|| self.snapshot.note.clone())
    }

    /// Where things are on screen now; the screens draw there and clicks are tested there.
    pub fn layout(&self) -> Layout {
        Layout::new(self.size.0, self.size.1, self.banner().is_some())
    }

    /// Rebuilds the table from the monitor: filter, fade, order; the selection stays on
    /// its process.
    pub fn refresh(&mut self) {
        self.snapshot = self.monitor.snapshot(&self.limits);
        let now = self.now_ns;
        for p in self.snapshot.processes.iter().filter(|p| p.exited) {
            self.exited_seen.entry(process_ref(p)).or_insert(now);
        }
        let exited_seen = &self.exited_seen;
        let filter = self.filter.to_lowercase();
        let mut rows: Vec<ProcessUsage> = self
            .snapshot
            .processes
            .iter()
            .filter(|p| {
                !p.exited
                    || exited_seen
                        .get(&process_ref(p))
                        .is_some_and(|&seen| now.saturating_sub(seen) < FADE_NS)
            })
            .filter(|p| {
                let matches = |name: &str| name.to_lowercase().contains(&filter);
                // grouped, a process is found by its application's name too
                filter.is_empty()
                    || matches(&p.name)
                    || self.grouping.is_some() && matches(&self.membership.application_name(p))
            })
            .filter_map(|p| match &self.interface {
                Some(interface) => on_interface(p, &self.snapshot, interface, self.traffic),
                None => in_view(p, self.traffic),
            })
            .collect();
        sort::sort(&mut rows, self.sort, &self.membership.rules);
        if let Some(frozen) = &self.frozen {
            sort::apply_frozen(&mut rows, frozen);
        }
        self.rows = rows;
        if let Some(grouping) = &mut self.grouping {
            let sort = self.frozen.is_none().then_some(self.sort);
            grouping.rebuild(&self.rows, &self.membership, sort);
        }
        match self.selected_index() {
            // an application row stands for its first process, which may have changed
            Some(at) => self.select_row(at),
            None if self.row_count() > 0 => self.select_row(0),
            None => {
                self.selected = None;
                if let Some(grouping) = &mut self.grouping {
                    grouping.selected_app = None;
                }
            }
        }
        self.keep_selection_visible();
    }

    /// The selected row: a line of the grouped table, or a process row.
    pub fn selected_index(&self) -> Option<usize> {
        let selected = self.selected?;
        match &self.grouping {
            Some(grouping) => grouping
                .selected_app
                .as_ref()
                .and_then(|key| grouping.app_line(key))
                .or_else(|| grouping.process_line(selected)),
            None => self.rows.iter().position(|p| process_ref(p) == selected),
        }
    }

    /// The process the keys act on; on an application row, its first process.
    pub fn selected_process(&self) -> Option<&ProcessUsage> {
        let selected = self.selected?;
        self.rows.iter().find(|p| process_ref(p) == selected)
    }

    /// How many rows the table has: lines when grouped.
    pub fn row_count(&self) -> usize {
        self.grouping
            .as_ref()
            .map_or(self.rows.len(), |grouping| grouping.lines.len())
    }

    /// The grouped table's selected line, if the table is grouped.
    pub fn selected_line(&self) -> Option<Line> {
        let grouping = self.grouping.as_ref()?;
        grouping.lines.get(self.selected_index()?).copied()
    }

    /// Moves the selection by `delta` rows (clamped).
    pub fn move_selection(&mut self, delta: isize) {
        if self.row_count() == 0 {
            return;
        }
        let at = self.selected_index().unwrap_or(0) as isize;
        let to = (at + delta).clamp(0, self.row_count() as isize - 1) as usize;
        self.select_row(to);
    }

    pub fn select_row(&mut self, index: usize) {
        match &mut self.grouping {
            Some(grouping) => {
                let Some(&line) = grouping.lines.get(index) else {
                    return;
                };
                self.selected = grouping.process_at(line).map(process_ref);
                grouping.selected_app = match line {
                    Line::App(_) => Some(grouping.application_at(line).key.clone()),
                    Line::Process { .. } => None,
                };
            }
            None => {
                let Some(p) = self.rows.get(index) else {
                    return;
                };
                self.selected = Some(process_ref(p));
            }
        }
        self.keep_selection_visible();
    }

    /// Rows the table can show at the current size.
    pub fn visible_rows(&self) -> usize {
        self.layout().table_rows()
    }

    fn keep_selection_visible(&mut self) {
        let visible = self.visible_rows().max(1);
        let max_offset = self.row_count().saturating_sub(visible);
        self.offset = self.offset.min(max_offset);
        if let Some(at) = self.selected_index() {
            if at < self.offset {
                self.offset = at;
            } else if at >= self.offset + visible {
                self.offset = at + 1 - visible;
            }
        }
    }

    /// The last minute of the selected process's rates.
    pub fn selected_history(&self) -> Vec<HistoryPoint> {
        self.selected
            .map(|s| self.monitor.history(&s))
            .unwrap_or_default()
    }

    /// Shows a limit at once, before the next reading confirms it.
    pub fn show_limit(&mut self, process: ProcessRef, limit: Option<LimitRates>) {
        match limit {
            Some(limit) => self.limits.insert(process, limit),
            None => self.limits.remove(&process),
        };
        self.refresh();
    }

    /// `i`: the next interface with addresses, then none.
    pub fn next_interface(&mut self) {
        let names: Vec<&str> = self
            .snapshot
            .interfaces
            .iter()
            .filter(|i| !i.addresses.is_empty())
            .map(|i| i.name.as_str())
            .collect();
        let next = match &self.interface {
            None => names.first().copied(),
            Some(current) => names
                .iter()
                .position(|name| name == current)
                .and_then(|at| names.get(at + 1).copied()),
        };
        self.interface = next.map(str::to_owned);
        self.refresh();
    }

    /// Says why limits cannot be set, if they cannot: `true` when the key is refused.
    pub fn refuse_if_read_only(&mut self) -> bool {
        match self.read_only.clone() {
            Some(reason) => {
                self.say(format!("read-only: {reason}"), true);
                true
            }
            None => false,
        }
    }

    pub fn say(&mut self, text: impl Into<String>, error: bool) {
        self.message = Some(Message {
            text: text.into(),
            error,
        });
    }
}
