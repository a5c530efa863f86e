//! The nftables backend: brings ChadThrottle's nf_tables table in every network namespace
//! with such a limit in line with the limit table, and removes it where the last one went.
//!
//! A rule matches a process's packets by the cgroup its sockets were created in (`socket
//! cgroupv2`), so the backend takes a process only when it is alone in a cgroup of its own
//! (not the root): then its open connections and new ones are matched, and nothing about
//! the process is changed (no cgroup move, which systemd would see). A download is matched
//! through conntrack: the process's outgoing packets put its slot in the connection's mark,
//! and arriving packets are limited by it (slots are given in PID order, per namespace, at
//! each sync; a connection whose slot moved is marked again by its next packet out).
//! [`sync`] is
//! declarative like `qdisc_sync`: per namespace, the table is replaced whole in one
//! transaction from the limits of the live processes in it; the record file lists the
//! namespaces that have a table, so one whose last limited process exited is cleaned too.
//! The caller holds the state lock.

use crate::error::Error;
use crate::lock::StateLock;
use crate::netns::{self, NetnsId};
use crate::nft_netlink::{self, DownloadRule, Rules, UploadRule};
use chadthrottle_core::Direction;
use chadthrottle_core::nft_limit;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

/// One direction of a process's limit held by an nftables rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NftLimit {
    pub pid: u32,
    pub direction: Direction,
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

/// The cgroup `limit`'s process is alone in now, as (id, level); `None` if it is no
/// longer alone there or gone (its rules go).
fn cgroup_of(limit: &NftLimit) -> Option<(u64, u32)> {
    let (dir, level) = own_cgroup(limit.pid).ok()?;
    Some((crate::mounts::cgroup_id(&dir).ok()?, level))
}

/// Adds `limit`'s rule to `rules` (a download takes the namespace's next mark slot).
fn add_rule(rules: &mut Rules, limit: &NftLimit, cgroup_id: u64, level: u32) -> Result<(), Error> {
    let burst = nft_limit::rule_burst(limit.burst);
    match limit.direction {
        Direction::Up => rules.up.push(UploadRule {
            cgroup_id,
            level,
            rate: limit.rate,
            burst,
        }),
        Direction::Down => {
            let mark = nft_netlink::mark_of_slot(rules.down.len()).ok_or_else(|| {
                Error::NftablesRefused(format!(
                    "backend nftables tells at most {} download limits apart in one network                      namespace (by bits 16-23 of the conntrack mark): lift one or choose                      another backend for PID {}",
                    nft_netlink::MARK_SLOTS,
                    limit.pid
                ))
            })?;
            rules.down.push(DownloadRule {
                cgroup_id,
                level,
                mark,
                rate: limit.rate,
                burst,
            });
        }
    }
    Ok(())
}

/// Brings every namespace's table in line with `limits` (the nftables-held limits in force
/// now, of live processes, read under `_held`) and updates the record kept for `pin_dir`.
pub(crate) fn sync(_held: &StateLock, pin_dir: &Path, limits: &[NftLimit]) -> Result<(), Error> {
    let path = record_path(pin_dir);
    let record: NftRecord = crate::record::read(&path)?;
    if record.namespaces.is_empty() && limits.is_empty() {
        return Ok(());
    }
    let mut work: BTreeMap<NetnsId, (File, Rules)> = BTreeMap::new();
    let mut limits = limits.to_vec();
    limits.sort_by_key(|limit| limit.pid);
    for limit in &limits {
        let (Some((id, file)), Some((cgroup_id, level))) =
            (netns::of_pid(limit.pid), cgroup_of(limit))
        else {
            continue;
        };
        let rules = &mut work.entry(id).or_insert_with(|| (file, Rules::default())).1;
        add_rule(rules, limit, cgroup_id, level)?;
    }
    for &id in &record.namespaces {
        if !work.contains_key(&id)
            && let Some(file) = netns::find(id)
        {
            work.insert(id, (file, Rules::default()));
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
