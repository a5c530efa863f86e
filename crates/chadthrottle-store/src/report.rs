//! `chadthrottle usage`'s questions asked of the database: totals from a time on, grouped
//! by application, process, user or day, for one executable or all.

use crate::{Store, StoreError, counter};
use chadthrottle_core::tally::Bytes;
use chadthrottle_core::usage_history::{
    DAY, Grouping, UsageReport, UsageRow, day_name, moment_name, order, ranges,
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
    /// Only this executable (as `/proc/PID/exe` shows it, or `[name]`).
    pub exe: Option<String>,
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
            let sql = format!(
                "SELECT p.pid, p.start_time, p.name, a.exe, a.rule, u.name, s.* FROM ( \
                 SELECT process, {SUMS} FROM samples WHERE minute >= ?1 GROUP BY process) s \
                 JOIN processes p ON p.id = s.process \
                 JOIN applications a ON a.id = p.app JOIN users u ON u.id = p.user \
                 WHERE ?2 IS NULL OR a.exe = ?2"
            );
            (sql, vec![integer(start), text(&query.exe)], start)
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
                 WHERE (?6 IS NULL OR a.exe = ?6) GROUP BY {group}"
            );
            let parameters = vec![
                integer(ranges.minutes.start),
                integer(ranges.minutes.end),
                integer(ranges.hours.start),
                integer(ranges.hours.end),
                integer(ranges.days_from),
                text(&query.exe),
            ];
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
                        usage.app = Some(row.get(3)?);
                        usage.rule = rule(row.get(4)?);
                        usage.user = Some(row.get(5)?);
                        // then the subquery's process id
                        7
                    }
                    Grouping::App => {
                        usage.app = Some(row.get(0)?);
                        usage.rule = rule(row.get(1)?);
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

/// No rule is stored as '' (see `application_id`).
fn rule(stored: String) -> Option<String> {
    (!stored.is_empty()).then_some(stored)
}

fn integer(value: u64) -> Value {
    Value::Integer(crate::column(value))
}

fn text(value: &Option<String>) -> Value {
    value.clone().map_or(Value::Null, Value::Text)
}
