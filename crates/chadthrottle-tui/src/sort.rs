//! Ordering the process table: by a column, or frozen in the order it had.

use chadthrottle_core::ProcessRef;
use chadthrottle_core::table_order::{self, Figures, Ranked, SortKey};
use chadthrottle_core::usage::{LimitRates, ProcessUsage};
use std::collections::HashMap;

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
/// grouped table's applications follow too). A process a rule governs ranks by the
/// rule's rates in the LIMIT column, as its row shows them (`rules`: the governing rule
/// of each, by process; its own PID limit outranks the rule, as on the row).
pub fn sort(
    processes: &mut [ProcessUsage],
    column: Column,
    rules: &HashMap<ProcessRef, (String, LimitRates)>,
) {
    processes.sort_by(|a, b| {
        let (a, b) = (
            Governed { process: a, rules },
            Governed { process: b, rules },
        );
        table_order::compare(&a, &b, column.key())
    });
}

/// A process row as the table ranks it: its limit is the one its row shows.
struct Governed<'a> {
    process: &'a ProcessUsage,
    rules: &'a HashMap<ProcessRef, (String, LimitRates)>,
}

impl Ranked for Governed<'_> {
    fn figures(&self) -> Figures<'_> {
        let mut figures = self.process.figures();
        if figures.limit.is_none() {
            figures.limit = self.rules.get(&self.process.process()).map(|(_, l)| *l);
        }
        figures
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn process(pid: u32, limit_down: Option<u64>) -> ProcessUsage {
        ProcessUsage {
            pid,
            start_time: 1,
            name: format!("p{pid}"),
            limit: limit_down.map(|down| LimitRates {
                up: None,
                down: Some(down),
            }),
            ..ProcessUsage::default()
        }
    }

    #[test]
    fn the_limit_column_ranks_a_rule_member_by_its_rule() {
        // 1: no limit; 2: its own 500K; 3: governed by a 100K rule; 4: its own 2M and a
        // 50K rule, which the PID limit outranks
        let mut rows = vec![
            process(1, None),
            process(2, Some(500_000)),
            process(3, None),
            process(4, Some(2_000_000)),
        ];
        let rule = |down| {
            let limit = LimitRates {
                up: None,
                down: Some(down),
            };
            ("rule".to_string(), limit)
        };
        let rules: HashMap<ProcessRef, (String, LimitRates)> = [
            (rows[2].process(), rule(100_000)),
            (rows[3].process(), rule(50_000)),
        ]
        .into_iter()
        .collect();
        sort(&mut rows, Column::Limit, &rules);
        let pids: Vec<u32> = rows.iter().map(|p| p.pid).collect();
        assert_eq!(pids, [3, 2, 4, 1]);
        // without the rules, the rule member is unlimited and goes last, after PID 1
        sort(&mut rows, Column::Limit, &HashMap::new());
        let pids: Vec<u32> = rows.iter().map(|p| p.pid).collect();
        assert_eq!(pids, [2, 4, 1, 3]);
    }
}
