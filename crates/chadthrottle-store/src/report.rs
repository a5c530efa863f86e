//! `chadthrottle usage`'s questions asked of the database: totals from a time on, grouped
//! by application, process, user or day, for one executable, one application or all.
//! Rows by application are summed per executable and rule in SQL and merged into
//! applications (`usage_history::by_application`) here.

use crate::{Store, StoreError, counter};
use chadthrottle_core::application::{AppKey, KeyKind};
use chadthrottle_core::tally::Bytes;
use chadthrottle_core::usage_history::{
    Application, DAY, Grouping, UsageReport, UsageRow, by_application, day_name, moment_name,
    order, ranges,
};
use rusqlite::types::Value;

/// A report to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// Unix seconds.
    pub since: u64,
    /// Unix seconds: now, the end of the report.
    pub until: u64,
    pub by: Grouping,
    /// Only this executable (as `/proc/PID/exe` shows it, or `[name]`), under any rule.
    pub exe: Option<String>,
    /// Only this application, as `top --by app` names it: a rule's processes, or the
    /// processes of an executable (or name) that no rule governed.
    pub app: Option<AppKey>,
}

/// The condition on `a` (applications) of the query's filters, its parameters numbered
/// from `first`, and their values. A path matches the same path replaced while it ran
/// (`PATH (deleted)`), as the application key does.
fn filter(query: &Query, first: usize) -> (String, Vec<Value>) {
    let (exe, rule, unruled) = (first, first + 1, first + 2);
    let condition = format!(
        "(?{exe} IS NULL OR a.exe IN (?{exe}, ?{exe} || ' (deleted)')) \
         AND (?{rule} IS NULL OR a.rule = ?{rule}) \
         AND (?{unruled} IS NULL OR (a.rule = '' AND a.exe IN (?{unruled}, ?{unruled} || ' (deleted)')))"
    );
    let (rule, unruled) = match &query.app {
        None => (None, None),
        Some(AppKey {
            kind: KeyKind::Rule,
            key,
        }) => (Some(key.clone()), None),
        Some(AppKey {
            kind: KeyKind::Exe,
            key,
        }) => (None, Some(key.clone())),
        Some(AppKey {
            kind: KeyKind::Name,
            key,
        }) => (None, Some(format!("[{key}]"))),
    };
    (
        condition,
        vec![text(&query.exe), text(&rule), text(&unruled)],
    )
}

/// The sums every report row carries, in this order after its key columns.
const SUMS: &str = "sum(rx_internet), sum(tx_internet), sum(rx_local), sum(tx_local), \
                    sum(rx_packets), sum(tx_packets)";

impl Store {
    /// The report `query` asks for, rows in report order.
    pub fn report(&self, query: &Query) -> Result<UsageReport, StoreError> {
        let failed = self.failed("read the usage");
        let kept = self.kept()?;
        let mut note = None;
        let (sql, parameters, start) = if query.by == Grouping::Process {
            // processes are in the per-minute rows only
            let minute = query.since - query.since % 60;
            let start = minute.max(kept.minutes_from);
            if start > minute {
                note = Some(format!(
                    "processes are kept for the retention: the report by process starts at {}",
                    moment_name(start)
                ));
            }
            // summed per process first, then named: the names are looked up once per
            // process, not once per minute
            let (condition, mut parameters) = filter(query, 2);
            let sql = format!(
                "SELECT p.pid, p.start_time, p.name, a.exe, a.rule, u.name, s.* FROM ( \
                 SELECT process, {SUMS} FROM samples WHERE minute >= ?1 GROUP BY process) s \
                 JOIN processes p ON p.id = s.process \
                 JOIN applications a ON a.id = p.app JOIN users u ON u.id = p.user \
                 WHERE {condition}"
            );
            parameters.insert(0, integer(start));
            (sql, parameters, start)
        } else {
            let ranges = ranges(query.since, kept);
            if ranges.start < query.since - query.since % 60 {
                note = Some(format!(
                    "older rows are kept by the hour or the day: the figures start at {}, \
                     before the time asked for",
                    moment_name(ranges.start)
                ));
            }
            let (key, group) = match query.by {
                Grouping::App => ("a.exe, a.rule", "parts.app"),
                Grouping::User => ("u.name", "parts.user"),
                _ => ("parts.time / 86400", "parts.time / 86400"),
            };
            let (condition, filters) = filter(query, 6);
            let sql = format!(
                "WITH parts (app, user, time, rx_internet, tx_internet, rx_local, tx_local, \
                 rx_packets, tx_packets) AS ( \
                 SELECT p.app, p.user, s.minute, s.rx_internet, s.tx_internet, s.rx_local, \
                 s.tx_local, s.rx_packets, s.tx_packets \
                 FROM samples s JOIN processes p ON p.id = s.process \
                 WHERE s.minute >= ?1 AND s.minute < ?2 \
                 UNION ALL SELECT app, user, hour, rx_internet, tx_internet, rx_local, \
                 tx_local, rx_packets, tx_packets FROM hourly WHERE hour >= ?3 AND hour < ?4 \
                 UNION ALL SELECT app, user, day, rx_internet, tx_internet, rx_local, \
                 tx_local, rx_packets, tx_packets FROM daily WHERE day >= ?5) \
                 SELECT {key}, {SUMS} FROM parts \
                 JOIN applications a ON a.id = parts.app JOIN users u ON u.id = parts.user \
                 WHERE {condition} GROUP BY {group}"
            );
            let mut parameters = vec![
                integer(ranges.minutes.start),
                integer(ranges.minutes.end),
                integer(ranges.hours.start),
                integer(ranges.hours.end),
                integer(ranges.days_from),
            ];
            parameters.extend(filters);
            (sql, parameters, ranges.start)
        };
        let by = query.by;
        let mut statement = self.connection().prepare(&sql).map_err(&failed)?;
        let mut rows = statement
            .query_map(rusqlite::params_from_iter(parameters), |row| {
                let mut usage = UsageRow::default();
                let keys = match by {
                    Grouping::Process => {
                        usage.pid = Some(row.get(0)?);
                        usage.start_time = Some(counter(row.get(1)?));
                        usage.name = Some(row.get(2)?);
                        usage.charge_to(&application(row.get(3)?, row.get(4)?));
                        usage.user = Some(row.get(5)?);
                        // then the subquery's process id
                        7
                    }
                    Grouping::App => {
                        usage.charge_to(&application(row.get(0)?, row.get(1)?));
                        2
                    }
                    Grouping::User => {
                        usage.user = Some(row.get(0)?);
                        1
                    }
                    Grouping::Day => {
                        usage.day = Some(day_name(counter(row.get(0)?) * DAY));
                        1
                    }
                };
                let sum = |index: usize| row.get::<_, i64>(keys + index).map(counter);
                usage.internet = Bytes {
                    rx_bytes: sum(0)?,
                    tx_bytes: sum(1)?,
                };
                usage.local = Bytes {
                    rx_bytes: sum(2)?,
                    tx_bytes: sum(3)?,
                };
                usage.rx_packets = sum(4)?;
                usage.tx_packets = sum(5)?;
                usage.rx_bytes = usage.internet.rx_bytes.saturating_add(usage.local.rx_bytes);
                usage.tx_bytes = usage.internet.tx_bytes.saturating_add(usage.local.tx_bytes);
                Ok(usage)
            })
            .map_err(&failed)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(&failed)?;
        if by == Grouping::App {
            rows = by_application(rows);
        }
        order(&mut rows, by);
        Ok(UsageReport {
            since: start,
            until: query.until,
            by,
            note,
            rows,
        })
    }
}

/// The application as stored: no rule is stored as '' (see `application_id`).
fn application(exe: String, rule: String) -> Application {
    Application {
        exe,
        rule: (!rule.is_empty()).then_some(rule),
    }
}

fn integer(value: u64) -> Value {
    Value::Integer(crate::column(value))
}

fn text(value: &Option<String>) -> Value {
    value.clone().map_or(Value::Null, Value::Text)
}
