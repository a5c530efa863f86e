//! The History view's state (`u`): which range it shows, what the runner last read from
//! the usage database for it (or why there is nothing to read), the selected application,
//! and each application's days laid out on the range's UTC days.
//!
//! The runner reads the database; this module only holds and arranges its answer, so the
//! view is tested with made-up rows.

use chadthrottle_core::usage_history::{DAY, UsageRow, application_name, day_name};

/// The ranges `Tab` cycles through, as `usage --since` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryRange {
    Today,
    Week,
    Month,
}

impl HistoryRange {
    pub const fn next(self) -> HistoryRange {
        match self {
            HistoryRange::Today => HistoryRange::Week,
            HistoryRange::Week => HistoryRange::Month,
            HistoryRange::Month => HistoryRange::Today,
        }
    }

    /// The `usage --since` value that asks for this range.
    pub const fn since(self) -> &'static str {
        match self {
            HistoryRange::Today => "today",
            HistoryRange::Week => "7d",
            HistoryRange::Month => "30d",
        }
    }

    pub const fn title(self) -> &'static str {
        match self {
            HistoryRange::Today => "today (UTC)",
            HistoryRange::Week => "last 7 days",
            HistoryRange::Month => "last 30 days",
        }
    }
}

/// One application's totals over the range and its rows by UTC day.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppHistory {
    /// The report row by application (`app`, `app_kind`, as `top --by app` groups) and
    /// its totals.
    pub totals: UsageRow,
    /// Report rows by day (`day` set) for the application.
    pub days: Vec<UsageRow>,
}

impl AppHistory {
    /// The name the view shows, as `usage` shows it: `rule NAME`, a path, or `[name]`.
    pub fn name(&self) -> String {
        match self.totals.app_key() {
            Some(key) => application_name(key.kind, &key.key),
            None => self.totals.app.clone().unwrap_or_else(|| "?".to_owned()),
        }
    }

    /// Bytes moved (both directions) on each of `days` (names as `day_name` gives them);
    /// 0 for a day without rows.
    pub fn daily(&self, days: &[String]) -> Vec<u64> {
        days.iter()
            .map(|name| {
                self.days
                    .iter()
                    .filter(|row| row.day.as_deref() == Some(name))
                    .map(UsageRow::total)
                    .sum()
            })
            .collect()
    }
}

/// What the runner read for a range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryAnswer {
    /// The report: applications busiest first, over `[since, until]` (Unix seconds);
    /// `note` as `usage` prints it (coarser rows at the start of the range).
    Rows {
        range: HistoryRange,
        since: u64,
        until: u64,
        note: Option<String>,
        apps: Vec<AppHistory>,
    },
    /// The database does not exist: the daemon has never run with it.
    Missing { path: String },
    /// The configuration or the database could not be read.
    Unreadable { path: String, error: String },
}

/// The view's state; it outlives the view, so it reopens on the range it was left on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct History {
    pub range: HistoryRange,
    /// `None` while the range is being read.
    pub answer: Option<HistoryAnswer>,
    pub selected: usize,
}

impl Default for History {
    fn default() -> History {
        History {
            range: HistoryRange::Today,
            answer: None,
            selected: 0,
        }
    }
}

impl History {
    /// The applications of the answer, if it has rows.
    pub fn apps(&self) -> &[AppHistory] {
        match &self.answer {
            Some(HistoryAnswer::Rows { apps, .. }) => apps,
            _ => &[],
        }
    }

    pub fn selected_app(&self) -> Option<&AppHistory> {
        self.apps().get(self.selected)
    }

    /// Takes the runner's answer, unless it is for a range left since it was asked for.
    pub fn take(&mut self, answer: HistoryAnswer) {
        if let HistoryAnswer::Rows { range, .. } = &answer {
            if *range != self.range {
                return;
            }
        }
        self.answer = Some(answer);
        self.selected = self.selected.min(self.apps().len().saturating_sub(1));
    }

    /// Moves the selection by `delta` applications (clamped).
    pub fn move_selection(&mut self, delta: isize) {
        let last = self.apps().len().saturating_sub(1) as isize;
        self.selected = (self.selected as isize + delta).clamp(0, last) as usize;
    }

    /// `Tab`: the next range, to be read anew.
    pub fn next_range(&mut self) -> HistoryRange {
        self.range = self.range.next();
        self.answer = None;
        self.selected = 0;
        self.range
    }

    /// The UTC days the answer covers, oldest first (`YYYY-MM-DD`).
    pub fn days(&self) -> Vec<String> {
        let Some(HistoryAnswer::Rows { since, until, .. }) = &self.answer else {
            return Vec::new();
        };
        let first = since - since % DAY;
        (0..)
            .map(|n| first + n * DAY)
            .take_while(|day| day <= until)
            .map(day_name)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(app: &str, day: Option<&str>, rx: u64) -> UsageRow {
        UsageRow {
            app: Some(app.into()),
            day: day.map(str::to_owned),
            rx_bytes: rx,
            tx_bytes: rx / 10,
            ..UsageRow::default()
        }
    }

    /// 2026-11-30 00:00 UTC.
    const MONDAY: u64 = 1_795_996_800;

    #[test]
    fn days_cover_the_range_and_a_day_without_rows_is_zero() {
        let firefox = AppHistory {
            totals: row("/usr/bin/firefox", None, 3000),
            days: vec![
                row("/usr/bin/firefox", Some("2026-11-28"), 1000),
                row("/usr/bin/firefox", Some("2026-11-30"), 2000),
            ],
        };
        let mut history = History {
            range: HistoryRange::Week,
            ..History::default()
        };
        history.take(HistoryAnswer::Rows {
            range: HistoryRange::Week,
            since: MONDAY - 2 * DAY + 3600,
            until: MONDAY + 600,
            note: None,
            apps: vec![firefox.clone()],
        });
        let days = history.days();
        assert_eq!(days, ["2026-11-28", "2026-11-29", "2026-11-30"]);
        assert_eq!(firefox.daily(&days), [1100, 0, 2200]);
    }

    #[test]
    fn an_answer_for_a_range_left_is_dropped_and_the_selection_stays_on_a_row() {
        let mut history = History::default();
        assert_eq!(history.next_range(), HistoryRange::Week);
        let apps = |count: usize| {
            (0..count)
                .map(|n| AppHistory {
                    totals: row(&format!("/bin/{n}"), None, 100),
                    days: Vec::new(),
                })
                .collect::<Vec<_>>()
        };
        let rows = |range, count| HistoryAnswer::Rows {
            range,
            since: MONDAY,
            until: MONDAY,
            note: None,
            apps: apps(count),
        };
        history.take(rows(HistoryRange::Today, 3));
        assert_eq!(history.answer, None, "the answer for today came late");
        history.take(rows(HistoryRange::Week, 3));
        history.move_selection(5);
        assert_eq!(history.selected, 2);
        history.take(rows(HistoryRange::Week, 1));
        assert_eq!(history.selected, 0);
        history.move_selection(-1);
        assert_eq!(
            history.selected_app().map(AppHistory::name).as_deref(),
            Some("/bin/0")
        );
    }

    #[test]
    fn an_application_that_is_a_rule_is_named_for_it() {
        let mut totals = row("x", None, 1);
        totals.charge_to(&chadthrottle_core::usage_history::Application::of(
            Some("/usr/bin/wget"),
            "wget",
            Some("downloads"),
        ));
        let wget = AppHistory {
            totals,
            days: Vec::new(),
        };
        assert_eq!(wget.name(), "rule downloads");
    }
}
