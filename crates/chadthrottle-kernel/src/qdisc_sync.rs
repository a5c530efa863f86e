//! The qdisc backends (`htb` for uploads, `ifb` for downloads): brings the interfaces of
//! every network namespace with a qdisc-held limit in line with the limit table, and puts
//! back what was there when the last such limit goes.
//!
//! [`sync`] is declarative. From the limits it is given it works out, per namespace, the
//! interfaces in use (the routes of the processes' connected sockets and the namespace's
//! default routes) and one HTB class per process limit and per shared rule on each (a
//! rule's class goes where its members' namespaces are); the record file says what was
//! installed before and what it replaced. It first checks every root qdisc it would
//! replace, and refuses (changing nothing) one it did not create unless forced; then it
//! installs, re-rates and removes. Each namespace is worked on from a short thread that
//! enters it, like the TCP iterator's (`tcp_iterator.rs`). The caller holds the state
//! lock from its first read of the limit table to the end of the sync.

use crate::error::{Error, describe};
use crate::loader;
use crate::lock::StateLock;
use crate::names::{IFB_PREFIX, PROG_TC_INGRESS};
use crate::netns::{self, NetnsId};
use crate::rtnetlink::{Link, Rtnl};
use aya::programs::SchedClassifier;
use chadthrottle_core::Direction;
use chadthrottle_core::download_default::{Ingress, InterfaceIngress};
use chadthrottle_core::htb_class::{self, ETHERNET_HEADER, QDISC_HANDLE};
use chadthrottle_core::qdisc_plan::{
    self, InstalledInterface, NamespaceRecord, QdiscRecord, RootDecision, Wanted,
};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The IFB device's `txqueuelen` (what HTB's default leaves would take; each download
/// class gets a leaf of its own, `set_segmenting_leaf`).
const IFB_QUEUE: u32 = 1000;

/// One process's limit held by an HTB class, or one member of a shared rule whose class
/// holds the rule's budget (every member of the rule names the same class).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClassLimit {
    pub pid: u32,
    pub direction: Direction,
    pub class_id: u32,
    /// Transport payload per second, as the limit counts it.
    pub rate: u64,
}

/// Where the record of installed qdiscs for the install pinned at `pin_dir` is kept.
pub(crate) fn record_path(pin_dir: &Path) -> PathBuf {
    crate::record::path("qdiscs", pin_dir)
}

/// The remote addresses of `pid`'s connected TCP and UDP sockets, read in its namespace.
pub(crate) fn peers_of(pid: u32) -> Vec<IpAddr> {
    let Ok(process) = procfs::process::Process::new(i32::try_from(pid).unwrap_or(i32::MAX)) else {
        return Vec::new();
    };
    let inodes: BTreeSet<u64> = process
        .fd()
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|fd| match fd.target {
            procfs::process::FDTarget::Socket(inode) => Some(inode),
            _ => None,
        })
        .collect();
    let tcp = [process.tcp(), process.tcp6()]
        .into_iter()
        .flat_map(Result::unwrap_or_default)
        .filter(|entry| inodes.contains(&entry.inode))
        .map(|entry| entry.remote_address);
    let udp = [process.udp(), process.udp6()]
        .into_iter()
        .flat_map(Result::unwrap_or_default)
        .filter(|entry| inodes.contains(&entry.inode))
        .map(|entry| entry.remote_address);
    let mut peers: Vec<IpAddr> = tcp
        .chain(udp)
        .map(|address| address.ip())
        .filter(|ip| !ip.is_unspecified())
        .collect();
    peers.sort();
    peers.dedup();
    peers
}

/// What one namespace should carry: its limits and the peers of their processes.
struct NamespaceWork {
    file: File,
    installed: Vec<InstalledInterface>,
    classes: Vec<ClassLimit>,
    peers: BTreeMap<Direction, Vec<IpAddr>>,
}

/// How far [`sync`] may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reach {
    /// Install on interfaces newly in use; with `force`, replace a root qdisc
    /// ChadThrottle did not create (and remember it); without, refuse before any change.
    Grow { force: bool },
    /// Only re-rate, remove and restore (lifting limits never installs anything).
    Shrink,
}

/// Brings every namespace's qdiscs in line with `limits` (the qdisc-held limits in force
/// now, of live processes, read under `_held`) and updates the record kept for `pin_dir`.
pub(crate) fn sync(
    _held: &StateLock,
    pin_dir: &Path,
    limits: &[ClassLimit],
    reach: Reach,
) -> Result<(), Error> {
    let path = record_path(pin_dir);
    let record: QdiscRecord = crate::record::read(&path)?;
    if record.namespaces.is_empty() && limits.is_empty() {
        return Ok(());
    }
    let mut work: BTreeMap<NetnsId, NamespaceWork> = BTreeMap::new();
    for limit in limits {
        let Some((id, file)) = netns::of_pid(limit.pid) else {
            continue; // gone: its class goes
        };
        let entry = work.entry(id).or_insert_with(|| NamespaceWork {
            file,
            installed: Vec::new(),
            classes: Vec::new(),
            peers: BTreeMap::new(),
        });
        entry.classes.push(*limit);
        entry
            .peers
            .entry(limit.direction)
            .or_default()
            .extend(peers_of(limit.pid));
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
                    classes: Vec::new(),
                    peers: BTreeMap::new(),
                },
            );
        }
        // a namespace that no longer exists took its interfaces (and our qdiscs) with it
    }
    // the classifier is loaded (and verified) the first time a download's interface is
    // installed, not on every sync: `follow` grows every sample and almost always finds
    // nothing new
    let classifier: OnceLock<(aya::Ebpf, u32)> = OnceLock::new();
    let classifier_fd = || -> Result<u32, Error> {
        if let Some((_, fd)) = classifier.get() {
            return Ok(*fd);
        }
        let mut loaded = loader::load_with_pins(pin_dir, PROG_TC_INGRESS)?;
        let fd = loader::program::<SchedClassifier>(&mut loaded, PROG_TC_INGRESS)?
            .fd()
            .map_err(Error::program("find", PROG_TC_INGRESS))?;
        let fd = u32::try_from(fd.as_fd().as_raw_fd()).unwrap_or(0);
        Ok(classifier.get_or_init(|| (loaded, fd)).1)
    };

    let mut new_record = QdiscRecord::default();
    let mut first_error = None;
    for (id, entry) in work {
        // what is installed, kept true step by step, so that an error records the truth
        let mut interfaces = entry.installed.clone();
        let result = netns::run_in(&entry.file, || {
            in_namespace(&entry, &classifier_fd, reach, &mut interfaces)
        })
        .map_err(Error::tc("change qdiscs in a network namespace"))
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
    drop(classifier);
    crate::record::write(&path, &new_record, new_record.namespaces.is_empty())?;
    first_error.map_or(Ok(()), Err)
}

/// Brings the current thread's namespace in line. `interfaces` starts as the record and
/// follows every change made.
fn in_namespace(
    work: &NamespaceWork,
    classifier_fd: &(dyn Fn() -> Result<u32, Error> + Sync),
    reach: Reach,
    interfaces: &mut Vec<InstalledInterface>,
) -> Result<(), Error> {
    let mut rtnl = Rtnl::open().map_err(Error::tc("open rtnetlink"))?;
    let links = rtnl.links().map_err(Error::tc("list interfaces"))?;
    let wanted = interfaces_in_use(&mut rtnl, &links, work)?;
    let mut plan = qdisc_plan::plan_interfaces(&work.installed, &wanted);
    let force = match reach {
        Reach::Grow { force } => force,
        Reach::Shrink => {
            plan.install.clear();
            false
        }
    };
    let link = |index: u32| links.iter().find(|link| link.index == index);

    // check every root first: a refusal changes nothing
    let mut decisions = BTreeMap::new();
    for &(ifindex, direction) in &plan.install {
        if direction == Direction::Up
            && let Some(link) = link(ifindex)
        {
            let root = rtnl
                .root_qdisc(ifindex)
                .map_err(Error::tc(format!("read the root qdisc of {}", link.name)))?;
            let decision =
                qdisc_plan::decide_root(&link.name, root, force).map_err(Error::QdiscRefused)?;
            decisions.insert(ifindex, decision);
        }
    }

    for interface in plan.remove {
        uninstall(&mut rtnl, &interface, &links)?;
        interfaces.retain(|i| i != &interface);
    }
    for (ifindex, direction) in plan.install {
        let Some(link) = link(ifindex) else { continue };
        let installed = match direction {
            Direction::Up => {
                let previous = match decisions.remove(&ifindex) {
                    Some(RootDecision::ReplaceForced(saved)) => Some(saved),
                    _ => None,
                };
                rtnl.add_htb_root(ifindex, QDISC_HANDLE)
                    .map_err(Error::tc(format!("add an HTB qdisc to {}", link.name)))?;
                InstalledInterface {
                    ifindex,
                    name: link.name.clone(),
                    direction,
                    previous,
                    created_ingress: false,
                    ifb: None,
                    police: Vec::new(),
                }
            }
            Direction::Down => install_ifb(&mut rtnl, link, classifier_fd()?)?,
        };
        interfaces.push(installed);
    }
    let links = rtnl.links().map_err(Error::tc("list interfaces"))?;
    for interface in interfaces.iter() {
        set_classes(&mut rtnl, interface, &links, &work.classes)?;
    }
    Ok(())
}

/// The interfaces of the default routes and of the routes to `peers`, by index, each
/// once, loopback and IFB devices included.
pub(crate) fn routed_interfaces(rtnl: &mut Rtnl, peers: &[IpAddr]) -> Result<BTreeSet<u32>, Error> {
    let mut indexes: BTreeSet<u32> = rtnl
        .default_route_interfaces()
        .map_err(Error::tc("read the default routes"))?
        .into_iter()
        .collect();
    for peer in peers {
        if let Some(oif) = rtnl
            .route_to(*peer)
            .map_err(Error::tc(format!("look up the route to {peer}")))?
        {
            indexes.insert(oif);
        }
    }
    Ok(indexes)
}

/// The interfaces the namespace's limited processes use, per direction: those their
/// connected sockets route through and those of the default routes. Loopback, IFB
/// devices, and (for downloads) links without Ethernet framing are left out.
fn interfaces_in_use(
    rtnl: &mut Rtnl,
    links: &[Link],
    work: &NamespaceWork,
) -> Result<Wanted, Error> {
    let mut wanted = Wanted::new();
    let directions: BTreeSet<Direction> = work.classes.iter().map(|c| c.direction).collect();
    for direction in directions {
        let peers = work.peers.get(&direction).map_or(&[][..], Vec::as_slice);
        for index in routed_interfaces(rtnl, peers)? {
            let Some(link) = links.iter().find(|link| link.index == index) else {
                continue;
            };
            let usable = !link.loopback
                && !link.name.starts_with(IFB_PREFIX)
                && (direction == Direction::Up || link.ethernet);
            if usable {
                wanted.insert((index, direction));
            }
        }
    }
    Ok(wanted)
}

/// The interfaces `pid`'s downloads arrive on (the routes [`sync`] would follow, in the
/// process's namespace; loopback and our IFBs left out) and what is on each one's ingress
/// now, for choosing the default download backend. An interface without Ethernet framing
/// is reported as such (ifb cannot carry it). An ingress qdisc counts as ours only where
/// the record for `pin_dir` says ChadThrottle created it; one it merely shares is
/// someone else's.
pub(crate) fn download_ingress(pin_dir: &Path, pid: u32) -> Result<Vec<InterfaceIngress>, String> {
    let (id, file) = netns::of_pid(pid).ok_or_else(|| format!("PID {pid} is gone"))?;
    let record: QdiscRecord =
        crate::record::read(&record_path(pin_dir)).map_err(|e| describe(&e))?;
    let created: BTreeSet<u32> = record
        .namespaces
        .iter()
        .filter(|namespace| (namespace.dev, namespace.ino) == id)
        .flat_map(|namespace| &namespace.interfaces)
        .filter(|interface| interface.direction == Direction::Down && interface.created_ingress)
        .map(|interface| interface.ifindex)
        .collect();
    let peers = peers_of(pid);
    netns::run_in(&file, || {
        let mut rtnl = Rtnl::open().map_err(|e| format!("rtnetlink: {e}"))?;
        let links = rtnl.links().map_err(|e| format!("list interfaces: {e}"))?;
        let mut found = Vec::new();
        for index in routed_interfaces(&mut rtnl, &peers).map_err(|e| describe(&e))? {
            let Some(link) = links.iter().find(|link| link.index == index) else {
                continue;
            };
            if link.loopback || link.name.starts_with(IFB_PREFIX) {
                continue;
            }
            let ingress = if link.ethernet {
                match rtnl.ingress_qdisc(index) {
                    Err(e) => return Err(format!("read the ingress qdisc of {}: {e}", link.name)),
                    Ok(None) => Ingress::Free,
                    Ok(Some(_)) if created.contains(&index) => Ingress::Ours,
                    Ok(Some(qdisc)) => Ingress::Foreign(qdisc.kind),
                }
            } else {
                Ingress::NotEthernet
            };
            found.push(InterfaceIngress {
                name: link.name.clone(),
                ingress,
            });
        }
        Ok(found)
    })
    .map_err(|e| format!("enter the network namespace of PID {pid}: {e}"))?
}

fn ifb_name(ifindex: u32) -> String {
    format!("{IFB_PREFIX}{ifindex}")
}

/// Creates the IFB device of `link` with its HTB, and redirects the downloads the
/// classifier picks from `link`'s ingress to it.
fn install_ifb(
    rtnl: &mut Rtnl,
    link: &Link,
    classifier_fd: u32,
) -> Result<InstalledInterface, Error> {
    let name = ifb_name(link.index);
    let ifb = rtnl
        .add_ifb(&name, IFB_QUEUE)
        .map_err(Error::tc(format!("create the IFB device {name}")))?;
    let undo_ifb = |rtnl: &mut Rtnl| {
        let _best_effort = rtnl.delete_link(ifb);
    };
    if let Err(error) = rtnl.add_htb_root(ifb, QDISC_HANDLE) {
        undo_ifb(rtnl);
        return Err(Error::tc(format!("add an HTB qdisc to {name}"))(error));
    }
    let existing = match rtnl.ingress_qdisc(link.index) {
        Ok(existing) => existing,
        Err(error) => {
            undo_ifb(rtnl);
            return Err(Error::tc(format!(
                "read the ingress qdisc of {}",
                link.name
            ))(error));
        }
    };
    let clsact = existing.as_ref().is_some_and(|q| q.kind == "clsact");
    let created_ingress = existing.is_none();
    if created_ingress && let Err(error) = rtnl.add_ingress(link.index) {
        undo_ifb(rtnl);
        return Err(Error::tc(format!("add an ingress qdisc to {}", link.name))(
            error,
        ));
    }
    if let Err(error) =
        rtnl.add_redirect_filter(link.index, clsact, classifier_fd, PROG_TC_INGRESS, ifb)
    {
        if created_ingress {
            let _best_effort = rtnl.delete_ingress(link.index);
        }
        undo_ifb(rtnl);
        return Err(Error::tc(format!(
            "add the download filter to {}",
            link.name
        ))(error));
    }
    Ok(InstalledInterface {
        ifindex: link.index,
        name: link.name.clone(),
        direction: Direction::Down,
        previous: None,
        created_ingress,
        ifb: Some(name),
        police: Vec::new(),
    })
}

/// Takes ChadThrottle's qdiscs off `interface` and puts back what was there. An interface
/// that is gone needs nothing.
fn uninstall(rtnl: &mut Rtnl, interface: &InstalledInterface, links: &[Link]) -> Result<(), Error> {
    let name = &interface.name;
    let ignore_gone = |result: std::io::Result<()>| match result {
        Err(error)
            if matches!(
                error.raw_os_error(),
                Some(libc::ENOENT | libc::ENODEV | libc::EINVAL)
            ) =>
        {
            Ok(())
        }
        other => other,
    };
    if !links.iter().any(|link| link.index == interface.ifindex) {
        return Ok(());
    }
    match interface.direction {
        Direction::Up => {
            let ours = rtnl
                .root_qdisc(interface.ifindex)
                .map_err(Error::tc(format!("read the root qdisc of {name}")))?
                .is_some_and(|root| root.handle == QDISC_HANDLE && root.kind == "htb");
            if ours {
                ignore_gone(rtnl.delete_root(interface.ifindex, QDISC_HANDLE))
                    .map_err(Error::tc(format!("remove the HTB qdisc of {name}")))?;
                if let Some(previous) = &interface.previous {
                    rtnl.restore_root(interface.ifindex, previous)
                        .map_err(Error::tc(format!(
                            "put back the qdisc {previous} of {name}"
                        )))?;
                }
            }
        }
        Direction::Down => {
            let clsact = rtnl
                .ingress_qdisc(interface.ifindex)
                .map_err(Error::tc(format!("read the ingress qdisc of {name}")))?
                .is_some_and(|q| q.kind == "clsact");
            ignore_gone(rtnl.delete_redirect_filter(interface.ifindex, clsact))
                .map_err(Error::tc(format!("remove the download filter of {name}")))?;
            if interface.created_ingress {
                ignore_gone(rtnl.delete_ingress(interface.ifindex))
                    .map_err(Error::tc(format!("remove the ingress qdisc of {name}")))?;
            }
            if let Some(ifb) = &interface.ifb
                && let Some(link) = links.iter().find(|link| &link.name == ifb)
            {
                ignore_gone(rtnl.delete_link(link.index))
                    .map_err(Error::tc(format!("remove the IFB device {ifb}")))?;
            }
        }
    }
    Ok(())
}

/// Puts a `tbf` under a download class on an IFB that cuts GRO packets into their
/// segments and queues [`htb_class::leaf_queue_bytes`] (numbers in `htb_class`). A kernel
/// without `tbf` keeps HTB's default leaf: the class holds the rate all the same, in
/// coarser steps.
fn set_segmenting_leaf(
    rtnl: &mut Rtnl,
    carrier: &Link,
    class_id: u32,
    rate: u64,
    frame: u32,
) -> Result<(), Error> {
    match rtnl.set_leaf_tbf(
        carrier.index,
        class_id,
        htb_class::segmenter_rate(rate),
        htb_class::segment_above(rate, frame),
        htb_class::leaf_queue_bytes(rate),
    ) {
        Err(error) if error.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        result => result.map_err(Error::tc(format!(
            "set the leaf queue of class {:x}:{:x} on {}",
            class_id >> 16,
            class_id & 0xffff,
            carrier.name
        ))),
    }
}

/// Gives the HTB carrying `interface` one class per limit of its direction, at the
/// limit's rate compensated for the headers HTB charges, and removes other classes.
fn set_classes(
    rtnl: &mut Rtnl,
    interface: &InstalledInterface,
    links: &[Link],
    classes: &[ClassLimit],
) -> Result<(), Error> {
    let Some(link) = links.iter().find(|link| link.index == interface.ifindex) else {
        return Ok(());
    };
    let carrier = match (&interface.direction, &interface.ifb) {
        (Direction::Down, Some(ifb)) => match links.iter().find(|l| &l.name == ifb) {
            Some(ifb) => ifb,
            None => return Ok(()),
        },
        _ => link,
    };
    let header = if link.ethernet { ETHERNET_HEADER } else { 0 };
    let frame = link.mtu + header;
    let mut kept = BTreeSet::new();
    for class in classes
        .iter()
        .filter(|c| c.direction == interface.direction)
    {
        // a rule's members share one class
        if kept.contains(&class.class_id) {
            continue;
        }
        let rate = htb_class::wire_rate(class.rate, link.mtu, header);
        rtnl.set_class(
            carrier.index,
            QDISC_HANDLE,
            class.class_id,
            rate,
            htb_class::buffer_ticks(rate, frame),
            frame,
        )
        .map_err(Error::tc(format!(
            "set the HTB class {:x}:{:x} on {}",
            class.class_id >> 16,
            class.class_id & 0xffff,
            carrier.name
        )))?;
        if interface.direction == Direction::Down {
            set_segmenting_leaf(rtnl, carrier, class.class_id, rate, frame)?;
        }
        kept.insert(class.class_id);
    }
    let present = rtnl
        .classes(carrier.index, QDISC_HANDLE)
        .map_err(Error::tc(format!(
            "list the HTB classes of {}",
            carrier.name
        )))?;
    for class_id in present.into_iter().filter(|id| !kept.contains(id)) {
        rtnl.delete_class(carrier.index, QDISC_HANDLE, class_id)
            .map_err(Error::tc(format!(
                "remove an HTB class of {}",
                carrier.name
            )))?;
    }
    Ok(())
}
