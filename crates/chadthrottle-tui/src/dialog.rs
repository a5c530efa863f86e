//! The throttle dialog: what to limit (the process, or a rule target it falls under), and
//! two rate fields pre-filled with the limits held on it, checked as the user types (the
//! CLI's rate syntax; empty = unlimited), applied only when both are valid.

use crate::target_choice::{TargetChoice, TargetOffer};
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
    /// The process first, then the rule targets the runner offered.
    pub targets: Vec<TargetChoice>,
    pub chosen: usize,
    /// A rule's mode: each process its own rate, or one budget shared (Space switches).
    pub each: bool,
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

fn held(choice: &TargetChoice) -> Option<LimitRates> {
    match choice {
        TargetChoice::Rule(offer) => offer.held,
        TargetChoice::Process { .. } => None,
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
            targets: vec![TargetChoice::Process { pid: process.pid }],
            chosen: 0,
            each: false,
        }
    }

    /// Adds the rule targets the runner found. Unless the process has a PID limit of its
    /// own (which outranks every rule), the first target with a rule held is chosen, its
    /// rates filled in: most specific first, that is the rule that governs it.
    pub fn offer(&mut self, offers: Vec<TargetOffer>, pid_limited: bool) {
        self.targets.truncate(1);
        self.targets
            .extend(offers.into_iter().map(TargetChoice::Rule));
        let ruled = self.targets.iter().position(|t| held(t).is_some());
        if let Some(at) = ruled.filter(|_| !pid_limited) {
            self.choose(at);
        }
    }

    /// Moves the choice by `step` (wrapping); a target with a rule held on it fills the
    /// fields and the mode with the rule's, others keep what was typed.
    pub fn step_target(&mut self, step: isize) {
        let count = self.targets.len() as isize;
        self.choose((self.chosen as isize + step).rem_euclid(count) as usize);
    }

    fn choose(&mut self, at: usize) {
        self.chosen = at;
        if let Some(TargetChoice::Rule(offer)) = self.targets.get(at) {
            if let Some(limit) = offer.held {
                self.download = prefill(limit.down);
                self.upload = prefill(limit.up);
                self.each = offer.each;
            }
        }
    }

    pub fn target(&self) -> &TargetChoice {
        &self.targets[self.chosen.min(self.targets.len() - 1)]
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

    #[test]
    fn choosing_a_target_fills_in_its_rule_and_keeps_typed_text_otherwise() {
        use chadthrottle_core::rule_target::RuleTarget;
        let mut d = dialog(None);
        d.download = "1M".into();
        let steam = LimitRates {
            up: None,
            down: Some(5 << 20),
        };
        let offers = vec![
            TargetOffer {
                target: RuleTarget::Tree(1),
                held: None,
                each: false,
                saved: false,
            },
            TargetOffer {
                target: RuleTarget::Exe("/usr/bin/curl".into()),
                held: Some(steam),
                each: true,
                saved: true,
            },
        ];
        d.offer(offers.clone(), true);
        assert_eq!(
            (d.chosen, d.download.as_str()),
            (0, "1M"),
            "its PID limit governs"
        );
        d.step_target(1);
        assert_eq!(d.target().rule(), Some(&RuleTarget::Tree(1)));
        assert_eq!(
            d.download, "1M",
            "nothing held on the tree: typed text stays"
        );
        assert!(!d.each);
        d.step_target(1);
        assert_eq!((d.download.as_str(), d.upload.as_str()), ("5MB", ""));
        assert!(d.each, "the held rule's mode");
        d.step_target(1);
        assert_eq!(d.target(), &TargetChoice::Process { pid: 1 }, "wraps");
        d.step_target(-1);
        assert_eq!(d.chosen, 2);
        let mut governed = dialog(None);
        governed.offer(offers, false);
        assert_eq!(
            (governed.chosen, governed.download.as_str()),
            (2, "5MB"),
            "the rule that governs it now is chosen"
        );
    }
}
