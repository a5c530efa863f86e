//! Detaching a pinned link at once (`BPF_LINK_DETACH`, Linux 5.9), so that `reset`
//! returns with its cgroup programs gone: removing a link's pin alone detaches it only
//! after an RCU grace period and a work item, which a busy machine stretches.

use std::ffi::CString;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;

const BPF_OBJ_GET: libc::c_long = 7;
const BPF_LINK_DETACH: libc::c_long = 34;
/// The kernel's own "not supported" (not in libc: it should not reach userspace, and
/// from bpf(2) it does).
const ENOTSUPP: i32 = 524;

/// The part of `union bpf_attr` BPF_OBJ_GET reads, padded to the union's 5.10 size.
#[repr(C)]
#[derive(Default)]
struct ObjGetAttr {
    pathname: u64,
    bpf_fd: u32,
    file_flags: u32,
    rest: [u64; 14],
}

/// The part of `union bpf_attr` BPF_LINK_DETACH reads, padded likewise.
#[repr(C)]
#[derive(Default)]
struct LinkDetachAttr {
    link_fd: u32,
    _pad: u32,
    rest: [u64; 15],
}

fn bpf<T>(command: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: attr is a valid, writable bpf_attr prefix of the size passed, zeroed beyond
    // the fields the command reads.
    let status = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            command,
            std::ptr::from_mut(attr),
            std::mem::size_of::<T>(),
        )
    };
    if status < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(status)
    }
}

/// Detaches the link pinned at `pin` from what it is attached to, now. Ok(false) where the
/// kernel cannot detach this kind of link (an iterator's or a tracing program's link:
/// EOPNOTSUPP/EINVAL) — removing its pin then releases it as before.
pub fn detach_pinned(pin: &Path) -> io::Result<bool> {
    let path = CString::new(pin.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL in the pin's path"))?;
    let mut get = ObjGetAttr {
        pathname: path.as_ptr() as u64,
        ..ObjGetAttr::default()
    };
    let fd = bpf(BPF_OBJ_GET, &mut get)?;
    let fd =
        RawFd::try_from(fd).map_err(|_| io::Error::other("BPF_OBJ_GET: an fd out of range"))?;
    // SAFETY: BPF_OBJ_GET returned a new fd that nothing else owns.
    let link = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut detach = LinkDetachAttr {
        link_fd: u32::try_from(std::os::fd::AsRawFd::as_raw_fd(&link)).unwrap_or(u32::MAX),
        ..LinkDetachAttr::default()
    };
    match bpf(BPF_LINK_DETACH, &mut detach) {
        Ok(_) => Ok(true),
        Err(error)
            if matches!(
                error.raw_os_error(),
                Some(libc::EOPNOTSUPP | libc::EINVAL | ENOTSUPP)
            ) =>
        {
            Ok(false)
        }
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_pin_is_an_error_naming_it_not_found() {
        let error = detach_pinned(Path::new("/nonexistent-ct-pin")).expect_err("no such pin");
        // BPF_OBJ_GET answers ENOENT for a missing path (EPERM without the privilege)
        assert!(
            matches!(error.raw_os_error(), Some(libc::ENOENT | libc::EPERM)),
            "{error}"
        );
    }
}
