//! What /proc says about a process: identity, name, cgroup, sockets.

use chadthrottle_core::process::ProcessInfo;
use procfs::process::{FDTarget, Process};

/// `PF_KTHREAD` in /proc/PID/stat's flags.
const PF_KTHREAD: u32 = 0x0020_0000;

/// Looks `pid` up; `None` if no such process (or thread) exists now.
pub fn inspect(pid: u32) -> Option<ProcessInfo> {
    let process = Process::new(i32::try_from(pid).ok()?).ok()?;
    let stat = process.stat().ok()?;
    let status = process.status().ok()?;
    let cgroup = process.cgroups().ok().and_then(|groups| {
        groups
            .into_iter()
            .find(|group| group.hierarchy == 0)
            .map(|group| group.pathname)
    });
    Some(ProcessInfo {
        pid,
        tgid: u32::try_from(status.tgid).ok()?,
        start_time: stat.starttime,
        name: stat.comm,
        kernel_thread: stat.flags & PF_KTHREAD != 0,
        cgroup,
    })
}

/// The start time of `pid` now, `None` if it is gone.
pub fn start_time(pid: u32) -> Option<u64> {
    let process = Process::new(i32::try_from(pid).ok()?).ok()?;
    process.stat().ok().map(|stat| stat.starttime)
}

/// Whether `pid` is the same process incarnation as the one that started at `start`.
pub fn is_alive(pid: u32, start: u64) -> bool {
    start_time(pid) == Some(start)
}

/// One descriptor number for each distinct socket `pid` has open (a socket held twice,
/// after `dup`, is listed once).
pub fn socket_fds(pid: u32) -> Vec<i32> {
    let Ok(process) = i32::try_from(pid)
        .map_err(|_| ())
        .and_then(|pid| Process::new(pid).map_err(|_| ()))
    else {
        return Vec::new();
    };
    let Ok(fds) = process.fd() else {
        return Vec::new();
    };
    let mut seen = std::collections::HashSet::new();
    fds.filter_map(Result::ok)
        .filter_map(|fd| match fd.target {
            FDTarget::Socket(inode) if seen.insert(inode) => Some(fd.fd),
            _ => None,
        })
        .collect()
}
