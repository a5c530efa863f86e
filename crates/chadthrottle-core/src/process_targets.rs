//! The rule targets one running process falls under — its tree, its executable, and the
//! container or systemd unit its cgroup belongs to — read from its `/proc/PID/exe` and
//! cgroup2 path, so that a user interface can offer "limit this application" without the
//! user typing a path or a unit name.

use crate::cgroup_names::container_in_cgroup;
use crate::rule_target::{RuleTarget, parse_container, parse_exe, parse_tree, parse_unit};
use std::path::Path;

/// How many hex digits of a container id the target names: docker's and podman's short
/// id, which their own listings show and `--container` takes as a prefix.
const SHORT_ID: usize = 12;

/// What the kernel appends to `/proc/PID/exe` when the file was replaced or removed (a
/// package upgrade): the rule is for the path, which the new file has.
const DELETED: &str = " (deleted)";

/// The targets `pid` falls under, most specific first: its tree, its executable (if /proc
/// shows one), then its container if its cgroup is one's, else the innermost systemd
/// service or scope its cgroup is in. A slice holds every unit below it and a user
/// manager's `init.scope` has a twin in every user's tree, so neither is "its unit".
pub fn process_targets(pid: u32, exe: Option<&str>, cgroup: Option<&str>) -> Vec<RuleTarget> {
    let tree = parse_tree(pid).ok();
    let exe = exe
        .map(|exe| exe.strip_suffix(DELETED).unwrap_or(exe))
        .and_then(|exe| parse_exe(Path::new(exe)).ok());
    let group = cgroup.and_then(cgroup_target);
    tree.into_iter().chain(exe).chain(group).collect()
}

/// The container whose cgroup `path` is in, else the innermost unit component of it.
fn cgroup_target(path: &str) -> Option<RuleTarget> {
    if let Some(container) = container_in_cgroup(path) {
        let short = container.id.get(..SHORT_ID).unwrap_or(&container.id);
        return parse_container(short).ok();
    }
    // from the innermost directory out: a unit's own subdirectories (Delegate=) are not
    // units, and the first unit met is the process's
    let unit = path
        .rsplit('/')
        .find_map(|component| parse_unit(component).ok())?;
    let RuleTarget::Unit(name) = &unit else {
        return None;
    };
    (!name.ends_with(".slice") && name != "init.scope").then_some(unit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup_names::cgroup2_path;
    use std::path::PathBuf;

    /// The cgroup2 path a recorded `/proc/PID/cgroup` gives.
    fn recorded(contents: &str) -> String {
        cgroup2_path("/proc/42/cgroup", contents).expect("a cgroup2 line")
    }

    fn targets(exe: Option<&str>, cgroup: &str) -> Vec<RuleTarget> {
        process_targets(42, exe, Some(&recorded(cgroup)))
    }

    #[test]
    fn a_system_service_offers_its_tree_executable_and_unit() {
        let found = targets(
            Some("/usr/bin/syncthing"),
            "0::/system.slice/syncthing.service\n",
        );
        assert_eq!(
            found,
            [
                RuleTarget::Tree(42),
                RuleTarget::Exe(PathBuf::from("/usr/bin/syncthing")),
                RuleTarget::Unit("syncthing.service".into()),
            ]
        );
    }

    #[test]
    fn a_desktop_app_offers_its_scope_not_the_user_manager() {
        let found = targets(
            Some("/usr/lib/firefox/firefox"),
            "0::/user.slice/user-1000.slice/user@1000.service/app.slice/app-gnome-firefox-4242.scope\n",
        );
        assert_eq!(
            found[2],
            RuleTarget::Unit("app-gnome-firefox-4242.scope".into())
        );
        let manager = targets(
            Some("/usr/lib/systemd/systemd"),
            "0::/user.slice/user-1000.slice/user@1000.service/init.scope\n",
        );
        assert_eq!(
            manager.len(),
            2,
            "init.scope is in every user's tree: {manager:?}"
        );
        let delegated = targets(
            Some("/usr/bin/worker"),
            "0::/system.slice/build.service/payload/job-1\n",
        );
        assert_eq!(delegated[2], RuleTarget::Unit("build.service".into()));
        let in_a_slice = targets(Some("/usr/bin/x"), "0::/machine.slice\n");
        assert_eq!(in_a_slice.len(), 2, "a slice is not one application's");
    }

    #[test]
    fn containers_are_offered_by_short_id_in_every_layout() {
        let id = "3f4e8a1b2c3d4e5f60718293a4b5c6d7e8f90123456789abcdef0123456789ab";
        for line in [
            format!("0::/system.slice/docker-{id}.scope\n"),
            format!("0::/docker/{id}\n"),
            format!(
                "0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{id}.scope/container\n"
            ),
            format!("12:pids:/x\n0::/kubepods.slice/cri-containerd-{id}.scope\n"),
        ] {
            let found = targets(Some("/usr/sbin/nginx"), &line);
            assert_eq!(
                found.last(),
                Some(&RuleTarget::Container("3f4e8a1b2c3d".into())),
                "{line}"
            );
        }
    }

    #[test]
    fn a_replaced_executable_is_offered_by_its_path_and_a_hidden_one_not_at_all() {
        let found = process_targets(42, Some("/usr/bin/steam (deleted)"), None);
        assert_eq!(
            found,
            [
                RuleTarget::Tree(42),
                RuleTarget::Exe(PathBuf::from("/usr/bin/steam"))
            ]
        );
        assert_eq!(
            process_targets(42, None, Some("/")),
            [RuleTarget::Tree(42)],
            "no executable, the root cgroup: the tree alone"
        );
        assert!(
            process_targets(0, None, None).is_empty(),
            "PID 0 has no tree"
        );
    }
}
