//! Limits the TUI saves so that `--restore` can set them again (after a `reset`, say),
//! and the matching of saved limits to running processes: by executable *and* start time,
//! never by bare PID, so a PID reused by another program is never throttled. The PID is
//! matched too: start times have clock-tick resolution, and two runs of one program can
//! start in the same tick.

use serde::{Deserialize, Serialize};

/// One saved limit. Rates in bytes per second; `None` unlimited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedLimit {
    pub pid: u32,
    /// The executable, as /proc/PID/exe points to it.
    pub exe: String,
    /// Field 22 of /proc/PID/stat.
    pub start_time: u64,
    pub name: String,
    pub up: Option<u64>,
    pub down: Option<u64>,
}

impl SavedLimit {
    fn same_process(&self, other: &SavedLimit) -> bool {
        (self.pid, self.start_time, &self.exe) == (other.pid, other.start_time, &other.exe)
    }
}

/// The saved limits file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedLimits {
    pub limits: Vec<SavedLimit>,
}

/// A running process as seen for matching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Running {
    pub pid: u32,
    pub exe: String,
    pub start_time: u64,
}

impl SavedLimits {
    /// Records `limit` in place of any saved one for the same process; a limit with
    /// neither direction removes it.
    pub fn set(&mut self, limit: SavedLimit) {
        self.limits.retain(|saved| !saved.same_process(&limit));
        if limit.up.is_some() || limit.down.is_some() {
            self.limits.push(limit);
        }
    }

    /// Each saved limit whose process runs, with its PID now; saved limits of processes
    /// that no longer run are dropped (their start time can never come back).
    pub fn restore(&mut self, running: &[Running]) -> Vec<(u32, SavedLimit)> {
        let mut found = Vec::new();
        self.limits.retain(|saved| {
            let process = running.iter().find(|r| {
                r.pid == saved.pid && r.exe == saved.exe && r.start_time == saved.start_time
            });
            if let Some(process) = process {
                found.push((process.pid, saved.clone()));
            }
            process.is_some()
        });
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved(pid: u32, exe: &str, start_time: u64, up: Option<u64>) -> SavedLimit {
        SavedLimit {
            pid,
            exe: exe.into(),
            start_time,
            name: "x".into(),
            up,
            down: None,
        }
    }

    #[test]
    fn matches_by_executable_and_start_time_never_by_pid() {
        let mut file = SavedLimits::default();
        file.set(saved(42, "/usr/bin/curl", 100, Some(1024)));
        file.set(saved(44, "/usr/bin/wget", 200, Some(2048)));
        let running = [
            // the PID the curl had, now another program: not throttled
            Running {
                pid: 42,
                exe: "/usr/bin/ssh".into(),
                start_time: 100,
            },
            // curl again, but a later run: not the same process
            Running {
                pid: 43,
                exe: "/usr/bin/curl".into(),
                start_time: 150,
            },
            // another run of wget started in the same clock tick: not the same process
            Running {
                pid: 45,
                exe: "/usr/bin/wget".into(),
                start_time: 200,
            },
            Running {
                pid: 44,
                exe: "/usr/bin/wget".into(),
                start_time: 200,
            },
        ];
        let found = file.restore(&running);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, 44);
        assert_eq!(file.limits.len(), 1, "the gone curl is forgotten");
    }

    #[test]
    fn setting_replaces_and_clearing_removes() {
        let mut file = SavedLimits::default();
        file.set(saved(42, "/usr/bin/curl", 100, Some(1024)));
        file.set(saved(42, "/usr/bin/curl", 100, Some(4096)));
        assert_eq!(file.limits.len(), 1);
        assert_eq!(file.limits[0].up, Some(4096));
        file.set(saved(42, "/usr/bin/curl", 100, None));
        assert!(file.limits.is_empty());
    }
}
