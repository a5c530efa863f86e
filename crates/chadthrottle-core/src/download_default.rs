//! The backend a download gets when none is named (a process's, or a shared rule's from
//! its members' interfaces), and the reason shown for it.
//!
//! `ifb` holds a LAN download without drops where shaping can only police it, but it
//! changes the interfaces the download arrives on. So it is the default only where it is
//! free to install: it can work on this machine, the process's downloads arrive on at
//! least one interface besides loopback, every such interface is Ethernet-framed (one it
//! cannot carry would be left to the policer), and none has an ingress qdisc that
//! ChadThrottle did not add (sharing one would put our filter beside someone else's).
//! Otherwise the download keeps shaping, the default before, and the reason says why.

use crate::backend::Availability;
use crate::status::Enforcement;
use std::fmt;

/// What sits on the ingress of an interface a download arrives on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ingress {
    /// No ingress qdisc: ifb adds one and deletes it again.
    Free,
    /// The one ChadThrottle added for another limit.
    Ours,
    /// An ingress or clsact qdisc someone else added (its kind).
    Foreign(String),
    /// No Ethernet framing (a WireGuard or other tunnel): ifb cannot carry it, and a
    /// download arriving there would be left to the policer.
    NotEthernet,
}

/// One interface a process's downloads arrive on, as looked at before its limit is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceIngress {
    pub name: String,
    pub ingress: Ingress,
}

/// Why a download got the backend it has: chosen by the default, and on what grounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DefaultReason {
    /// ifb: each listed interface's ingress was free (or already ours).
    IngressFree(Vec<String>),
    /// shaping: ifb cannot work on this machine.
    IfbUnavailable(String),
    /// shaping: the interfaces could not be read.
    Unreadable(String),
    /// shaping: no interface but loopback receives its downloads.
    NoInterface,
    /// shaping: a rule that governs no process now (no interface is known to hold).
    NoMember,
    /// shaping: this interface has no Ethernet framing, so ifb cannot carry it.
    NotEthernet(String),
    /// shaping: this interface has an ingress qdisc of another (its kind).
    Busy { interface: String, kind: String },
}

impl fmt::Display for DefaultReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DefaultReason::IngressFree(names) => write!(
                f,
                "default: the ingress of {} is free (ifb adds an ingress qdisc and an IFB \
                 device there and removes them when the limit goes)",
                names.join(", ")
            ),
            DefaultReason::IfbUnavailable(reason) => {
                write!(f, "default: ifb is unavailable ({reason})")
            }
            DefaultReason::Unreadable(reason) => {
                write!(
                    f,
                    "default: the interfaces in use cannot be read ({reason})"
                )
            }
            DefaultReason::NoInterface => {
                f.write_str("default: no interface but loopback receives its downloads")
            }
            DefaultReason::NoMember => f.write_str(
                "default: the rule governs no process now, so no interface is known to \
                 receive its downloads",
            ),
            DefaultReason::NotEthernet(interface) => write!(
                f,
                "default: {interface} has no Ethernet framing, which ifb needs"
            ),
            DefaultReason::Busy { interface, kind } => write!(
                f,
                "default: {interface} has an ingress qdisc ChadThrottle did not add \
                 ({kind}), which ifb would have to share"
            ),
        }
    }
}

/// The backend chosen for a download that named none, with its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultDownload {
    pub backend: Enforcement,
    pub reason: DefaultReason,
}

/// Chooses the default download backend from what `ifb` needs: whether it works here
/// (`ifb`) and the ingress of each interface the process's downloads arrive on.
pub fn choose(
    ifb: &Availability,
    interfaces: &Result<Vec<InterfaceIngress>, String>,
) -> DefaultDownload {
    let shaping = |reason| DefaultDownload {
        backend: Enforcement::Shaping,
        reason,
    };
    if let Availability::Unavailable(reason) = ifb {
        return shaping(DefaultReason::IfbUnavailable(reason.clone()));
    }
    let interfaces = match interfaces {
        Ok(interfaces) => interfaces,
        Err(reason) => return shaping(DefaultReason::Unreadable(reason.clone())),
    };
    if interfaces.is_empty() {
        return shaping(DefaultReason::NoInterface);
    }
    for interface in interfaces {
        let name = interface.name.clone();
        match &interface.ingress {
            Ingress::Free | Ingress::Ours => {}
            Ingress::NotEthernet => return shaping(DefaultReason::NotEthernet(name)),
            Ingress::Foreign(kind) => {
                return shaping(DefaultReason::Busy {
                    interface: name,
                    kind: kind.clone(),
                });
            }
        }
    }
    DefaultDownload {
        backend: Enforcement::Ifb,
        reason: DefaultReason::IngressFree(interfaces.iter().map(|i| i.name.clone()).collect()),
    }
}

/// What a download gets when none is named, as `backends` says it, given whether ifb
/// works here.
pub fn policy(ifb: &Availability) -> String {
    match ifb {
        Availability::Available => "a download, a process's or a shared rule's: ifb where \
                                    the ingress of every interface it arrives on (a rule's: \
                                    its members' now) is free, else the best available \
                                    backend; an each-mode rule's: the best available but ifb"
            .to_owned(),
        Availability::Unavailable(reason) => format!(
            "a download, a process's or a rule's: the best available backend (ifb is \
             unavailable: {reason})"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interface(name: &str, ingress: Ingress) -> InterfaceIngress {
        InterfaceIngress {
            name: name.into(),
            ingress,
        }
    }

    #[test]
    fn free_or_own_ingress_gets_ifb_naming_the_interfaces() {
        let chosen = choose(
            &Availability::Available,
            &Ok(vec![
                interface("eth0", Ingress::Free),
                interface("veth1", Ingress::Ours),
            ]),
        );
        assert_eq!(chosen.backend, Enforcement::Ifb);
        assert_eq!(
            chosen.reason,
            DefaultReason::IngressFree(vec!["eth0".into(), "veth1".into()])
        );
        assert!(chosen.reason.to_string().contains("eth0, veth1 is free"));
    }

    #[test]
    fn a_foreign_ingress_anywhere_keeps_shaping_and_names_it() {
        let chosen = choose(
            &Availability::Available,
            &Ok(vec![
                interface("eth0", Ingress::Free),
                interface("wg0", Ingress::Foreign("clsact".into())),
            ]),
        );
        assert_eq!(chosen.backend, Enforcement::Shaping);
        assert_eq!(
            chosen.reason.to_string(),
            "default: wg0 has an ingress qdisc ChadThrottle did not add (clsact), which ifb \
             would have to share"
        );
    }

    #[test]
    fn unavailable_unreadable_or_nowhere_keeps_shaping_with_the_reason() {
        let free = Ok(vec![interface("eth0", Ingress::Free)]);
        let off = choose(&Availability::Unavailable("no CONFIG_IFB".into()), &free);
        assert_eq!(off.backend, Enforcement::Shaping);
        assert_eq!(
            off.reason,
            DefaultReason::IfbUnavailable("no CONFIG_IFB".into())
        );
        let unreadable = choose(&Availability::Available, &Err("EPERM".into()));
        assert_eq!(unreadable.reason, DefaultReason::Unreadable("EPERM".into()));
        let nowhere = choose(&Availability::Available, &Ok(Vec::new()));
        assert_eq!(nowhere.backend, Enforcement::Shaping);
        assert_eq!(nowhere.reason, DefaultReason::NoInterface);
        let tunnel = choose(
            &Availability::Available,
            &Ok(vec![
                interface("eth0", Ingress::Free),
                interface("wg0", Ingress::NotEthernet),
            ]),
        );
        assert_eq!(tunnel.backend, Enforcement::Shaping);
        assert_eq!(
            tunnel.reason.to_string(),
            "default: wg0 has no Ethernet framing, which ifb needs"
        );
    }

    #[test]
    fn the_policy_names_ifb_only_where_it_works() {
        assert!(
            policy(&Availability::Available)
                .starts_with("a download, a process's or a shared rule's: ifb where")
        );
        let off = policy(&Availability::Unavailable("no CONFIG_IFB".into()));
        assert!(off.contains("best available") && off.contains("no CONFIG_IFB"));
    }
}
