//! What /proc says about a process: identity, name, cgroup, sockets.

use chadthrottle_core::process::ProcessInfo;
use chadthrottle_core::process::Uids;
use chadthrottle_core::saved::Running;
use chadthrottle_core::usage::ProcessDetails;
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
        uids: Uids {
            real: status.ruid,
            effective: status.euid,
            saved: status.suid,
        },
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

/// The user name of `uid` from /etc/passwd, or the number.
pub fn user_name(uid: u32) -> String {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            let id = fields.nth(1)?.parse::<u32>().ok()?;
            (id == uid).then(|| name.to_owned())
        })
        .next()
        .unwrap_or_else(|| uid.to_string())
}

/// Command line, executable, working directory, user, memory and threads of `pid`, if it
/// still is the process that started at `start_time`. Fields /proc refuses stay empty.
pub fn details(pid: u32, start_time: u64) -> Option<ProcessDetails> {
    let process = Process::new(i32::try_from(pid).ok()?).ok()?;
    let stat = process.stat().ok()?;
    if stat.starttime != start_time {
        return None;
    }
    let path = |p: procfs::ProcResult<std::path::PathBuf>| {
        p.map(|p| p.display().to_string()).unwrap_or_default()
    };
    let status = process.status().ok();
    Some(ProcessDetails {
        pid,
        cmdline: process.cmdline().map(|a| a.join(" ")).unwrap_or_default(),
        exe: path(process.exe()),
        cwd: path(process.cwd()),
        user: status
            .as_ref()
            .map(|s| user_name(s.ruid))
            .unwrap_or_default(),
        memory: status.as_ref().and_then(|s| s.vmrss).unwrap_or(0) * 1024,
        threads: u64::try_from(stat.num_threads).unwrap_or(0),
    })
}

/// The executable of `pid`, if /proc shows it.
pub fn exe(pid: u32) -> Option<String> {
    let process = Process::new(i32::try_from(pid).ok()?).ok()?;
    process.exe().ok().map(|path| path.display().to_string())
}

/// Every process whose executable /proc shows: PID, executable, start time.
pub fn running() -> Vec<Running> {
    let Ok(processes) = procfs::process::all_processes() else {
        return Vec::new();
    };
    processes
        .filter_map(Result::ok)
        .filter_map(|process| {
            Some(Running {
                pid: u32::try_from(process.pid).ok()?,
                exe: process.exe().ok()?.display().to_string(),
                start_time: process.stat().ok()?.starttime,
            })
        })
        .collect()
}

/// The command lines (program first) of root's processes named `name` (their `comm`, at
/// most 15 bytes), as /proc/PID/cmdline gives them; a process that cannot be read is passed
/// over. Only root's: a process any user can start under that name must not steer what a
/// root command reads (a `dockerd` of a user's own, naming a data root of made-up
/// containers, could make `--container NAME` name another cgroup).
pub fn root_command_lines_of(name: &str) -> Vec<Vec<String>> {
    let Ok(processes) = procfs::process::all_processes() else {
        return Vec::new();
    };
    processes
        .filter_map(Result::ok)
        .filter(|process| process.stat().is_ok_and(|stat| stat.comm == name))
        .filter(|process| {
            process
                .status()
                .is_ok_and(|status| status.ruid == 0 && status.euid == 0)
        })
        .filter_map(|process| process.cmdline().ok())
        .filter(|args| !args.is_empty())
        .collect()
}

/// Every process now with its parent: (PID, parent PID, start time).
pub fn parents() -> Vec<(u32, u32, u64)> {
    let Ok(processes) = procfs::process::all_processes() else {
        return Vec::new();
    };
    processes
        .filter_map(Result::ok)
        .filter_map(|process| {
            let stat = process.stat().ok()?;
            Some((
                u32::try_from(process.pid).ok()?,
                u32::try_from(stat.ppid).ok()?,
                stat.starttime,
            ))
        })
        .collect()
}

/// The kernel's pid_max: every PID is below it. Its ceiling, `PID_MAX_LIMIT`, if the file
/// cannot be read.
pub fn pid_max() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(crate::config::PID_MAX_LIMIT)
}
