//! Which process a limit belongs to: a PID alone is not enough, PIDs are reused.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A process incarnation: its PID and its start time.
///
/// `start_time` is field 22 of `/proc/PID/stat` (clock ticks after boot), which the
/// datapath reproduces from `task->start_boottime`; two processes that share a PID at
/// different times never share a start time, so a limit can never pass to a newcomer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ProcessRef {
    pub pid: u32,
    pub start_time: u64,
}

impl fmt::Display for ProcessRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PID {}", self.pid)
    }
}

/// A process's user ids, as /proc/PID/status lists them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Uids {
    pub real: u32,
    pub effective: u32,
    pub saved: u32,
}

impl Uids {
    /// All three the same `uid`.
    pub const fn of(uid: u32) -> Uids {
        Uids {
            real: uid,
            effective: uid,
            saved: uid,
        }
    }

    pub const fn is_root(self) -> bool {
        self.real == 0
    }

    /// kill(2)'s rule: whether a process with these ids may signal `target`.
    pub const fn may_signal(self, target: Uids) -> bool {
        self.real == 0
            || self.real == target.real
            || self.real == target.saved
            || self.effective == target.real
            || self.effective == target.saved
    }
}

impl fmt::Display for Uids {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "real {}, effective {}, saved {}",
            self.real, self.effective, self.saved
        )
    }
}

/// What ChadThrottle needs to know about a PID before limiting it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    /// The PID asked about (a thread ID if it names a thread).
    pub pid: u32,
    /// The process the PID belongs to.
    pub tgid: u32,
    /// Clock ticks after boot, as [`ProcessRef::start_time`].
    pub start_time: u64,
    /// `comm`: the first 15 bytes of the executable's name.
    pub name: String,
    pub kernel_thread: bool,
    /// Path in the cgroup2 tree (`/user.slice/…`), if the process is in it.
    pub cgroup: Option<String>,
    /// Whose it is.
    pub uids: Uids,
}

/// Why a PID cannot be limited. Each message names the PID and what to do instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error(
        "no process with PID {pid}; `chadthrottle status` lists limited processes, `ps -e` all of them"
    )]
    NoSuchProcess { pid: u32 },
    #[error("PID {pid} ({name}) is a kernel thread: it has no sockets of its own to limit")]
    KernelThread { pid: u32, name: String },
    #[error("PID {pid} is chadthrottle itself")]
    Ourselves { pid: u32 },
    #[error(
        "PID {pid} is a thread of process {tgid}: limits apply to whole processes, use --pid {tgid}"
    )]
    Thread { pid: u32, tgid: u32 },
    #[error(
        "PID {pid} is in cgroup {cgroup}, outside {scope} where ChadThrottle is attached \
         (--cgroup): its traffic would not pass the datapath"
    )]
    OutsideScope {
        pid: u32,
        cgroup: String,
        scope: String,
    },
}

/// Checks that `info` (the lookup of `pid`, `None` if absent) is a process ChadThrottle
/// may limit from `own_pid`, attached at `scope` (a cgroup2 path such as `/` or
/// `/ct-test`), and returns it as a [`ProcessRef`] with its name.
pub fn validate_target(
    pid: u32,
    info: Option<ProcessInfo>,
    own_pid: u32,
    scope: &str,
) -> Result<(ProcessRef, String), TargetError> {
    let info = info.ok_or(TargetError::NoSuchProcess { pid })?;
    if info.kernel_thread {
        return Err(TargetError::KernelThread {
            pid,
            name: info.name,
        });
    }
    if info.tgid == own_pid {
        return Err(TargetError::Ourselves { pid });
    }
    if info.tgid != pid {
        return Err(TargetError::Thread {
            pid,
            tgid: info.tgid,
        });
    }
    let cgroup = info.cgroup.unwrap_or_default();
    if !cgroup_within(&cgroup, scope) {
        return Err(TargetError::OutsideScope {
            pid,
            cgroup: if cgroup.is_empty() {
                "(none in cgroup2)".into()
            } else {
                cgroup
            },
            scope: scope.to_owned(),
        });
    }
    Ok((
        ProcessRef {
            pid,
            start_time: info.start_time,
        },
        info.name,
    ))
}

/// Whether cgroup path `path` is `scope` or below it, comparing whole components.
pub fn cgroup_within(path: &str, scope: &str) -> bool {
    let components = |p: &str| {
        p.split('/')
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let (path, scope) = (components(path), components(scope));
    path.len() >= scope.len()
        && path[..scope.len()] == scope[..]
        && (!path.is_empty() || scope.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(pid: u32) -> ProcessInfo {
        ProcessInfo {
            pid,
            tgid: pid,
            start_time: 77,
            name: "iperf3".into(),
            kernel_thread: false,
            cgroup: Some("/ct-test/a".into()),
            uids: Uids::of(0),
        }
    }

    #[test]
    fn a_plain_process_in_scope_is_accepted() {
        let accepted = validate_target(10, Some(info(10)), 1, "/ct-test");
        assert_eq!(
            accepted,
            Ok((
                ProcessRef {
                    pid: 10,
                    start_time: 77
                },
                "iperf3".into()
            ))
        );
        assert!(validate_target(10, Some(info(10)), 1, "/").is_ok());
    }

    #[test]
    fn each_refusal_names_the_pid() {
        let kernel = ProcessInfo {
            kernel_thread: true,
            name: "kworker/0:1".into(),
            ..info(2)
        };
        let thread = ProcessInfo {
            tgid: 10,
            ..info(11)
        };
        let cases = [
            (validate_target(5, None, 1, "/"), "no process with PID 5"),
            (
                validate_target(2, Some(kernel), 1, "/"),
                "PID 2 (kworker/0:1) is a kernel thread",
            ),
            (
                validate_target(10, Some(info(10)), 10, "/"),
                "PID 10 is chadthrottle itself",
            ),
            (validate_target(11, Some(thread), 1, "/"), "use --pid 10"),
            (
                validate_target(10, Some(info(10)), 1, "/ct-test-other"),
                "PID 10 is in cgroup /ct-test/a, outside /ct-test-other",
            ),
        ];
        for (result, expected) in cases {
            let message = result.expect_err(expected).to_string();
            assert!(message.contains(expected), "{message}");
        }
    }

    #[test]
    fn cgroup_scope_compares_whole_components() {
        assert!(cgroup_within("/a/b", "/a"));
        assert!(cgroup_within("/a", "/a/"));
        assert!(cgroup_within("/a", "/"));
        assert!(cgroup_within("/", "/"));
        assert!(!cgroup_within("/ab", "/a"));
        assert!(!cgroup_within("/a", "/a/b"));
        assert!(!cgroup_within("", "/a"));
    }
}
