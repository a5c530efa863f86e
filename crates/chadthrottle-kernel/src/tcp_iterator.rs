//! The shaping backend's one userspace step: running the TCP iterator (`ct_iter_tcp`) over
//! the network namespaces of limited processes, so that sockets already open are shaped the
//! moment a limit is set and get their own settings back the moment it goes. Everything
//! after that happens in the sockets' own sock_ops callbacks (bpf/shaper.bpf.c).
//!
//! A TCP iterator walks the sockets of the network namespace current when it is opened, so
//! each namespace gets its own short thread that enters it (`setns` changes only the
//! calling thread's namespace) and reads the iterator there.

use crate::error::Error;
use crate::loader;
use crate::names::PROG_ITER_TCP;
use crate::netns::NetnsId;
use aya::programs::Iter;
use aya::programs::links::LinkError;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;

/// Brings the open TCP sockets of every network namespace `pids` use in line with the
/// limits in the kernel now; returns how many sockets were shaped or restored. Processes
/// that are gone are skipped.
pub fn reconcile(pin_dir: &Path, pids: &[u32]) -> Result<usize, Error> {
    let namespaces = namespaces_of(pids);
    if namespaces.is_empty() {
        return Ok(0);
    }
    let mut ebpf = match loader::load_with_pins(pin_dir, PROG_ITER_TCP) {
        Ok(ebpf) => ebpf,
        // a kernel that refuses the iterator a helper (5.10) is one where shaping is
        // unavailable (`probe::ready`), so no socket there was shaped: none to reconcile
        Err(Error::NeedsNewerKernel { .. }) => return Ok(0),
        Err(error) => return Err(error),
    };
    let iter = loader::program::<Iter>(&mut ebpf, PROG_ITER_TCP)?;
    let mut changed = 0;
    for namespace in namespaces.into_values() {
        let link = iter
            .attach()
            .and_then(|id| iter.take_link(id))
            .map_err(Error::program("attach", PROG_ITER_TCP))?;
        let records = crate::netns::run_in(&namespace, || read_iterator(link))
            .and_then(|read| read)
            .map_err(Error::io(
                "run the TCP socket iterator in",
                "a network namespace",
            ))?;
        changed += records;
    }
    Ok(changed)
}

/// One descriptor per distinct network namespace of `pids` (gone processes' sockets went
/// with them).
fn namespaces_of(pids: &[u32]) -> BTreeMap<NetnsId, File> {
    pids.iter()
        .filter_map(|&pid| crate::netns::of_pid(pid))
        .collect()
}

/// Opens the iterator in the current thread's namespace and reads it to the end. Each
/// socket changed writes one 4-byte record.
fn read_iterator(link: aya::programs::iter::IterLink) -> std::io::Result<usize> {
    let mut file = link.into_file().map_err(|error| match error {
        LinkError::SyscallError(call) => call.io_error,
        other => std::io::Error::other(other),
    })?;
    let mut records = Vec::new();
    file.read_to_end(&mut records)?;
    Ok(records.len() / 4)
}
