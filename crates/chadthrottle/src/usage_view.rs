//! `chadthrottle usage` as a table: the grouping's key columns, then download, upload,
//! their total and the Internet/Local split, in the byte units `top` uses.

use chadthrottle_core::rate::format_bytes;
use chadthrottle_core::usage_history::{
    Grouping, UsageReport, UsageRow, application_name, moment_name,
};
use std::fmt::Write as _;

/// The key of `row` as its grouping shows it.
fn key(row: &UsageRow, by: Grouping) -> String {
    let text = |value: &Option<String>| value.clone().unwrap_or_default();
    match by {
        Grouping::App => app_name(row),
        Grouping::Process => format!(
            "{} {} {} {}",
            row.pid.unwrap_or_default(),
            text(&row.name),
            text(&row.user),
            app_name(row)
        ),
        Grouping::User => text(&row.user),
        Grouping::Day => text(&row.day),
    }
}

/// The application of `row` as `usage` and the History view name it.
pub fn app_name(row: &UsageRow) -> String {
    match (row.app_kind, &row.app) {
        (Some(kind), Some(key)) => application_name(kind, key),
        _ => String::new(),
    }
}

pub fn table(report: &UsageReport) -> String {
    let heading = match report.by {
        Grouping::App => "APPLICATION",
        Grouping::Process => "PID NAME USER APPLICATION",
        Grouping::User => "USER",
        Grouping::Day => "DAY (UTC)",
    };
    let mut out = format!(
        "since {} until {}\n",
        moment_name(report.since),
        moment_name(report.until)
    );
    if let Some(note) = &report.note {
        let _ = writeln!(out, "note: {note}");
    }
    let _ = writeln!(
        out,
        "{:>10} {:>10} {:>10} {:>10} {:>10}  {heading}",
        "↓ TOTAL", "↑ TOTAL", "TOTAL", "INTERNET", "LOCAL"
    );
    for row in &report.rows {
        let _ = writeln!(
            out,
            "{:>10} {:>10} {:>10} {:>10} {:>10}  {}",
            format_bytes(row.rx_bytes),
            format_bytes(row.tx_bytes),
            format_bytes(row.total()),
            format_bytes(row.internet.total()),
            format_bytes(row.local.total()),
            key(row, report.by)
        );
    }
    if report.rows.is_empty() {
        out.push_str("(no usage recorded in this time)\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chadthrottle_core::tally::Bytes;

    #[test]
    fn rows_show_totals_split_and_their_key() {
        let report = UsageReport {
            since: 0,
            until: 3600,
            by: Grouping::App,
            note: Some("rounded".into()),
            rows: vec![UsageRow {
                app: Some("downloads".into()),
                app_kind: Some(chadthrottle_core::application::KeyKind::Rule),
                exe: Some("/usr/bin/curl".into()),
                rule: Some("downloads".into()),
                rx_bytes: 3 << 20,
                tx_bytes: 1 << 20,
                internet: Bytes {
                    rx_bytes: 2 << 20,
                    tx_bytes: 1 << 20,
                },
                local: Bytes {
                    rx_bytes: 1 << 20,
                    tx_bytes: 0,
                },
                ..UsageRow::default()
            }],
        };
        let text = table(&report);
        assert!(
            text.starts_with(
                "since 1970-01-01 00:00 UTC until 1970-01-01 01:00 UTC\nnote: rounded\n"
            ),
            "{text}"
        );
        let line = text.lines().nth(3).expect("a row");
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            cells,
            ["3MB", "1MB", "4MB", "3MB", "1MB", "rule", "downloads"],
            "{text}"
        );
        let empty = UsageReport {
            rows: Vec::new(),
            ..report
        };
        assert!(table(&empty).contains("no usage recorded"));
    }
}
