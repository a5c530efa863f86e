//! What a limit looks like to its readers: the in-memory form and the JSON contract.
//!
//! `chadthrottle status --json` prints a [`StatusReport`]. Its field names are a contract
//! with scripts: add fields freely, never rename or drop one (a test pins them).

use crate::direction::{Direction, PerDirection};
use crate::process::ProcessRef;
use serde::{Deserialize, Serialize};

/// How a direction's limit is enforced. All of them run with the eBPF datapath, and its
/// policer is behind whichever holds the direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Enforcement {
    /// TCP holds the rate itself: per-socket pacing caps (upload) and receive-window
    /// clamps (download), the process's budget divided among its sockets by demand; the
    /// policer stays behind as the backstop (UDP, LAN downloads).
    #[default]
    Shaping,
    /// A token bucket per process that drops what is over the limit.
    Policer,
    /// Uploads only: an HTB class per process at the root of each egress interface in
    /// use; the datapath picks the class (`skb->priority`), the policer is the backstop.
    Htb,
    /// Downloads only: each interface's ingress redirected to an IFB device with an HTB
    /// class per process, the class picked by a tc classifier from the packet's socket.
    Ifb,
    /// Uploads only: an nftables rule per process (`socket cgroupv2` of the process's own
    /// cgroup, `limit rate over … drop`) in a table of ChadThrottle's own; the policer is
    /// the backstop.
    Nftables,
    /// Downloads only: a tc police action per process on the ingress of each interface in
    /// use, its filter matching the process's packets by their socket's owner; the policer
    /// is the backstop.
    #[serde(rename = "tc_police")]
    TcPolice,
}

impl Enforcement {
    pub const ALL: [Enforcement; 6] = [
        Enforcement::Shaping,
        Enforcement::Policer,
        Enforcement::Htb,
        Enforcement::Ifb,
        Enforcement::Nftables,
        Enforcement::TcPolice,
    ];

    /// The backend name shown in `backends`, `status` and taken by `--upload-backend`.
    pub const fn name(self) -> &'static str {
        match self {
            Enforcement::Shaping => "shaping",
            Enforcement::Policer => "policer",
            Enforcement::Htb => "htb",
            Enforcement::Ifb => "ifb",
            Enforcement::Nftables => "nftables",
            Enforcement::TcPolice => "tc_police",
        }
    }

    /// Whether an HTB qdisc holds the direction (the qdisc backends).
    pub const fn is_qdisc(self) -> bool {
        matches!(self, Enforcement::Htb | Enforcement::Ifb)
    }

    /// Why a rule cannot have this backend hold its `direction` (`each`: a budget per
    /// member), or `None` if it can. A shared rule's download is one budget the classifier
    /// finds like a process's, so one HTB class holds it; everything else these backends
    /// hold is keyed by process.
    pub const fn refused_for_rule(self, direction: Direction, each: bool) -> Option<&'static str> {
        match (self, direction, each) {
            (Enforcement::Shaping | Enforcement::Policer, _, _)
            | (Enforcement::Ifb, Direction::Down, false) => None,
            (Enforcement::Ifb, _, true) => Some(
                "it holds a rule's download in one HTB class, and an each-mode rule gives every \
                 process a budget of its own, made in the kernel as the process starts: use \
                 shaping or policer, or a shared rule",
            ),
            (Enforcement::Htb | Enforcement::Ifb, _, _) => Some(
                "it holds one HTB class per process, so it cannot hold a rule: use shaping or \
                 policer",
            ),
            (Enforcement::Nftables | Enforcement::TcPolice, _, _) => {
                Some("it holds single processes, so it cannot hold a rule: use shaping or policer")
            }
        }
    }

    pub fn from_name(name: &str) -> Option<Enforcement> {
        Enforcement::ALL
            .into_iter()
            .find(|enforcement| enforcement.name() == name)
    }
}

/// One direction of a limit as set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectionLimit {
    /// Bytes per second of transport payload (what the application sends or receives);
    /// 0 blocks.
    pub rate: u64,
    /// Bytes that may pass at once after an idle period.
    pub burst: u64,
    /// Limits saved before backends could be chosen read as the default.
    #[serde(default)]
    pub enforcement: Enforcement,
    /// The download default chose the backend (`download_default::choose`: ifb where the
    /// ingress is free, else the best other), none being named; kept with the limit so
    /// that `status` says so after the command. False for an upload, a rule, and what was
    /// saved before it existed.
    #[serde(default)]
    pub by_default: bool,
}

/// Whether an HTB qdisc (backend htb or ifb) holds either direction of `limits`.
pub fn held_by_qdisc(limits: &PerDirection<Option<DirectionLimit>>) -> bool {
    limits
        .iter()
        .any(|(_, limit)| limit.is_some_and(|l| l.enforcement.is_qdisc()))
}

/// Whether an nftables rule (backend nftables) holds either direction of `limits`.
pub fn held_by_nftables(limits: &PerDirection<Option<DirectionLimit>>) -> bool {
    limits
        .iter()
        .any(|(_, limit)| limit.is_some_and(|l| l.enforcement == Enforcement::Nftables))
}

/// Whether a police filter (backend tc_police) holds either direction of `limits`.
pub fn held_by_police(limits: &PerDirection<Option<DirectionLimit>>) -> bool {
    limits
        .iter()
        .any(|(_, limit)| limit.is_some_and(|l| l.enforcement == Enforcement::TcPolice))
}

/// Traffic counted for one direction of a limited process since the limit was set.
/// Bytes are IP bytes as the socket layer hands them over (an offloaded 64 KB packet
/// counts its headers once), the same bytes the bucket charges.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirStats {
    pub bytes: u64,
    pub packets: u64,
    pub dropped_bytes: u64,
    pub dropped_packets: u64,
}

impl DirStats {
    /// Sums per-CPU counters.
    pub fn sum(parts: impl IntoIterator<Item = DirStats>) -> DirStats {
        parts
            .into_iter()
            .fold(DirStats::default(), |total, part| DirStats {
                bytes: total.bytes.wrapping_add(part.bytes),
                packets: total.packets.wrapping_add(part.packets),
                dropped_bytes: total.dropped_bytes.wrapping_add(part.dropped_bytes),
                dropped_packets: total.dropped_packets.wrapping_add(part.dropped_packets),
            })
    }
}

/// A limit that is in force, as a backend reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveLimit {
    pub target: ProcessRef,
    /// The process name (`comm`) captured when the limit was set.
    pub name: String,
    /// `None` where the direction is not limited (it is still counted).
    pub limits: PerDirection<Option<DirectionLimit>>,
    /// Unix time (seconds) at which the limit lapses, if `--for` was given.
    pub expires_at: Option<u64>,
    pub stats: PerDirection<DirStats>,
}

/// `status --json`: every active limit, and every rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    pub limits: Vec<LimitStatus>,
    /// Read as empty from a report written before rules existed.
    #[serde(default)]
    pub rules: Vec<RuleEntry>,
    /// Times a process matched a rule but the member table was full (see
    /// [`RulesReport::member_table_full`]).
    #[serde(default)]
    pub member_table_full: u64,
}

/// `rules --json`: every rule in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RulesReport {
    pub rules: Vec<RuleEntry>,
    /// Times a process that started, exec'd or opened a socket matched a rule but the
    /// kernel's member table was full, since the datapath was installed: such a process
    /// is not limited until the next rule change. 0 in a report from before it existed.
    #[serde(default)]
    pub member_table_full: u64,
}

/// One rule in `rules --json` and `status --json`. Rates and bursts as in
/// [`LimitStatus`]; targets as the command line reads them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleEntry {
    pub name: String,
    /// `exe /usr/bin/steam`, as the flag reads.
    pub target: String,
    /// The flag's word: tree, exe, name, cgroup-path, unit, container, user.
    pub kind: String,
    /// What the kernel matches: `exe /usr/bin/steam`, `cgroup /system.slice/x.service`,
    /// `uid 1000`, `tree PID 42`.
    pub resolved: String,
    /// shared or each.
    pub mode: String,
    /// Breaks ties between rules of equal rank: the lower governs.
    pub order: u32,
    pub up: Option<u64>,
    pub down: Option<u64>,
    pub burst_up: Option<u64>,
    pub burst_down: Option<u64>,
    pub backend: PerDirection<Option<String>>,
    /// The running processes it governs now.
    pub members: Vec<ProcessRef>,
    /// Unix time in seconds.
    pub expires_at: Option<u64>,
    /// Summed over the members.
    pub stats: PerDirection<DirStats>,
}

/// One process in `status --json`. Rates in bytes per second and bursts in bytes, as
/// plain integers; `null` where a direction is unlimited or no expiry is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitStatus {
    pub pid: u32,
    /// Clock ticks after boot, field 22 of `/proc/PID/stat`.
    pub start_time: u64,
    pub name: String,
    pub up: Option<u64>,
    pub down: Option<u64>,
    pub burst_up: Option<u64>,
    pub burst_down: Option<u64>,
    /// Unix time in seconds.
    pub expires_at: Option<u64>,
    /// The backend enforcing each direction; `null` where the direction is unlimited.
    pub backend: PerDirection<Option<String>>,
    /// The download default chose `backend.down` (no backend was named; `limit` printed
    /// why). False in a report from before it existed.
    #[serde(default)]
    pub download_by_default: bool,
    pub stats: PerDirection<DirStats>,
}

impl LimitStatus {
    /// The JSON form of `limit`.
    pub fn new(limit: &ActiveLimit) -> LimitStatus {
        let field = |direction: Direction, pick: fn(&DirectionLimit) -> u64| {
            limit.limits.get(direction).as_ref().map(pick)
        };
        LimitStatus {
            pid: limit.target.pid,
            start_time: limit.target.start_time,
            name: limit.name.clone(),
            up: field(Direction::Up, |l| l.rate),
            down: field(Direction::Down, |l| l.rate),
            burst_up: field(Direction::Up, |l| l.burst),
            burst_down: field(Direction::Down, |l| l.burst),
            expires_at: limit.expires_at,
            backend: limit
                .limits
                .map(|_, l| l.as_ref().map(|l| l.enforcement.name().to_owned())),
            download_by_default: limit.limits.down.is_some_and(|l| l.by_default),
            stats: limit.stats,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_rule_takes_ifb_for_a_shared_download_only() {
        let down = Direction::Down;
        assert_eq!(Enforcement::Ifb.refused_for_rule(down, false), None);
        assert_eq!(Enforcement::Shaping.refused_for_rule(down, true), None);
        assert_eq!(
            Enforcement::Policer.refused_for_rule(Direction::Up, true),
            None
        );
        let each = Enforcement::Ifb
            .refused_for_rule(down, true)
            .unwrap_or_default();
        assert!(each.contains("each-mode"), "{each}");
        for refused in [
            Enforcement::Htb,
            Enforcement::Nftables,
            Enforcement::TcPolice,
        ] {
            for each in [false, true] {
                let why = refused
                    .refused_for_rule(Direction::Up, each)
                    .unwrap_or_default();
                assert!(
                    why.ends_with("use shaping or policer"),
                    "{refused:?}: {why}"
                );
            }
        }
        assert!(
            Enforcement::TcPolice
                .refused_for_rule(down, false)
                .is_some()
        );
    }

    fn sample() -> ActiveLimit {
        ActiveLimit {
            target: ProcessRef {
                pid: 4242,
                start_time: 1234,
            },
            name: "curl".into(),
            limits: PerDirection {
                up: Some(DirectionLimit {
                    rate: 1 << 20,
                    burst: 104_857,
                    enforcement: Enforcement::Policer,
                    by_default: false,
                }),
                down: None,
            },
            expires_at: None,
            stats: PerDirection {
                up: DirStats {
                    bytes: 10,
                    packets: 1,
                    dropped_bytes: 0,
                    dropped_packets: 0,
                },
                down: DirStats::default(),
            },
        }
    }

    #[test]
    fn json_contract_field_names_and_nulls() {
        let report = StatusReport {
            limits: vec![LimitStatus::new(&sample())],
            rules: Vec::new(),
            member_table_full: 3,
        };
        let value = serde_json::to_value(&report).expect("serialises");
        let stats = json!({"bytes": 0, "packets": 0, "dropped_bytes": 0, "dropped_packets": 0});
        assert_eq!(
            value,
            json!({"limits": [{
                "pid": 4242, "start_time": 1234, "name": "curl",
                "up": 1048576, "down": null, "burst_up": 104857, "burst_down": null,
                "expires_at": null,
                "backend": {"up": "policer", "down": null}, "download_by_default": false,
                "stats": {
                    "up": {"bytes": 10, "packets": 1, "dropped_bytes": 0, "dropped_packets": 0},
                    "down": stats,
                },
            }], "rules": [], "member_table_full": 3})
        );
        let before_rules = json!({"limits": []});
        let read: StatusReport = serde_json::from_value(before_rules).expect("reads");
        assert!(read.rules.is_empty());
        assert_eq!(read.member_table_full, 0);
    }

    #[test]
    fn rules_json_contract_field_names() {
        let entry = RuleEntry {
            name: "exe /usr/bin/steam".into(),
            target: "exe /usr/bin/steam".into(),
            kind: "exe".into(),
            resolved: "exe /usr/bin/steam".into(),
            mode: "shared".into(),
            order: 2,
            up: None,
            down: Some(5 << 20),
            burst_up: None,
            burst_down: Some(2 << 20),
            backend: PerDirection {
                up: None,
                down: Some("shaping".into()),
            },
            members: vec![ProcessRef {
                pid: 4242,
                start_time: 100,
            }],
            expires_at: Some(1_700_000_600),
            stats: PerDirection::default(),
        };
        let value = serde_json::to_value(RulesReport {
            rules: vec![entry],
            member_table_full: 0,
        })
        .expect("serialises");
        let stats = json!({"bytes": 0, "packets": 0, "dropped_bytes": 0, "dropped_packets": 0});
        assert_eq!(
            value,
            json!({"rules": [{
                "name": "exe /usr/bin/steam", "target": "exe /usr/bin/steam", "kind": "exe",
                "resolved": "exe /usr/bin/steam", "mode": "shared", "order": 2,
                "up": null, "down": 5_242_880, "burst_up": null, "burst_down": 2_097_152,
                "backend": {"up": null, "down": "shaping"},
                "members": [{"pid": 4242, "start_time": 100}],
                "expires_at": 1_700_000_600,
                "stats": {"up": stats, "down": stats},
            }], "member_table_full": 0})
        );
    }

    #[test]
    fn per_cpu_counters_sum() {
        let part = DirStats {
            bytes: 5,
            packets: 1,
            dropped_bytes: 2,
            dropped_packets: 1,
        };
        let total = DirStats::sum([part, part, DirStats::default()]);
        assert_eq!(total.bytes, 10);
        assert_eq!(total.dropped_packets, 2);
    }
}
