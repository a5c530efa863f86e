//! Read-only questions to the kernel about BPF objects: which programs a cgroup runs,
//! which programs and maps exist. Used by tests to prove `reset` and a crash leave
//! nothing behind, and to show that the datapath coexists with other programs.

use crate::error::Error;
use std::collections::BTreeSet;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;

const BPF_PROG_QUERY: libc::c_long = 16;

/// Attach types of the datapath's cgroup programs, as the kernel numbers them.
pub const CGROUP_ATTACH_TYPES: [(u32, &str); 4] = [
    (0, "cgroup_inet_ingress"),
    (1, "cgroup_inet_egress"),
    (2, "cgroup_inet_sock_create"),
    (3, "cgroup_sock_ops"),
];

/// The query part of `union bpf_attr`, padded to the union's size.
#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
    rest: [u64; 10],
}

/// A program attached directly to a cgroup.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct AttachedProgram {
    pub attach_type: &'static str,
    pub id: u32,
    pub name: String,
}

/// The programs attached to `cgroup` itself (not inherited) for the datapath's attach
/// types.
pub fn cgroup_programs(cgroup: &Path) -> Result<Vec<AttachedProgram>, Error> {
    let dir = File::open(cgroup).map_err(Error::io("open", cgroup))?;
    let names: std::collections::BTreeMap<u32, String> = aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .map(|info| (info.id(), info.name_as_str().unwrap_or_default().to_owned()))
        .collect();
    let mut attached = Vec::new();
    for (attach_type, type_name) in CGROUP_ATTACH_TYPES {
        let mut ids = [0u32; 64];
        let mut attr = QueryAttr {
            target_fd: dir.as_raw_fd() as u32,
            attach_type,
            prog_ids: ids.as_mut_ptr() as u64,
            prog_cnt: ids.len() as u32,
            ..QueryAttr::default()
        };
        // SAFETY: attr is a valid, writable bpf_attr prefix of the size passed; prog_ids
        // points at room for prog_cnt ids.
        let status = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_PROG_QUERY,
                &raw mut attr,
                std::mem::size_of::<QueryAttr>(),
            )
        };
        if status != 0 {
            return Err(Error::io("query programs of", cgroup)(
                std::io::Error::last_os_error(),
            ));
        }
        for &id in ids.iter().take(attr.prog_cnt as usize) {
            attached.push(AttachedProgram {
                attach_type: type_name,
                id,
                name: names.get(&id).cloned().unwrap_or_default(),
            });
        }
    }
    attached.sort();
    Ok(attached)
}

/// IDs of every BPF program loaded in the kernel.
pub fn loaded_program_ids() -> BTreeSet<u32> {
    aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .map(|info| info.id())
        .collect()
}

/// IDs of every BPF map in the kernel.
pub fn loaded_map_ids() -> BTreeSet<u32> {
    aya::maps::loaded_maps()
        .filter_map(Result::ok)
        .map(|info| info.id())
        .collect()
}

/// A map the datapath pinned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinnedMap {
    pub name: &'static str,
    pub id: u32,
    pub max_entries: u32,
}

/// The maps pinned under `pin_dir` by the datapath.
pub fn pinned_maps(pin_dir: &Path) -> Vec<PinnedMap> {
    crate::names::MAPS
        .iter()
        .filter_map(|&name| {
            let info = aya::maps::MapInfo::from_pin(pin_dir.join(name)).ok()?;
            Some(PinnedMap {
                name,
                id: info.id(),
                max_entries: info.max_entries(),
            })
        })
        .collect()
}

/// Run time a program has accumulated while run-time statistics were on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramRunTime {
    pub id: u32,
    pub name: String,
    pub run_ns: u64,
    pub runs: u64,
}

/// Turns on the kernel's per-program run-time statistics (`BPF_ENABLE_STATS`) for as
/// long as the returned descriptor is open; closing it (or exiting) turns them off.
pub fn enable_run_time_stats() -> Result<std::os::fd::OwnedFd, Error> {
    aya::sys::enable_stats(aya::sys::Stats::RunTime)
        .map_err(|error| Error::io("enable", "BPF run-time statistics")(error.io_error))
}

/// The run time of each program in `ids` that is loaded.
pub fn program_run_times(ids: &[u32]) -> Vec<ProgramRunTime> {
    aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .filter(|info| ids.contains(&info.id()))
        .map(|info| ProgramRunTime {
            id: info.id(),
            name: info.name_as_str().unwrap_or_default().to_owned(),
            run_ns: u64::try_from(info.run_time().as_nanos()).unwrap_or(u64::MAX),
            runs: info.run_count(),
        })
        .collect()
}
