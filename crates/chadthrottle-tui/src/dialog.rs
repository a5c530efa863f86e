//! The throttle dialog: two rate fields pre-filled with the current limits, checked as
//! the user types (the CLI's rate syntax; empty = unlimited), applied only when both are
//! valid.

use chadthrottle_core::rate::format_bytes;
use chadthrottle_core::usage::LimitRates;
use chadthrottle_core::{ProcessRef, Rate};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Download,
    Upload,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleDialog {
    pub process: ProcessRef,
    pub name: String,
    pub download: String,
    pub upload: String,
    pub focus: Field,
}

/// The text a limit is pre-filled as: the rate in the CLI's byte units (`1MB`), `0` for a
/// block, empty for unlimited.
fn prefill(rate: Option<u64>) -> String {
    match rate {
        None => String::new(),
        Some(0) => "0".to_owned(),
        Some(rate) => format_bytes(rate),
    }
}

/// A field's rate: `Ok(None)` when empty (unlimited), the one-line refusal otherwise.
pub fn parse_field(text: &str) -> Result<Option<u64>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse::<Rate>()
        .map(|rate| Some(rate.bytes_per_sec()))
        .map_err(|error| error.to_string())
}

impl ThrottleDialog {
    pub fn new(process: ProcessRef, name: String, limit: Option<LimitRates>) -> Self {
        ThrottleDialog {
            process,
            name,
            download: prefill(limit.and_then(|l| l.down)),
            upload: prefill(limit.and_then(|l| l.up)),
            focus: Field::Download,
        }
    }

    pub fn field_mut(&mut self) -> &mut String {
        match self.focus {
            Field::Download => &mut self.download,
            Field::Upload => &mut self.upload,
        }
    }

    pub fn switch_focus(&mut self) {
        self.focus = match self.focus {
            Field::Download => Field::Upload,
            Field::Upload => Field::Download,
        };
    }

    /// Both limits, if both fields are valid: (upload, download).
    pub fn rates(&self) -> Result<(Option<u64>, Option<u64>), String> {
        Ok((parse_field(&self.upload)?, parse_field(&self.download)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dialog(limit: Option<LimitRates>) -> ThrottleDialog {
        ThrottleDialog::new(
            ProcessRef {
                pid: 1,
                start_time: 2,
            },
            "curl".into(),
            limit,
        )
    }

    #[test]
    fn prefilled_with_the_current_limits_in_cli_units() {
        let d = dialog(Some(LimitRates {
            up: Some(512 * 1024),
            down: Some(0),
        }));
        assert_eq!((d.upload.as_str(), d.download.as_str()), ("512KB", "0"));
        assert_eq!(d.rates(), Ok((Some(512 * 1024), Some(0))));
        let empty = dialog(None);
        assert_eq!(empty.rates(), Ok((None, None)));
    }

    #[test]
    fn invalid_input_is_refused_with_the_value_named() {
        let mut d = dialog(None);
        d.download = "5X".into();
        let error = d.rates().unwrap_err();
        assert!(error.contains("5X"), "{error}");
        d.download = "8mbit".into();
        assert_eq!(d.rates(), Ok((None, Some(1_000_000))));
    }
}
