//! The tc_police backend (downloads): brings the ingress of the interfaces in use in every
//! network namespace with such a limit in line with the limit table, and takes off what
//! it added where the last one went.
//!
//! Per limited process and interface, one cls_bpf filter (priority
//! [`POLICE_PRIORITY`](crate::rtnetlink::POLICE_PRIORITY), handle the minor of the
//! process's slot) on the interface's ingress qdisc: the classifier `ct_tc_police`, loaded
//! for the filter with the process's slot, matches that process's packets by their
//! socket's owner (so its open connections are covered), and the filter's police action
//! drops what is over the rate. An ingress or clsact qdisc already there is shared, never
//! removed; one the backend added goes when its filters do and no other filter is left.
//! [`sync`] is declarative like `qdisc_sync`, whose routes it follows; the record file
//! lists the interfaces it added filters to. The caller holds the state lock.

use crate::error::Error;
use crate::loader;
use crate::lock::StateLock;
use crate::names::{IFB_PREFIX, PROG_TC_POLICE};
use crate::netns::{self, NetnsId};
use crate::qdisc_sync::{peers_of, routed_interfaces};
use crate::rtnetlink::{Link, POLICE_PRIORITY, Rtnl};
use aya::Ebpf;
use aya::programs::SchedClassifier;
use chadthrottle_core::Direction;
use chadthrottle_core::police_limit;
use chadthrottle_core::qdisc_plan::{
    self, InstalledInterface, NamespaceRecord, QdiscRecord, Wanted,
};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};

/// One process's download limit held by a police filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PoliceLimit {
    pub pid: u32,
    /// What its classifier matches (`ct_limit.class_id`); its minor is the filter handle.
    pub slot: u32,
    /// Transport payload per second, as the limit counts it.
    pub rate: u64,
    pub burst: u64,
}

/// Where the record of interfaces with police filters for the install pinned at
/// `pin_dir` is kept.
pub(crate) fn record_path(pin_dir: &Path) -> PathBuf {
    crate::record::path("police", pin_dir)
}

/// The filter handle of `slot`.
const fn handle_of(slot: u32) -> u32 {
    slot & 0xffff
}

struct NamespaceWork {
    file: File,
    installed: Vec<InstalledInterface>,
    limits: Vec<PoliceLimit>,
    peers: Vec<IpAddr>,
}

/// Brings every namespace's police filters in line with `limits` (the police-held limits in
/// force now, of live processes, read under `_held`) and updates the record kept for
/// `pin_dir`. With `grow` false (lifting limits) nothing is added or re-rated.
pub(crate) fn sync(
    _held: &StateLock,
    pin_dir: &Path,
    limits: &[PoliceLimit],
    grow: bool,
) -> Result<(), Error> {
    let path = record_path(pin_dir);
    let record: QdiscRecord = crate::record::read(&path)?;
    if record.namespaces.is_empty() && limits.is_empty() {
        return Ok(());
    }
    let mut work: BTreeMap<NetnsId, NamespaceWork> = BTreeMap::new();
    for limit in limits {
        let Some((id, file)) = netns::of_pid(limit.pid) else {
            continue; // gone: its filters go
        };
        let entry = work.entry(id).or_insert_with(|| NamespaceWork {
            file,
            installed: Vec::new(),
            limits: Vec::new(),
            peers: Vec::new(),
        });
        entry.limits.push(*limit);
        entry.peers.extend(peers_of(limit.pid));
    }
    for namespace in &record.namespaces {
        let id = (namespace.dev, namespace.ino);
        if let Some(entry) = work.get_mut(&id) {
            entry.installed.clone_from(&namespace.interfaces);
        } else if let Some(file) = netns::find(id) {
            work.insert(
                id,
                NamespaceWork {
                    file,
                    installed: namespace.interfaces.clone(),
                    limits: Vec::new(),
                    peers: Vec::new(),
                },
            );
        }
    }
    // one classifier per limited process, loaded with its slot; each filter holds its own
    // reference, so these go at the end
    let mut programs: BTreeMap<u32, (Ebpf, u32)> = BTreeMap::new();
    if grow {
        for limit in work.values().flat_map(|entry| &entry.limits) {
            if programs.contains_key(&limit.slot) {
                continue;
            }
            let mut ebpf = loader::load_police(pin_dir, limit.slot)?;
            let fd = loader::program::<SchedClassifier>(&mut ebpf, PROG_TC_POLICE)?
                .fd()
                .map_err(Error::program("find", PROG_TC_POLICE))?;
            let raw = u32::try_from(fd.as_fd().as_raw_fd()).unwrap_or(0);
            programs.insert(limit.slot, (ebpf, raw));
        }
    }
    let fds: BTreeMap<u32, u32> = programs
        .iter()
        .map(|(&slot, &(_, fd))| (slot, fd))
        .collect();

    let mut new_record = QdiscRecord::default();
    let mut first_error = None;
    for (id, entry) in work {
        let mut interfaces = entry.installed.clone();
        let result = netns::run_in(&entry.file, || {
            in_namespace(&entry, &fds, grow, &mut interfaces)
        })
        .map_err(Error::tc("change police filters in a network namespace"))
        .and_then(|changed| changed);
        if let Err(error) = result {
            first_error.get_or_insert(error);
        }
        if !interfaces.is_empty() {
            new_record.namespaces.push(NamespaceRecord {
                dev: id.0,
                ino: id.1,
                interfaces,
            });
        }
    }
    drop(programs);
    crate::record::write(&path, &new_record, new_record.namespaces.is_empty())?;
    first_error.map_or(Ok(()), Err)
}

/// Whether the ingress qdisc of `ifindex` is a clsact (filters go to its ingress parent).
fn is_clsact(rtnl: &mut Rtnl, link: &Link) -> Result<bool, Error> {
    Ok(rtnl
        .ingress_qdisc(link.index)
        .map_err(Error::tc(format!(
            "read the ingress qdisc of {}",
            link.name
        )))?
        .is_some_and(|q| q.kind == "clsact"))
}

/// Brings the current thread's namespace in line; `interfaces` starts as the record and
/// follows every change made.
fn in_namespace(
    work: &NamespaceWork,
    fds: &BTreeMap<u32, u32>,
    grow: bool,
    interfaces: &mut Vec<InstalledInterface>,
) -> Result<(), Error> {
    let mut rtnl = Rtnl::open().map_err(Error::tc("open rtnetlink"))?;
    let links = rtnl.links().map_err(Error::tc("list interfaces"))?;
    let mut wanted = Wanted::new();
    if !work.limits.is_empty() {
        for index in routed_interfaces(&mut rtnl, &work.peers)? {
            let usable = links.iter().any(|link| {
                link.index == index
                    && !link.loopback
                    && link.ethernet
                    && !link.name.starts_with(IFB_PREFIX)
            });
            if usable {
                wanted.insert((index, Direction::Down));
            }
        }
    }
    let mut plan = qdisc_plan::plan_interfaces(&work.installed, &wanted);
    if !grow {
        plan.install.clear();
    }
    let link = |index: u32| links.iter().find(|link| link.index == index);
    for interface in plan.remove {
        if let Some(link) = link(interface.ifindex) {
            uninstall(&mut rtnl, link, interface.created_ingress)?;
        }
        interfaces.retain(|i| i != &interface);
    }
    for (ifindex, _) in plan.install {
        let Some(link) = link(ifindex) else { continue };
        let existing = rtnl.ingress_qdisc(ifindex).map_err(Error::tc(format!(
            "read the ingress qdisc of {}",
            link.name
        )))?;
        let created_ingress = existing.is_none();
        if created_ingress {
            rtnl.add_ingress(ifindex)
                .map_err(Error::tc(format!("add an ingress qdisc to {}", link.name)))?;
        }
        interfaces.push(InstalledInterface {
            ifindex,
            name: link.name.clone(),
            direction: Direction::Down,
            previous: None,
            created_ingress,
            ifb: None,
        });
    }
    for interface in interfaces.iter() {
        let Some(link) = link(interface.ifindex) else {
            continue;
        };
        set_filters(&mut rtnl, link, &work.limits, fds, grow)?;
    }
    Ok(())
}

/// Gives the ingress of `link` one police filter per limit (when `grow`; each replaced
/// whole, at the limit's rate now) and removes the police filters of no limit.
fn set_filters(
    rtnl: &mut Rtnl,
    link: &Link,
    limits: &[PoliceLimit],
    fds: &BTreeMap<u32, u32>,
    grow: bool,
) -> Result<(), Error> {
    let clsact = is_clsact(rtnl, link)?;
    let mut kept = BTreeSet::new();
    for limit in limits {
        let handle = handle_of(limit.slot);
        kept.insert(handle);
        let Some(&fd) = fds.get(&limit.slot).filter(|_| grow) else {
            continue;
        };
        rtnl.set_police_filter(
            link.index,
            clsact,
            handle,
            (fd, PROG_TC_POLICE),
            limit.rate,
            police_limit::police_burst(limit.burst),
        )
        .map_err(Error::tc(format!(
            "set the police filter {handle} on {}",
            link.name
        )))?;
    }
    for (priority, handle) in rtnl
        .ingress_filters(link.index, clsact)
        .map_err(Error::tc(format!("list the filters of {}", link.name)))?
    {
        if priority == POLICE_PRIORITY && !kept.contains(&handle) {
            rtnl.delete_police_filter(link.index, clsact, handle)
                .map_err(Error::tc(format!(
                    "remove the police filter {handle} of {}",
                    link.name
                )))?;
        }
    }
    Ok(())
}

/// Takes every police filter off `link`'s ingress, and the ingress qdisc too if the
/// backend added it and no other filter is on it.
fn uninstall(rtnl: &mut Rtnl, link: &Link, created_ingress: bool) -> Result<(), Error> {
    set_filters(rtnl, link, &[], &BTreeMap::new(), false)?;
    let clsact = is_clsact(rtnl, link)?;
    let others = rtnl
        .ingress_filters(link.index, clsact)
        .map_err(Error::tc(format!("list the filters of {}", link.name)))?;
    if created_ingress && others.is_empty() {
        match rtnl.delete_ingress(link.index) {
            Err(error) if error.raw_os_error() != Some(libc::ENOENT) => {
                return Err(Error::tc(format!(
                    "remove the ingress qdisc of {}",
                    link.name
                ))(error));
            }
            _ => {}
        }
    }
    Ok(())
}

/// One interface's ingress as the tc_police backend's tests read it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressState {
    pub interface: String,
    /// The kind of its ingress qdisc (`ingress`, `clsact`), if it has one.
    pub qdisc: Option<String>,
    /// The handles of the police filters on it.
    pub police_filters: Vec<u32>,
}

/// The ingress of every interface in the network namespace of `pid`, read through
/// rtnetlink (an error is reported, never read as "nothing there").
pub fn ingress_of(pid: u32) -> std::io::Result<Vec<IngressState>> {
    let (_, file) = netns::of_pid(pid)
        .ok_or_else(|| std::io::Error::other(format!("PID {pid} has no network namespace")))?;
    netns::run_in(&file, || {
        let mut rtnl = Rtnl::open()?;
        let mut found = Vec::new();
        for link in rtnl.links()? {
            let qdisc = rtnl.ingress_qdisc(link.index)?.map(|q| q.kind);
            let police_filters = match &qdisc {
                None => Vec::new(),
                Some(kind) => rtnl
                    .ingress_filters(link.index, kind == "clsact")?
                    .into_iter()
                    .filter(|&(priority, _)| priority == POLICE_PRIORITY)
                    .map(|(_, handle)| handle)
                    .collect(),
            };
            found.push(IngressState {
                interface: link.name,
                qdisc,
                police_filters,
            });
        }
        Ok(found)
    })?
}
