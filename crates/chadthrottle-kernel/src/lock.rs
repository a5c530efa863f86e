//! One ChadThrottle change at a time: installing, setting or lifting limits, pruning,
//! the qdisc sync, `reset`.
//!
//! A change takes the lock once, from its first read to its last write, and hands
//! `&StateLock` down to the helpers that must run under it, as proof. Helpers never take
//! it again: `flock` on a second descriptor waits for the first, even in the same
//! process, so a nested take would wait for ever.

use crate::error::Error;
use crate::names::LOCK_FILE;
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::Path;

/// Held while pinned state is changed; released on drop (or when the process dies), so
/// never between two changes.
#[derive(Debug)]
pub struct StateLock {
    _file: File,
}

/// Waits for and takes the machine-wide lock.
pub fn lock() -> Result<StateLock, Error> {
    let path = Path::new(LOCK_FILE);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(Error::io("create", dir))?;
    }
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(Error::io("open", path))?;
    // SAFETY: the descriptor is open for the duration of the call.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(Error::io("lock", path)(std::io::Error::last_os_error()));
    }
    Ok(StateLock { _file: file })
}
