//! The shaping backend's one userspace step: running the TCP iterator (`ct_iter_tcp`) over
//! the network namespaces of limited processes, so that sockets already open are shaped the
//! moment a limit is set and get their own settings back the moment it goes. Everything
//! after that happens in the sockets' own sock_ops callbacks (bpf/shaping.bpf.h).
//!
//! A TCP iterator walks the sockets of the network namespace current when it is opened, so
//! each namespace gets its own short thread that enters it (`setns` changes only the
//! calling thread's namespace) and reads the iterator there.

use crate::error::Error;
use crate::install;
use crate::names::PROG_ITER_TCP;
use aya::programs::Iter;
use aya::programs::links::LinkError;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Brings the open TCP sockets of every network namespace `pids` use in line with the
/// limits in the kernel now; returns how many sockets were shaped or restored. Processes
/// that are gone are skipped.
pub fn reconcile(pin_dir: &Path, pids: &[u32]) -> Result<usize, Error> {
    let namespaces = namespaces_of(pids);
    if namespaces.is_empty() {
        return Ok(0);
    }
    let mut ebpf = install::load_with_pins(pin_dir, PROG_ITER_TCP)?;
    let iter: &mut Iter = ebpf
        .program_mut(PROG_ITER_TCP)
        .ok_or_else(|| {
            Error::program("find", PROG_ITER_TCP)(aya::programs::ProgramError::NotLoaded)
        })?
        .try_into()
        .map_err(Error::program("find", PROG_ITER_TCP))?;
    let mut changed = 0;
    for namespace in namespaces.into_values() {
        let link = iter
            .attach()
            .and_then(|id| iter.take_link(id))
            .map_err(Error::program("attach", PROG_ITER_TCP))?;
        let records = std::thread::scope(|scope| {
            scope
                .spawn(move || run_in(&namespace, link))
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("the iterator thread panicked")))
        })
        .map_err(Error::io(
            "run the TCP socket iterator in",
            "a network namespace",
        ))?;
        changed += records;
    }
    Ok(changed)
}

/// One `/proc/PID/ns/net` per distinct network namespace, keyed by its inode.
fn namespaces_of(pids: &[u32]) -> BTreeMap<(u64, u64), File> {
    let mut namespaces = BTreeMap::new();
    for pid in pids {
        let Ok(file) = File::open(format!("/proc/{pid}/ns/net")) else {
            continue; // gone: its sockets went with it
        };
        if let Ok(meta) = file.metadata() {
            namespaces.entry((meta.dev(), meta.ino())).or_insert(file);
        }
    }
    namespaces
}

/// In this thread: enters `namespace`, opens the iterator there and reads it to the end.
/// Each socket changed writes one 4-byte record.
fn run_in(namespace: &File, link: aya::programs::iter::IterLink) -> std::io::Result<usize> {
    // SAFETY: setns on a valid namespace descriptor; CLONE_NEWNET moves only this thread,
    // which ends right after.
    if unsafe { libc::setns(namespace.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut file = link.into_file().map_err(|error| match error {
        LinkError::SyscallError(call) => call.io_error,
        other => std::io::Error::other(other),
    })?;
    let mut records = Vec::new();
    file.read_to_end(&mut records)?;
    Ok(records.len() / 4)
}
