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
use chadthrottle_core::police_limit::{self, PoliceFilter};
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

/// The classifiers loaded so far, by slot, with their descriptors.
struct Programs<'a> {
    pin_dir: &'a Path,
    loaded: BTreeMap<u32, (Ebpf, u32)>,
}

impl Programs<'_> {
    /// The descriptor of `slot`'s classifier, loaded the first time it is asked for (a
    /// filter left as it is needs none, and loading verifies the program).
    fn fd(&mut self, slot: u32) -> Result<u32, Error> {
        if let Some(&(_, fd)) = self.loaded.get(&slot) {
            return Ok(fd);
        }
        let mut ebpf = loader::load_police(self.pin_dir, slot)?;
        let fd = loader::program::<SchedClassifier>(&mut ebpf, PROG_TC_POLICE)?
            .fd()
            .map_err(Error::program("find", PROG_TC_POLICE))?;
        let raw = u32::try_from(fd.as_fd().as_raw_fd()).unwrap_or(0);
        self.loaded.insert(slot, (ebpf, raw));
        Ok(raw)
    }
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
    // one classifier per process whose filter is set now, loaded with its slot; each
    // filter holds its own reference, so these go at the end
    let mut programs = Programs {
        pin_dir,
        loaded: BTreeMap::new(),
    };
    let mut new_record = QdiscRecord::default();
    let mut first_error = None;
    for (id, entry) in work {
        let mut interfaces = entry.installed.clone();
        let result = netns::run_in(&entry.file, || {
            in_namespace(&entry, &mut programs, grow, &mut interfaces)
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
    programs: &mut Programs<'_>,
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
            uninstall(&mut rtnl, link, programs, interface.created_ingress)?;
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
            police: Vec::new(),
        });
    }
    for interface in interfaces.iter_mut() {
        let Some(link) = link(interface.ifindex) else {
            continue;
        };
        let set = Filters {
            limits: &work.limits,
            programs: &mut *programs,
            grow,
        };
        set_filters(&mut rtnl, link, set, &mut interface.police)?;
    }
    Ok(())
}

/// What [`set_filters`] brings an interface to.
struct Filters<'l, 'p, 'a> {
    limits: &'l [PoliceLimit],
    programs: &'p mut Programs<'a>,
    /// Whether filters may be added or re-rated (not when limits are only lifted).
    grow: bool,
}

/// Gives the ingress of `link` one police filter per limit (when `grow`; a filter is set
/// only where it is missing or its figures changed, so the others keep their tokens) and
/// removes the police filters of no limit. `recorded` is what the record says was set
/// here, and follows every change made.
fn set_filters(
    rtnl: &mut Rtnl,
    link: &Link,
    filters: Filters<'_, '_, '_>,
    recorded: &mut Vec<PoliceFilter>,
) -> Result<(), Error> {
    let clsact = is_clsact(rtnl, link)?;
    let present: BTreeSet<u32> = rtnl
        .ingress_filters(link.index, clsact)
        .map_err(Error::tc(format!("list the filters of {}", link.name)))?
        .into_iter()
        .filter(|&(priority, _)| priority == POLICE_PRIORITY)
        .map(|(_, handle)| handle)
        .collect();
    let wanted: Vec<(PoliceFilter, u32)> = filters
        .limits
        .iter()
        .map(|limit| {
            let filter = PoliceFilter {
                handle: handle_of(limit.slot),
                rate: limit.rate,
                bucket: police_limit::police_burst(limit.burst),
            };
            (filter, limit.slot)
        })
        .collect();
    let kept: BTreeSet<u32> = wanted.iter().map(|(filter, _)| filter.handle).collect();
    if filters.grow {
        let wanted_filters: Vec<PoliceFilter> = wanted.iter().map(|&(filter, _)| filter).collect();
        for filter in police_limit::filters_to_set(&wanted_filters, recorded, &present) {
            let Some(&(_, slot)) = wanted.iter().find(|(w, _)| w.handle == filter.handle) else {
                continue;
            };
            let fd = filters.programs.fd(slot)?;
            rtnl.set_police_filter(
                link.index,
                clsact,
                filter.handle,
                (fd, PROG_TC_POLICE),
                filter.rate,
                filter.bucket,
            )
            .map_err(Error::tc(format!(
                "set the police filter {} on {}",
                filter.handle, link.name
            )))?;
            recorded.retain(|old| old.handle != filter.handle);
            recorded.push(filter);
        }
    }
    for &handle in present.iter().filter(|handle| !kept.contains(handle)) {
        rtnl.delete_police_filter(link.index, clsact, handle)
            .map_err(Error::tc(format!(
                "remove the police filter {handle} of {}",
                link.name
            )))?;
    }
    recorded.retain(|filter| kept.contains(&filter.handle));
    recorded.sort_unstable_by_key(|filter| filter.handle);
    Ok(())
}

/// Takes every police filter off `link`'s ingress, and the ingress qdisc too if the
/// backend added it and no other filter is on it.
fn uninstall(
    rtnl: &mut Rtnl,
    link: &Link,
    programs: &mut Programs<'_>,
    created_ingress: bool,
) -> Result<(), Error> {
    let none = Filters {
        limits: &[],
        programs,
        grow: false,
    };
    set_filters(rtnl, link, none, &mut Vec::new())?;
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
    /// The police filters as (handle, id of the program the filter runs): a filter set
    /// again runs a new program.
    pub police_programs: Vec<(u32, u32)>,
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
            let (police_filters, police_programs) = match &qdisc {
                None => (Vec::new(), Vec::new()),
                Some(kind) => {
                    let clsact = kind == "clsact";
                    let handles = rtnl
                        .ingress_filters(link.index, clsact)?
                        .into_iter()
                        .filter(|&(priority, _)| priority == POLICE_PRIORITY)
                        .map(|(_, handle)| handle)
                        .collect();
                    (handles, rtnl.police_programs(link.index, clsact)?)
                }
            };
            found.push(IngressState {
                interface: link.name,
                qdisc,
                police_filters,
                police_programs,
            });
        }
        Ok(found)
    })?
}
