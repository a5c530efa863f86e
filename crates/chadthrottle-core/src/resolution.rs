//! Resolving a rule's target on a machine, the part that needs no machine: the one-line
//! refusals both the real machine and the fake give, and the decisions taken on what they
//! read (a tree's first process, a container among cgroups and runtime records).

use crate::cgroup_names::{CgroupError, ContainerRecord, container_in_cgroup, resolve_container};
use crate::process::{ProcessInfo, ProcessRef, TargetError};
use crate::rule_request::ResolvedTarget;

/// Why a target does not resolve: one line naming the value in quotes and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("tree PID {pid}: {source}")]
    Tree { pid: u32, source: TargetError },
    #[error(
        "executable \"{exe}\": its directory \"{directory}\" does not exist; give the path of an installed program, as /proc/PID/exe shows it"
    )]
    ExeDirectory { exe: String, directory: String },
    #[error(
        "user \"{0}\" is not in the user database (getent passwd lists it): give an existing login name or a uid"
    )]
    UnknownUser(String),
    #[error(
        "cgroup path \"{0}\" does not exist on the cgroup2 mount: `systemd-cgls` lists the cgroups, give one relative to the mount"
    )]
    CgroupMissing(String),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error(
        "container \"{spec}\" ({id}) is not running: it has no cgroup; start it, then set the rule"
    )]
    ContainerStopped { spec: String, id: String },
    #[error(
        "container \"{spec}\" ({id}) has no cgroup2 directory of its own: it is stopped, or its runtime put it in cgroup v1 hierarchies only, which this machine mounts beside cgroup2 and ChadThrottle does not match; start it with a runtime that creates its cgroup2 directory on such a host (runc does; crun refuses), or boot with cgroup2 alone (systemd.unified_cgroup_hierarchy=1)"
    )]
    ContainerNoCgroup2 { spec: String, id: String },
    #[error("{what}: {problem}")]
    Read { what: String, problem: String },
}

/// The tree whose first process is `pid`, given what /proc shows of it (`None`: no such
/// PID). A thread is refused as `limit --pid` refuses it: a tree starts at a process.
pub fn resolve_tree(pid: u32, info: Option<ProcessInfo>) -> Result<ResolvedTarget, ResolveError> {
    let refuse = |source| ResolveError::Tree { pid, source };
    let info = info.ok_or_else(|| refuse(TargetError::NoSuchProcess { pid }))?;
    if info.kernel_thread {
        return Err(refuse(TargetError::KernelThread {
            pid,
            name: info.name,
        }));
    }
    if info.tgid != pid {
        return Err(refuse(TargetError::Thread {
            pid,
            tgid: info.tgid,
        }));
    }
    Ok(ResolvedTarget::Tree {
        root: ProcessRef {
            pid,
            start_time: info.start_time,
        },
    })
}

/// How the machine mounts cgroups: what a container without a cgroup2 directory may mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupLayout {
    /// cgroup2 alone: a container without a cgroup2 directory is not running.
    Unified,
    /// cgroup v1 hierarchies beside cgroup2 (systemd's "hybrid", or a host without
    /// systemd that mounts both): a running container may have v1 directories only.
    Hybrid,
}

/// The cgroup of container `spec` (a name, an id or an id prefix): the runtimes' `records`
/// give names, the cgroup2 directories `dirs` (relative to the mount) say which containers
/// run. A container only the cgroups show (containerd's) is found by id.
pub fn container_cgroup<S: AsRef<str>>(
    spec: &str,
    dirs: &[S],
    records: &[ContainerRecord],
    layout: CgroupLayout,
) -> Result<String, ResolveError> {
    let running: Vec<(String, String)> = dirs
        .iter()
        .filter_map(|dir| container_in_cgroup(dir.as_ref()))
        .map(|found| (found.id, found.cgroup))
        .collect();
    let mut known = records.to_vec();
    for (id, _) in &running {
        if !known.iter().any(|record| record.id == *id) {
            known.push(ContainerRecord {
                id: id.clone(),
                names: Vec::new(),
            });
        }
    }
    let record = resolve_container(spec, &known)?;
    running
        .into_iter()
        .find(|(id, _)| *id == record.id)
        .map(|(_, cgroup)| cgroup)
        .ok_or_else(|| {
            let spec = spec.to_owned();
            let id = record.id.get(..12).unwrap_or(&record.id).to_owned();
            match layout {
                CgroupLayout::Unified => ResolveError::ContainerStopped { spec, id },
                CgroupLayout::Hybrid => ResolveError::ContainerNoCgroup2 { spec, id },
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::Uids;

    fn info(pid: u32, tgid: u32) -> ProcessInfo {
        ProcessInfo {
            pid,
            tgid,
            start_time: 9,
            name: "steam".into(),
            kernel_thread: false,
            cgroup: Some("/".into()),
            uids: Uids::of(0),
        }
    }

    #[test]
    fn a_tree_starts_at_a_running_process() {
        assert_eq!(
            resolve_tree(42, Some(info(42, 42))),
            Ok(ResolvedTarget::Tree {
                root: ProcessRef {
                    pid: 42,
                    start_time: 9
                }
            })
        );
        let message =
            |result: Result<ResolvedTarget, ResolveError>| result.expect_err("refused").to_string();
        assert!(message(resolve_tree(42, None)).starts_with("tree PID 42: no process with PID 42"));
        assert!(message(resolve_tree(43, Some(info(43, 42)))).contains("use --pid 42"));
        let kernel = ProcessInfo {
            kernel_thread: true,
            ..info(2, 2)
        };
        assert!(message(resolve_tree(2, Some(kernel))).contains("is a kernel thread"));
    }

    const WEB: &str = "3f4e8a1b2c3d4e5f60718293a4b5c6d7e8f90123456789abcdef0123456789ab";
    const DB: &str = "0a1b2c3d4e5f60718293a4b5c6d7e8f90123456789abcdef0123456789abcdef";
    const CRI: &str = "9999999999999999999999999999999999999999999999999999999999999999";

    fn records() -> Vec<ContainerRecord> {
        vec![
            ContainerRecord {
                id: WEB.into(),
                names: vec!["web".into()],
            },
            ContainerRecord {
                id: DB.into(),
                names: vec!["db".into()],
            },
        ]
    }

    #[test]
    fn a_container_is_found_by_name_or_id_among_the_running() {
        let web = format!("/system.slice/docker-{WEB}.scope");
        let cri = format!("/kubepods.slice/cri-containerd-{CRI}.scope");
        let dirs = ["/system.slice".to_owned(), web.clone(), cri.clone()];
        let found = |spec| container_cgroup(spec, &dirs, &records(), CgroupLayout::Unified);
        assert_eq!(found("web"), Ok(web.clone()));
        assert_eq!(found("3f4e8a"), Ok(web));
        assert_eq!(found("99999"), Ok(cri));
        let stopped = found("db").expect_err("stopped").to_string();
        assert_eq!(
            stopped,
            "container \"db\" (0a1b2c3d4e5f) is not running: it has no cgroup; start it, then set the rule"
        );
        // on a hybrid host the container may run with v1 directories only: the line says
        // so, and what to do, instead of calling it stopped
        let hybrid = container_cgroup("db", &dirs, &records(), CgroupLayout::Hybrid)
            .expect_err("no cgroup2 directory")
            .to_string();
        assert!(
            hybrid.starts_with(
                "container \"db\" (0a1b2c3d4e5f) has no cgroup2 directory of its own: it is stopped, or its runtime put it in cgroup v1 hierarchies only"
            ) && hybrid.contains("runc")
                && !hybrid.contains('\n'),
            "{hybrid}"
        );
        let unknown = container_cgroup("cache", &dirs, &records(), CgroupLayout::Unified)
            .expect_err("unknown")
            .to_string();
        assert!(
            unknown.starts_with("container \"cache\" is not running"),
            "{unknown}"
        );
    }
}
