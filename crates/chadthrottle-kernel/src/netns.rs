//! Network namespaces of processes, and running work inside one. `setns` moves only the
//! calling thread, so work in another namespace runs on a short thread of its own that
//! enters it first and ends with the work.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;

/// A network namespace's identity: `st_dev` and `st_ino` of its nsfs inode.
pub(crate) type NetnsId = (u64, u64);

fn id_of(file: &File) -> Option<NetnsId> {
    let meta = file.metadata().ok()?;
    Some((meta.dev(), meta.ino()))
}

/// The network namespace of `pid` and a descriptor to enter it by; `None` once the
/// process is gone.
pub(crate) fn of_pid(pid: u32) -> Option<(NetnsId, File)> {
    let file = File::open(format!("/proc/{pid}/ns/net")).ok()?;
    Some((id_of(&file)?, file))
}

/// A descriptor of the namespace `id`, found through a name in /run/netns or any process
/// in it; `None` when it no longer exists (or only a descriptor holds it).
pub(crate) fn find(id: NetnsId) -> Option<File> {
    let named = std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|entry| entry.path());
    let processes = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().parse::<u32>().is_ok())
        .map(|entry| entry.path().join("ns/net"));
    named.chain(processes).find_map(|path| {
        let file = File::open(path).ok()?;
        (id_of(&file)? == id).then_some(file)
    })
}

/// Runs `work` in the namespace `namespace` refers to, on a thread that enters it and ends
/// with the work. Err: the namespace could not be entered, or the work panicked.
pub(crate) fn run_in<T: Send>(namespace: &File, work: impl FnOnce() -> T + Send) -> io::Result<T> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                // SAFETY: setns on a valid namespace descriptor; CLONE_NEWNET moves only
                // this thread, which ends when the work returns.
                if unsafe { libc::setns(namespace.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(work())
            })
            .join()
            .unwrap_or_else(|_| {
                Err(io::Error::other(
                    "the thread working in the namespace panicked",
                ))
            })
    })
}
