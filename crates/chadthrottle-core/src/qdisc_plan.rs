//! The qdisc backends' plan for an interface: whether its root qdisc may be replaced, the
//! record of what was installed (and what it replaced) so that `unlimit` and `reset` can
//! put every interface back as it was, and the install/keep/remove difference between
//! that record and the interfaces in use.

use crate::direction::Direction;
use crate::htb_class::QDISC_HANDLE;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

/// A root qdisc as found on an interface: what `--force` replaces and `unlimit` puts back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedQdisc {
    pub kind: String,
    pub handle: u32,
    /// The `TCA_OPTIONS` attribute's value as the kernel reported it.
    pub options: Option<Vec<u8>>,
}

impl fmt::Display for SavedQdisc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:x}:", self.kind, self.handle >> 16)
    }
}

/// What to do about the root qdisc an interface has now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootDecision {
    /// The kernel's default (handle 0): replace it; deleting ours brings it back.
    ReplaceDefault,
    /// Ours already.
    Ours,
    /// Someone else's, replaced because `--force` was given: put it back afterwards.
    ReplaceForced(SavedQdisc),
}

/// Whether ChadThrottle may put its HTB at the root of `interface`, which has `root` now.
/// Refuses (with the reason, naming the qdisc and what to do) a qdisc someone created,
/// unless `force`.
pub fn decide_root(
    interface: &str,
    root: Option<SavedQdisc>,
    force: bool,
) -> Result<RootDecision, String> {
    match root {
        None => Ok(RootDecision::ReplaceDefault),
        Some(root) if root.handle == 0 => Ok(RootDecision::ReplaceDefault),
        Some(root) if root.handle == QDISC_HANDLE && root.kind == "htb" => Ok(RootDecision::Ours),
        Some(root) if force => Ok(RootDecision::ReplaceForced(root)),
        Some(root) => Err(format!(
            "interface {interface} has a root qdisc ChadThrottle did not create ({root}); \
             --force replaces it, and unlimit or reset puts it back (the qdisc itself, not \
             classes or filters under it)"
        )),
    }
}

/// One interface ChadThrottle installed on, and what to put back when it is done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstalledInterface {
    pub ifindex: u32,
    pub name: String,
    /// Up: an HTB at the root of this interface. Down: this interface's ingress goes to
    /// `ifb`, which carries the HTB.
    pub direction: Direction,
    /// Up: the root qdisc replaced by `--force` (the kernel's default otherwise).
    #[serde(default)]
    pub previous: Option<SavedQdisc>,
    /// Down: whether ChadThrottle added the ingress qdisc (else only its filter).
    #[serde(default)]
    pub created_ingress: bool,
    /// Down: the IFB device created for this interface.
    #[serde(default)]
    pub ifb: Option<String>,
    /// Down, tc_police: the police filters set on this interface's ingress, as set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub police: Vec<crate::police_limit::PoliceFilter>,
}

/// Every interface ChadThrottle installed on in one network namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespaceRecord {
    /// The namespace's identity: `st_dev` and `st_ino` of `/proc/PID/ns/net`.
    pub dev: u64,
    pub ino: u64,
    pub interfaces: Vec<InstalledInterface>,
}

/// The file of records: where the qdisc backends are installed now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QdiscRecord {
    pub namespaces: Vec<NamespaceRecord>,
}

/// The interfaces one namespace should carry: (ifindex, direction) pairs.
pub type Wanted = BTreeSet<(u32, Direction)>;

/// How to get from the interfaces `installed` to those `wanted`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InterfacePlan {
    pub install: Vec<(u32, Direction)>,
    pub keep: Vec<InstalledInterface>,
    pub remove: Vec<InstalledInterface>,
}

pub fn plan_interfaces(installed: &[InstalledInterface], wanted: &Wanted) -> InterfacePlan {
    let mut plan = InterfacePlan::default();
    for interface in installed {
        if wanted.contains(&(interface.ifindex, interface.direction)) {
            plan.keep.push(interface.clone());
        } else {
            plan.remove.push(interface.clone());
        }
    }
    plan.install = wanted
        .iter()
        .filter(|(ifindex, direction)| {
            !installed
                .iter()
                .any(|i| i.ifindex == *ifindex && i.direction == *direction)
        })
        .copied()
        .collect();
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qdisc(kind: &str, handle: u32) -> SavedQdisc {
        SavedQdisc {
            kind: kind.into(),
            handle,
            options: None,
        }
    }

    #[test]
    fn only_a_default_or_our_own_root_is_replaced_without_force() {
        assert_eq!(
            decide_root("veth0", None, false),
            Ok(RootDecision::ReplaceDefault)
        );
        assert_eq!(
            decide_root("veth0", Some(qdisc("noqueue", 0)), false),
            Ok(RootDecision::ReplaceDefault)
        );
        assert_eq!(
            decide_root("veth0", Some(qdisc("htb", QDISC_HANDLE)), false),
            Ok(RootDecision::Ours)
        );
        let foreign = qdisc("fq_codel", 0x8001_0000);
        let refused = decide_root("veth0", Some(foreign.clone()), false).expect_err("refused");
        assert!(
            refused.starts_with(
                "interface veth0 has a root qdisc ChadThrottle did not create (fq_codel 8001:)"
            ),
            "{refused}"
        );
        assert!(refused.contains("--force"), "{refused}");
        assert_eq!(
            decide_root("veth0", Some(foreign.clone()), true),
            Ok(RootDecision::ReplaceForced(foreign))
        );
        // an htb with our number but someone else's kind of root is not ours
        assert!(decide_root("veth0", Some(qdisc("tbf", QDISC_HANDLE)), false).is_err());
    }

    #[test]
    fn interfaces_are_installed_kept_and_removed_by_difference() {
        let installed = |ifindex, direction| InstalledInterface {
            ifindex,
            name: format!("if{ifindex}"),
            direction,
            previous: None,
            created_ingress: false,
            ifb: None,
            police: Vec::new(),
        };
        let now = [installed(2, Direction::Up), installed(3, Direction::Down)];
        let wanted: Wanted = [(2, Direction::Up), (2, Direction::Down)].into();
        let plan = plan_interfaces(&now, &wanted);
        assert_eq!(plan.install, vec![(2, Direction::Down)]);
        assert_eq!(plan.keep, vec![now[0].clone()]);
        assert_eq!(plan.remove, vec![now[1].clone()]);
        let nothing = plan_interfaces(&now, &Wanted::new());
        assert_eq!(nothing.remove.len(), 2);
        assert!(nothing.install.is_empty() && nothing.keep.is_empty());
    }

    #[test]
    fn the_record_reads_back_what_was_written() {
        let record = QdiscRecord {
            namespaces: vec![NamespaceRecord {
                dev: 4,
                ino: 4026531840,
                interfaces: vec![InstalledInterface {
                    ifindex: 2,
                    name: "veth-c".into(),
                    direction: Direction::Up,
                    previous: Some(SavedQdisc {
                        kind: "fq_codel".into(),
                        handle: 0x0050_0000,
                        options: Some(vec![8, 0, 1, 0, 0x10, 0x27, 0, 0]),
                    }),
                    created_ingress: false,
                    ifb: None,
                    police: Vec::new(),
                }],
            }],
        };
        let text = serde_json::to_string(&record).expect("serialises");
        let back: QdiscRecord = serde_json::from_str(&text).expect("parses");
        assert_eq!(back, record);
    }
}
