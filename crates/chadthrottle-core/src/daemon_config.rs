//! The daemon's configuration file (`/etc/chadthrottle/config.toml`), read by `daemon` and
//! `usage`: its keys, defaults and refusals at `FILE:LINE:COL`.
//!
//! ```toml
//! interval = "10s"                         # how often the accounting is sampled: 1s … 1h
//! database = "/var/lib/chadthrottle/usage.db"  # an absolute path
//! retention = "6h"                         # how long per-minute, per-process rows stay
//! hourly_retention = "7d"                  # how long hourly rows stay (daily rows stay)
//!
//! [metrics]
//! listen = "127.0.0.1:9867"                # address:port of the Prometheus endpoint
//! enabled = true
//! top_applications = 50                    # applications with a label of their own: 1 … 1000
//! ```
//!
//! Every key is optional. Unknown keys and bad values are refused with the position of
//! the key or value, so a typo never passes for a default.

use crate::duration::parse_duration;
use crate::file_error::{FileError, line_column};
use serde::Deserialize;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

pub const CONFIG_FILE: &str = "/etc/chadthrottle/config.toml";
pub const DEFAULT_DATABASE: &str = "/var/lib/chadthrottle/usage.db";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9867";

/// Sampling more often than this costs CPU for nothing a person reads.
const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// Sampling more rarely than this makes "at most one interval lost" mean too much.
const MAX_INTERVAL: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    pub listen: SocketAddr,
    pub enabled: bool,
    /// How many applications, busiest first, get an `app` label of their own; the rest
    /// are summed as `app="other"` (`metrics`).
    pub top_applications: usize,
}

/// The most applications a scrape labels one by one: beyond this a busy machine's
/// scrapes grow past what a Prometheus server should be asked to keep.
const MAX_TOP_APPLICATIONS: i64 = 1000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonConfig {
    pub interval: Duration,
    pub database: PathBuf,
    /// How long the per-minute, per-process rows are kept.
    pub retention: Duration,
    /// How long the hourly rows are kept; the daily rows are kept for good.
    pub hourly_retention: Duration,
    pub metrics: MetricsConfig,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            interval: Duration::from_secs(10),
            database: PathBuf::from(DEFAULT_DATABASE),
            retention: Duration::from_secs(6 * 3600),
            hourly_retention: Duration::from_secs(7 * 24 * 3600),
            metrics: MetricsConfig {
                listen: SocketAddr::from(([127, 0, 0, 1], 9867)),
                enabled: true,
                top_applications: crate::metrics::DEFAULT_TOP_APPLICATIONS,
            },
        }
    }
}

/// A refused configuration file, where and why: `config.toml:2:12: …`.
pub type ConfigError = FileError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    interval: Option<Spanned<String>>,
    database: Option<Spanned<String>>,
    retention: Option<Spanned<String>>,
    hourly_retention: Option<Spanned<String>>,
    metrics: Option<RawMetrics>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    listen: Option<Spanned<String>>,
    enabled: Option<bool>,
    top_applications: Option<Spanned<i64>>,
}

/// The configuration in `text`, read from `file`; keys not given keep their defaults.
pub fn parse_config(file: &Path, text: &str) -> Result<DaemonConfig, ConfigError> {
    let error = |span: &Range<usize>, message: String| {
        let (line, column) = line_column(text, span.start);
        ConfigError {
            file: file.display().to_string(),
            line,
            column,
            message,
        }
    };
    let raw: RawConfig = toml::from_str(text).map_err(|refused| {
        let span = refused.span().unwrap_or(0..0);
        error(&span, refused.message().trim_end().to_owned())
    })?;
    let duration = |field: &Spanned<String>, key: &str| {
        parse_duration(field.get_ref())
            .map_err(|refused| error(&field.span(), format!("{key}: {refused}")))
    };
    let mut config = DaemonConfig::default();
    if let Some(field) = &raw.interval {
        let interval = duration(field, "interval")?;
        if !(MIN_INTERVAL..=MAX_INTERVAL).contains(&interval) {
            let message = format!(
                "interval \"{}\" is out of range: from 1s to 1h",
                field.get_ref()
            );
            return Err(error(&field.span(), message));
        }
        config.interval = interval;
    }
    if let Some(field) = &raw.database {
        let path = PathBuf::from(field.get_ref());
        if !path.is_absolute() || path.file_name().is_none() {
            let message = format!(
                "database \"{}\" is not an absolute file path (like {DEFAULT_DATABASE})",
                field.get_ref()
            );
            return Err(error(&field.span(), message));
        }
        config.database = path;
    }
    if let Some(field) = &raw.retention {
        config.retention = duration(field, "retention")?;
    }
    if let Some(field) = &raw.hourly_retention {
        config.hourly_retention = duration(field, "hourly_retention")?;
    }
    if config.hourly_retention < config.retention {
        let span = raw
            .hourly_retention
            .as_ref()
            .or(raw.retention.as_ref())
            .map_or(0..0, Spanned::span);
        let message = "hourly_retention is shorter than retention: hourly rows must cover \
                       at least the time the per-minute rows do"
            .to_owned();
        return Err(error(&span, message));
    }
    if let Some(metrics) = &raw.metrics {
        if let Some(field) = &metrics.listen {
            config.metrics.listen = field.get_ref().parse().map_err(|_| {
                let message = format!(
                    "listen \"{}\" is not an address and port (like {DEFAULT_LISTEN} or [::1]:9867)",
                    field.get_ref()
                );
                error(&field.span(), message)
            })?;
        }
        if let Some(enabled) = metrics.enabled {
            config.metrics.enabled = enabled;
        }
        if let Some(field) = &metrics.top_applications {
            let top = *field.get_ref();
            config.metrics.top_applications = usize::try_from(top)
                .ok()
                .filter(|_| (1..=MAX_TOP_APPLICATIONS).contains(&top))
                .ok_or_else(|| {
                    let message = format!(
                        "top_applications {top} is out of range: from 1 to {MAX_TOP_APPLICATIONS}"
                    );
                    error(&field.span(), message)
                })?;
        }
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<DaemonConfig, ConfigError> {
        parse_config(Path::new("config.toml"), text)
    }

    #[track_caller]
    fn refused(text: &str, at: (usize, usize), says: &str) {
        let error = parse(text).expect_err("refused");
        assert_eq!((error.line, error.column), at, "{error}");
        assert!(error.to_string().contains(says), "{error}");
        assert!(error.to_string().starts_with("config.toml:"), "{error}");
    }

    #[test]
    fn an_empty_file_is_the_defaults() {
        let config = parse("").expect("empty");
        assert_eq!(config, DaemonConfig::default());
        assert_eq!(config.interval, Duration::from_secs(10));
        assert_eq!(config.metrics.listen.to_string(), DEFAULT_LISTEN);
    }

    #[test]
    fn every_key_is_read() {
        let config = parse(
            "interval = \"30s\"\ndatabase = \"/tmp/u.db\"\nretention = \"2h\"\n\
             hourly_retention = \"30d\"\n[metrics]\nlisten = \"[::1]:9000\"\nenabled = false\n\
             top_applications = 200\n",
        )
        .expect("valid");
        assert_eq!(config.interval, Duration::from_secs(30));
        assert_eq!(config.database, PathBuf::from("/tmp/u.db"));
        assert_eq!(config.retention, Duration::from_secs(7200));
        assert_eq!(config.hourly_retention, Duration::from_secs(30 * 86_400));
        assert_eq!(config.metrics.listen.to_string(), "[::1]:9000");
        assert!(!config.metrics.enabled);
        assert_eq!(config.metrics.top_applications, 200);
    }

    #[test]
    fn unknown_keys_are_refused_where_they_are() {
        refused(
            "interval = \"10s\"\nintervall = \"5s\"\n",
            (2, 1),
            "intervall",
        );
        refused("[metrics]\nport = 9000\n", (2, 1), "port");
        refused("[metric]\n", (1, 2), "metric");
    }

    #[test]
    fn bad_values_are_refused_at_the_value() {
        refused("interval = \"10x\"\n", (1, 12), "\"10x\"");
        refused("interval = \"500ms\"\n", (1, 12), "from 1s to 1h");
        refused("interval = 10\n", (1, 12), "string");
        refused("database = \"usage.db\"\n", (1, 12), "absolute");
        refused("retention = \"0s\"\n", (1, 13), "retention");
        refused(
            "retention = \"30d\"\nhourly_retention = \"1d\"\n",
            (2, 20),
            "shorter",
        );
        refused(
            "[metrics]\ntop_applications = 0\n",
            (2, 20),
            "from 1 to 1000",
        );
        refused("[metrics]\ntop_applications = 1001\n", (2, 20), "1001");
        refused("[metrics]\ntop_applications = -3\n", (2, 20), "-3");
        refused(
            "[metrics]\ntop_applications = \"50\"\n",
            (2, 20),
            "expected i64",
        );
        refused(
            "[metrics]\nlisten = \"localhost\"\n",
            (2, 10),
            "\"localhost\"",
        );
        refused("[metrics]\nenabled = \"yes\"\n", (2, 11), "bool");
    }
}
