//! The seam between the user interfaces and whatever enforces limits in the kernel, and
//! the pure choice among enforcers.
//!
//! A backend proves it can work by trying (the kernel crate loads its programs) and says
//! why not; [`choose`] then picks one per direction from those results without touching
//! anything, so the choice is unit-tested with closures standing in for the kernel.

use crate::direction::{Direction, PerDirection};
use crate::process::ProcessRef;
use crate::rule_request::{RuleApplied, RuleRequest, RuleStatus};
use crate::status::{ActiveLimit, DirStats, DirectionLimit, Enforcement};
use std::fmt;
use std::time::Duration;

/// A process to limit, with the name shown for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub process: ProcessRef,
    pub name: String,
}

/// What a request does to one direction of a process's limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Change {
    /// Leave the direction as it is (unlimited for a process without a limit).
    #[default]
    Keep,
    /// Set or replace the direction's limit.
    Set(DirectionLimit),
    /// Lift the direction's limit; the whole limit goes when no direction is left.
    Lift,
}

impl Change {
    /// `Set` for `Some`, `Lift` for `None`: a form whose empty field means unlimited.
    pub fn set_or_lift(limit: Option<DirectionLimit>) -> Change {
        limit.map_or(Change::Lift, Change::Set)
    }

    /// `Set` for `Some`, `Keep` for `None`: a command that names only what it changes.
    pub fn set_or_keep(limit: Option<DirectionLimit>) -> Change {
        limit.map_or(Change::Keep, Change::Set)
    }

    /// The limit this change sets, if any.
    pub const fn limit(self) -> Option<DirectionLimit> {
        match self {
            Change::Set(limit) => Some(limit),
            Change::Keep | Change::Lift => None,
        }
    }
}

/// What `limit`, the TUI's throttle dialog and saved-limit restores ask of a backend: one
/// request, one round trip, whatever each direction needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitRequest {
    pub target: Target,
    pub change: PerDirection<Change>,
    /// The whole limit lapses this long after it is set; `None`: until removed.
    pub lasts: Option<Duration>,
}

impl LimitRequest {
    /// Whether any direction is set to be held by an HTB qdisc (backend htb or ifb).
    pub fn sets_qdisc(&self) -> bool {
        self.change
            .iter()
            .any(|(_, change)| change.limit().is_some_and(|l| l.enforcement.is_qdisc()))
    }

    /// Whether any direction is set to be held by a police filter (backend tc_police).
    pub fn sets_police(&self) -> bool {
        self.change.iter().any(|(_, change)| {
            change
                .limit()
                .is_some_and(|l| l.enforcement == Enforcement::TcPolice)
        })
    }

    /// The directions as they will be after the request, given them as they are now.
    pub fn outcome(
        &self,
        now: &PerDirection<Option<DirectionLimit>>,
    ) -> PerDirection<Option<DirectionLimit>> {
        self.change.map(|direction, change| match change {
            Change::Keep => *now.get(direction),
            Change::Set(limit) => Some(*limit),
            Change::Lift => None,
        })
    }
}

/// What applying a limit did beyond the limit itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    /// Sockets the process already had open that were attributed to it now.
    pub backfilled_sockets: usize,
    /// Open TCP sockets whose pacing rate or window clamp was set (or put back) now.
    pub shaped_sockets: usize,
}

/// Enforces limits. Implemented by the eBPF datapath in the kernel crate, and by fakes in
/// tests of the user interfaces.
pub trait Backend {
    type Error: std::error::Error + Send + Sync + 'static;

    /// Sets, changes or lifts the directions of one process's limit as `request` says, in
    /// one change; it acts on connections that are already open and on new ones, and stays
    /// in force after the caller exits. When no direction is left limited the process's
    /// limit is gone, as after [`Backend::remove`].
    fn apply(&mut self, request: &LimitRequest) -> Result<Applied, Self::Error>;

    /// Lifts the given directions of `pid`'s limit; returns the limit as it was, or `None`
    /// when `pid` had none.
    fn remove(
        &mut self,
        pid: u32,
        directions: PerDirection<bool>,
    ) -> Result<Option<ActiveLimit>, Self::Error>;

    /// Every limit in force, ordered by PID.
    fn limits(&self) -> Result<Vec<ActiveLimit>, Self::Error>;

    /// Drops the limits of processes that are gone or whose `--for` ran out; returns them.
    fn prune(&mut self) -> Result<Vec<ActiveLimit>, Self::Error>;

    /// Puts the backends that work per interface (htb, ifb, tc_police) on the interfaces
    /// the limited processes and the rules' members use now but did not when their
    /// limits were set — a VPN come up, a second link, a namespace made later — as the
    /// next change of a limit would; until then the policer behind holds them there.
    /// Replaces no qdisc ChadThrottle did not create (that is an error, as without
    /// `--force`) and changes nothing a limit did not ask for. The daemon calls it.
    fn follow(&mut self) -> Result<(), Self::Error>;

    /// Counters of one direction of one limited process.
    fn stats(
        &self,
        target: ProcessRef,
        direction: Direction,
    ) -> Result<Option<DirStats>, Self::Error>;
}

/// Enforces rules (limits by application) beside the per-process limits: the same table's
/// owner, so a PID limit and a rule are weighed against each other in one place (a PID
/// limit governs its process over any rule).
pub trait RuleBackend: Backend {
    /// Sets the rule `request.spec.name` names, replacing one held under that name, in
    /// one change: the processes it governs now and those that start later are limited.
    fn set_rule(&mut self, request: &RuleRequest) -> Result<RuleApplied, Self::Error>;

    /// Sets several rules (what `apply` does with a file's additions and changes). A
    /// backend that can bring every process under all of them at once does so, all or
    /// none; by default they are set one after another (stopping at the first error), and
    /// what they did is summed.
    fn set_rules(&mut self, requests: &[RuleRequest]) -> Result<RuleApplied, Self::Error> {
        let mut total = RuleApplied::default();
        for request in requests {
            let applied = self.set_rule(request)?;
            total.members += applied.members;
            total.backfilled_sockets += applied.backfilled_sockets;
            total.shaped_sockets += applied.shaped_sockets;
        }
        Ok(total)
    }

    /// Removes the rule `name`; `false` when none is held under it.
    fn remove_rule(&mut self, name: &str) -> Result<bool, Self::Error>;

    /// Every rule in force, by order, with the processes it governs now.
    fn rules(&mut self) -> Result<Vec<RuleStatus>, Self::Error>;

    /// How many times a process that started, exec'd or opened a socket matched a rule
    /// but could not be made its member because a table was full (since the install):
    /// such a process goes unlimited until the next rule change finds it room. A rule
    /// change itself reports a full table as its error instead.
    fn ungoverned(&self) -> Result<u64, Self::Error>;
}

/// A backend as listed by `chadthrottle backends`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendDescriptor {
    pub name: &'static str,
    /// Higher is preferred when several are available.
    pub priority: u8,
    pub directions: PerDirection<bool>,
    /// One line on how it works.
    pub summary: &'static str,
}

/// Whether a backend can work on this machine now, and if not, why and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Availability {
    Available,
    Unavailable(String),
}

impl Availability {
    pub const fn is_available(&self) -> bool {
        matches!(self, Availability::Available)
    }
}

impl fmt::Display for Availability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Availability::Available => f.write_str("available"),
            Availability::Unavailable(reason) => write!(f, "unavailable: {reason}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChoiceError {
    #[error("unknown backend \"{requested}\"; known backends: {}", known.join(", "))]
    Unknown {
        requested: String,
        known: Vec<&'static str>,
    },
    #[error("backend \"{name}\" cannot limit {direction}loads")]
    WrongDirection {
        name: &'static str,
        direction: Direction,
    },
    #[error("backend \"{name}\" is unavailable: {reason}")]
    Unavailable { name: &'static str, reason: String },
    #[error("no backend can limit {direction}loads here: {}", reasons.iter().map(|(n, r)| format!("{n}: {r}")).collect::<Vec<_>>().join("; "))]
    NoneAvailable {
        direction: Direction,
        reasons: Vec<(&'static str, String)>,
    },
}

/// Picks the backend for `direction`: the one `requested` by name, or else the available
/// one with the highest priority. `probe` says whether a backend is available.
pub fn choose<'a>(
    candidates: &'a [BackendDescriptor],
    direction: Direction,
    requested: Option<&str>,
    probe: impl Fn(&BackendDescriptor) -> Availability,
) -> Result<&'a BackendDescriptor, ChoiceError> {
    if let Some(requested) = requested {
        let backend = candidates
            .iter()
            .find(|backend| backend.name == requested)
            .ok_or_else(|| ChoiceError::Unknown {
                requested: requested.to_owned(),
                known: candidates.iter().map(|backend| backend.name).collect(),
            })?;
        if !backend.directions.get(direction) {
            return Err(ChoiceError::WrongDirection {
                name: backend.name,
                direction,
            });
        }
        return match probe(backend) {
            Availability::Available => Ok(backend),
            Availability::Unavailable(reason) => Err(ChoiceError::Unavailable {
                name: backend.name,
                reason,
            }),
        };
    }
    let mut ranked: Vec<&BackendDescriptor> = candidates
        .iter()
        .filter(|backend| *backend.directions.get(direction))
        .collect();
    ranked.sort_by_key(|backend| std::cmp::Reverse(backend.priority));
    let mut reasons = Vec::new();
    for backend in ranked {
        match probe(backend) {
            Availability::Available => return Ok(backend),
            Availability::Unavailable(reason) => reasons.push((backend.name, reason)),
        }
    }
    Err(ChoiceError::NoneAvailable { direction, reasons })
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn descriptor(
        name: &'static str,
        priority: u8,
        up: bool,
        down: bool,
    ) -> BackendDescriptor {
        BackendDescriptor {
            name,
            priority,
            directions: PerDirection { up, down },
            summary: "",
        }
    }

    const BACKENDS: [BackendDescriptor; 3] = [
        descriptor("low", 1, true, true),
        descriptor("high", 9, true, false),
        descriptor("mid", 5, true, true),
    ];

    fn all_available(_: &BackendDescriptor) -> Availability {
        Availability::Available
    }

    fn limit(rate: u64, enforcement: crate::status::Enforcement) -> DirectionLimit {
        DirectionLimit {
            rate,
            burst: 65_536,
            enforcement,
            by_default: false,
        }
    }

    #[test]
    fn a_request_keeps_sets_and_lifts_each_direction() {
        use crate::status::Enforcement;
        let now = PerDirection {
            up: Some(limit(1000, Enforcement::Shaping)),
            down: Some(limit(2000, Enforcement::Shaping)),
        };
        let request = |up, down| LimitRequest {
            target: Target {
                process: ProcessRef {
                    pid: 7,
                    start_time: 1,
                },
                name: "curl".into(),
            },
            change: PerDirection { up, down },
            lasts: None,
        };
        let set = limit(5, Enforcement::Htb);
        let changed = request(Change::Set(set), Change::Lift);
        assert_eq!(
            changed.outcome(&now),
            PerDirection {
                up: Some(set),
                down: None
            }
        );
        assert!(changed.sets_qdisc());
        let kept = request(Change::Keep, Change::Keep);
        assert_eq!(kept.outcome(&now), now);
        assert!(!kept.sets_qdisc());
        assert_eq!(
            Change::set_or_lift(None),
            Change::Lift,
            "an empty dialog field lifts"
        );
        assert_eq!(
            Change::set_or_keep(None),
            Change::Keep,
            "a flag not given keeps"
        );
        assert_eq!(Change::set_or_keep(Some(set)).limit(), Some(set));
    }

    #[test]
    fn highest_priority_available_for_the_direction_wins() {
        let pick = |direction| choose(&BACKENDS, direction, None, all_available).map(|b| b.name);
        assert_eq!(pick(Direction::Up), Ok("high"));
        assert_eq!(pick(Direction::Down), Ok("mid"), "high cannot do downloads");
        let without_mid = |b: &BackendDescriptor| match b.name {
            "mid" => Availability::Unavailable("no".into()),
            _ => Availability::Available,
        };
        let down = choose(&BACKENDS, Direction::Down, None, without_mid).map(|b| b.name);
        assert_eq!(down, Ok("low"));
    }

    #[test]
    fn nothing_available_collects_every_reason() {
        let none = |b: &BackendDescriptor| Availability::Unavailable(format!("{} is off", b.name));
        let error = choose(&BACKENDS, Direction::Down, None, none).expect_err("none");
        assert_eq!(
            error.to_string(),
            "no backend can limit downloads here: mid: mid is off; low: low is off"
        );
    }

    #[test]
    fn a_requested_backend_is_checked_not_replaced() {
        let pick = |name, direction| choose(&BACKENDS, direction, Some(name), all_available);
        assert_eq!(pick("low", Direction::Up).map(|b| b.name), Ok("low"));
        assert!(matches!(
            pick("high", Direction::Down),
            Err(ChoiceError::WrongDirection { name: "high", .. })
        ));
        let unknown = pick("tc", Direction::Up).expect_err("unknown");
        assert_eq!(
            unknown.to_string(),
            "unknown backend \"tc\"; known backends: low, high, mid"
        );
        let off = |_: &BackendDescriptor| Availability::Unavailable("CAP_BPF missing".into());
        let error = choose(&BACKENDS, Direction::Up, Some("low"), off).expect_err("off");
        assert_eq!(
            error.to_string(),
            "backend \"low\" is unavailable: CAP_BPF missing"
        );
    }
}
