//! What the throttle dialog can limit: the process itself (a PID limit) or one of the rule
//! targets it falls under (its tree, its executable, its unit or container), as the
//! runner offers them, each with the limits already held on it.

use chadthrottle_core::rule_target::RuleTarget;
use chadthrottle_core::usage::LimitRates;

/// One rule target the runner offers for the dialog's process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetOffer {
    pub target: RuleTarget,
    /// The rates of the rule held on this target now, if one is.
    pub held: Option<LimitRates>,
    /// Whether that rule gives each process its own rate (`--each`); `false` without one.
    pub each: bool,
    /// Setting it also writes it into the rules file (set again at boot).
    pub saved: bool,
}

/// One line of the dialog's target list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetChoice {
    /// The process alone, by PID, for as long as it runs.
    Process {
        pid: u32,
    },
    Rule(TargetOffer),
}

impl TargetChoice {
    /// How the dialog names it: what it limits, then how long it lasts.
    pub fn label(&self) -> String {
        match self {
            TargetChoice::Process { pid } => format!("this process (PID {pid}), while it runs"),
            TargetChoice::Rule(offer) => {
                let what = match &offer.target {
                    RuleTarget::Tree(pid) => {
                        format!("its tree: PID {pid} and every process it starts")
                    }
                    RuleTarget::Exe(path) => format!("its executable {}", path.display()),
                    RuleTarget::Unit(unit) => format!("its unit {unit}"),
                    RuleTarget::Container(container) => format!("its container {container}"),
                    other => other.to_string(),
                };
                let lasts = if offer.saved {
                    "saved in the rules file"
                } else {
                    "until unlimit or reboot"
                };
                format!("{what}, {lasts}")
            }
        }
    }

    pub fn rule(&self) -> Option<&RuleTarget> {
        match self {
            TargetChoice::Process { .. } => None,
            TargetChoice::Rule(offer) => Some(&offer.target),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_say_what_is_limited_and_for_how_long() {
        let offer = |target, saved| {
            TargetChoice::Rule(TargetOffer {
                target,
                held: None,
                each: false,
                saved,
            })
        };
        assert_eq!(
            TargetChoice::Process { pid: 7 }.label(),
            "this process (PID 7), while it runs"
        );
        assert_eq!(
            offer(RuleTarget::Exe("/usr/bin/curl".into()), true).label(),
            "its executable /usr/bin/curl, saved in the rules file"
        );
        assert_eq!(
            offer(RuleTarget::Tree(7), false).label(),
            "its tree: PID 7 and every process it starts, until unlimit or reboot"
        );
        assert_eq!(
            offer(RuleTarget::Container("3f4e8a1b2c3d".into()), false).label(),
            "its container 3f4e8a1b2c3d, until unlimit or reboot"
        );
    }
}
