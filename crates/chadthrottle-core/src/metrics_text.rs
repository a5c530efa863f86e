//! The metrics as a scrape returns them: the Prometheus text format (0.0.4), written by
//! the `prometheus-client` crate from what [`crate::metrics`] decided.
//!
//! The names and labels are a contract with dashboards and alerts: add families and labels
//! freely, never rename one (the tests pin them). Directions are `up` and `down` as in the
//! limits; counters get their `_total` suffix from the crate.

use crate::direction::PerDirection;
use crate::metrics::{AppSeries, DaemonHealth, Exported};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use std::fmt;

/// The `Content-Type` of a scrape's answer.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// One scrape's figures, handed to the crate's registry as a collector (built anew each
/// scrape: the figures are already counted, nothing is kept in the crate's metrics).
#[derive(Debug)]
struct Scrape {
    exported: Exported,
    health: Option<DaemonHealth>,
}

/// `exported` and, when a daemon serves them, its `health`, in the text format.
pub fn encode(exported: Exported, health: Option<DaemonHealth>) -> Result<String, fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape { exported, health }));
    let mut text = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)?;
    Ok(text)
}

/// Writes one family: its help and type, then one sample per label set.
fn family<S: EncodeLabelSet, M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric_type: MetricType,
    samples: impl IntoIterator<Item = (S, M)>,
) -> fmt::Result {
    let mut metric = encoder.encode_descriptor(name, help, None, metric_type)?;
    for (labels, value) in samples {
        value.encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

/// An application counter per direction: `pick` chooses which of its figures.
fn app_counter(
    encoder: &mut DescriptorEncoder,
    applications: &[AppSeries],
    name: &str,
    help: &str,
    pick: fn(&AppSeries) -> &PerDirection<u64>,
) -> fmt::Result {
    let samples = applications.iter().flat_map(|s| {
        pick(s).iter().map(move |(direction, value)| {
            (
                [
                    ("app", s.app.as_str()),
                    ("kind", s.kind),
                    ("direction", direction.as_str()),
                ],
                ConstCounter::new(*value),
            )
        })
    });
    family(encoder, name, help, MetricType::Counter, samples)
}

const NO_LABELS: [(&str, &str); 0] = [];

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let apps = &self.exported.applications;
        let e = &mut encoder;
        app_counter(
            e,
            apps,
            "chadthrottle_application_bytes",
            "Bytes an application's processes sent (up) and received (down), transport payload as the datapath counts it; applications beyond the top N are summed in app=\"other\".",
            |s| &s.counted.bytes,
        )?;
        app_counter(
            e,
            apps,
            "chadthrottle_application_packets",
            "Packets an application's processes sent (up) and received (down).",
            |s| &s.counted.packets,
        )?;
        let peers = apps.iter().flat_map(|s| {
            [
                ("internet", &s.counted.internet_bytes),
                ("local", &s.counted.local_bytes),
            ]
            .into_iter()
            .flat_map(move |(peer, bytes)| {
                bytes.iter().map(move |(direction, value)| {
                    (
                        [
                            ("app", s.app.as_str()),
                            ("kind", s.kind),
                            ("direction", direction.as_str()),
                            ("peer", peer),
                        ],
                        ConstCounter::new(*value),
                    )
                })
            })
        });
        family(
            e,
            "chadthrottle_application_peer_bytes",
            "Bytes an application exchanged with Internet and with local peers, from the connections seen; may be less than chadthrottle_application_bytes_total.",
            MetricType::Counter,
            peers,
        )?;
        app_counter(
            e,
            apps,
            "chadthrottle_application_dropped_bytes",
            "Bytes the policer dropped for an application over its rule's or its processes' limits.",
            |s| &s.counted.dropped_bytes,
        )?;
        app_counter(
            e,
            apps,
            "chadthrottle_application_dropped_packets",
            "Packets the policer dropped for an application over its rule's or its processes' limits.",
            |s| &s.counted.dropped_packets,
        )?;
        family(
            e,
            "chadthrottle_application_processes",
            "Running processes of an application at the last sample.",
            MetricType::Gauge,
            apps.iter().map(|s| {
                (
                    [("app", s.app.as_str()), ("kind", s.kind)],
                    ConstGauge::new(s.processes),
                )
            }),
        )?;
        family(
            e,
            "chadthrottle_applications",
            "Applications at the last sample, with their own label or in app=\"other\".",
            MetricType::Gauge,
            [(NO_LABELS, ConstGauge::new(self.exported.applications_seen))],
        )?;
        let rules = &self.exported.rules;
        family(
            e,
            "chadthrottle_rule_limit_bytes_per_second",
            "A rule's rate per limited direction, bytes of transport payload per second; 0 blocks.",
            MetricType::Gauge,
            rules.iter().flat_map(|rule| {
                rule.limit.iter().filter_map(|(direction, rate)| {
                    rate.map(|rate| {
                        (
                            [
                                ("rule", rule.rule.as_str()),
                                ("direction", direction.as_str()),
                            ],
                            ConstGauge::new(rate),
                        )
                    })
                })
            }),
        )?;
        family(
            e,
            "chadthrottle_rule_members",
            "Processes a rule governs.",
            MetricType::Gauge,
            rules.iter().map(|rule| {
                (
                    [("rule", rule.rule.as_str())],
                    ConstGauge::new(rule.members),
                )
            }),
        )?;
        family(
            e,
            "chadthrottle_pid_limits",
            "Processes under a limit of their own (by PID).",
            MetricType::Gauge,
            [(NO_LABELS, ConstGauge::new(self.exported.pid_limits))],
        )?;
        let Some(health) = self.health else {
            return Ok(());
        };
        family(
            e,
            "chadthrottle_daemon_samples_written",
            "Usage samples the daemon wrote to its database since it started.",
            MetricType::Counter,
            [(NO_LABELS, ConstCounter::new(health.samples_written))],
        )?;
        family(
            e,
            "chadthrottle_daemon_last_sample_age_seconds",
            "Seconds since the daemon's last sample; absent before the first.",
            MetricType::Gauge,
            health
                .last_sample_age
                .map(|age| (NO_LABELS, ConstGauge::new(age.as_secs_f64()))),
        )?;
        family(
            e,
            "chadthrottle_daemon_database_bytes",
            "Size of the daemon's usage database on disk.",
            MetricType::Gauge,
            [(NO_LABELS, ConstGauge::new(health.database_bytes))],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Counted, OTHER, RuleGauge};
    use std::collections::{BTreeMap, HashMap};
    use std::time::Duration;

    /// One sample line read back: its name, labels and value.
    #[derive(Debug, PartialEq)]
    struct Sample {
        name: String,
        labels: BTreeMap<String, String>,
        value: f64,
    }

    /// Reads the text format back, line by line, failing on anything it does not know:
    /// `# HELP name text`, `# TYPE name counter|gauge` before the family's samples, and
    /// `name{key="value",…} number` with `\\`, `\"` and `\n` escapes.
    fn parse(text: &str) -> (HashMap<String, String>, Vec<Sample>) {
        let mut types = HashMap::new();
        let mut samples = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                assert!(rest.contains(' '), "help without text: {line}");
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
                assert!(matches!(kind, "counter" | "gauge"), "type {kind}");
                types.insert(name.to_owned(), kind.to_owned());
            } else {
                samples.push(parse_sample(line));
            }
        }
        for sample in &samples {
            assert!(types.contains_key(&sample.name), "no TYPE for {sample:?}");
        }
        (types, samples)
    }

    fn parse_sample(line: &str) -> Sample {
        let name_end = line
            .find(['{', ' '])
            .unwrap_or_else(|| panic!("no value: {line}"));
        let name = &line[..name_end];
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad name {name}"
        );
        let mut labels = BTreeMap::new();
        let mut rest = &line[name_end..];
        if let Some(inner) = rest.strip_prefix('{') {
            let mut chars = inner.char_indices();
            let mut key = String::new();
            loop {
                let (_, c) = chars.next().expect("unterminated labels");
                match c {
                    '}' => break,
                    ',' => {}
                    '=' => {
                        assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "{line}");
                        let mut value = String::new();
                        loop {
                            match chars.next().expect("unterminated value").1 {
                                '"' => break,
                                '\\' => match chars.next().expect("escape").1 {
                                    'n' => value.push('\n'),
                                    c @ ('\\' | '"') => value.push(c),
                                    c => panic!("bad escape \\{c} in {line}"),
                                },
                                c => value.push(c),
                            }
                        }
                        labels.insert(std::mem::take(&mut key), value);
                    }
                    c => key.push(c),
                }
            }
            let consumed = chars.next().map_or(inner.len(), |(i, _)| i);
            rest = &inner[consumed..];
        }
        let value = rest
            .strip_prefix(' ')
            .unwrap_or_else(|| panic!("no space before value: {line}"))
            .parse()
            .unwrap_or_else(|e| panic!("bad value in {line}: {e}"));
        Sample {
            name: name.to_owned(),
            labels,
            value,
        }
    }

    fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        samples
            .iter()
            .find(|s| s.name == name && s.labels == want)
            .unwrap_or_else(|| panic!("no {name} {labels:?}"))
            .value
    }

    fn exported() -> Exported {
        let per = |up, down| PerDirection { up, down };
        let series = |app: &str, kind: &'static str, bytes: u64| AppSeries {
            app: app.into(),
            kind,
            counted: Counted {
                bytes: per(bytes / 2, bytes),
                packets: per(3, 4),
                internet_bytes: per(5, 6),
                local_bytes: per(7, 8),
                dropped_bytes: per(9, 10),
                dropped_packets: per(11, 12),
            },
            processes: 2,
        };
        Exported {
            applications: vec![
                series("/opt/we\"ird\\path\nx", "exe", 2_000_000),
                series("games", "rule", 1000),
                series(OTHER, OTHER, 10),
            ],
            rules: vec![RuleGauge {
                rule: "games".into(),
                limit: PerDirection {
                    up: Some(0),
                    down: None,
                },
                members: 3,
            }],
            pid_limits: 4,
            applications_seen: 9,
        }
    }

    #[test]
    fn every_family_reads_back_with_its_labels_and_values() {
        let health = DaemonHealth {
            samples_written: 17,
            last_sample_age: Some(Duration::from_millis(2500)),
            database_bytes: 4096,
        };
        let text = encode(exported(), Some(health)).expect("encodes");
        let (types, samples) = parse(&text);
        let weird = "/opt/we\"ird\\path\nx";
        let app = |direction| [("app", weird), ("kind", "exe"), ("direction", direction)];
        let bytes = "chadthrottle_application_bytes_total";
        assert_eq!(value(&samples, bytes, &app("down")), 2_000_000.0);
        assert_eq!(value(&samples, bytes, &app("up")), 1_000_000.0);
        assert_eq!(types[bytes], "counter");
        let other = [("app", OTHER), ("kind", OTHER), ("direction", "down")];
        assert_eq!(value(&samples, bytes, &other), 10.0);
        let packets = "chadthrottle_application_packets_total";
        assert_eq!(value(&samples, packets, &app("up")), 3.0);
        let peer = "chadthrottle_application_peer_bytes_total";
        let with_peer = |peer| {
            [
                ("app", "games"),
                ("kind", "rule"),
                ("direction", "down"),
                ("peer", peer),
            ]
        };
        assert_eq!(value(&samples, peer, &with_peer("internet")), 6.0);
        assert_eq!(value(&samples, peer, &with_peer("local")), 8.0);
        let dropped = "chadthrottle_application_dropped_bytes_total";
        assert_eq!(value(&samples, dropped, &app("down")), 10.0);
        let dropped = "chadthrottle_application_dropped_packets_total";
        assert_eq!(value(&samples, dropped, &app("up")), 11.0);
        let processes = "chadthrottle_application_processes";
        assert_eq!(types[processes], "gauge");
        assert_eq!(
            value(&samples, processes, &[("app", "games"), ("kind", "rule")]),
            2.0
        );
        assert_eq!(value(&samples, "chadthrottle_applications", &[]), 9.0);
        let limit = "chadthrottle_rule_limit_bytes_per_second";
        assert_eq!(
            value(&samples, limit, &[("rule", "games"), ("direction", "up")]),
            0.0
        );
        assert!(
            !samples
                .iter()
                .any(|s| s.name == limit && s.labels["direction"] == "down"),
            "an unlimited direction has no gauge"
        );
        let members = "chadthrottle_rule_members";
        assert_eq!(value(&samples, members, &[("rule", "games")]), 3.0);
        assert_eq!(value(&samples, "chadthrottle_pid_limits", &[]), 4.0);
        let written = "chadthrottle_daemon_samples_written_total";
        assert_eq!(
            (value(&samples, written, &[]), &*types[written]),
            (17.0, "counter")
        );
        let age = "chadthrottle_daemon_last_sample_age_seconds";
        assert_eq!(value(&samples, age, &[]), 2.5);
        let size = "chadthrottle_daemon_database_bytes";
        assert_eq!(value(&samples, size, &[]), 4096.0);
        // 3 applications × (2 + 2 + 4 + 2 + 2 directions + 1 gauge), the rule's 2, pid
        // limits, applications and the daemon's 3
        assert_eq!(samples.len(), 3 * 13 + 2 + 2 + 3);
    }

    #[test]
    fn without_a_daemon_or_before_its_first_sample_its_figures_are_absent() {
        let (_, samples) = parse(&encode(exported(), None).expect("encodes"));
        assert!(!samples.iter().any(|s| s.name.contains("daemon")));
        let text = encode(exported(), Some(DaemonHealth::default())).expect("encodes");
        let (_, samples) = parse(&text);
        assert!(
            !samples
                .iter()
                .any(|s| s.name == "chadthrottle_daemon_last_sample_age_seconds")
        );
        assert_eq!(
            value(&samples, "chadthrottle_daemon_samples_written_total", &[]),
            0.0
        );
    }

    #[test]
    fn the_content_type_is_the_text_formats() {
        assert_eq!(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8");
    }
}
