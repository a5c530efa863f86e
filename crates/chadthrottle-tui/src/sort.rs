//! Ordering the process table: by a column, or frozen in the order it had.

use chadthrottle_core::ProcessRef;
use chadthrottle_core::table_order::{self, SortKey};
use chadthrottle_core::usage::ProcessUsage;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    Pid,
    Name,
    DownRate,
    UpRate,
    DownTotal,
    UpTotal,
    Limit,
}

impl Column {
    pub const ALL: [Column; 7] = [
        Column::Pid,
        Column::Name,
        Column::DownRate,
        Column::UpRate,
        Column::DownTotal,
        Column::UpTotal,
        Column::Limit,
    ];

    pub const fn title(self) -> &'static str {
        match self {
            Column::Pid => "PID",
            Column::Name => "NAME",
            Column::DownRate => "↓ RATE",
            Column::UpRate => "↑ RATE",
            Column::DownTotal => "↓ TOTAL",
            Column::UpTotal => "↑ TOTAL",
            Column::Limit => "LIMIT",
        }
    }

    /// The core's order for this column.
    pub const fn key(self) -> SortKey {
        match self {
            Column::Pid => SortKey::Pid,
            Column::Name => SortKey::Name,
            Column::DownRate => SortKey::DownRate,
            Column::UpRate => SortKey::UpRate,
            Column::DownTotal => SortKey::DownTotal,
            Column::UpTotal => SortKey::UpTotal,
            Column::Limit => SortKey::Limit,
        }
    }

    /// The next column `s` moves to.
    pub fn next(self) -> Column {
        let at = Column::ALL.iter().position(|&c| c == self).unwrap_or(0);
        Column::ALL[(at + 1) % Column::ALL.len()]
    }
}

/// Sorts `processes` by `column`: numbers largest first, PID and name ascending; ties
/// by PID so the order is stable between refreshes (the core's table order, which the
/// grouped table's applications follow too).
pub fn sort(processes: &mut [ProcessUsage], column: Column) {
    table_order::sort(processes, column.key());
}

/// Puts `processes` in the `frozen` order; processes not in it go last, in their order.
pub fn apply_frozen(processes: &mut [ProcessUsage], frozen: &[ProcessRef]) {
    let rank = |p: &ProcessUsage| {
        let key = ProcessRef {
            pid: p.pid,
            start_time: p.start_time,
        };
        frozen.iter().position(|f| *f == key).unwrap_or(usize::MAX)
    };
    processes.sort_by_key(|p| rank(p));
}
