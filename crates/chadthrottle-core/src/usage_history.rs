//! What the usage history records and reports: the application a process's bytes are
//! charged to, how `chadthrottle usage` groups and orders them, its `--since` values, and
//! the `usage --json` contract (fields may be added, never renamed or dropped).
//!
//! The database keeps the executable and the governing rule of every process apart; a
//! report groups them into applications with the key `top --by app` uses
//! (`application::AppKey`): the rule, else the executable, else the process name.
//!
//! Days are UTC days (`2026-11-30` runs from 00:00 to 24:00 UTC): the daemon and `usage`
//! agree on them whatever either's time zone.

use crate::application::{AppKey, KeyKind};
use crate::duration::parse_duration;
use crate::tally::Bytes;
use serde::Serialize;
use std::collections::HashMap;
use std::fmt;

pub const HOUR: u64 = 3600;
pub const DAY: u64 = 24 * HOUR;

/// What the database records of whom bytes are charged to: the executable, and the rule
/// that governed the process when one did. Reports group these into applications by
/// [`Application::key`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Application {
    /// `/proc/PID/exe` as the daemon read it; `[name]` (the process name in brackets, as
    /// `ps` shows processes without a command line) when it could not be read: a process
    /// that exited before the daemon saw it, or a kernel socket.
    pub exe: String,
    pub rule: Option<String>,
}

impl Application {
    /// The application of a process with executable `exe` (if known) and name `name`.
    pub fn of(exe: Option<&str>, name: &str, rule: Option<&str>) -> Application {
        Application {
            exe: exe.map_or_else(|| format!("[{name}]"), str::to_owned),
            rule: rule.map(str::to_owned),
        }
    }
}

impl Application {
    /// The application these bytes belong to, as `top --by app` groups processes: the
    /// rule, else the executable, else (`[name]`) the process name.
    pub fn key(&self) -> AppKey {
        let name = self
            .exe
            .strip_prefix('[')
            .and_then(|rest| rest.strip_suffix(']'));
        let exe = name.is_none().then_some(self.exe.as_str());
        AppKey::from_parts(self.rule.as_deref(), exe, name.unwrap_or(&self.exe))
    }
}

/// How `usage` and the History view name an application: a rule as `rule NAME`, a process
/// whose executable was not read as `[name]`, an executable by its path.
pub fn application_name(kind: KeyKind, key: &str) -> String {
    match kind {
        KeyKind::Rule => format!("rule {key}"),
        KeyKind::Exe => key.to_owned(),
        KeyKind::Name => format!("[{key}]"),
    }
}

impl fmt::Display for Application {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.rule {
            Some(rule) => write!(f, "{} (rule {rule})", self.exe),
            None => f.write_str(&self.exe),
        }
    }
}

/// How `usage` groups its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Grouping {
    App,
    Process,
    User,
    Day,
}

/// One row of a report: its key (the fields of its grouping; the others `None`) and what
/// it moved.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UsageRow {
    /// The application's key (`--by app` and `--by process`): as `top --by app --json`
    /// has it, the rule's name, the executable's path or the process name, by `app_kind`.
    pub app: Option<String>,
    pub app_kind: Option<KeyKind>,
    /// The executable as the daemon read it (`[name]` when it could not): of the process,
    /// or of every process of the application (`None` when they ran several).
    pub exe: Option<String>,
    /// The rule that governed the process or the application.
    pub rule: Option<String>,
    pub user: Option<String>,
    pub pid: Option<u32>,
    pub start_time: Option<u64>,
    /// The process name (`--by process`).
    pub name: Option<String>,
    /// `YYYY-MM-DD`, UTC (`--by day`).
    pub day: Option<String>,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub internet: Bytes,
    pub local: Bytes,
}

impl UsageRow {
    pub fn total(&self) -> u64 {
        self.rx_bytes.saturating_add(self.tx_bytes)
    }

    /// Sets the row's application fields for bytes charged to `application`.
    pub fn charge_to(&mut self, application: &Application) {
        let key = application.key();
        self.app = Some(key.key);
        self.app_kind = Some(key.kind);
        self.exe = Some(application.exe.clone());
        self.rule.clone_from(&application.rule);
    }

    /// The application's key the row has, if it has one.
    pub fn app_key(&self) -> Option<AppKey> {
        Some(AppKey {
            kind: self.app_kind?,
            key: self.app.clone()?,
        })
    }

    /// Adds `other`'s figures to this row's.
    fn add(&mut self, other: &UsageRow) {
        self.rx_bytes = self.rx_bytes.saturating_add(other.rx_bytes);
        self.tx_bytes = self.tx_bytes.saturating_add(other.tx_bytes);
        self.rx_packets = self.rx_packets.saturating_add(other.rx_packets);
        self.tx_packets = self.tx_packets.saturating_add(other.tx_packets);
        self.internet.add(other.internet);
        self.local.add(other.local);
    }
}

/// Rows by what the database records (executable and rule, each row given with
/// [`UsageRow::charge_to`]) merged into one row per application; an application whose
/// rows ran several executables keeps no `exe`.
pub fn by_application(rows: Vec<UsageRow>) -> Vec<UsageRow> {
    let mut merged: Vec<UsageRow> = Vec::with_capacity(rows.len());
    let mut index: HashMap<Option<AppKey>, usize> = HashMap::with_capacity(rows.len());
    for row in rows {
        match index.get(&row.app_key()) {
            Some(&at) => {
                let into = &mut merged[at];
                into.add(&row);
                if into.exe != row.exe {
                    into.exe = None;
                }
            }
            None => {
                index.insert(row.app_key(), merged.len());
                merged.push(row);
            }
        }
    }
    merged
}

/// What `usage --json` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsageReport {
    /// Unix seconds: the report covers `[since, until]`.
    pub since: u64,
    pub until: u64,
    pub by: Grouping,
    /// Why the figures may cover more or less than asked (coarser rows at the start of
    /// the range, processes kept for a shorter time); `None` when they are exact.
    pub note: Option<String>,
    pub rows: Vec<UsageRow>,
}

/// Puts `rows` in report order: days in time order, anything else busiest first (ties by
/// key, so the order is stable).
pub fn order(rows: &mut [UsageRow], by: Grouping) {
    match by {
        Grouping::Day => rows.sort_by(|a, b| a.day.cmp(&b.day)),
        _ => rows.sort_by(|a, b| {
            b.total()
                .cmp(&a.total())
                .then_with(|| a.app.cmp(&b.app))
                .then_with(|| a.exe.cmp(&b.exe))
                .then_with(|| a.user.cmp(&b.user))
                .then_with(|| a.pid.cmp(&b.pid))
        }),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid --since \"{input}\": {problem}; expected today, or a time back from now: 30m, 6h, 7d, 30d"
)]
pub struct SinceError {
    pub input: String,
    pub problem: String,
}

/// The start of the range `--since` names, in Unix seconds: `today` is the start of the
/// current UTC day, anything else a duration back from `now`.
pub fn since(input: &str, now: u64) -> Result<u64, SinceError> {
    if input.trim() == "today" {
        return Ok(now - now % DAY);
    }
    let back = parse_duration(input).map_err(|error| SinceError {
        input: input.to_owned(),
        problem: error.problem.to_owned(),
    })?;
    Ok(now.saturating_sub(back.as_secs()))
}

/// `YYYY-MM-DD` of the UTC day holding Unix second `at`.
pub fn day_name(at: u64) -> String {
    // days since 1970-01-01 to a civil date (the proleptic Gregorian calendar)
    let days = i64::try_from(at / DAY).unwrap_or(i64::MAX) + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// How far back each kind of row reaches in a database: older ones were dropped by the
/// retention policy. Unix seconds; 0 when nothing was dropped yet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Kept {
    /// Per-minute, per-process rows start here (an hour boundary).
    pub minutes_from: u64,
    /// Hourly rows start here (a day boundary).
    pub hours_from: u64,
}

/// Which rows answer a report from `since` on: per-minute rows up to the first full hour,
/// hourly rows up to the first full day, daily rows from then on — each row kind counted
/// over its own range, so nothing is counted twice. Where the finer rows were dropped,
/// the range starts earlier, at the boundary of the coarser row that holds `since`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ranges {
    pub minutes: std::ops::Range<u64>,
    pub hours: std::ops::Range<u64>,
    pub days_from: u64,
    /// Where the figures really start (`since`, rounded down to a minute, an hour or a day).
    pub start: u64,
}

/// The rows that answer a report from `since` (Unix seconds) on, given what is `kept`.
pub fn ranges(since: u64, kept: Kept) -> Ranges {
    let floor = |at: u64, unit: u64| at - at % unit;
    let ceil = |at: u64, unit: u64| floor(at.saturating_add(unit - 1), unit);
    let minute = floor(since, 60);
    let (hour, day) = (ceil(since, HOUR), ceil(since, DAY));
    let (minutes, hours_start) = if minute >= kept.minutes_from {
        (minute..hour, hour)
    } else {
        (0..0, floor(since, HOUR))
    };
    if hours_start >= kept.hours_from {
        Ranges {
            start: if minutes.is_empty() {
                hours_start.min(minute)
            } else {
                minute
            },
            minutes,
            hours: hours_start..day,
            days_from: day,
        }
    } else {
        let days_from = floor(since, DAY);
        Ranges {
            minutes: 0..0,
            hours: 0..0,
            days_from,
            start: days_from,
        }
    }
}

/// `YYYY-MM-DD HH:MM UTC` of Unix second `at`, for notes.
pub fn moment_name(at: u64) -> String {
    let within = at % DAY;
    format!(
        "{} {:02}:{:02} UTC",
        day_name(at),
        within / HOUR,
        within % HOUR / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_application_is_its_executable_or_its_name_in_brackets_with_its_rule() {
        let firefox = Application::of(Some("/usr/bin/firefox"), "firefox", None);
        assert_eq!(firefox.to_string(), "/usr/bin/firefox");
        let gone = Application::of(None, "curl", Some("downloads"));
        assert_eq!(gone.exe, "[curl]");
        assert_eq!(gone.to_string(), "[curl] (rule downloads)");
        assert_ne!(
            Application::of(Some("/usr/bin/curl"), "curl", Some("a")),
            Application::of(Some("/usr/bin/curl"), "curl", None)
        );
    }

    #[test]
    fn a_recorded_application_has_the_key_top_groups_by() {
        let key = |exe: Option<&str>, name: &str, rule: Option<&str>| {
            let key = Application::of(exe, name, rule).key();
            (key.kind, key.key)
        };
        assert_eq!(
            key(Some("/usr/bin/curl"), "curl", Some("downloads")),
            (KeyKind::Rule, "downloads".to_owned())
        );
        assert_eq!(
            key(Some("/usr/bin/curl (deleted)"), "curl", None),
            (KeyKind::Exe, "/usr/bin/curl".to_owned())
        );
        assert_eq!(
            key(None, "kworker", None),
            (KeyKind::Name, "kworker".to_owned())
        );
        // the same three as `top --by app` makes them from a live process
        for (exe, name, rule) in [
            (Some("/usr/bin/curl"), "curl", Some("downloads")),
            (Some("/usr/bin/curl (deleted)"), "curl", None),
            (None, "kworker", None),
        ] {
            assert_eq!(
                Application::of(exe, name, rule).key(),
                AppKey::from_parts(rule, exe, name)
            );
        }
    }

    #[test]
    fn rows_of_one_application_merge_and_keep_an_executable_only_if_it_is_one() {
        let row = |exe: Option<&str>, rule: Option<&str>, rx: u64| {
            let mut row = UsageRow {
                rx_bytes: rx,
                rx_packets: 1,
                internet: Bytes {
                    rx_bytes: rx,
                    tx_bytes: 0,
                },
                ..UsageRow::default()
            };
            row.charge_to(&Application::of(exe, "x", rule));
            row
        };
        let merged = by_application(vec![
            row(Some("/usr/bin/curl"), Some("net"), 10),
            row(Some("/usr/bin/wget"), Some("net"), 20),
            row(Some("/usr/bin/curl"), None, 5),
            row(Some("/usr/bin/curl (deleted)"), None, 7),
        ]);
        assert_eq!(merged.len(), 2);
        let rule = &merged[0];
        assert_eq!(
            (rule.app.as_deref(), rule.app_kind, rule.exe.as_deref()),
            (Some("net"), Some(KeyKind::Rule), None)
        );
        assert_eq!(
            (rule.rx_bytes, rule.rx_packets, rule.internet.rx_bytes),
            (30, 2, 30)
        );
        let curl = &merged[1];
        assert_eq!(
            (curl.app.as_deref(), curl.app_kind, curl.rule.as_deref()),
            (Some("/usr/bin/curl"), Some(KeyKind::Exe), None)
        );
        assert_eq!(curl.rx_bytes, 12);
        assert_eq!(
            curl.exe, None,
            "a path and the same path deleted are two executables"
        );
        assert_eq!(application_name(KeyKind::Rule, "net"), "rule net");
        assert_eq!(application_name(KeyKind::Name, "x"), "[x]");
    }

    #[test]
    fn since_takes_today_and_durations_and_names_a_bad_value() {
        let now = 20 * DAY + 5 * HOUR + 7;
        assert_eq!(since("today", now), Ok(20 * DAY));
        assert_eq!(since("7d", now), Ok(now - 7 * DAY));
        assert_eq!(since("90m", now), Ok(now - 90 * 60));
        let error = since("yesterday", now).expect_err("refused");
        assert!(error.to_string().contains("\"yesterday\""), "{error}");
    }

    #[test]
    fn days_are_named_as_utc_dates() {
        assert_eq!(day_name(0), "1970-01-01");
        assert_eq!(day_name(DAY - 1), "1970-01-01");
        assert_eq!(day_name(951_782_400), "2000-02-29");
        assert_eq!(day_name(1_798_675_200), "2026-12-31");
        assert_eq!(day_name(1_798_761_600), "2027-01-01");
        assert_eq!(
            moment_name(1_798_761_600 + 5 * HOUR + 7 * 60 + 9),
            "2027-01-01 05:07 UTC"
        );
    }

    #[test]
    fn rows_go_busiest_first_and_days_in_time_order() {
        let row = |app: &str, day: &str, rx| UsageRow {
            app: Some(app.to_owned()),
            day: Some(day.to_owned()),
            rx_bytes: rx,
            ..UsageRow::default()
        };
        let mut rows = vec![row("a", "2026-01-02", 5), row("b", "2026-01-01", 9)];
        order(&mut rows, Grouping::App);
        assert_eq!(rows[0].app.as_deref(), Some("b"));
        order(&mut rows, Grouping::Day);
        assert_eq!(rows[0].day.as_deref(), Some("2026-01-01"));
    }

    #[test]
    fn a_range_takes_minutes_then_hours_then_days_each_once() {
        let since = 10 * DAY + 5 * HOUR + 20 * 60 + 30;
        let all = ranges(since, Kept::default());
        assert_eq!(
            all.minutes,
            10 * DAY + 5 * HOUR + 20 * 60..10 * DAY + 6 * HOUR
        );
        assert_eq!(all.hours, 10 * DAY + 6 * HOUR..11 * DAY);
        assert_eq!(all.days_from, 11 * DAY);
        assert_eq!(all.start, 10 * DAY + 5 * HOUR + 20 * 60);
        // on a day boundary the day's own row answers
        let midnight = ranges(10 * DAY, Kept::default());
        assert!(midnight.minutes.is_empty() && midnight.hours.is_empty());
        assert_eq!(midnight.days_from, 10 * DAY);
    }

    #[test]
    fn a_range_before_the_kept_rows_starts_at_the_coarser_rows_boundary() {
        let since = 10 * DAY + 5 * HOUR + 20 * 60;
        let kept = Kept {
            minutes_from: 10 * DAY + 12 * HOUR,
            hours_from: 0,
        };
        let hourly = ranges(since, kept);
        assert!(hourly.minutes.is_empty());
        assert_eq!(hourly.hours, 10 * DAY + 5 * HOUR..11 * DAY);
        assert_eq!(hourly.start, 10 * DAY + 5 * HOUR);
        let daily = ranges(
            since,
            Kept {
                minutes_from: 12 * DAY,
                hours_from: 11 * DAY,
            },
        );
        assert!(daily.minutes.is_empty() && daily.hours.is_empty());
        assert_eq!((daily.days_from, daily.start), (10 * DAY, 10 * DAY));
    }

    #[test]
    fn json_contract_field_names() {
        let report = UsageReport {
            since: 1,
            until: 2,
            by: Grouping::App,
            note: None,
            rows: vec![UsageRow::default()],
        };
        let json = serde_json::to_value(&report).expect("json");
        let mut keys: Vec<&String> = json["rows"][0].as_object().expect("row").keys().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "app",
                "app_kind",
                "day",
                "exe",
                "internet",
                "local",
                "name",
                "pid",
                "rule",
                "rx_bytes",
                "rx_packets",
                "start_time",
                "tx_bytes",
                "tx_packets",
                "user"
            ]
        );
        assert_eq!(json["by"], "app");
        assert_eq!(json["rows"][0]["internet"]["rx_bytes"], 0);
    }
}
