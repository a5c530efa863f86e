//! Rule targets resolved on this machine: an executable's real path, a user's uid from the
//! passwd database, a unit's or container's cgroup among the cgroup2 mount's directories
//! and the container runtimes' own files, a cgroup path checked on the mount, a tree's
//! first process. What is decided on what is read is the core's (`resolution`,
//! `cgroup_names`); this module only reads.

use crate::{mounts, procs};
use chadthrottle_core::cgroup_names::{
    CgroupError, ContainerRecord, PODMAN_CONTAINERS_DIR_SUFFIX, PODMAN_DEFAULT_GRAPHROOT,
    docker_cgroup_parent, docker_record, podman_graphroot, podman_records, unit_cgroup,
};
use chadthrottle_core::docker_root::{
    DOCKER_CONTAINERS_DIR, DOCKER_DEFAULT_CONFIG, DockerdFlags, docker_data_root, dockerd_flags,
};
use chadthrottle_core::file_trust::{Entry, written_only_by};
use chadthrottle_core::resolution::{CgroupLayout, ResolveError, container_cgroup, resolve_tree};
use chadthrottle_core::rule_request::ResolvedTarget;
use chadthrottle_core::rule_target::{RuleTarget, UserSpec};
use std::ffi::CString;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// How deep below the cgroup2 mount units and containers are looked for: a user's app
/// scope is 5 levels down, a Kubernetes container 6; deeper trees are not walked.
const CGROUP_DEPTH: usize = 10;

/// Where this machine keeps what is read.
#[derive(Debug, Clone)]
pub struct Places {
    /// The cgroup2 mount; `None` when there is none (only cgroup kinds need it).
    pub cgroup2: Option<PathBuf>,
    /// Whether cgroup v1 hierarchies are mounted beside it.
    pub layout: CgroupLayout,
    /// The directories that hold docker's per-container directories (each with a
    /// `config.v2.json`): one per data root (see [`docker_containers_dirs`]); or why a
    /// daemon.json that names one cannot be read.
    pub docker: Result<Vec<PathBuf>, CgroupError>,
    /// podman's (rootful) graph root, whose `DRIVER-containers/containers.json` lists its
    /// containers; or why the storage.conf that names it cannot be read.
    pub podman: Result<PathBuf, CgroupError>,
}

/// The storage.conf podman reads, in containers/storage's order: the file
/// `CONTAINERS_STORAGE_CONF` names, else the administrator's, else the distribution's.
const STORAGE_CONF_ENV: &str = "CONTAINERS_STORAGE_CONF";
const STORAGE_CONFS: [&str; 2] = [
    "/etc/containers/storage.conf",
    "/usr/share/containers/storage.conf",
];

impl Places {
    pub fn here() -> Places {
        Places {
            cgroup2: mounts::cgroup2_root().ok(),
            layout: if mounts::cgroup_v1_mounts().is_empty() {
                CgroupLayout::Unified
            } else {
                CgroupLayout::Hybrid
            },
            docker: docker_containers_dirs(),
            podman: podman_graph_root(),
        }
    }

    fn cgroup2(&self) -> Result<&Path, ResolveError> {
        self.cgroup2.as_deref().ok_or_else(|| ResolveError::Read {
            what: "cgroup2".to_owned(),
            problem: "not mounted: ChadThrottle needs the cgroup2 tree (mount -t cgroup2 none /sys/fs/cgroup)"
                .to_owned(),
        })
    }
}

/// `target` as the kernel is to match it on this machine; the error is one line.
pub fn resolve(target: &RuleTarget) -> Result<ResolvedTarget, String> {
    resolve_in(&Places::here(), target).map_err(|error| error.to_string())
}

/// `target` resolved against what `places` hold.
pub fn resolve_in(places: &Places, target: &RuleTarget) -> Result<ResolvedTarget, ResolveError> {
    Ok(match target {
        RuleTarget::Tree(pid) => resolve_tree(*pid, procs::inspect(*pid))?,
        RuleTarget::Exe(path) => ResolvedTarget::Exe {
            path: real_exe(path)?,
        },
        RuleTarget::Name(name) => ResolvedTarget::Name(name.clone()),
        RuleTarget::CgroupPath(path) => {
            let on_mount = places.cgroup2()?.join(path.trim_start_matches('/'));
            if !on_mount.is_dir() {
                return Err(ResolveError::CgroupMissing(path.clone()));
            }
            ResolvedTarget::Cgroup { path: path.clone() }
        }
        RuleTarget::Unit(unit) => ResolvedTarget::Cgroup {
            path: unit_cgroup(unit, &cgroup_dirs(places.cgroup2()?, CGROUP_DEPTH))?,
        },
        RuleTarget::Container(spec) => {
            let mount = places.cgroup2()?;
            let dirs = cgroup_dirs(mount, CGROUP_DEPTH);
            let docker = places.docker.clone()?;
            let podman = places.podman.clone()?;
            let records = container_records(&docker, &podman);
            // a cgroup no user could have made: cgroup2 directories are owned by who made
            // them (a delegated subtree's user), and cannot be moved to another parent
            let machines = |dir: &str| {
                std::fs::symlink_metadata(mount.join(dir.trim_start_matches('/')))
                    .is_ok_and(|meta| [0, reader()].contains(&meta.uid()))
            };
            ResolvedTarget::Cgroup {
                path: container_cgroup(spec, &dirs, &records, places.layout, machines)?,
            }
        }
        RuleTarget::User(UserSpec::Uid(uid)) => ResolvedTarget::Uid(*uid),
        RuleTarget::User(UserSpec::Name(name)) => match uid_of(name) {
            Ok(Some(uid)) => ResolvedTarget::Uid(uid),
            Ok(None) => return Err(ResolveError::UnknownUser(name.clone())),
            Err(error) => {
                return Err(ResolveError::Read {
                    what: format!("user \"{name}\""),
                    problem: format!("cannot read the user database: {error}"),
                });
            }
        },
    })
}

/// The path /proc/PID/exe will show for `path`: the file's real path if it exists, else
/// its directory's real path and its name (a program not installed yet).
fn real_exe(path: &Path) -> Result<PathBuf, ResolveError> {
    if let Ok(real) = path.canonicalize() {
        return Ok(real);
    }
    let directory = path.parent().unwrap_or(Path::new("/"));
    let missing = || ResolveError::ExeDirectory {
        exe: path.display().to_string(),
        directory: directory.display().to_string(),
    };
    let real = directory.canonicalize().map_err(|_| missing())?;
    let name = path.file_name().ok_or_else(missing)?;
    Ok(real.join(name))
}

/// The uid of login `name` in the passwd database as the C library reads it (files,
/// LDAP, systemd-homed: whatever nsswitch.conf lists); `None` when it has no such user.
fn uid_of(name: &str) -> std::io::Result<Option<u32>> {
    let name = CString::new(name)?;
    let mut buffer = vec![0_u8; 1024];
    loop {
        let mut entry = std::mem::MaybeUninit::<libc::passwd>::uninit();
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is to live memory of the size given; the strings the
        // entry points at are in `buffer`, which outlives the read of `pw_uid` below.
        let code = unsafe {
            libc::getpwnam_r(
                name.as_ptr(),
                entry.as_mut_ptr(),
                buffer.as_mut_ptr().cast(),
                buffer.len(),
                &raw mut found,
            )
        };
        if code == libc::ERANGE && buffer.len() < 1 << 20 {
            buffer.resize(buffer.len() * 2, 0);
            continue;
        }
        if code != 0 {
            return Err(std::io::Error::from_raw_os_error(code));
        }
        if found.is_null() {
            return Ok(None);
        }
        // SAFETY: getpwnam_r returned 0 with `found` set: it points at `entry`, filled.
        return Ok(Some(unsafe { (*found).pw_uid }));
    }
}

/// Every directory below `root` down to `depth` levels, as cgroup2 paths (`/a/b`);
/// directories that cannot be read are skipped.
pub fn cgroup_dirs(root: &Path, depth: usize) -> Vec<String> {
    let mut found = Vec::new();
    let mut level = vec![(root.to_path_buf(), String::new())];
    for _ in 0..depth {
        let mut next = Vec::new();
        for (dir, relative) in level {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.filter_map(Result::ok) {
                let is_dir = entry.file_type().is_ok_and(|kind| kind.is_dir());
                let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                    continue;
                };
                if is_dir {
                    let path = format!("{relative}/{name}");
                    found.push(path.clone());
                    next.push((entry.path(), path));
                }
            }
        }
        level = next;
    }
    found.sort();
    found
}

/// podman's graph root as the storage.conf it reads names it (see [`STORAGE_CONFS`]); the
/// default when there is no such file.
fn podman_graph_root() -> Result<PathBuf, CgroupError> {
    let named = std::env::var_os(STORAGE_CONF_ENV).filter(|value| !value.is_empty());
    let conf = named.map(PathBuf::from).or_else(|| {
        STORAGE_CONFS
            .iter()
            .map(PathBuf::from)
            .find(|path| path.is_file())
    });
    let Some(conf) = conf else {
        return Ok(PathBuf::from(PODMAN_DEFAULT_GRAPHROOT));
    };
    match std::fs::read_to_string(&conf) {
        Ok(text) => podman_graphroot(&conf.display().to_string(), &text).map(PathBuf::from),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            Ok(PathBuf::from(PODMAN_DEFAULT_GRAPHROOT))
        }
        Err(error) => Err(CgroupError::StorageConf {
            file: conf.display().to_string(),
            problem: error.to_string(),
        }),
    }
}

/// docker's containers directories, one per data root: each dockerd's running as root, as it
/// settled it (its `--data-root`, else its daemon.json's `"data-root"`, see
/// `docker_root`), so that a daemon started with a data root of its own is read where it
/// writes; with no dockerd running, the one /etc/docker/daemon.json gives (a stopped
/// container is then still named, and said to be stopped).
fn docker_containers_dirs() -> Result<Vec<PathBuf>, CgroupError> {
    let mut flags: Vec<DockerdFlags> = procs::root_command_lines_of("dockerd")
        .iter()
        .map(|args| dockerd_flags(args))
        .collect();
    if flags.is_empty() {
        flags.push(DockerdFlags::default());
    }
    let mut dirs = Vec::new();
    for flags in &flags {
        let dir = Path::new(&docker_data_root_of(flags)?).join(DOCKER_CONTAINERS_DIR);
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    Ok(dirs)
}

/// The data root of a dockerd with `flags`, reading the daemon.json it reads if needed.
fn docker_data_root_of(flags: &DockerdFlags) -> Result<String, CgroupError> {
    if flags.data_root.is_some() {
        return docker_data_root(flags, None);
    }
    let file = flags
        .config_file
        .as_deref()
        .unwrap_or(DOCKER_DEFAULT_CONFIG);
    match std::fs::read_to_string(file) {
        Ok(text) => docker_data_root(flags, Some((file, &text))),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => docker_data_root(flags, None),
        Err(error) => Err(CgroupError::DaemonJson {
            file: file.to_owned(),
            problem: error.to_string(),
        }),
    }
}

/// The user this command runs as.
fn reader() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Whether `file` can only have been written by root or by the user reading it: it and
/// every directory above it (see `file_trust`).
fn believed(file: &Path) -> bool {
    let Ok(real) = file.canonicalize() else {
        return false;
    };
    let entries: Option<Vec<Entry>> = real
        .ancestors()
        .map(|path| {
            let meta = std::fs::symlink_metadata(path).ok()?;
            Some(Entry {
                uid: meta.uid(),
                mode: meta.permissions().mode() & 0o7777,
                directory: meta.is_dir(),
            })
        })
        .collect();
    entries.is_some_and(|entries| written_only_by(&entries, reader()))
}

/// `file`'s text if it exists and is [`believed`].
fn read_believed(file: &Path) -> Option<String> {
    believed(file)
        .then(|| std::fs::read_to_string(file).ok())
        .flatten()
}

/// The containers docker's and podman's files list: docker's `ID/config.v2.json` under
/// each of the `docker` directories with the cgroup parent of the `ID/hostconfig.json`
/// beside it, podman's `DRIVER-containers/containers.json` under its graph root `podman`
/// (the directory is named after the storage driver: `overlay-containers`,
/// `vfs-containers`, …). A file that cannot be read or is not a record is passed over:
/// one broken container does not hide the others; so is one that a user other than root
/// (or the reader) could have written ([`believed`]).
pub fn container_records(docker: &[PathBuf], podman: &Path) -> Vec<ContainerRecord> {
    let mut records = Vec::new();
    for dir in docker {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let file = entry.path().join("config.v2.json");
            let Some(json) = read_believed(&file) else {
                continue;
            };
            let Ok(mut record) = docker_record(&file.display().to_string(), &json) else {
                continue;
            };
            let host = entry.path().join("hostconfig.json");
            record.cgroup_parent = read_believed(&host)
                .and_then(|json| docker_cgroup_parent(&host.display().to_string(), &json).ok())
                .flatten();
            records.push(record);
        }
    }
    let mut lists: Vec<PathBuf> = std::fs::read_dir(podman)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|entry| {
            entry
                .file_name()
                .to_str()
                .is_some_and(|name| name.ends_with(PODMAN_CONTAINERS_DIR_SUFFIX))
        })
        .map(|entry| entry.path().join("containers.json"))
        .collect();
    lists.sort();
    for list in lists {
        if let Some(json) = read_believed(&list) {
            records.extend(
                podman_records(&list.display().to_string(), &json)
                    .ok()
                    .into_iter()
                    .flatten(),
            );
        }
    }
    records
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// A directory of the test's own under the temporary directory, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            let path =
                std::env::temp_dir().join(format!("ct-targets-{}-{name}", std::process::id()));
            let _ = fs::remove_dir_all(&path);
            fs::create_dir_all(&path).expect("scratch directory");
            let scratch = Scratch(path);
            scratch.settle(&scratch.0);
            scratch
        }

        /// Gives `path` and the directories between it and the scratch directory the
        /// modes a runtime's files have (0755, a file 0644), whatever the umask: the
        /// records are read only if no one else can write them.
        fn settle(&self, path: &Path) {
            for step in path
                .ancestors()
                .take_while(|step| step.starts_with(&self.0))
            {
                let mode = if step.is_dir() { 0o755 } else { 0o644 };
                fs::set_permissions(step, fs::Permissions::from_mode(mode)).expect("chmod");
            }
        }

        fn places(&self) -> Places {
            Places {
                cgroup2: Some(self.0.join("cgroup")),
                layout: CgroupLayout::Unified,
                docker: Ok(vec![self.0.join("docker")]),
                podman: Ok(self.0.join("podman")),
            }
        }

        fn mkdir(&self, relative: &str) -> PathBuf {
            let path = self.0.join(relative);
            fs::create_dir_all(&path).expect("mkdir");
            self.settle(&path);
            path
        }

        /// docker's record of container `id` named `name` under `containers`.
        fn docker_record(&self, containers: &str, id: &str, name: &str) {
            let json = format!(r#"{{"ID": "{id}", "Name": "/{name}"}}"#);
            self.write(&format!("{containers}/{id}/config.v2.json"), &json);
        }

        fn write(&self, relative: &str, text: &str) {
            let path = self.0.join(relative);
            fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
            fs::write(&path, text).expect("write");
            self.settle(&path);
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    const WEB: &str = "3f4e8a1b2c3d4e5f60718293a4b5c6d7e8f90123456789abcdef0123456789ab";
    const DB: &str = "0a1b2c3d4e5f60718293a4b5c6d7e8f90123456789abcdef0123456789abcdef";
    const CACHE: &str = "8f6c45ff1f65faa8cd237a88e1eb5e4e3c1cbe0f74463ca2e7b3c0afb615ce2d";

    #[test]
    fn executables_resolve_to_their_real_path_even_before_they_exist() {
        let scratch = Scratch::new("exe");
        let bin = scratch.mkdir("bin");
        scratch.write("bin/real", "");
        std::os::unix::fs::symlink(bin.join("real"), bin.join("link")).expect("symlink");
        std::os::unix::fs::symlink(&bin, scratch.0.join("alias")).expect("symlink");
        let places = scratch.places();
        let exe = |path: PathBuf| resolve_in(&places, &RuleTarget::Exe(path));
        let real = bin.canonicalize().expect("exists").join("real");
        assert_eq!(
            exe(bin.join("link")),
            Ok(ResolvedTarget::Exe { path: real.clone() })
        );
        assert_eq!(
            exe(scratch.0.join("alias/later")),
            Ok(ResolvedTarget::Exe {
                path: bin.canonicalize().expect("exists").join("later")
            }),
            "not installed yet: the directory's real path"
        );
        let missing = scratch.0.join("nowhere/steam");
        let error = exe(missing.clone()).expect_err("no directory").to_string();
        assert_eq!(
            error,
            format!(
                "executable \"{}\": its directory \"{}\" does not exist; give the path of an \
                 installed program, as /proc/PID/exe shows it",
                missing.display(),
                scratch.0.join("nowhere").display()
            )
        );
    }

    #[test]
    fn units_and_cgroup_paths_are_found_on_the_mount() {
        let scratch = Scratch::new("units");
        scratch.mkdir("cgroup/system.slice/syncthing.service");
        scratch.mkdir(
            "cgroup/user.slice/user-1000.slice/user@1000.service/app.slice/syncthing.service",
        );
        scratch.mkdir("cgroup/system.slice/sshd.service");
        let places = scratch.places();
        assert_eq!(
            resolve_in(&places, &RuleTarget::Unit("sshd.service".into())),
            Ok(ResolvedTarget::Cgroup {
                path: "/system.slice/sshd.service".into()
            })
        );
        let ambiguous = resolve_in(&places, &RuleTarget::Unit("syncthing.service".into()))
            .expect_err("two of them")
            .to_string();
        assert!(ambiguous.contains("names several cgroups"), "{ambiguous}");
        let missing = resolve_in(&places, &RuleTarget::Unit("nope.service".into()))
            .expect_err("none")
            .to_string();
        assert_eq!(
            missing,
            "unit \"nope.service\" is not running: no cgroup named so"
        );
        assert_eq!(
            resolve_in(&places, &RuleTarget::CgroupPath("/system.slice".into())),
            Ok(ResolvedTarget::Cgroup {
                path: "/system.slice".into()
            })
        );
        let missing = resolve_in(&places, &RuleTarget::CgroupPath("/nope".into()))
            .expect_err("none")
            .to_string();
        assert!(
            missing.starts_with("cgroup path \"/nope\" does not exist"),
            "{missing}"
        );
        let shallow = cgroup_dirs(&scratch.0.join("cgroup"), 2);
        assert!(shallow.contains(&"/user.slice/user-1000.slice".to_owned()));
        assert!(
            !shallow.iter().any(|d| d.contains("user@1000")),
            "{shallow:?}"
        );
    }

    #[test]
    fn containers_are_named_by_their_runtimes_files_and_run_in_a_cgroup() {
        let scratch = Scratch::new("containers");
        scratch.mkdir(&format!("cgroup/system.slice/docker-{WEB}.scope"));
        scratch.write(
            &format!("docker/{WEB}/config.v2.json"),
            &format!(r#"{{"ID": "{WEB}", "Name": "/web", "State": {{}}}}"#),
        );
        scratch.write("docker/broken/config.v2.json", "{");
        scratch.write(
            "podman/overlay-containers/containers.json",
            &format!(r#"[{{"id": "{DB}", "names": ["db"]}}]"#),
        );
        // a second storage driver's list, as podman 4.3.1 writes it (`vfs`), of a
        // container run by podman's cgroupfs driver
        scratch.write(
            "podman/vfs-containers/containers.json",
            &format!(
                r#"[{{"id":"{CACHE}","names":["cache"],"image":"","layer":"8888a16a2b4465f34cbd2f71dd1a54e7eb53b62f8b53dab035f9cf84b3192e04","metadata":"{{\"image-name\":\"\",\"image-id\":\"\",\"name\":\"cache\",\"created-at\":1796091165}}","created":"2026-12-01T02:12:45.977849127Z","flags":{{"MountLabel":"","ProcessLabel":""}}}}]"#
            ),
        );
        // only the `DRIVER-containers` directories hold containers
        scratch.write(
            "podman/vfs-layers/containers.json",
            &format!(r#"[{{"id": "{WEB}", "names": ["a-layer"]}}]"#),
        );
        scratch.mkdir(&format!("cgroup/libpod_parent/libpod-{CACHE}"));
        let places = scratch.places();
        assert_eq!(
            resolve_in(&places, &RuleTarget::Container("cache".into())),
            Ok(ResolvedTarget::Cgroup {
                path: format!("/libpod_parent/libpod-{CACHE}")
            })
        );
        assert_eq!(
            resolve_in(&places, &RuleTarget::Container(CACHE[..6].into())),
            Ok(ResolvedTarget::Cgroup {
                path: format!("/libpod_parent/libpod-{CACHE}")
            }),
            "by id prefix"
        );
        let hybrid = Places {
            layout: CgroupLayout::Hybrid,
            ..scratch.places()
        };
        let no_cgroup2 = resolve_in(&hybrid, &RuleTarget::Container("db".into()))
            .expect_err("no cgroup2 directory")
            .to_string();
        assert!(
            no_cgroup2.starts_with("container \"db\" (0a1b2c3d4e5f) has no cgroup2 directory"),
            "{no_cgroup2}"
        );
        let broken = Places {
            podman: Err(CgroupError::StorageConf {
                file: "/etc/containers/storage.conf".into(),
                problem: "invalid table header".into(),
            }),
            ..scratch.places()
        };
        let unread = resolve_in(&broken, &RuleTarget::Container("web".into()))
            .expect_err("storage.conf unread")
            .to_string();
        assert!(
            unread.starts_with("/etc/containers/storage.conf: not a storage.conf"),
            "{unread}"
        );
        assert_eq!(
            resolve_in(&places, &RuleTarget::Container("web".into())),
            Ok(ResolvedTarget::Cgroup {
                path: format!("/system.slice/docker-{WEB}.scope")
            })
        );
        let stopped = resolve_in(&places, &RuleTarget::Container("db".into()))
            .expect_err("no cgroup")
            .to_string();
        assert!(
            stopped.starts_with("container \"db\" (0a1b2c3d4e5f) is not running"),
            "{stopped}"
        );
        let docker = places.docker.clone().expect("docker's directories");
        let records = container_records(&docker, &scratch.0.join("podman"));
        assert_eq!(
            records.len(),
            3,
            "the broken record is passed over: {records:?}"
        );
    }

    #[test]
    fn every_docker_data_root_is_read() {
        let scratch = Scratch::new("docker-roots");
        scratch.mkdir(&format!("cgroup/docker/{WEB}"));
        scratch.mkdir(&format!("cgroup/ct-lab/docker/{DB}"));
        scratch.docker_record("default/containers", WEB, "web");
        scratch.docker_record("private/containers", DB, "db");
        let places = Places {
            docker: Ok(vec![
                scratch.0.join("default/containers"),
                scratch.0.join("private/containers"),
                scratch.0.join("missing/containers"),
            ]),
            ..scratch.places()
        };
        for (spec, path) in [
            ("web", format!("/docker/{WEB}")),
            ("db", format!("/ct-lab/docker/{DB}")),
            (&DB[..12], format!("/ct-lab/docker/{DB}")),
        ] {
            assert_eq!(
                resolve_in(&places, &RuleTarget::Container(spec.into())),
                Ok(ResolvedTarget::Cgroup { path }),
                "{spec}"
            );
        }
        let broken = Places {
            docker: Err(CgroupError::DaemonJson {
                file: "/etc/docker/daemon.json".into(),
                problem: "EOF while parsing an object".into(),
            }),
            ..scratch.places()
        };
        let unread = resolve_in(&broken, &RuleTarget::Container("web".into()))
            .expect_err("daemon.json unread")
            .to_string();
        assert_eq!(
            unread,
            "/etc/docker/daemon.json: not a daemon.json docker reads: EOF while parsing an object"
        );
    }

    /// docker's cgroupfs driver under `--cgroup-parent /ct-lab/apps`: `PARENT/ID`, found
    /// from the record (its hostconfig.json's parent), not from the path.
    #[test]
    fn a_docker_container_under_any_parent_is_found_from_its_record() {
        let scratch = Scratch::new("parent");
        let apps = format!("/ct-lab/apps/{WEB}");
        scratch.mkdir(&format!("cgroup{apps}"));
        scratch.mkdir(&format!("cgroup/ct-old/{WEB}"));
        scratch.docker_record("docker", WEB, "web");
        scratch.write(
            &format!("docker/{WEB}/hostconfig.json"),
            r#"{"NetworkMode": "host", "CgroupParent": "/ct-lab/apps"}"#,
        );
        let places = scratch.places();
        let web = || resolve_in(&places, &RuleTarget::Container("web".into()));
        let at = |path: &str| {
            Ok(ResolvedTarget::Cgroup {
                path: path.to_owned(),
            })
        };
        // the parent the record keeps settles which of the two directories
        assert_eq!(web(), at(&apps));
        let records = container_records(&places.docker.clone().expect("dirs"), Path::new("/-"));
        assert_eq!(
            records[0].cgroup_parent.as_deref(),
            Some("/ct-lab/apps"),
            "{records:?}"
        );
        // a hostconfig.json others may write is not read: two directories, refused
        let host = scratch.0.join(format!("docker/{WEB}/hostconfig.json"));
        fs::set_permissions(&host, fs::Permissions::from_mode(0o666)).expect("chmod");
        let several = web().expect_err("two directories").to_string();
        assert!(
            several.starts_with(
                "container \"web\" (3f4e8a1b2c3d) has several cgroups named by its id: "
            ) && several.ends_with("; give one with --cgroup-path"),
            "{several}"
        );
        fs::remove_dir(scratch.0.join(format!("cgroup/ct-old/{WEB}"))).expect("rmdir");
        assert_eq!(web(), at(&apps), "the one directory named by the id");
        // nor is a config.v2.json others may write: no container named so
        let config = scratch.0.join(format!("docker/{WEB}/config.v2.json"));
        for mode in [0o664, 0o646] {
            fs::set_permissions(&config, fs::Permissions::from_mode(mode)).expect("chmod");
            let unknown = web().expect_err("record not read").to_string();
            assert!(
                unknown.starts_with("container \"web\" is not running"),
                "{unknown}"
            );
        }
        fs::set_permissions(&config, fs::Permissions::from_mode(0o600)).expect("chmod");
        assert_eq!(web(), at(&apps));
        // nor a record in a directory others may write
        let dir = scratch.0.join(format!("docker/{WEB}"));
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).expect("chmod");
        assert!(web().is_err(), "a directory others may write in");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).expect("chmod");
        assert_eq!(web(), at(&apps));
        if reader() != 0 {
            println!("not root: a cgroup directory of another user's is not made");
            return;
        }
        // a directory another user made (a delegated cgroup's) is not the container's
        let nobody = 65_534;
        std::os::unix::fs::chown(scratch.0.join(format!("cgroup{apps}")), Some(nobody), None)
            .expect("chown");
        let theirs = web().expect_err("a user's directory").to_string();
        assert!(
            theirs.starts_with("container \"web\" (3f4e8a1b2c3d) is not running"),
            "{theirs}"
        );
        let records_file = scratch.0.join(format!("docker/{WEB}/config.v2.json"));
        std::os::unix::fs::chown(&records_file, Some(nobody), None).expect("chown");
        assert!(!believed(&records_file), "a record another user owns");
    }

    #[test]
    fn users_come_from_the_passwd_database() {
        let places = Places {
            cgroup2: None,
            layout: CgroupLayout::Unified,
            docker: Ok(Vec::new()),
            podman: Ok(PathBuf::new()),
        };
        let user = |name: &str| resolve_in(&places, &RuleTarget::User(UserSpec::Name(name.into())));
        // root is uid 0 wherever there is a passwd database
        assert_eq!(user("root"), Ok(ResolvedTarget::Uid(0)));
        let unknown = user("ct-no-such-user").expect_err("unknown").to_string();
        assert!(
            unknown.starts_with("user \"ct-no-such-user\" is not in the user database"),
            "{unknown}"
        );
        assert_eq!(
            resolve_in(&places, &RuleTarget::User(UserSpec::Uid(4242))),
            Ok(ResolvedTarget::Uid(4242)),
            "a uid is taken as it is"
        );
        let no_mount = resolve_in(&places, &RuleTarget::Unit("a.service".into()))
            .expect_err("no cgroup2")
            .to_string();
        assert!(no_mount.starts_with("cgroup2: not mounted"), "{no_mount}");
    }

    #[test]
    fn a_tree_starts_at_a_running_process() {
        let me = std::process::id();
        let resolved = resolve_in(&Places::here(), &RuleTarget::Tree(me)).expect("this process");
        assert!(matches!(resolved, ResolvedTarget::Tree { root } if root.pid == me));
    }
}
