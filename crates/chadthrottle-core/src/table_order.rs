//! The order of usage tables — processes and applications alike — by one column, so the
//! TUI's process table, its application rows and `top --by app` sort the same way.

use crate::usage::{LimitRates, ProcessUsage};
use std::cmp::Ordering;

/// What a table is ordered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Pid,
    Name,
    DownRate,
    UpRate,
    DownTotal,
    UpTotal,
    Limit,
    /// Both directions' rate, then both totals: `top`'s order, busiest first.
    Busiest,
}

/// What a table orders a row by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Figures<'a> {
    /// An application's is its first (lowest) member's.
    pub pid: u32,
    pub name: &'a str,
    pub rx_rate: u64,
    pub tx_rate: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub limit: Option<LimitRates>,
}

/// A row a usage table orders: a process, or an application by its combined figures.
pub trait Ranked {
    fn figures(&self) -> Figures<'_>;
}

impl Ranked for ProcessUsage {
    fn figures(&self) -> Figures<'_> {
        Figures {
            pid: self.pid,
            name: &self.name,
            rx_rate: self.rx_rate,
            tx_rate: self.tx_rate,
            rx_bytes: self.rx_bytes,
            tx_bytes: self.tx_bytes,
            limit: self.limit,
        }
    }
}

/// `a` before `b` by `key`: numbers largest first (the tightest limit first, no limit
/// last), PID and name ascending; ties by PID, so the order holds between refreshes.
pub fn compare<R: Ranked>(a: &R, b: &R, key: SortKey) -> Ordering {
    let (a, b) = (a.figures(), b.figures());
    let limit = |r: &Figures<'_>| {
        r.limit.map_or(u64::MAX, |l| {
            l.up.unwrap_or(u64::MAX).min(l.down.unwrap_or(u64::MAX))
        })
    };
    let busy = |r: &Figures<'_>| {
        (
            r.rx_rate.saturating_add(r.tx_rate),
            r.rx_bytes.saturating_add(r.tx_bytes),
        )
    };
    let order = match key {
        SortKey::Pid => a.pid.cmp(&b.pid),
        SortKey::Name => a.name.to_lowercase().cmp(&b.name.to_lowercase()),
        SortKey::DownRate => b.rx_rate.cmp(&a.rx_rate),
        SortKey::UpRate => b.tx_rate.cmp(&a.tx_rate),
        SortKey::DownTotal => b.rx_bytes.cmp(&a.rx_bytes),
        SortKey::UpTotal => b.tx_bytes.cmp(&a.tx_bytes),
        SortKey::Limit => limit(&a).cmp(&limit(&b)),
        SortKey::Busiest => busy(&b).cmp(&busy(&a)),
    };
    order.then(a.pid.cmp(&b.pid))
}

/// Sorts `rows` by `key` (see [`compare`]).
pub fn sort<R: Ranked>(rows: &mut [R], key: SortKey) {
    rows.sort_by(|a, b| compare(a, b, key));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::Split;

    fn row(pid: u32, name: &str, rx_rate: u64, limit: Option<u64>) -> ProcessUsage {
        ProcessUsage {
            pid,
            start_time: 1,
            name: name.into(),
            cmdline: String::new(),
            rx_rate,
            tx_rate: 0,
            rx_bytes: 10 * rx_rate,
            tx_bytes: 0,
            rx_packets: 0,
            tx_packets: 0,
            limit: limit.map(|down| LimitRates {
                up: None,
                down: Some(down),
            }),
            rule: None,
            internet: Split::default(),
            local: Split::default(),
            exited: false,
        }
    }

    fn pids(rows: &[ProcessUsage]) -> Vec<u32> {
        rows.iter().map(|r| r.pid).collect()
    }

    #[test]
    fn numbers_sort_largest_first_and_ties_go_by_pid() {
        let mut rows = vec![
            row(3, "b", 10, None),
            row(1, "a", 10, None),
            row(2, "c", 50, None),
        ];
        sort(&mut rows, SortKey::DownRate);
        assert_eq!(pids(&rows), [2, 1, 3]);
        sort(&mut rows, SortKey::Busiest);
        assert_eq!(pids(&rows), [2, 1, 3]);
        sort(&mut rows, SortKey::Pid);
        assert_eq!(pids(&rows), [1, 2, 3]);
    }

    #[test]
    fn names_ignore_case_and_the_tightest_limit_comes_first() {
        let mut rows = vec![
            row(1, "Zed", 0, None),
            row(2, "alpha", 0, Some(500)),
            row(3, "beta", 0, Some(100)),
        ];
        sort(&mut rows, SortKey::Name);
        assert_eq!(pids(&rows), [2, 3, 1]);
        sort(&mut rows, SortKey::Limit);
        assert_eq!(pids(&rows), [3, 2, 1]);
    }
}
