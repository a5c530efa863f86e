//! Kernel test of `limit --container` on a real container: podman runs a lab endpoint in
//! the lab's client namespace, its cgroup below the lab's, its files in a storage of the
//! test's own; the command line finds it by name and by id prefix as a user types them,
//! and the rate holds. Root and podman only; ignored with the reason printed otherwise.
//!
//! podman runs with runc and its cgroupfs manager: a host without systemd as PID 1 has no
//! systemd to ask for scopes, and crun (podman's first choice) refuses a host whose
//! cgroup2 tree has controllers beside cgroup v1 ("cgroups in hybrid mode not
//! supported"), where runc gives the container a cgroup2 directory of its own.

pub mod common;

use anyhow::Context as _;
use chadthrottle_core::cgroup_names::Runtime;
use chadthrottle_lab::{Endpoint, Family, Lab, Proto};
use common::containers::{
    Container, check_idle_refused, check_limits, check_placement, endpoint_run_args, installed,
    remove_v1_below, run_words,
};
use common::{Env, Test};
use std::path::{Path, PathBuf};
/// The container's name (each test's storage is its own: no other container sees it).
const NAME: &str = "ct-web";
/// A container podman creates and never starts.
const IDLE: &str = "ct-idle";

/// Why the container test cannot run here, if it cannot.
fn podman_missing() -> Option<String> {
    ["podman", "runc"]
        .into_iter()
        .find(|program| installed(program).is_none())
        .map(|program| {
            format!("{program} is not installed (apt-get install podman runc): the container test is not run")
        })
}

/// podman confined to one lab: its storage (graph root, run root, libpod's tmpdir) in a
/// directory of its own, named by a storage.conf that ChadThrottle reads as podman does;
/// its container's cgroup below the lab's. On drop the container is removed, the cgroup
/// v1 directories runc made beside the lab's cgroup2 one are removed, then the directory.
struct Podman {
    podman: PathBuf,
    dir: PathBuf,
    /// The lab's cgroup relative to the cgroup2 mount, as `--cgroup-parent` takes it;
    /// runc makes the same path in every cgroup v1 hierarchy.
    parent: String,
}

impl Podman {
    fn new(lab: &Lab) -> anyhow::Result<Podman> {
        let podman = installed("podman").context("podman is installed")?;
        let root = chadthrottle_kernel::mounts::cgroup2_root()?;
        let parent = Path::new("/")
            .join(lab.cgroup().strip_prefix(&root)?)
            .display()
            .to_string();
        let dir = std::env::temp_dir().join(format!("{}-podman", lab.name));
        for sub in ["graph", "run", "tmp", "rootfs"] {
            std::fs::create_dir_all(dir.join(sub)).context("the podman storage directories")?;
        }
        // whatever the umask: ChadThrottle reads no record another user could write
        for sub in ["", "graph", "run", "tmp", "rootfs"] {
            let mode = std::os::unix::fs::PermissionsExt::from_mode(0o755);
            std::fs::set_permissions(dir.join(sub), mode)?;
        }
        let guard = Podman {
            podman,
            dir,
            parent,
        };
        std::fs::write(
            guard.storage_conf(),
            format!(
                "[storage]\ndriver = \"vfs\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
                guard.dir.join("graph").display(),
                guard.dir.join("run").display()
            ),
        )?;
        Ok(guard)
    }

    fn storage_conf(&self) -> PathBuf {
        self.dir.join("storage.conf")
    }

    /// The words that run podman with `args`: through `env` (a lab process's wrapper is
    /// a command and its arguments), with the storage.conf and the runtime this host needs.
    fn words(&self, args: &[&str]) -> Vec<String> {
        let mut words = vec![
            "/usr/bin/env".to_owned(),
            format!("CONTAINERS_STORAGE_CONF={}", self.storage_conf().display()),
            self.podman.display().to_string(),
            "--runtime".to_owned(),
            "runc".to_owned(),
            "--cgroup-manager=cgroupfs".to_owned(),
            "--events-backend=file".to_owned(),
            "--tmpdir".to_owned(),
            self.dir.join("tmp").display().to_string(),
        ];
        words.extend(args.iter().map(|&arg| arg.to_owned()));
        words
    }

    /// Runs podman `args` and returns its stdout, failing with its stderr.
    fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        run_words(&self.words(args), "podman", args)
    }

    /// A lab client endpoint in container [`NAME`]: this test binary, bind-mounted into an
    /// otherwise empty root (the host's /usr, /lib and /lib64 read-only for its
    /// libraries), in the lab's client namespace, its cgroup below the lab's. podman runs
    /// as every lab client does, in that namespace and the lab's cgroup, so the
    /// container's "host" network is the lab's (`--network ns:PATH` to the same namespace
    /// is refused there: runc takes it for the host's and will not set podman's network
    /// sysctls in it).
    fn client(&self, lab: &Lab, server: &Endpoint) -> anyhow::Result<Endpoint> {
        let rootfs = self.dir.join("rootfs").display().to_string();
        // podman asks for 1048576 open files and 32768 processes, which a caller without
        // CAP_SYS_RESOURCE (this machine's root) cannot raise its limits to
        let files = format!("nofile={0}:{0}", own_limit(libc::RLIMIT_NOFILE));
        let processes = format!("nproc={0}:{0}", own_limit(libc::RLIMIT_NPROC));
        let mut args = vec!["run".to_owned()];
        args.extend(endpoint_run_args(NAME, &self.parent)?);
        args.extend([
            "--ulimit".to_owned(),
            files,
            "--ulimit".to_owned(),
            processes,
        ]);
        args.extend(["--rootfs".to_owned(), rootfs]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        lab.client_under(server, Proto::Tcp, None, &self.words(&args))
    }

    /// Creates container [`IDLE`] without starting it: podman lists it, and it has no
    /// cgroup.
    fn create_idle(&self) -> anyhow::Result<String> {
        let rootfs = self.dir.join("rootfs").display().to_string();
        self.run(&[
            "create",
            "--name",
            IDLE,
            "--network",
            "none",
            "--rootfs",
            &rootfs,
            "/nothing",
        ])
    }

    /// `podman inspect --format FORMAT` of the container.
    fn inspect(&self, format: &str) -> anyhow::Result<String> {
        self.run(&["inspect", "--format", format, NAME])
    }
}

/// This process's soft limit `resource`, at most 4096 (plenty for one endpoint).
fn own_limit(resource: libc::__rlimit_resource_t) -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: limit is a valid out-pointer for the call.
    let read = unsafe { libc::getrlimit(resource, &raw mut limit) } == 0;
    if read { limit.rlim_cur.min(4096) } else { 1024 }
}

impl Podman {
    /// Removes the container, then the cgroup v1 directories runc and podman made for it
    /// and its monitor (conmon leaves its own a moment after the container is gone).
    fn remove(&self) -> anyhow::Result<()> {
        self.run(&["rm", "--force", "--time", "0", "--ignore", NAME, IDLE])?;
        remove_v1_below(&self.parent)
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        if let Err(error) = self.remove() {
            eprintln!("  cleanup: {error:#}");
        }
        let _best_effort = std::fs::remove_dir_all(&self.dir);
    }
}

/// A podman container's processes in the lab: `/proc/PID/cgroup` shows its own cgroup2
/// directory below the lab's; `limit --container NAME --up` holds its upload and
/// `limit --container ID-PREFIX --down` its download, each to the rate; `rules` lists the
/// container's process as the rule's member; `unlimit` takes each away; a container podman
/// does not know, and one it created but never started, are refused in one line each.
fn limit_container_holds_a_podman_containers_rate() -> anyhow::Result<()> {
    let lab = Lab::new("container", None)?;
    let mut server = lab.server(Proto::Tcp, Family::V4, None)?;
    let podman = Podman::new(&lab)?;
    // chadthrottle reads podman's storage from the storage.conf podman reads
    let conf = podman.storage_conf();
    let env: Env<'_> = &[("CONTAINERS_STORAGE_CONF", conf.as_os_str())];
    let mut client = podman.client(&lab, &server)?;
    let pid: u32 = podman.inspect("{{.State.Pid}}")?.parse()?;
    let id = podman.inspect("{{.Id}}")?;
    let container = Container {
        name: NAME,
        id: &id,
        pid,
    };
    let own = format!("{}/libpod-{id}", podman.parent);
    check_placement(&lab, &container, &own, Some(Runtime::Podman))?;
    check_limits(&lab, env, &mut server, &mut client, &container)?;
    let idle = podman.create_idle()?;
    check_idle_refused(&lab, env, IDLE, &idle)?;
    // what the guard does on failure too, here with its errors
    drop(client);
    podman.remove()
}

fn main() {
    let tests: &[(&'static str, Test)] = &[(
        "limit_container_holds_a_podman_containers_rate",
        limit_container_holds_a_podman_containers_rate,
    )];
    common::main_unless(tests, podman_missing());
}
