//! A private cgroup2 directory per lab: the lab's client processes are started inside it
//! (or in a directory below it, for a process that needs a cgroup of its own) and the
//! datapath attaches to it, so nothing else on the machine is ever policed.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A cgroup2 directory created for one lab and removed with it.
#[derive(Debug)]
pub struct TestCgroup {
    path: PathBuf,
}

impl TestCgroup {
    /// Creates `<cgroup2 root>/<name>`.
    pub fn new(name: &str) -> io::Result<TestCgroup> {
        let root = chadthrottle_kernel::mounts::cgroup2_root()
            .map_err(|error| io::Error::other(error.to_string()))?;
        TestCgroup::under(&root, name)
    }

    /// Creates `<parent>/<name>`: a lab client alone in a cgroup below the lab's (the
    /// datapath attached there holds it too).
    pub fn under(parent: &Path, name: &str) -> io::Result<TestCgroup> {
        let path = parent.join(name);
        std::fs::create_dir(&path)?;
        Ok(TestCgroup { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn pids(path: &Path) -> Vec<u32> {
    std::fs::read_to_string(path.join("cgroup.procs"))
        .map(|text| {
            text.lines()
                .filter_map(|line| line.trim().parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Ends the processes in the lab cgroup `path` and removes it, the directories below it
/// first (a directory with children cannot go). Only the lab starts processes in such a
/// directory (created empty under a unique name), so whatever is left there is the lab's
/// to end.
pub fn remove(path: &Path) {
    if let Ok(entries) = std::fs::read_dir(path) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                remove(&entry.path());
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let pids = pids(path);
        if pids.is_empty() || Instant::now() > deadline {
            break;
        }
        for pid in pids {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    while path.exists() && std::fs::remove_dir(path).is_err() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        remove(&self.path);
    }
}
