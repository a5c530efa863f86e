//! Attributes the sockets a process already had before its limit was set.
//!
//! New sockets are stamped by `cgroup/sock_create`; sockets that existed before the
//! datapath was attached (or that a process inherited) carry no owner, or another
//! process's. For each socket in the target's descriptor table, ChadThrottle takes a
//! duplicate with `pidfd_getfd(2)` and writes the owner into the socket storage map with
//! that descriptor as the key. A listening socket gets the owner too, so connections it
//! accepts later (which clone its storage) belong to the target as well.
//!
//! sock_diag would name the same sockets (inode, cookie), but writing socket storage from
//! userspace needs a descriptor of the socket either way; the descriptor table is the
//! direct route, and it also covers UDP and IPv6 without one dump per family.

use crate::error::Error;
use crate::layout::{Owner, SockState};
use crate::names::MAP_OWNER;
use crate::procs::socket_fds;
use aya::maps::{MapData, SkStorage};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// Update flag: only create, never overwrite.
const BPF_NOEXIST: u64 = 1;

fn pidfd_open(pid: u32) -> std::io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a PID and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor to us; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

fn pidfd_getfd(pidfd: &OwnedFd, target_fd: i32) -> std::io::Result<OwnedFd> {
    use std::os::fd::AsRawFd;
    // SAFETY: pidfd is a valid pidfd; the call returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), target_fd, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: as above, a fresh descriptor owned by us alone.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

fn is_inet(socket: &OwnedFd) -> bool {
    use std::os::fd::AsRawFd;
    let mut domain: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: domain and len are valid for writes of the sizes given.
    let status = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_DOMAIN,
            (&raw mut domain).cast(),
            &mut len,
        )
    };
    status == 0 && (domain == libc::AF_INET || domain == libc::AF_INET6)
}

/// Which sockets [`backfill`] stamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stamp {
    /// Every socket: the target of a limit takes over sockets it shares with others.
    All,
    /// Only sockets without an owner (for accounting: the creator stays the owner).
    Unowned,
}

/// Stamps the IPv4/IPv6 sockets `owner.tgid` holds with `owner`; returns how many.
/// Sockets closed while this runs are skipped.
pub fn backfill(
    owner: Owner,
    storage: &mut SkStorage<MapData, SockState>,
    which: Stamp,
) -> Result<usize, Error> {
    let pidfd = match pidfd_open(owner.tgid) {
        Ok(pidfd) => pidfd,
        Err(error) if error.raw_os_error() == Some(libc::ESRCH) => {
            return Err(Error::ProcessExited { pid: owner.tgid });
        }
        Err(error) => {
            return Err(Error::io("open a pidfd for", format!("PID {}", owner.tgid))(error));
        }
    };
    let mut stamped = 0;
    for fd in socket_fds(owner.tgid) {
        let socket = match pidfd_getfd(&pidfd, fd) {
            Ok(socket) => socket,
            Err(error) if error.raw_os_error() == Some(libc::EBADF) => continue,
            Err(error) => {
                return Err(Error::io(
                    "take a descriptor from",
                    format!("PID {} fd {fd}", owner.tgid),
                )(error));
            }
        };
        if !is_inet(&socket) {
            continue;
        }
        let flags = match which {
            Stamp::All => 0,
            Stamp::Unowned => BPF_NOEXIST,
        };
        // a socket that already has storage keeps its counters; only its owner changes
        let state = match storage.get(&socket, 0) {
            Ok(existing) => SockState { owner, ..existing },
            Err(_) => SockState {
                owner,
                ..SockState::default()
            },
        };
        match storage.insert(&socket, state, flags) {
            Ok(()) => stamped += 1,
            Err(aya::maps::MapError::SyscallError(call))
                if which == Stamp::Unowned
                    && call.io_error.raw_os_error() == Some(libc::EEXIST) => {}
            Err(error) => return Err(Error::map("write socket owner into", MAP_OWNER)(error)),
        }
    }
    Ok(stamped)
}
