//! A process's TCP sockets read from outside it (`pidfd_getfd`): their pacing cap and
//! receive window clamp, for the tests that check what the shaper and ifb set and give
//! back.

use anyhow::ensure;
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd, RawFd};

/// The pacing cap and receive window clamp of a process's established TCP sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketSettings {
    pub max_pacing_rate: u64,
    pub window_clamp: u32,
}

pub fn check(result: libc::c_long, what: &str) -> anyhow::Result<libc::c_long> {
    ensure!(result >= 0, "{what}: {}", std::io::Error::last_os_error());
    Ok(result)
}

pub fn getsockopt<T: Default>(fd: RawFd, level: i32, name: i32) -> anyhow::Result<T> {
    let mut value = T::default();
    let mut len = std::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: value is a live T and len its size; the kernel writes at most len bytes.
    let result = unsafe { libc::getsockopt(fd, level, name, (&raw mut value).cast(), &mut len) };
    check(result.into(), "getsockopt")?;
    Ok(value)
}

/// Calls `read` with a copy of every TCP socket `pid` holds that is not listening (once per
/// socket, however many descriptors it has).
pub fn each_tcp_socket(
    pid: u32,
    mut read: impl FnMut(RawFd) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    // SAFETY: plain syscalls; the returned descriptors are owned at once.
    let pidfd = check(
        unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) },
        "pidfd_open",
    )?;
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as RawFd) };
    let mut seen = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd"))? {
        let entry = entry?;
        let link = std::fs::read_link(entry.path()).unwrap_or_default();
        let link = link.to_string_lossy().into_owned();
        if !link.starts_with("socket:") || !seen.insert(link) {
            continue;
        }
        let fd: i32 = entry.file_name().to_string_lossy().parse()?;
        // SAFETY: as above.
        let copy = check(
            unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) },
            "pidfd_getfd",
        )?;
        let socket = unsafe { OwnedFd::from_raw_fd(copy as RawFd) };
        let raw = socket.as_raw_fd();
        let protocol: i32 = getsockopt(raw, libc::SOL_SOCKET, libc::SO_PROTOCOL)?;
        let listening: i32 = getsockopt(raw, libc::SOL_SOCKET, libc::SO_ACCEPTCONN)?;
        if protocol != libc::IPPROTO_TCP || listening != 0 {
            continue;
        }
        read(raw)?;
    }
    Ok(())
}

/// The settings of every TCP socket `pid` holds that is not listening.
pub fn socket_settings(pid: u32) -> anyhow::Result<Vec<SocketSettings>> {
    let mut settings = Vec::new();
    each_tcp_socket(pid, |raw| {
        settings.push(SocketSettings {
            max_pacing_rate: getsockopt(raw, libc::SOL_SOCKET, libc::SO_MAX_PACING_RATE)?,
            window_clamp: getsockopt::<i32>(raw, libc::IPPROTO_TCP, libc::TCP_WINDOW_CLAMP)? as u32,
        });
        Ok(())
    })?;
    Ok(settings)
}
