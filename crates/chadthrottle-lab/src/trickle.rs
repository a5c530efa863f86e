//! The "trickle" peer of the comparison: the limited client runs under
//! `trickle -s -u KB -d KB` (Debian's trickle), which preloads a library that tracks the
//! process's TCP sockets and delays its send and receive calls. Optional: without the
//! binary the comparison says "not installed". Whether it works for the lab's Rust
//! endpoint is checked, not assumed: the library must be mapped in the client and the flow
//! must come out near the limit, else the row is "n/a" with the reason.
//!
//! With Debian's trickle 1.07 it does not work: its `socket()` tracks a socket only if the
//! type is exactly `SOCK_STREAM`, and Rust's std (like this endpoint) opens every socket
//! with `SOCK_CLOEXEC` added; nor does it follow descriptors duplicated by
//! `fcntl(F_DUPFD_CLOEXEC)` (`TcpStream::try_clone`), on which the endpoint receives.

use std::path::{Path, PathBuf};

/// What trickle preloads (`/usr/lib/…/trickle/trickle-overload.so`).
const PRELOAD: &str = "trickle-overload";

/// A flow this many times over the limit was not limited at all.
const UNLIMITED_FACTOR: f64 = 3.0;

/// The trickle binary on `PATH`, if installed.
pub fn find() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("trickle"))
        .find(|candidate| candidate.is_file())
}

/// trickle's rate unit is the KB/s of 1024 bytes (the project's unit too); at least 1.
pub fn kilobytes(rate: u64) -> u64 {
    ((rate + 512) / 1024).max(1)
}

/// The command that runs a client limited to `rate` bytes/s each way, standalone (no
/// trickled daemon).
pub fn wrapper(trickle: &Path, rate: u64) -> Vec<String> {
    let kb = kilobytes(rate).to_string();
    vec![
        trickle.display().to_string(),
        "-s".to_owned(),
        "-u".to_owned(),
        kb.clone(),
        "-d".to_owned(),
        kb,
    ]
}

/// Whether trickle's library is loaded in the process `pid`; the reason if not.
pub fn preloaded(pid: u32) -> Result<(), String> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .map_err(|error| format!("cannot read /proc/{pid}/maps: {error}"))?;
    if maps.contains(PRELOAD) {
        Ok(())
    } else {
        Err(format!(
            "{PRELOAD}.so is not loaded in the client (not dynamically linked?)"
        ))
    }
}

/// Whether a flow measured at `rate` bytes/s was limited to `limit` at all; the reason if
/// not.
pub fn limited(rate: f64, limit: f64) -> Result<(), String> {
    if rate > limit * UNLIMITED_FACTOR {
        Err(format!(
            "not limited ({:.0}× the limit): trickle 1.07 ignores sockets opened with \
             SOCK_CLOEXEC, as Rust's std opens them",
            rate / limit
        ))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_become_kilobytes_of_1024() {
        assert_eq!(kilobytes(100 * 1024), 100);
        assert_eq!(kilobytes(1 << 20), 1024);
        assert_eq!(kilobytes(200 << 20), 204_800);
        assert_eq!(kilobytes(100), 1);
        let command = wrapper(Path::new("/usr/bin/trickle"), 10 << 20);
        assert_eq!(command.join(" "), "/usr/bin/trickle -s -u 10240 -d 10240");
    }

    #[test]
    fn a_flow_far_over_the_limit_was_not_limited() {
        assert!(limited(1.5e6, 1e6).is_ok());
        assert!(limited(2.9e6, 1e6).is_ok());
        let reason = limited(4.0e9, 1e6).expect_err("not limited");
        assert!(reason.contains("4000×"), "{reason}");
    }
}
