//! The qdisc backends' pure decisions: HTB class parameters for a limit, class numbers,
//! whether a root qdisc may be replaced, and the record of what was installed so that
//! `unlimit` and `reset` can put every interface back as it was.
//!
//! Backend `htb` puts an HTB qdisc at the root of each egress interface the limited
//! processes use; backend `ifb` redirects their downloads from each such interface's
//! ingress to an IFB device with an HTB qdisc. Either way each limited process has one
//! class, numbered [`CLASS_MAJOR`]`:minor`, and the datapath puts the process's packets in
//! it through `skb->priority`. Everything else goes through unclassified and unqueued
//! (HTB's direct queue, which is served first).

use crate::direction::Direction;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

/// Major number of ChadThrottle's HTB qdiscs (`c7:`), so a root qdisc is recognised as
/// ours. Below 0x8000, where `tc` numbers the qdiscs it is not given a handle for.
pub const CLASS_MAJOR: u16 = 0x00c7;

/// The qdisc handle `c7:0`.
pub const QDISC_HANDLE: u32 = (CLASS_MAJOR as u32) << 16;

/// Bytes of Ethernet header HTB charges per packet on top of the IP packet.
pub const ETHERNET_HEADER: u32 = 14;

/// IPv4 and TCP headers of a full-sized segment, timestamps included (IPv6 is 20 more,
/// which the compensation ignores: it errs towards the limit, by 1.4 %).
const TCP_IPV4_HEADERS: u32 = 20 + 20 + 12;

/// Nanoseconds per HTB "tick" (`PSCHED_TICKS2NS`: ticks are 64 ns).
const NS_PER_TICK: u64 = 64;

/// The class `c7:minor` as `skb->priority` and as a TC handle.
pub const fn class_id(minor: u16) -> u32 {
    QDISC_HANDLE | minor as u32
}

/// The rate to give an HTB class so that the process's *goodput* (the transport payload
/// the limit counts) is `payload_rate`: HTB charges every segment its headers, Ethernet's
/// included (`link_header` bytes, 0 on links without one). A full segment on an MTU-1500
/// Ethernet link is 1514 bytes charged for 1448 delivered: 4.6 % more.
pub fn wire_rate(payload_rate: u64, mtu: u32, link_header: u32) -> u64 {
    let payload = u128::from(mtu.saturating_sub(TCP_IPV4_HEADERS).max(1));
    let wire = u128::from(mtu) + u128::from(link_header);
    let scaled = (u128::from(payload_rate) * wire).div_ceil(payload);
    u64::try_from(scaled).unwrap_or(u64::MAX).max(1)
}

/// How long a class may send at line rate after a pause: 10 ms of its rate. Short, so
/// the flow stays smooth and the policer behind (which grants a shaped flow one burst of
/// slack, 400 ms of the rate by default) never sees HTB's own burst; the limit's
/// `--burst` is the policer's.
pub const CLASS_BURST_NS: u64 = 10_000_000;

/// HTB's `buffer` of a class (time at `rate`, in 64 ns ticks): [`CLASS_BURST_NS`], and
/// never less than two full frames of `frame` bytes (HTB sends a packet bigger than its
/// buffer whole and then waits it off, which makes the flow lurch).
pub fn buffer_ticks(rate: u64, frame: u32) -> u32 {
    let two_frames = u128::from(2 * frame) * 1_000_000_000 / u128::from(rate.max(1));
    let ns = u128::from(CLASS_BURST_NS).max(two_frames);
    u32::try_from(ns / u128::from(NS_PER_TICK)).unwrap_or(u32::MAX)
}

/// The lowest class number not in `used` (1 to 0xfffe), if any is left.
pub fn free_minor(used: &BTreeSet<u16>) -> Option<u16> {
    (1..=0xfffe).find(|minor| !used.contains(minor))
}

/// Which qdisc backend a direction uses.
pub const fn backend_name(direction: Direction) -> &'static str {
    match direction {
        Direction::Up => "htb",
        Direction::Down => "ifb",
    }
}

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

    #[test]
    fn wire_rate_charges_ethernet_and_headers_per_segment() {
        // 1448 bytes of payload are 1514 on the wire
        assert_eq!(wire_rate(1448 * 1000, 1500, ETHERNET_HEADER), 1514 * 1000);
        assert_eq!(wire_rate(1448, 1500, 0), 1500);
        assert_eq!(
            wire_rate(0, 1500, ETHERNET_HEADER),
            1,
            "HTB refuses a zero rate"
        );
        assert_eq!(wire_rate(u64::MAX, 1500, 14), u64::MAX);
    }

    #[test]
    fn buffer_is_10_ms_in_ticks_never_under_two_frames() {
        // 10 ms = 156 250 ticks of 64 ns, whatever the rate
        assert_eq!(buffer_ticks(1_000_000, 1514), 156_250);
        assert_eq!(buffer_ticks(200 << 20, 1514), 156_250);
        // at 100 KB/s two frames take 30 ms
        assert_eq!(buffer_ticks(100_000, 1514), 30_280_000 / 64);
        assert_eq!(buffer_ticks(0, 1514), u32::MAX);
    }

    #[test]
    fn minors_are_reused_lowest_first() {
        let used: BTreeSet<u16> = [1, 2, 4].into();
        assert_eq!(free_minor(&used), Some(3));
        let full: BTreeSet<u16> = (1..=0xfffe).collect();
        assert_eq!(free_minor(&full), None);
        assert_eq!(class_id(3), 0x00c7_0003);
    }

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
                }],
            }],
        };
        let text = serde_json::to_string(&record).expect("serialises");
        let back: QdiscRecord = serde_json::from_str(&text).expect("parses");
        assert_eq!(back, record);
    }
}
