//! Names for cgroups, read from what the machine shows as text: a process's cgroup2 path
//! (`/proc/PID/cgroup`), a systemd unit's directory among the cgroup2 tree's, a container
//! in a cgroup path, and a container's id from its runtime's own files.
//!
//! Everything here takes the files' contents as strings; reading them is the caller's.

use serde::Deserialize;

/// A container id is 64 hex digits in every runtime here.
const ID_LEN: usize = 64;

/// A container given by id prefix needs at least this many hex digits.
pub const MIN_ID_PREFIX: usize = 4;

/// How an id is shown in a message: docker's and podman's short form.
const SHORT_ID: usize = 12;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CgroupError {
    #[error(
        "no cgroup2 line (\"0::/path\") in \"{0}\": the machine runs cgroup v1 only, and ChadThrottle needs cgroup2"
    )]
    NoCgroup2(String),
    #[error("unit \"{0}\" is not running: no cgroup named so")]
    UnitNotRunning(String),
    #[error(
        "unit \"{unit}\" names several cgroups: {}; give one with --cgroup-path",
        paths.join(", ")
    )]
    UnitAmbiguous { unit: String, paths: Vec<String> },
    #[error("container \"{0}\" is not running: no container has that name or id")]
    ContainerNotFound(String),
    #[error(
        "container \"{0}\" is too short an id prefix: give its name or at least {MIN_ID_PREFIX} hex digits of its id"
    )]
    ContainerPrefixTooShort(String),
    #[error(
        "container \"{spec}\" is the prefix of several ids: {}; give more digits or the name",
        candidates.join(", ")
    )]
    ContainerAmbiguous {
        spec: String,
        candidates: Vec<String>,
    },
    #[error("{file}: not a container record: {problem}")]
    Record { file: String, problem: String },
    #[error("{file}: not a storage.conf podman reads: {problem}")]
    StorageConf { file: String, problem: String },
    #[error("{file}: not a daemon.json docker reads: {problem}")]
    DaemonJson { file: String, problem: String },
}

/// The cgroup2 path in `/proc/PID/cgroup`'s `contents` (read from `file`, named in the
/// error): the `0::` line's, which a hybrid v1+v2 machine lists beside its v1 lines. A
/// cgroup removed while the process is in it reads without its `" (deleted)"` mark.
pub fn cgroup2_path(file: &str, contents: &str) -> Result<String, CgroupError> {
    contents
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .map(|path| path.strip_suffix(" (deleted)").unwrap_or(path).to_owned())
        .ok_or_else(|| CgroupError::NoCgroup2(file.to_owned()))
}

/// The cgroup of systemd unit `unit` among the cgroup2 directories `dirs` (relative to the
/// mount): the one whose last component is the unit's name — a system unit's under
/// `/system.slice`, a user unit's under `/user.slice/user-UID.slice/user@UID.service/…`.
pub fn unit_cgroup<S: AsRef<str>>(unit: &str, dirs: &[S]) -> Result<String, CgroupError> {
    let mut found = dirs
        .iter()
        .map(AsRef::as_ref)
        .filter(|dir| dir.rsplit('/').next() == Some(unit));
    match (found.next(), found.next()) {
        (None, _) => Err(CgroupError::UnitNotRunning(unit.to_owned())),
        (Some(dir), None) => Ok(dir.to_owned()),
        (Some(first), Some(second)) => Err(CgroupError::UnitAmbiguous {
            unit: unit.to_owned(),
            paths: [first, second]
                .into_iter()
                .chain(found)
                .map(str::to_owned)
                .collect(),
        }),
    }
}

/// Which runtime started a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    Docker,
    Podman,
    /// containerd's CRI plugin (Kubernetes).
    Containerd,
}

/// A container found in a cgroup path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerCgroup {
    pub runtime: Runtime,
    /// The full 64-hex-digit id.
    pub id: String,
    /// The container's own cgroup: the path up to its component (podman's processes run in
    /// a `container` directory below it).
    pub cgroup: String,
}

/// The innermost container whose cgroup `path` is in, if any: docker (systemd driver
/// `docker-ID.scope`, cgroupfs driver `/docker/ID`), podman rootful or rootless (systemd
/// driver `libpod-ID.scope`, not its monitor's `libpod-conmon-ID.scope`; cgroupfs driver
/// `PARENT/libpod-ID`, its monitor in `PARENT/conmon`), containerd's CRI
/// (`cri-containerd-ID.scope`).
pub fn container_in_cgroup(path: &str) -> Option<ContainerCgroup> {
    let components: Vec<&str> = path.split('/').collect();
    components
        .iter()
        .enumerate()
        .rev()
        .find_map(|(index, component)| {
            let previous = index.checked_sub(1).and_then(|i| components.get(i));
            let (runtime, id) = container_component(component, previous.copied())?;
            Some(ContainerCgroup {
                runtime,
                id: id.to_owned(),
                cgroup: components[..=index].join("/"),
            })
        })
}

fn container_component<'a>(
    component: &'a str,
    previous: Option<&str>,
) -> Option<(Runtime, &'a str)> {
    let scoped = [
        ("docker-", Runtime::Docker),
        ("libpod-", Runtime::Podman),
        ("cri-containerd-", Runtime::Containerd),
    ];
    let (runtime, id) = scoped
        .into_iter()
        .find_map(|(prefix, runtime)| {
            let id = component.strip_prefix(prefix)?.strip_suffix(".scope")?;
            Some((runtime, id))
        })
        .or_else(|| {
            // podman's cgroupfs driver (hosts without systemd) names the cgroup without
            // the `.scope` systemd would give it
            let id = component.strip_prefix("libpod-")?;
            Some((Runtime::Podman, id))
        })
        .or_else(|| (previous == Some("docker")).then_some((Runtime::Docker, component)))?;
    is_full_id(id).then_some((runtime, id))
}

fn is_full_id(id: &str) -> bool {
    id.len() == ID_LEN && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A container as its runtime lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRecord {
    pub id: String,
    pub names: Vec<String>,
    /// The cgroup parent the runtime was given for this container, if its record keeps
    /// one: docker's `hostconfig.json` `"CgroupParent"` (`--cgroup-parent`,
    /// docker-compose's `cgroup_parent`). podman's containers.json keeps none.
    pub cgroup_parent: Option<String>,
}

impl ContainerRecord {
    /// A record with no cgroup parent of its own.
    pub fn new(id: impl Into<String>, names: Vec<String>) -> ContainerRecord {
        ContainerRecord {
            id: id.into(),
            names,
            cgroup_parent: None,
        }
    }
}

#[derive(Deserialize)]
struct DockerConfig {
    #[serde(rename = "ID")]
    id: String,
    #[serde(rename = "Name")]
    name: String,
}

#[derive(Deserialize)]
struct PodmanContainer {
    id: String,
    #[serde(default)]
    names: Vec<String>,
}

/// One docker container from its `DATA-ROOT/containers/ID/config.v2.json` (`file`, named
/// in errors; the data root is /var/lib/docker unless dockerd is told otherwise, see
/// `docker_root`): `"ID"`, and `"Name"` without docker's leading `/`.
pub fn docker_record(file: &str, json: &str) -> Result<ContainerRecord, CgroupError> {
    let config: DockerConfig = serde_json::from_str(json).map_err(|error| record(file, error))?;
    let name = config.name.strip_prefix('/').unwrap_or(&config.name);
    valid_record(file, ContainerRecord::new(config.id, vec![name.to_owned()]))
}

#[derive(Deserialize)]
struct DockerHostConfig {
    #[serde(rename = "CgroupParent", default)]
    cgroup_parent: Option<String>,
}

/// The cgroup parent docker was given for one container, from its
/// `DATA-ROOT/containers/ID/hostconfig.json` (`file`, named in errors: docker keeps the
/// host's part of a container's settings there, beside config.v2.json): `"CgroupParent"`,
/// `None` when empty or absent (the daemon's parent then, `/docker` by default).
pub fn docker_cgroup_parent(file: &str, json: &str) -> Result<Option<String>, CgroupError> {
    let config: DockerHostConfig =
        serde_json::from_str(json).map_err(|error| record(file, error))?;
    Ok(config.cgroup_parent.filter(|parent| !parent.is_empty()))
}

/// Whether a cgroup directory named `component` (its last path component) is container
/// `id`'s as a runtime names it: the bare id (docker's and containerd's cgroupfs drivers,
/// under whatever parent they were given), `docker-ID.scope`, `libpod-ID`,
/// `libpod-ID.scope` or `cri-containerd-ID.scope`.
pub fn names_container(component: &str, id: &str) -> bool {
    if !is_full_id(id) {
        return false;
    }
    component == id || container_component(component, None).is_some_and(|(_, named)| named == id)
}

/// Every podman container in `/var/lib/containers/storage/overlay-containers/containers.json`
/// (or a rootless user's under `~/.local/share/containers/storage/`).
pub fn podman_records(file: &str, json: &str) -> Result<Vec<ContainerRecord>, CgroupError> {
    let containers: Vec<PodmanContainer> =
        serde_json::from_str(json).map_err(|error| record(file, error))?;
    containers
        .into_iter()
        .map(|c| valid_record(file, ContainerRecord::new(c.id, c.names)))
        .collect()
}

/// podman's graph root when no storage.conf names one (a rootful podman's; ChadThrottle
/// runs as root).
pub const PODMAN_DEFAULT_GRAPHROOT: &str = "/var/lib/containers/storage";

/// What podman's graph root holds its container list in, per storage driver:
/// `overlay-containers/containers.json`, `vfs-containers/containers.json`, …
pub const PODMAN_CONTAINERS_DIR_SUFFIX: &str = "-containers";

#[derive(Deserialize)]
struct StorageConf {
    #[serde(default)]
    storage: Option<StorageSection>,
}

#[derive(Deserialize)]
struct StorageSection {
    graphroot: Option<String>,
}

/// The graph root a `storage.conf` (`file`, named in errors) gives podman — `[storage]`'s
/// `graphroot`, else [`PODMAN_DEFAULT_GRAPHROOT`] — so that a container kept in a storage
/// of its own is found where podman itself finds it.
pub fn podman_graphroot(file: &str, toml_text: &str) -> Result<String, CgroupError> {
    let conf: StorageConf =
        toml::from_str(toml_text).map_err(|error| CgroupError::StorageConf {
            file: file.to_owned(),
            problem: error.message().to_owned(),
        })?;
    Ok(conf
        .storage
        .and_then(|storage| storage.graphroot)
        .filter(|root| !root.is_empty())
        .unwrap_or_else(|| PODMAN_DEFAULT_GRAPHROOT.to_owned()))
}

fn record(file: &str, problem: impl ToString) -> CgroupError {
    CgroupError::Record {
        file: file.to_owned(),
        problem: problem.to_string(),
    }
}

fn valid_record(file: &str, found: ContainerRecord) -> Result<ContainerRecord, CgroupError> {
    if is_full_id(&found.id) {
        Ok(found)
    } else {
        let problem = format!("id \"{}\" is not 64 hex digits", found.id);
        Err(record(file, problem))
    }
}

/// The container that `spec` names among `records`: an exact id, else an exact name, else
/// the one id that starts with it (at least [`MIN_ID_PREFIX`] hex digits) — docker's order.
pub fn resolve_container<'a>(
    spec: &str,
    records: &'a [ContainerRecord],
) -> Result<&'a ContainerRecord, CgroupError> {
    let exact = records
        .iter()
        .find(|r| r.id == spec)
        .or_else(|| records.iter().find(|r| r.names.iter().any(|n| n == spec)));
    if let Some(found) = exact {
        return Ok(found);
    }
    let hex = spec.bytes().all(|b| b.is_ascii_hexdigit());
    if !hex || spec.is_empty() {
        return Err(CgroupError::ContainerNotFound(spec.to_owned()));
    }
    if spec.len() < MIN_ID_PREFIX {
        return Err(CgroupError::ContainerPrefixTooShort(spec.to_owned()));
    }
    let prefix = spec.to_ascii_lowercase();
    let matching: Vec<&ContainerRecord> = records
        .iter()
        .filter(|r| r.id.starts_with(&prefix))
        .collect();
    match matching.as_slice() {
        [] => Err(CgroupError::ContainerNotFound(spec.to_owned())),
        [one] => Ok(one),
        several => Err(CgroupError::ContainerAmbiguous {
            spec: spec.to_owned(),
            candidates: several.iter().map(|r| describe(r)).collect(),
        }),
    }
}

/// `3f4e8a1b2c3d (web)`: the short id and the names.
fn describe(found: &ContainerRecord) -> String {
    let short = found.id.get(..SHORT_ID).unwrap_or(&found.id);
    if found.names.is_empty() {
        short.to_owned()
    } else {
        format!("{short} ({})", found.names.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID_A: &str = "3f4e8a1b2c3d4e5f60718293a4b5c6d7e8f90123456789abcdef0123456789ab";
    const ID_B: &str = "3f4e99887766554433221100ffeeddccbbaa99887766554433221100ffeeddcc";
    const ID_C: &str = "c0ffee00112233445566778899aabbccddeeff00112233445566778899aabbcc";

    #[test]
    fn the_cgroup2_line_is_taken() {
        let pure_v2 = "0::/user.slice/user-1000.slice/session-3.scope\n";
        assert_eq!(
            cgroup2_path("/proc/1/cgroup", pure_v2).as_deref(),
            Ok("/user.slice/user-1000.slice/session-3.scope")
        );
        // A hybrid machine (systemd's "hybrid" layout): v1 controllers, then the v2 line.
        let hybrid = "12:blkio:/system.slice/nginx.service\n\
            11:cpu,cpuacct:/system.slice/nginx.service\n\
            10:memory:/system.slice/nginx.service\n\
            2:pids:/system.slice/nginx.service\n\
            1:name=systemd:/system.slice/nginx.service\n\
            0::/system.slice/nginx.service\n";
        assert_eq!(
            cgroup2_path("/proc/1/cgroup", hybrid).as_deref(),
            Ok("/system.slice/nginx.service")
        );
        assert_eq!(
            cgroup2_path("/proc/9/cgroup", "0::/ct-test-1/gone (deleted)\n").as_deref(),
            Ok("/ct-test-1/gone")
        );
        assert_eq!(cgroup2_path("/proc/1/cgroup", "0::/\n").as_deref(), Ok("/"));
        let v1_only = "4:memory:/user.slice\n1:name=systemd:/user.slice/session-1.scope\n";
        let message = cgroup2_path("/proc/77/cgroup", v1_only)
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(message.contains("\"/proc/77/cgroup\""), "{message}");
        assert!(message.contains("cgroup v1 only"), "{message}");
    }

    const DIRS: [&str; 8] = [
        "/system.slice",
        "/system.slice/syncthing.service",
        "/system.slice/nginx.service",
        "/user.slice/user-1000.slice/user@1000.service",
        "/user.slice/user-1000.slice/user@1000.service/app.slice/pipewire.service",
        "/user.slice/user-1000.slice/user@1000.service/app.slice/syncthing.service",
        "/user.slice/user-1001.slice/user@1001.service/app.slice/syncthing.service",
        "/user.slice/user-1000.slice/user@1000.service/app.slice/app-firefox-1234.scope",
    ];

    #[test]
    fn a_unit_is_the_directory_named_so() {
        assert_eq!(
            unit_cgroup("nginx.service", &DIRS).as_deref(),
            Ok("/system.slice/nginx.service")
        );
        assert_eq!(
            unit_cgroup("pipewire.service", &DIRS).as_deref(),
            Ok("/user.slice/user-1000.slice/user@1000.service/app.slice/pipewire.service")
        );
        assert_eq!(
            unit_cgroup("user@1000.service", &DIRS).as_deref(),
            Ok("/user.slice/user-1000.slice/user@1000.service")
        );
        assert_eq!(
            unit_cgroup("system.slice", &DIRS).as_deref(),
            Ok("/system.slice")
        );
        assert_eq!(
            unit_cgroup("sshd.service", &DIRS).map_err(|e| e.to_string()),
            Err("unit \"sshd.service\" is not running: no cgroup named so".to_owned())
        );
        // A prefix of a directory's name is not its name.
        assert!(unit_cgroup("app-firefox", &DIRS).is_err());
    }

    #[test]
    fn a_unit_in_several_places_lists_them_all() {
        let error = unit_cgroup("syncthing.service", &DIRS)
            .map(|_| ())
            .unwrap_err();
        assert_eq!(
            error,
            CgroupError::UnitAmbiguous {
                unit: "syncthing.service".into(),
                paths: vec![DIRS[1].into(), DIRS[5].into(), DIRS[6].into()],
            }
        );
        let message = error.to_string();
        assert!(message.contains("--cgroup-path"), "{message}");
        assert!(message.contains(DIRS[6]), "{message}");
    }

    fn found(path: &str) -> Option<(Runtime, String, String)> {
        container_in_cgroup(path).map(|c| (c.runtime, c.id, c.cgroup))
    }

    #[test]
    fn containers_are_recognised_in_each_runtimes_paths() {
        let docker_systemd = format!("/system.slice/docker-{ID_A}.scope");
        let docker_cgroupfs = format!("/docker/{ID_A}");
        let podman = format!("/machine.slice/libpod-{ID_B}.scope");
        let podman_nested = format!("{podman}/container");
        let rootless =
            format!("/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID_C}.scope");
        let k8s = format!(
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1234.slice/cri-containerd-{ID_C}.scope"
        );
        for (path, runtime, id, cgroup) in [
            (&docker_systemd, Runtime::Docker, ID_A, &docker_systemd),
            (&docker_cgroupfs, Runtime::Docker, ID_A, &docker_cgroupfs),
            (&podman, Runtime::Podman, ID_B, &podman),
            (&podman_nested, Runtime::Podman, ID_B, &podman),
            (&rootless, Runtime::Podman, ID_C, &rootless),
            (&k8s, Runtime::Containerd, ID_C, &k8s),
        ] {
            assert_eq!(
                found(path),
                Some((runtime, id.to_owned(), cgroup.clone())),
                "{path}"
            );
        }
    }

    /// Recorded on a Debian 12 host without systemd whose cgroups are a v1+v2 hybrid
    /// (cgroup2 at /sys/fs/cgroup/unified): podman 4.3.1, `--cgroup-manager=cgroupfs
    /// --runtime runc --cgroup-parent=/ct-podman-exp`. runc (1.1.5) gives the container a
    /// cgroup2 directory of its own beside its v1 ones; its monitor, conmon, has v1
    /// directories only and stays in podman's cgroup2 (here the root).
    const PODMAN_RUNC_HYBRID: &str = "9:name=systemd:/ct-podman-exp/libpod-8f6c45ff1f65faa8cd237a88e1eb5e4e3c1cbe0f74463ca2e7b3c0afb615ce2d
8:pids:/ct-podman-exp/libpod-8f6c45ff1f65faa8cd237a88e1eb5e4e3c1cbe0f74463ca2e7b3c0afb615ce2d
7:blkio:/ct-podman-exp/libpod-8f6c45ff1f65faa8cd237a88e1eb5e4e3c1cbe0f74463ca2e7b3c0afb615ce2d
6:freezer:/ct-podman-exp/libpod-8f6c45ff1f65faa8cd237a88e1eb5e4e3c1cbe0f74463ca2e7b3c0afb615ce2d
5:devices:/ct-podman-exp/libpod-8f6c45ff1f65faa8cd237a88e1eb5e4e3c1cbe0f74463ca2e7b3c0afb615ce2d
4:memory:/ct-podman-exp/libpod-8f6c45ff1f65faa8cd237a88e1eb5e4e3c1cbe0f74463ca2e7b3c0afb615ce2d
3:cpuset:/ct-podman-exp/libpod-8f6c45ff1f65faa8cd237a88e1eb5e4e3c1cbe0f74463ca2e7b3c0afb615ce2d
2:cpuacct:/ct-podman-exp/libpod-8f6c45ff1f65faa8cd237a88e1eb5e4e3c1cbe0f74463ca2e7b3c0afb615ce2d
1:cpu:/ct-podman-exp/libpod-8f6c45ff1f65faa8cd237a88e1eb5e4e3c1cbe0f74463ca2e7b3c0afb615ce2d
0::/ct-podman-exp/libpod-8f6c45ff1f65faa8cd237a88e1eb5e4e3c1cbe0f74463ca2e7b3c0afb615ce2d
";
    const CONMON_HYBRID: &str = "9:name=systemd:/
8:pids:/ct-podman-exp/conmon
7:blkio:/ct-podman-exp/conmon
6:freezer:/ct-podman-exp/conmon
5:devices:/ct-podman-exp/conmon
4:memory:/ct-podman-exp/conmon
3:cpuset:/ct-podman-exp/conmon
2:cpuacct:/ct-podman-exp/conmon
1:cpu:/ct-podman-exp/conmon
0::/
";

    #[test]
    fn a_podman_container_on_a_hybrid_host_is_found_in_its_cgroup2_line() {
        let id = "8f6c45ff1f65faa8cd237a88e1eb5e4e3c1cbe0f74463ca2e7b3c0afb615ce2d";
        let path = cgroup2_path("/proc/18165/cgroup", PODMAN_RUNC_HYBRID).expect("a 0:: line");
        assert_eq!(path, format!("/ct-podman-exp/libpod-{id}"));
        assert_eq!(
            found(&path),
            Some((Runtime::Podman, id.to_owned(), path.clone()))
        );
        let conmon = cgroup2_path("/proc/18153/cgroup", CONMON_HYBRID).expect("a 0:: line");
        assert_eq!(conmon, "/");
        assert_eq!(found(&conmon), None, "the monitor is not the container");
        assert_eq!(found("/ct-podman-exp/conmon"), None);
        // the default parent of podman's cgroupfs driver
        assert_eq!(
            found(&format!("/libpod_parent/libpod-{ID_B}")).map(|f| f.1),
            Some(ID_B.to_owned())
        );
    }

    #[test]
    fn podmans_graph_root_is_its_storage_confs() {
        let conf = "[storage]\ndriver = \"vfs\"\ngraphroot = \"/tmp/ct/graph\"\nrunroot = \"/tmp/ct/run\"\n";
        assert_eq!(
            podman_graphroot("storage.conf", conf).as_deref(),
            Ok("/tmp/ct/graph")
        );
        for defaulted in [
            "",
            "[storage]\ndriver = \"overlay\"\n",
            "[storage]\ngraphroot = \"\"\n",
        ] {
            assert_eq!(
                podman_graphroot("storage.conf", defaulted).as_deref(),
                Ok(PODMAN_DEFAULT_GRAPHROOT),
                "{defaulted:?}"
            );
        }
        refused_with(
            podman_graphroot("/etc/containers/storage.conf", "[storage\n"),
            "/etc/containers/storage.conf: not a storage.conf podman reads: ",
        );
    }

    /// Checks that `result` is an error whose line starts with `start`.
    fn refused_with<T: std::fmt::Debug>(result: Result<T, CgroupError>, start: &str) {
        let message = result.expect_err("refused").to_string();
        assert!(message.starts_with(start), "{message}");
    }

    #[test]
    fn what_is_not_a_container_is_not_taken_for_one() {
        for path in [
            format!("/machine.slice/libpod-conmon-{ID_B}.scope"),
            format!("/libpod_parent/libpod-{ID_B}.service"),
            "/libpod_parent/libpod-abc".to_owned(),
            "/system.slice/docker.service".to_owned(),
            "/system.slice/docker-abc.scope".to_owned(),
            format!("/system.slice/docker-{ID_A}.service"),
            format!("/{ID_A}"),
            format!("/docker/{}", &ID_A[1..]),
            "/user.slice/user-1000.slice/session-3.scope".to_owned(),
            "/".to_owned(),
        ] {
            assert_eq!(found(&path), None, "{path}");
        }
    }

    #[test]
    fn the_innermost_container_is_the_one() {
        let nested = format!("/system.slice/docker-{ID_A}.scope/docker/{ID_B}");
        assert_eq!(found(&nested).map(|f| f.1), Some(ID_B.to_owned()));
    }

    #[test]
    fn runtimes_files_give_ids_and_names() {
        // Trimmed from a real config.v2.json: many more keys, which are ignored.
        let docker = format!(
            r#"{{"StreamConfig":{{}},"State":{{"Running":true,"Pid":4242}},"ID":"{ID_A}","Created":"2026-11-30T05:00:00Z","Path":"nginx","Name":"/web","Driver":"overlay2"}}"#
        );
        assert_eq!(
            docker_record("config.v2.json", &docker),
            Ok(ContainerRecord::new(ID_A, vec!["web".into()]))
        );
        let podman = format!(
            r#"[{{"id":"{ID_B}","names":["db","db-alias"],"image":"abc","layer":"def","metadata":"{{}}","created":"2026-11-30T05:00:00Z"}},
               {{"id":"{ID_C}","names":["cache"],"image":"abc","layer":"fed"}}]"#
        );
        assert_eq!(
            podman_records("containers.json", &podman),
            Ok(vec![
                ContainerRecord::new(ID_B, vec!["db".into(), "db-alias".into()]),
                ContainerRecord::new(ID_C, vec!["cache".into()]),
            ])
        );
        assert_eq!(podman_records("containers.json", "[]"), Ok(Vec::new()));
        for (json, problem) in [
            (r#"{"Name":"/web"}"#, "missing field `ID`"),
            (
                r#"{"ID":"xyz","Name":"/web"}"#,
                "id \"xyz\" is not 64 hex digits",
            ),
            ("not json", "expected"),
        ] {
            let message = docker_record("/var/lib/docker/containers/x/config.v2.json", json)
                .map(|_| ())
                .unwrap_err()
                .to_string();
            assert!(
                message.starts_with("/var/lib/docker/containers/x/config.v2.json: "),
                "{message}"
            );
            assert!(message.contains(problem), "{message}");
        }
    }

    #[test]
    fn dockers_hostconfig_gives_the_cgroup_parent() {
        // The hostconfig.json docker 20.10.24 wrote for `docker run --cgroup-parent
        // /ct-test-4397-0-docker/apps` (tests/docker.rs; the test binary's path shortened).
        // config.v2.json beside it has no "HostConfig": docker keeps it apart.
        let given = r#"{"Binds":["/usr:/usr:ro","/lib:/lib:ro","/lib64:/lib64:ro","/ct/docker-test:/ct/docker-test:ro"],"ContainerIDFile":"","LogConfig":{"Type":"json-file","Config":{}},"NetworkMode":"host","PortBindings":{},"RestartPolicy":{"Name":"no","MaximumRetryCount":0},"AutoRemove":false,"VolumeDriver":"","VolumesFrom":null,"CapAdd":null,"CapDrop":null,"CgroupnsMode":"host","Dns":[],"DnsOptions":[],"DnsSearch":[],"ExtraHosts":null,"GroupAdd":null,"IpcMode":"private","Cgroup":"","Links":null,"OomScoreAdj":0,"PidMode":"","Privileged":false,"PublishAllPorts":false,"ReadonlyRootfs":false,"SecurityOpt":null,"UTSMode":"","UsernsMode":"","ShmSize":67108864,"Runtime":"runc","ConsoleSize":[0,0],"Isolation":"","CpuShares":0,"Memory":0,"NanoCpus":0,"CgroupParent":"/ct-test-4397-0-docker/apps","BlkioWeight":0,"BlkioWeightDevice":[],"BlkioDeviceReadBps":null,"BlkioDeviceWriteBps":null,"BlkioDeviceReadIOps":null,"BlkioDeviceWriteIOps":null,"CpuPeriod":0,"CpuQuota":0,"CpuRealtimePeriod":0,"CpuRealtimeRuntime":0,"CpusetCpus":"","CpusetMems":"","Devices":[],"DeviceCgroupRules":null,"DeviceRequests":null,"KernelMemory":0,"KernelMemoryTCP":0,"MemoryReservation":0,"MemorySwap":0,"MemorySwappiness":null,"OomKillDisable":false,"PidsLimit":null,"Ulimits":null,"CpuCount":0,"CpuPercent":0,"IOMaximumIOps":0,"IOMaximumBandwidth":0,"MaskedPaths":["/proc/asound","/proc/acpi","/proc/kcore","/proc/keys","/proc/latency_stats","/proc/timer_list","/proc/timer_stats","/proc/sched_debug","/proc/scsi","/sys/firmware"],"ReadonlyPaths":["/proc/bus","/proc/fs","/proc/irq","/proc/sys","/proc/sysrq-trigger"]}"#;
        assert_eq!(
            docker_cgroup_parent("hostconfig.json", given),
            Ok(Some("/ct-test-4397-0-docker/apps".to_owned()))
        );
        for default in [
            r#"{"NetworkMode":"none","CgroupParent":""}"#,
            r#"{"NetworkMode":"none"}"#,
            r#"{"CgroupParent":null}"#,
        ] {
            assert_eq!(
                docker_cgroup_parent("hostconfig.json", default),
                Ok(None),
                "{default}"
            );
        }
        refused_with(
            docker_cgroup_parent("/d/containers/x/hostconfig.json", "[1]"),
            "/d/containers/x/hostconfig.json: not a container record: ",
        );
    }

    #[test]
    fn a_directory_names_a_container_by_its_full_id_as_a_runtime_lays_it_out() {
        for named in [
            ID_A.to_owned(),
            format!("docker-{ID_A}.scope"),
            format!("libpod-{ID_A}"),
            format!("libpod-{ID_A}.scope"),
            format!("cri-containerd-{ID_A}.scope"),
        ] {
            assert!(names_container(&named, ID_A), "{named}");
            assert!(!names_container(&named, ID_B), "{named} is not {ID_B}");
        }
        for other in [
            ID_A[..63].to_owned(),
            format!("{ID_A}0"),
            format!("libpod-conmon-{ID_A}.scope"),
            format!("docker-{ID_A}.service"),
            format!("x{ID_A}"),
            "docker".to_owned(),
        ] {
            assert!(!names_container(&other, ID_A), "{other}");
        }
        // the id itself must be one: a short one names nothing
        assert!(!names_container("3f4e", "3f4e"));
    }

    fn records() -> Vec<ContainerRecord> {
        vec![
            ContainerRecord::new(ID_A, vec!["web".into()]),
            ContainerRecord::new(ID_B, vec!["db".into()]),
            // A name that is also another container's id prefix: the name wins.
            ContainerRecord::new(ID_C, vec!["3f4e".into()]),
        ]
    }

    fn resolved(spec: &str) -> Result<String, String> {
        let records = records();
        resolve_container(spec, &records)
            .map(|r| r.id.clone())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_container_is_a_name_an_id_or_a_unique_prefix() {
        assert_eq!(resolved("web"), Ok(ID_A.to_owned()));
        assert_eq!(resolved(ID_B), Ok(ID_B.to_owned()));
        assert_eq!(resolved("3f4e8"), Ok(ID_A.to_owned()));
        assert_eq!(resolved("3F4E99"), Ok(ID_B.to_owned()), "hex in capitals");
        assert_eq!(resolved("c0ff"), Ok(ID_C.to_owned()));
        assert_eq!(resolved("3f4e"), Ok(ID_C.to_owned()), "an exact name first");
    }

    #[test]
    fn a_container_not_found_or_ambiguous_says_so() {
        assert_eq!(
            resolved("c0f"),
            Err("container \"c0f\" is too short an id prefix: give its name or at least 4 hex digits of its id".to_owned())
        );
        assert_eq!(
            resolved("nginx"),
            Err("container \"nginx\" is not running: no container has that name or id".to_owned())
        );
        assert!(resolved("dead").is_err_and(|m| m.contains("not running")));
        assert_eq!(
            resolved("3f4e8a1b2c3d4e5f60718293a4b5c6d7e8f90123456789abcdef0123456789ab00"),
            Err("container \"3f4e8a1b2c3d4e5f60718293a4b5c6d7e8f90123456789abcdef0123456789ab00\" is not running: no container has that name or id".to_owned())
        );
        let mut records = records();
        records.pop();
        let error = resolve_container("3f4e", &records)
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "container \"3f4e\" is the prefix of several ids: 3f4e8a1b2c3d (web), 3f4e99887766 (db); give more digits or the name"
        );
    }
}
