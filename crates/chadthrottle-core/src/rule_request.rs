//! A rule as the machine takes it: the target resolved to what the kernel matches
//! ([`ResolvedTarget`]), the request that sets it ([`RuleRequest`]), what setting it did
//! ([`RuleApplied`]) and a rule as the machine lists it with its members ([`RuleStatus`]).
//!
//! The command line resolves a [`RuleTarget`] on the machine (`Processes::resolve`), then
//! sets the rule with one request (`RuleBackend::set_rule`).

use crate::direction::PerDirection;
use crate::process::{ProcessRef, cgroup_within};
use crate::rule_target::{RULE_NAME_MAX, RuleSpec, RuleTarget};
use crate::status::{DirStats, DirectionLimit, RuleEntry};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// What the kernel matches a process against: a rule's target with names looked up.
/// Serialised as one key and its value: `{"exe": {"path": "/usr/bin/steam"}}`, `{"uid": 1000}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResolvedTarget {
    /// The tree's first process (a PID alone would pass to a newcomer).
    Tree {
        root: ProcessRef,
    },
    /// Absolute, symlinks resolved where the file exists (as /proc/PID/exe reads).
    Exe {
        path: PathBuf,
    },
    Name(String),
    /// Relative to the cgroup2 mount, starting with '/'; a unit or container as found.
    Cgroup {
        path: String,
    },
    Uid(u32),
}

impl fmt::Display for ResolvedTarget {
    /// `tree PID 42`, `exe /usr/bin/steam`, `name firefox`, `cgroup /system.slice/x.service`,
    /// `uid 1000`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResolvedTarget::Tree { root } => write!(f, "tree {root}"),
            ResolvedTarget::Exe { path } => write!(f, "exe {}", path.display()),
            ResolvedTarget::Name(name) => write!(f, "name {name}"),
            ResolvedTarget::Cgroup { path } => write!(f, "cgroup {path}"),
            ResolvedTarget::Uid(uid) => write!(f, "uid {uid}"),
        }
    }
}

/// What a process shows that a rule may match on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessFacts {
    pub process: ProcessRef,
    /// Its parent, grandparent, … up to the first process.
    pub ancestors: Vec<ProcessRef>,
    /// /proc/PID/exe, if it shows one.
    pub exe: Option<PathBuf>,
    /// `comm`.
    pub name: String,
    /// The real uid.
    pub uid: u32,
    /// Its cgroup2 path, if it is in the cgroup2 tree.
    pub cgroup: Option<String>,
}

impl ResolvedTarget {
    /// Whether a process with `facts` is one the rule limits (precedence aside).
    pub fn matches(&self, facts: &ProcessFacts) -> bool {
        match self {
            ResolvedTarget::Tree { root } => {
                facts.process == *root || facts.ancestors.contains(root)
            }
            ResolvedTarget::Exe { path } => facts.exe.as_ref() == Some(path),
            ResolvedTarget::Name(name) => facts.name == *name,
            ResolvedTarget::Cgroup { path } => facts
                .cgroup
                .as_deref()
                .is_some_and(|cgroup| cgroup_within(cgroup, path)),
            ResolvedTarget::Uid(uid) => facts.uid == *uid,
        }
    }
}

/// What `limit` with a rule target asks of the machine, in one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleRequest {
    pub spec: RuleSpec,
    pub resolved: ResolvedTarget,
    /// Each set direction with the backend chosen and the burst in effect.
    pub limits: PerDirection<Option<DirectionLimit>>,
    /// The rule lapses this long after it is set; `None`: until removed.
    pub lasts: Option<Duration>,
}

/// What setting a rule did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RuleApplied {
    /// Running processes the rule governs now.
    pub members: usize,
    /// Sockets those processes already had open that were attributed to them now.
    pub backfilled_sockets: usize,
    /// Open TCP sockets whose pacing rate or window clamp was set now.
    pub shaped_sockets: usize,
}

/// A rule in force, as the machine lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleStatus {
    pub spec: RuleSpec,
    pub resolved: ResolvedTarget,
    pub limits: PerDirection<Option<DirectionLimit>>,
    /// The running processes it governs (those a PID limit or a stronger rule holds are
    /// not its members), ordered by PID.
    pub members: Vec<ProcessRef>,
    pub stats: PerDirection<DirStats>,
    /// Unix time (seconds) at which the rule lapses, if `--for` was given.
    pub expires_at: Option<u64>,
}

impl RuleStatus {
    /// The rule in `rules --json` and `status --json`.
    pub fn entry(&self) -> RuleEntry {
        let field = |direction, pick: fn(&DirectionLimit) -> u64| {
            self.limits.get(direction).as_ref().map(pick)
        };
        use crate::direction::Direction::{Down, Up};
        RuleEntry {
            name: self.spec.name.clone(),
            target: self.spec.target.to_string(),
            kind: self.spec.target.kind().to_owned(),
            resolved: self.resolved.to_string(),
            mode: self.spec.mode.name().to_owned(),
            order: self.spec.order,
            up: field(Up, |l| l.rate),
            down: field(Down, |l| l.rate),
            burst_up: field(Up, |l| l.burst),
            burst_down: field(Down, |l| l.burst),
            backend: self
                .limits
                .map(|_, l| l.as_ref().map(|l| l.enforcement.name().to_owned())),
            members: self.members.clone(),
            expires_at: self.expires_at,
            stats: self.stats,
        }
    }
}

/// The name of a rule set from the command line: its target as the flag reads
/// (`exe /usr/bin/steam`). The space keeps it apart from every rules-file name
/// (`[A-Za-z0-9_.-]`). A target too long for the kernel's name field keeps its first bytes
/// and a hash of the whole, so two long paths do not share a name.
pub fn command_line_rule_name(target: &RuleTarget) -> String {
    let shown = target.to_string();
    if shown.len() <= RULE_NAME_MAX {
        return shown;
    }
    let hash = crate::fnv::fnv1a(shown.as_bytes());
    let suffix = format!(" #{hash:016x}");
    let mut end = RULE_NAME_MAX - suffix.len();
    while !shown.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{suffix}", &shown[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rule_target::{parse_exe, parse_name, parse_tree};
    use std::path::Path;

    fn process(pid: u32) -> ProcessRef {
        ProcessRef { pid, start_time: 7 }
    }

    fn facts() -> ProcessFacts {
        ProcessFacts {
            process: process(50),
            ancestors: vec![process(40), process(1)],
            exe: Some("/usr/bin/steam".into()),
            name: "steam".into(),
            uid: 1000,
            cgroup: Some("/user.slice/user-1000.slice/app.scope".into()),
        }
    }

    #[test]
    fn each_kind_matches_on_its_own_fact() {
        let facts = facts();
        let matching = [
            ResolvedTarget::Tree { root: process(50) },
            ResolvedTarget::Tree { root: process(40) },
            ResolvedTarget::Exe {
                path: "/usr/bin/steam".into(),
            },
            ResolvedTarget::Name("steam".into()),
            ResolvedTarget::Cgroup {
                path: "/user.slice".into(),
            },
            ResolvedTarget::Uid(1000),
        ];
        for target in matching {
            assert!(target.matches(&facts), "{target}");
        }
        let other = [
            // the same PID, another incarnation
            ResolvedTarget::Tree {
                root: ProcessRef {
                    pid: 40,
                    start_time: 8,
                },
            },
            ResolvedTarget::Tree { root: process(51) },
            ResolvedTarget::Exe {
                path: "/usr/bin/steam2".into(),
            },
            ResolvedTarget::Name("stea".into()),
            ResolvedTarget::Cgroup {
                path: "/user".into(),
            },
            ResolvedTarget::Uid(0),
        ];
        for target in other {
            assert!(!target.matches(&facts), "{target}");
        }
        let outside = ProcessFacts {
            cgroup: None,
            exe: None,
            ..facts
        };
        assert!(
            !ResolvedTarget::Cgroup {
                path: "/user.slice".into()
            }
            .matches(&outside)
        );
    }

    #[test]
    fn resolved_targets_serialise_readably() {
        let cases = [
            (
                ResolvedTarget::Tree { root: process(42) },
                serde_json::json!({"tree": {"root": {"pid": 42, "start_time": 7}}}),
            ),
            (
                ResolvedTarget::Exe {
                    path: "/usr/bin/steam".into(),
                },
                serde_json::json!({"exe": {"path": "/usr/bin/steam"}}),
            ),
            (
                ResolvedTarget::Name("firefox".into()),
                serde_json::json!({"name": "firefox"}),
            ),
            (
                ResolvedTarget::Cgroup { path: "/a".into() },
                serde_json::json!({"cgroup": {"path": "/a"}}),
            ),
            (ResolvedTarget::Uid(1000), serde_json::json!({"uid": 1000})),
        ];
        for (target, json) in cases {
            assert_eq!(serde_json::to_value(&target).expect("serialises"), json);
            let back: ResolvedTarget = serde_json::from_value(json).expect("reads back");
            assert_eq!(back, target);
        }
    }

    #[test]
    fn command_line_names_are_the_target_and_never_a_file_name() {
        let exe = parse_exe(Path::new("/usr/bin/steam")).expect("valid");
        assert_eq!(command_line_rule_name(&exe), "exe /usr/bin/steam");
        let tree = parse_tree(4242).expect("valid");
        assert_eq!(command_line_rule_name(&tree), "tree 4242");
        let name = command_line_rule_name(&parse_name("firefox").expect("valid"));
        assert!(
            crate::rule_target::parse_rule_name(&name).is_err(),
            "{name}"
        );

        let long = |last: &str| {
            let path = format!("/opt/{}/{last}", "very-long-directory".repeat(4));
            command_line_rule_name(&parse_exe(Path::new(&path)).expect("valid"))
        };
        let (a, b) = (long("a"), long("b"));
        assert!(a.len() <= RULE_NAME_MAX && b.len() <= RULE_NAME_MAX, "{a}");
        assert!(a.starts_with("exe /opt/very-long-directory"), "{a}");
        assert_ne!(a, b, "two long paths differ");
        assert_eq!(a, long("a"), "the same target, the same name");
        // a multi-byte character at the cut is not split
        let wide = parse_name("é").map(|_| ()).ok();
        assert_eq!(wide, Some(()));
        let path = format!("/{}", "é".repeat(40));
        let cut = command_line_rule_name(&parse_exe(Path::new(&path)).expect("valid"));
        assert!(cut.len() <= RULE_NAME_MAX, "{cut}");
    }
}
