//! `reset`: taking everything out. Every limit is lifted and its shaped sockets get their
//! own settings back, the qdisc backends come off every interface (what they replaced is
//! put back), then the links are detached (`BPF_LINK_DETACH`, at once) and unpinned, the
//! maps, the pin
//! directory, and the bpffs if ChadThrottle mounted it. One state lock for all of it.

use crate::datapath::Datapath;
use crate::error::Error;
use crate::mounts;
use crate::names::{MAPS, PROGRAMS, link_pin};
use crate::nft_sync;
use crate::pins::open_pins;
use crate::police_sync;
use crate::privileges::{self, Operation};
use crate::qdisc_sync::{self, Reach};
use std::path::Path;

/// What `reset` removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResetReport {
    /// Pin files removed (links first: removing a link's pin detaches it).
    pub removed: Vec<String>,
    pub removed_pin_dir: bool,
    pub unmounted_bpffs: bool,
    /// Entries in the pin directory that are not ChadThrottle's, left alone.
    pub foreign: Vec<String>,
    /// Shaped sockets whose own pacing rate and window clamp were put back.
    pub restored_sockets: usize,
}

/// Removes every pin ChadThrottle made under `pin_dir`, the directory, and the bpffs it
/// mounted (if nothing else uses it). Safe to run at any time, any number of times.
pub fn reset(pin_dir: &Path) -> Result<ResetReport, Error> {
    privileges::check(Operation::Reset)?;
    let held = crate::lock::lock()?;
    let mut report = ResetReport::default();
    // shaped sockets get their own settings back while the programs are still there
    if let Ok(Some(pins)) = open_pins(pin_dir) {
        report.restored_sockets = Datapath::from_pins(pins, pin_dir)?.lift_all(&held)?;
    }
    // the rules went with the limits; their names go too
    crate::rule_book::forget(&held, pin_dir)?;
    // every qdisc the htb and ifb backends installed goes, and what it replaced comes back
    qdisc_sync::sync(&held, pin_dir, &[], Reach::Shrink)?;
    // and every table of the nftables backend
    nft_sync::sync(&held, pin_dir, &[])?;
    // and every police filter of the tc_police backend, with the ingress qdiscs it added
    police_sync::sync(&held, pin_dir, &[], false)?;
    // each link is detached before its pin goes: unpinned alone, it would be detached
    // only after an RCU grace period and a work item, after `reset` returned
    for name in PROGRAMS.into_iter().rev().map(link_pin) {
        let path = pin_dir.join(&name);
        match crate::link_detach::detach_pinned(&path) {
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(Error::io("detach the link pinned at", path)(error)),
        }
    }
    let pins = PROGRAMS
        .into_iter()
        .rev()
        .map(link_pin)
        .chain(MAPS.iter().map(|name| (*name).to_owned()));
    for name in pins {
        let path = pin_dir.join(&name);
        match std::fs::remove_file(&path) {
            Ok(()) => report.removed.push(name),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(Error::io("remove", path)(error)),
        }
    }
    if let Ok(entries) = std::fs::read_dir(pin_dir) {
        report.foreign = entries
            .filter_map(Result::ok)
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .collect();
        report.foreign.sort();
        if report.foreign.is_empty() {
            std::fs::remove_dir(pin_dir).map_err(Error::io("remove", pin_dir))?;
            report.removed_pin_dir = true;
        }
    }
    report.unmounted_bpffs = mounts::release_bpffs(pin_dir)?;
    Ok(report)
}
