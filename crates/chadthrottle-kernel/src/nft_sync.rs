//! The nftables backend (uploads): brings ChadThrottle's nf_tables table in every network
//! namespace with such a limit in line with the limit table, and removes it where the last
//! one went.
//!
//! A rule matches a process's packets by the cgroup its sockets were created in (`socket
//! cgroupv2`), so the backend takes a process only when it is alone in a cgroup of its own
//! (not the root): then its open connections and new ones are matched, and nothing about
//! the process is changed (no cgroup move, which systemd would see). [`sync`] is
//! declarative like `qdisc_sync`: per namespace, the table is replaced whole in one
//! transaction from the limits of the live processes in it; the record file lists the
//! namespaces that have a table, so one whose last limited process exited is cleaned too.
//! The caller holds the state lock.

use crate::error::Error;
use crate::lock::StateLock;
use crate::netns::{self, NetnsId};
use crate::nft_netlink::{self, UploadRule};
use chadthrottle_core::nft_limit;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

/// One process's upload limit held by an nftables rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NftLimit {
    pub pid: u32,
    /// Transport payload per second, as the limit counts it.
    pub rate: u64,
    pub burst: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct NftRecord {
    /// `st_dev`, `st_ino` of each network namespace holding ChadThrottle's table.
    namespaces: Vec<(u64, u64)>,
}

/// Where the record of tables for the install pinned at `pin_dir` is kept.
pub(crate) fn record_path(pin_dir: &Path) -> PathBuf {
    crate::record::path("nftables", pin_dir)
}

/// The cgroup `pid` is in, as (directory, depth below the cgroup2 root), if the process
/// is alone there and it is not the root; otherwise why the backend cannot take it.
pub(crate) fn own_cgroup(pid: u32) -> Result<(PathBuf, u32), Error> {
    let refused = |why: String| {
        Error::NftablesRefused(format!(
            "backend nftables matches a process by its cgroup, and PID {pid} {why}: run it in \
             a cgroup of its own (e.g. `systemd-run --scope`) or choose another backend"
        ))
    };
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .map_err(|_| Error::ProcessExited { pid })?;
    let inside = text
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .ok_or_else(|| refused("is in no cgroup2 cgroup".into()))?;
    let inside = inside.trim_start_matches('/');
    if inside.is_empty() {
        return Err(refused("is in the root cgroup".into()));
    }
    let dir = crate::mounts::cgroup2_root()?.join(inside);
    let procs = std::fs::read_to_string(dir.join("cgroup.procs"))
        .map_err(Error::io("read", dir.join("cgroup.procs")))?;
    let others = procs
        .lines()
        .filter(|line| line.trim().parse::<u32>().is_ok_and(|other| other != pid))
        .count();
    if others > 0 {
        return Err(refused(format!(
            "shares its cgroup /{inside} with {others} other process(es)"
        )));
    }
    let level = u32::try_from(inside.split('/').filter(|part| !part.is_empty()).count())
        .unwrap_or(u32::MAX);
    Ok((dir, level))
}

/// The rule for `limit`, from its process's cgroup now; `None` if it is no longer alone
/// there or gone (its rule goes).
fn rule_of(limit: &NftLimit) -> Option<UploadRule> {
    let (dir, level) = own_cgroup(limit.pid).ok()?;
    Some(UploadRule {
        cgroup_id: crate::mounts::cgroup_id(&dir).ok()?,
        level,
        rate: limit.rate,
        burst: nft_limit::rule_burst(limit.burst),
    })
}

/// Brings every namespace's table in line with `limits` (the nftables-held limits in force
/// now, of live processes, read under `_held`) and updates the record kept for `pin_dir`.
pub(crate) fn sync(_held: &StateLock, pin_dir: &Path, limits: &[NftLimit]) -> Result<(), Error> {
    let path = record_path(pin_dir);
    let record: NftRecord = crate::record::read(&path)?;
    if record.namespaces.is_empty() && limits.is_empty() {
        return Ok(());
    }
    let mut work: BTreeMap<NetnsId, (File, Vec<UploadRule>)> = BTreeMap::new();
    for limit in limits {
        let (Some((id, file)), Some(rule)) = (netns::of_pid(limit.pid), rule_of(limit)) else {
            continue;
        };
        work.entry(id)
            .or_insert_with(|| (file, Vec::new()))
            .1
            .push(rule);
    }
    for &id in &record.namespaces {
        if !work.contains_key(&id)
            && let Some(file) = netns::find(id)
        {
            work.insert(id, (file, Vec::new()));
        }
        // a namespace that no longer exists took its table with it
    }
    let mut new_record = NftRecord::default();
    let mut first_error = None;
    for (id, (file, rules)) in work {
        let result = netns::run_in(&file, || nft_netlink::replace(&rules))
            .and_then(|replaced| replaced)
            .map_err(|source| Error::Nftables {
                op: "replace ChadThrottle's nftables table",
                source,
            });
        match result {
            Ok(()) if rules.is_empty() => {}
            Ok(()) => new_record.namespaces.push(id),
            Err(error) => {
                // what is there is unknown: keep it recorded, so the next sync clears it
                new_record.namespaces.push(id);
                first_error.get_or_insert(error);
            }
        }
    }
    crate::record::write(&path, &new_record, new_record.namespaces.is_empty())?;
    first_error.map_or(Ok(()), Err)
}
