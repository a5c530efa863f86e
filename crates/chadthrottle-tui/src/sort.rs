//! Ordering the process table: by a column, or frozen in the order it had.

use chadthrottle_core::ProcessRef;
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

    /// The next column `s` moves to.
    pub fn next(self) -> Column {
        let at = Column::ALL.iter().position(|&c| c == self).unwrap_or(0);
        Column::ALL[(at + 1) % Column::ALL.len()]
    }
}

/// Sorts `processes` by `column`: numbers largest first, PID and name ascending; ties
/// by PID so the order is stable between refreshes.
pub fn sort(processes: &mut [ProcessUsage], column: Column) {
    let limit_key = |p: &ProcessUsage| {
        p.limit.map_or(u64::MAX, |l| {
            l.up.unwrap_or(u64::MAX).min(l.down.unwrap_or(u64::MAX))
        })
    };
    processes.sort_by(|a, b| {
        let order = match column {
            Column::Pid => a.pid.cmp(&b.pid),
            Column::Name => a.name.to_lowercase().cmp(&b.name.to_lowercase()),
            Column::DownRate => b.rx_rate.cmp(&a.rx_rate),
            Column::UpRate => b.tx_rate.cmp(&a.tx_rate),
            Column::DownTotal => b.rx_bytes.cmp(&a.rx_bytes),
            Column::UpTotal => b.tx_bytes.cmp(&a.tx_bytes),
            Column::Limit => limit_key(a).cmp(&limit_key(b)),
        };
        order.then(a.pid.cmp(&b.pid))
    });
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
