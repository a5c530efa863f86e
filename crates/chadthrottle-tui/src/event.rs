//! What reaches the app (one channel, by value) and what it asks the runner to do.

use crate::grouping::Membership;
use crate::history::{HistoryAnswer, HistoryRange};
use crate::target_choice::TargetOffer;
use chadthrottle_core::ProcessRef;
use chadthrottle_core::backend::{Availability, BackendDescriptor};
use chadthrottle_core::rule_request::RuleStatus;
use chadthrottle_core::rule_target::RuleTarget;
use chadthrottle_core::usage::{LimitRates, ProcessDetails, Reading};
use ratatui::crossterm::event::{KeyEvent, MouseEvent};
use std::collections::HashMap;

/// Everything the app reacts to. Collectors send readings by value; the app owns the
/// monitor that turns them into snapshots.
#[derive(Debug, Clone)]
pub enum Event {
    Key(KeyEvent),
    Mouse(MouseEvent),
    Resize(u16, u16),
    /// A new reading of the usage source and the limits in force.
    Update {
        reading: Reading,
        limits: HashMap<ProcessRef, LimitRates>,
    },
    /// What groups the processes of the last reading into applications: their
    /// executables and the rules governing them (after each `Update`).
    Membership(Membership),
    /// The outcome of an effect, to show in the status bar (`Err`: in red).
    Done(Result<String, String>),
    /// The answer to [`Effect::Inspect`]: `None` if the process is gone or hidden.
    Details(Option<ProcessDetails>),
    /// The backends and whether each can work here (sent once at start).
    Backends(Vec<(BackendDescriptor, Availability)>),
    /// What this kernel makes the datapath do without (sent once at start, with `Backends`).
    Degraded(chadthrottle_core::kernel_floor::Degraded),
    /// The answer to [`Effect::OfferTargets`]: the rule targets `process` falls under.
    Targets {
        process: ProcessRef,
        offers: Vec<TargetOffer>,
    },
    /// The answer to [`Effect::ListRules`]: every rule in force, as `rules` lists them.
    Rules(Vec<RuleStatus>),
    /// The answer to [`Effect::ReadHistory`]: the usage database's report, or why not.
    History(HistoryAnswer),
}

/// What a key asks for; the runner applies effects in one place and answers with
/// [`Event::Done`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Set the process's limits: `Some` directions are set, `None` ones lifted.
    SetLimit {
        process: ProcessRef,
        name: String,
        up: Option<u64>,
        down: Option<u64>,
    },
    /// Lift both directions.
    ClearLimit {
        process: ProcessRef,
        name: String,
    },
    /// Read what /proc says about the process (the System tab).
    Inspect(ProcessRef),
    /// Find the rule targets the process falls under (for the throttle dialog).
    OfferTargets(ProcessRef),
    /// Set the rule on `target` as `limit --exe …` does (with `each`: `--each`, with
    /// `save`: `--save`); both directions `None` removes it.
    SetRule {
        target: RuleTarget,
        up: Option<u64>,
        down: Option<u64>,
        each: bool,
        save: bool,
    },
    /// Remove the rule on `target` (`unlimit --exe …`).
    LiftRule(RuleTarget),
    /// List the rules in force (the rules view).
    ListRules,
    /// Read the usage history of the range from the daemon's database (the History view).
    ReadHistory(HistoryRange),
    Quit,
}
