//! Network namespaces held by a file descriptor: no name in /run/netns, no mount, so
//! nothing outlives the lab even if the test process is killed.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

/// A private network namespace; it disappears when this and every process in it are gone.
#[derive(Debug)]
pub struct NetNs {
    fd: OwnedFd,
}

impl NetNs {
    /// Creates a namespace (on a throw-away thread, so the caller's stays untouched) and
    /// brings its loopback up.
    pub fn new() -> io::Result<NetNs> {
        let fd = std::thread::spawn(|| -> io::Result<OwnedFd> {
            // SAFETY: unshare only changes this thread's namespaces.
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(File::open("/proc/thread-self/ns/net")?.into())
        })
        .join()
        .map_err(|_| io::Error::other("namespace thread panicked"))??;
        let netns = NetNs { fd };
        netns.run(|| crate::net::set_up("lo"))??;
        Ok(netns)
    }

    /// Runs `f` on a new thread inside this namespace and returns its result.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> io::Result<T> {
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    self.enter_current_thread()?;
                    Ok(f())
                })
                .join()
                .map_err(|_| io::Error::other("thread in namespace panicked"))?
        })
    }

    /// Moves the calling thread into this namespace.
    pub fn enter_current_thread(&self) -> io::Result<()> {
        // SAFETY: fd is a namespace descriptor we own; setns affects the calling thread.
        if unsafe { libc::setns(self.fd.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

impl AsFd for NetNs {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
