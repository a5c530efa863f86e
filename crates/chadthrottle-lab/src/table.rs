//! Markdown tables as `ct-bench` prints them, and the cells its tables share.

use crate::case::Outcome;
use crate::latency::Extra;
use crate::stats::error;

/// One table row.
pub fn row(cells: &[String]) -> String {
    format!("| {} |", cells.join(" | "))
}

/// The header row and the separator under it.
pub fn header(names: &[&str]) -> String {
    let names: Vec<String> = names.iter().map(|&name| name.to_owned()).collect();
    format!(
        "{}\n{}",
        row(&names),
        row(&vec!["---".to_owned(); names.len()])
    )
}

/// A signed fraction as a percentage: `+1.2 %`.
pub fn percent(fraction: f64) -> String {
    format!("{:+.1} %", fraction * 100.0)
}

/// The heads of [`flow_cells`].
pub const FLOW_COLUMNS: [&str; 5] = [
    "steady error",
    "cv (100 ms)",
    "empty bins",
    "retransmits",
    "policer drops",
];

/// How a limited flow went against `limit` (bytes/s): steady error, cv of the steady
/// 100 ms bins, share of empty ones, retransmitted segments (count and share) and policer
/// drops (`-` where the datapath did not limit).
pub fn flow_cells(outcome: &Outcome, limit: f64) -> [String; 5] {
    [
        percent(error(outcome.steady.rate, limit)),
        format!("{:.1} %", outcome.steady.cv * 100.0),
        format!("{:.0} %", outcome.steady.empty_share * 100.0),
        format!(
            "{} ({:.2} %)",
            outcome.retransmits,
            outcome.retransmits as f64 * 100.0 / outcome.segments as f64
        ),
        outcome
            .dropped_packets
            .map_or_else(|| "-".to_owned(), |drops| drops.to_string()),
    ]
}

/// The heads of [`latency_cells`].
pub const LATENCY_COLUMNS: [&str; 2] = ["probe RTT alone", "extra latency median / p99"];

fn ms(ns: f64) -> String {
    format!("{:.3} ms", ns / 1e6)
}

/// The latency probe's round trip alone and what the transfer added to it.
pub fn latency_cells(latency: Option<&Result<Extra, String>>) -> [String; 2] {
    match latency {
        None => ["-".to_owned(), "-".to_owned()],
        Some(Err(reason)) => ["-".to_owned(), reason.clone()],
        Some(Ok(extra)) => [
            ms(extra.alone_ns as f64),
            format!(
                "{:+.3} / {:+.3} ms",
                extra.median_ns as f64 / 1e6,
                extra.p99_ns as f64 / 1e6
            ),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::summarize;

    #[test]
    fn header_and_rows_are_markdown() {
        assert_eq!(header(&["a", "b"]), "| a | b |\n| --- | --- |");
        assert_eq!(row(&["1".to_owned(), "2".to_owned()]), "| 1 | 2 |");
        assert_eq!(percent(-0.0123), "-1.2 %");
    }

    #[test]
    fn cells_of_a_flow_and_its_latency() {
        let outcome = Outcome {
            whole: summarize(&[100; 10]),
            steady: summarize(&[100, 0]),
            retransmits: 5,
            dropped_packets: None,
            segments: 1000,
            latency: Some(Ok(Extra {
                alone_ns: 40_000,
                median_ns: 12_000,
                p99_ns: 1_500_000,
                samples: 10,
            })),
        };
        assert_eq!(
            flow_cells(&outcome, 1000.0),
            ["-50.0 %", "100.0 %", "50 %", "5 (0.50 %)", "-"].map(str::to_owned)
        );
        assert_eq!(
            latency_cells(outcome.latency.as_ref()),
            ["0.040 ms", "+0.012 / +1.500 ms"].map(str::to_owned)
        );
        assert_eq!(latency_cells(None), ["-", "-"].map(str::to_owned));
    }
}
