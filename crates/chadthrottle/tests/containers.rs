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

use anyhow::{Context as _, ensure};
use chadthrottle_core::cgroup_names::{cgroup2_path, container_in_cgroup};
use chadthrottle_lab::{Endpoint, Family, Lab, Proto};
use common::{Env, MAX_BYTES, MIB, Test, chadthrottle_with, rules_with, run_with, steady, within};
use std::os::fd::{AsFd as _, AsRawFd as _};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A policed transfer long enough for a steady state after the warm-up, short enough for
/// the suite: 6 s, of which the last 4 are measured, ±10 % as the rule tests.
const SECONDS: f64 = 6.0;
const TOLERANCE: f64 = 0.10;
/// The container's name (each test's storage is its own: no other container sees it).
const NAME: &str = "ct-web";
/// A container podman creates and never starts.
const IDLE: &str = "ct-idle";

/// The absolute path of `program` on `PATH`, if it is installed.
fn installed(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

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
        let words = self.words(args);
        let output = Command::new(&words[0])
            .args(&words[1..])
            .output()
            .context("run podman")?;
        ensure!(
            output.status.success(),
            "podman {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }

    /// A lab client endpoint in container [`NAME`]: this test binary, bind-mounted into an
    /// otherwise empty root (the host's /usr, /lib and /lib64 read-only for its
    /// libraries), in the lab's client namespace, its cgroup below the lab's. podman runs
    /// as every lab client does, in that namespace and the lab's cgroup, so the
    /// container's "host" network is the lab's (`--network ns:PATH` to the same namespace
    /// is refused there: runc takes it for the host's and will not set podman's network
    /// sysctls in it).
    fn client(&self, lab: &Lab, server: &Endpoint) -> anyhow::Result<Endpoint> {
        let exe = std::env::current_exe()?.display().to_string();
        let rootfs = self.dir.join("rootfs").display().to_string();
        let binary = format!("{exe}:{exe}:ro");
        // podman asks for 1048576 open files and 32768 processes, which a caller without
        // CAP_SYS_RESOURCE (this machine's root) cannot raise its limits to
        let files = format!("nofile={0}:{0}", own_limit(libc::RLIMIT_NOFILE));
        let processes = format!("nproc={0}:{0}", own_limit(libc::RLIMIT_NPROC));
        let wrapper = self.words(&[
            "run",
            "-i",
            "--name",
            NAME,
            "--network",
            "host",
            "--cgroup-parent",
            &self.parent,
            "--ulimit",
            &files,
            "--ulimit",
            &processes,
            "-v",
            "/usr:/usr:ro",
            "-v",
            "/lib:/lib:ro",
            "-v",
            "/lib64:/lib64:ro",
            "-v",
            &binary,
            "--rootfs",
            &rootfs,
        ]);
        lab.client_under(server, Proto::Tcp, None, &wrapper)
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

/// Removes the directory `path` of a cgroup v1 hierarchy and those below it (empty of
/// processes once the container is gone: cgroup directories are removed with rmdir).
fn remove_v1(path: &Path) {
    if let Ok(entries) = std::fs::read_dir(path) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                remove_v1(&entry.path());
            }
        }
    }
    let _already_gone = std::fs::remove_dir(path);
}

impl Podman {
    /// Removes the container, then the cgroup v1 directories runc and podman made for it
    /// and its monitor (conmon leaves its own a moment after the container is gone: they
    /// are retried for 5 s); says which are left, if any.
    fn remove(&self) -> anyhow::Result<()> {
        self.run(&["rm", "--force", "--time", "0", "--ignore", NAME, IDLE])?;
        let relative = self.parent.trim_start_matches('/');
        ensure!(!relative.is_empty(), "the lab's cgroup is the root");
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left: Vec<PathBuf> = chadthrottle_kernel::mounts::cgroup_v1_mounts()
                .into_iter()
                .map(|hierarchy| hierarchy.join(relative))
                .filter(|dir| dir.is_dir())
                .collect();
            for dir in &left {
                remove_v1(dir);
            }
            if left.iter().all(|dir| !dir.exists()) {
                return Ok(());
            }
            ensure!(
                Instant::now() < deadline,
                "cgroup v1 directories left: {left:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
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
    let run = |args: &[&str]| run_with(&lab, env, args);
    let rules = || rules_with(&lab, env);
    let mut client = podman.client(&lab, &server)?;
    let pid: u32 = podman.inspect("{{.State.Pid}}")?.parse()?;
    let id = podman.inspect("{{.Id}}")?;
    let lines = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))?;
    println!("  container {NAME} {id}, PID {pid}; /proc/{pid}/cgroup:");
    for line in lines.lines() {
        println!("    {line}");
    }
    let cgroup = cgroup2_path(&format!("/proc/{pid}/cgroup"), &lines)?;
    let own = format!("{}/libpod-{id}", podman.parent);
    ensure!(
        cgroup == own,
        "the container's cgroup2 directory is {cgroup}, not its own below the lab's ({own})"
    );
    let found = container_in_cgroup(&cgroup).context("the cgroup is taken for a container")?;
    ensure!(found.id == id, "the cgroup names {found:?}");
    let netns = |path: String| std::fs::metadata(path).map(|meta| meta.ino());
    let lab_netns = format!("/proc/self/fd/{}", lab.client_ns.as_fd().as_raw_fd());
    ensure!(
        netns(format!("/proc/{pid}/ns/net"))? == netns(lab_netns)?,
        "the container is not in the lab's client namespace"
    );

    let said = run(&[
        "limit",
        "--container",
        NAME,
        "--up",
        "1M",
        "--upload-backend",
        "policer",
    ])?;
    println!("  {}", said.trim());
    let listed = rules()?;
    ensure!(
        listed.len() == 1 && listed[0]["name"] == format!("container {NAME}"),
        "one rule for the container: {listed:?}"
    );
    let members: Vec<u64> = listed[0]["members"]
        .as_array()
        .context("members is an array")?
        .iter()
        .filter_map(|member| member["pid"].as_u64())
        .collect();
    ensure!(
        members == [u64::from(pid)],
        "the container's process {pid} is the member: {members:?}"
    );
    client.start_send(SECONDS, MAX_BYTES)?;
    let report = client.finish_send()?;
    within(
        "the container's upload under --container NAME --up 1M",
        &steady(&mut server, &report)?,
        MIB,
        TOLERANCE,
    )?;
    run(&["unlimit", "--container", NAME])?;
    ensure!(rules()?.is_empty(), "unlimit removed the rule");

    let prefix = &id[..12];
    let said = run(&["limit", "--container", prefix, "--down", "1M"])?;
    println!("  {}", said.trim());
    server.start_send_all(SECONDS, MAX_BYTES, 1)?;
    let report = server.finish_send()?;
    within(
        "the container's download under --container ID-PREFIX --down 1M",
        &client.received_steady(&report, common::WARMUP_NS)?,
        MIB,
        TOLERANCE,
    )?;
    run(&["unlimit", "--container", prefix])?;
    ensure!(rules()?.is_empty(), "unlimit removed the rule");

    let output = chadthrottle_with(
        &lab,
        env,
        &["limit", "--container", "ct-nope", "--up", "1M"],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(
        output.status.code() == Some(1)
            && stderr.trim().lines().count() == 1
            && stderr.contains("container \"ct-nope\" is not running"),
        "an unknown container is refused in one line: {stderr:?}"
    );
    // a container podman lists but that has no cgroup2 directory: on a host with cgroup
    // v1 beside cgroup2 the line says its runtime may have left it in v1 only
    let idle = podman.create_idle()?;
    let output = chadthrottle_with(&lab, env, &["limit", "--container", IDLE, "--up", "1M"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let hybrid = !chadthrottle_kernel::mounts::cgroup_v1_mounts().is_empty();
    let why = if hybrid {
        "has no cgroup2 directory of its own: it is stopped, or its runtime put it in cgroup v1 hierarchies only"
    } else {
        "is not running: it has no cgroup"
    };
    println!("  {}", stderr.trim());
    ensure!(
        output.status.code() == Some(1)
            && stderr.trim().lines().count() == 1
            && stderr.contains(&format!("container \"{IDLE}\" ({}) {why}", &idle[..12])),
        "a container without a cgroup2 directory is refused in one line saying why: {stderr:?}"
    );
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
