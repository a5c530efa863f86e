//! Resolving a rule's target on a machine, the part that needs no machine: the one-line
//! refusals both the real machine and the fake give, and the decisions taken on what they
//! read (a tree's first process, a container among cgroups and runtime records).

use crate::cgroup_names::{
    CgroupError, ContainerRecord, container_in_cgroup, names_container, resolve_container,
};
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
    #[error(
        "container \"{spec}\" ({id}) has several cgroups named by its id: {}; give one with --cgroup-path",
        paths.join(", ")
    )]
    ContainerCgroupAmbiguous {
        spec: String,
        id: String,
        paths: Vec<String>,
    },
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
///
/// A container whose directory is not laid out as its runtime's default names it (docker's
/// cgroupfs driver under a `--cgroup-parent` not ending in `docker`: `PARENT/ID`) is found
/// only from its record: a directory named by its full id (see `names_container`) that
/// `trusted` vouches for (the machine's: made by root, as no user can make one owned by
/// root) — the one under the record's own cgroup parent if there is such, else the only
/// one; several are refused, listed.
pub fn container_cgroup<S: AsRef<str>>(
    spec: &str,
    dirs: &[S],
    records: &[ContainerRecord],
    layout: CgroupLayout,
    trusted: impl Fn(&str) -> bool,
) -> Result<String, ResolveError> {
    let running: Vec<(String, String)> = dirs
        .iter()
        .filter_map(|dir| container_in_cgroup(dir.as_ref()))
        .map(|found| (found.id, found.cgroup))
        .collect();
    let mut known = records.to_vec();
    for (id, _) in &running {
        if !known.iter().any(|record| record.id == *id) {
            known.push(ContainerRecord::new(id.clone(), Vec::new()));
        }
    }
    let record = resolve_container(spec, &known)?;
    let short = || record.id.get(..12).unwrap_or(&record.id).to_owned();
    if let Some((_, cgroup)) = running.into_iter().find(|(id, _)| *id == record.id) {
        return Ok(cgroup);
    }
    // not running under a default name: `record` is one of `records` (every id only the
    // cgroups show was found running just above)
    match placed_by_record(record, dirs, trusted) {
        Placed::At(cgroup) => Ok(cgroup),
        Placed::Several(paths) => Err(ResolveError::ContainerCgroupAmbiguous {
            spec: spec.to_owned(),
            id: short(),
            paths,
        }),
        Placed::Nowhere => {
            let spec = spec.to_owned();
            Err(match layout {
                CgroupLayout::Unified => ResolveError::ContainerStopped { spec, id: short() },
                CgroupLayout::Hybrid => ResolveError::ContainerNoCgroup2 { spec, id: short() },
            })
        }
    }
}

/// Where a record puts its container among `dirs`, beyond its runtime's default names.
enum Placed {
    At(String),
    Several(Vec<String>),
    Nowhere,
}

/// The trusted directories named by `record`'s full id; the one its cgroup parent gives,
/// if the record keeps a parent and one is there.
fn placed_by_record<S: AsRef<str>>(
    record: &ContainerRecord,
    dirs: &[S],
    trusted: impl Fn(&str) -> bool,
) -> Placed {
    let named: Vec<&str> = dirs
        .iter()
        .map(AsRef::as_ref)
        .filter(|dir| {
            let last = dir.rsplit('/').next().unwrap_or(dir);
            names_container(last, &record.id)
        })
        .filter(|dir| trusted(dir))
        .collect();
    let under_parent: Vec<&str> = record
        .cgroup_parent
        .as_deref()
        .and_then(|parent| parent_layout(parent, &record.id))
        .map(|(absolute, tail)| {
            named
                .iter()
                .copied()
                .filter(|dir| {
                    if absolute {
                        *dir == tail
                    } else {
                        dir.ends_with(&tail)
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    match (under_parent.as_slice(), named.as_slice()) {
        ([one], _) | ([], [one]) => Placed::At((*one).to_owned()),
        ([], []) => Placed::Nowhere,
        ([], several) | (several, _) => {
            Placed::Several(several.iter().map(|dir| (*dir).to_owned()).collect())
        }
    }
}

/// Where docker's cgroupfs driver puts container `id` under `parent`, as it joins them
/// (`PARENT/ID`, cleaned): whether that is absolute (from the mount's root) and the path,
/// `/`-led either way — an absolute one is the directory, a relative one ends it (runc
/// puts a relative parent below its own cgroup's). `None` for a parent with `..` in it.
fn parent_layout(parent: &str, id: &str) -> Option<(bool, String)> {
    let mut path = String::new();
    for component in parent.split('/').filter(|c| !c.is_empty() && *c != ".") {
        if component == ".." {
            return None;
        }
        path.push('/');
        path.push_str(component);
    }
    path.push('/');
    path.push_str(id);
    Some((parent.starts_with('/'), path))
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
            ContainerRecord::new(WEB, vec!["web".into()]),
            ContainerRecord::new(DB, vec!["db".into()]),
        ]
    }

    #[test]
    fn a_container_is_found_by_name_or_id_among_the_running() {
        let web = format!("/system.slice/docker-{WEB}.scope");
        let cri = format!("/kubepods.slice/cri-containerd-{CRI}.scope");
        let dirs = ["/system.slice".to_owned(), web.clone(), cri.clone()];
        let found =
            |spec| container_cgroup(spec, &dirs, &records(), CgroupLayout::Unified, |_| true);
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
        let hybrid = container_cgroup("db", &dirs, &records(), CgroupLayout::Hybrid, |_| true)
            .expect_err("no cgroup2 directory")
            .to_string();
        assert!(
            hybrid.starts_with(
                "container \"db\" (0a1b2c3d4e5f) has no cgroup2 directory of its own: it is stopped, or its runtime put it in cgroup v1 hierarchies only"
            ) && hybrid.contains("runc")
                && !hybrid.contains('\n'),
            "{hybrid}"
        );
        let unknown = container_cgroup("cache", &dirs, &records(), CgroupLayout::Unified, |_| true)
            .expect_err("unknown")
            .to_string();
        assert!(
            unknown.starts_with("container \"cache\" is not running"),
            "{unknown}"
        );
    }

    /// docker's cgroupfs driver under `--cgroup-parent /ct-lab/apps` (docker-compose's
    /// `cgroup_parent` alike): `/ct-lab/apps/ID`, which no name of a runtime's says is a
    /// container.
    fn apps(id: &str) -> String {
        format!("/ct-lab/apps/{id}")
    }

    fn with_parent(parent: &str) -> Vec<ContainerRecord> {
        let mut records = records();
        records[0].cgroup_parent = Some(parent.to_owned());
        records
    }

    fn resolved(
        spec: &str,
        dirs: &[String],
        records: &[ContainerRecord],
        trusted: impl Fn(&str) -> bool,
    ) -> Result<String, String> {
        container_cgroup(spec, dirs, records, CgroupLayout::Hybrid, trusted)
            .map_err(|error| error.to_string())
    }

    #[test]
    fn a_container_under_any_parent_is_found_from_its_record() {
        let dirs = vec!["/ct-lab".to_owned(), "/ct-lab/apps".to_owned(), apps(WEB)];
        let all = |_: &str| true;
        // docker's record names the parent, or not (dockerd's own --cgroup-parent)
        assert_eq!(
            resolved("web", &dirs, &with_parent("/ct-lab/apps"), all),
            Ok(apps(WEB))
        );
        assert_eq!(resolved("3f4e", &dirs, &records(), all), Ok(apps(WEB)));
        // a relative parent is below runc's own cgroup
        assert_eq!(
            resolved("web", &dirs, &with_parent("apps/"), all),
            Ok(apps(WEB))
        );
        // the runtime's own layout comes first
        let mut both = dirs.clone();
        both.push(format!("/docker/{WEB}"));
        assert_eq!(
            resolved("web", &both, &records(), all),
            Ok(format!("/docker/{WEB}"))
        );
        // the id is the record's: a directory named by an id no record lists is nothing
        let unknown = "5".repeat(64);
        let message = resolved(&unknown, &[apps(&unknown)], &records(), all).unwrap_err();
        assert!(message.contains("is not running"), "{message}");
    }

    #[test]
    fn a_directory_the_machine_did_not_make_is_not_believed() {
        // a user with a delegated cgroup made one named by the container's id
        let users = format!("/user.slice/user-1000.slice/user@1000.service/{WEB}");
        let dirs = vec![users.clone(), apps(WEB)];
        let roots = |dir: &str| !dir.starts_with("/user.slice");
        assert_eq!(resolved("web", &dirs, &records(), roots), Ok(apps(WEB)));
        let message = resolved("web", &[users], &records(), roots).unwrap_err();
        assert!(
            message.starts_with(
                "container \"web\" (3f4e8a1b2c3d) has no cgroup2 directory of its own"
            ),
            "{message}"
        );
        let unified = container_cgroup("web", &dirs, &records(), CgroupLayout::Unified, |_| false)
            .unwrap_err()
            .to_string();
        assert!(
            unified.contains("is not running: it has no cgroup"),
            "{unified}"
        );
    }

    #[test]
    fn several_directories_named_by_the_id_are_settled_by_the_records_parent_or_refused() {
        let other = format!("/ct-old/{WEB}");
        let dirs = vec![apps(WEB), other.clone()];
        let all = |_: &str| true;
        assert_eq!(
            resolved("web", &dirs, &with_parent("/ct-lab/apps"), all),
            Ok(apps(WEB))
        );
        assert_eq!(
            resolved("web", &dirs, &with_parent("/ct-old//"), all),
            Ok(other.clone())
        );
        for records in [records(), with_parent("/elsewhere"), with_parent("../x")] {
            let message = resolved("web", &dirs, &records, all).unwrap_err();
            assert_eq!(
                message,
                format!(
                    "container \"web\" (3f4e8a1b2c3d) has several cgroups named by its id: {}, {other}; give one with --cgroup-path",
                    apps(WEB)
                )
            );
        }
    }
}
