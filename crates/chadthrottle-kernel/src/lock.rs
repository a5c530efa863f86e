//! One ChadThrottle change at a time: installing, setting or lifting limits, pruning,
//! the qdisc sync, `reset`.
//!
//! A change takes the lock once, from its first read to its last write, and hands
//! `&StateLock` down to the helpers that must run under it, as proof. Helpers never take
//! it again: `flock` on a second descriptor waits for the first, even in the same
//! process, so a nested take would wait for ever.

use crate::error::Error;
use crate::names::{LOCK_FILE, RUN_DIR};
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::Path;

/// Creates ChadThrottle's directory in /run, root's alone (0700): the lock in it cannot be
/// taken by another user to stall every command, and the records in it name interfaces
/// of every namespace. Returns its path.
pub fn run_dir() -> Result<&'static Path, Error> {
    let dir = Path::new(RUN_DIR);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(Error::io("create", dir))?;
    Ok(dir)
}

/// Opens `path` for writing, creating it mode 0600 if it is not there.
pub fn open_private(path: &Path, truncate: bool) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(truncate)
        .write(true)
        .mode(0o600)
        .open(path)
}

/// Held while pinned state is changed; released on drop (or when the process dies), so
/// never between two changes.
#[derive(Debug)]
pub struct StateLock {
    _file: File,
}

/// Waits for and takes the machine-wide lock.
pub fn lock() -> Result<StateLock, Error> {
    run_dir()?;
    let path = Path::new(LOCK_FILE);
    let file = open_private(path, false).map_err(Error::io("open", path))?;
    // SAFETY: the descriptor is open for the duration of the call.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(Error::io("lock", path)(std::io::Error::last_os_error()));
    }
    Ok(StateLock { _file: file })
}
