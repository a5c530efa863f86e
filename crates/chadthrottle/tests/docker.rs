//! Kernel test of `limit --container` on a real docker container: a dockerd of the test's
//! own, confined to the lab, runs a lab endpoint; the command line finds the container by
//! name and by id prefix as a user types them (reading the data root from the running
//! dockerd's command line), and the rate holds. Root and docker.io only; ignored with the
//! reason printed otherwise.
//!
//! The dockerd and the containerd the test starts for it run in the lab's client namespace
//! (so a `--network host` container is in the lab's network) and the lab's cgroup; dockerd
//! with no iptables, no bridge, the cgroupfs driver (no systemd here), and both with every
//! place they write in a directory of the test's own: data root, exec root, pidfile, API
//! socket, daemon.json, key.json; containerd's root, state, socket and `opt` directory.
//! containerd is the test's, not one dockerd starts, so that dockerd never takes a
//! machine's containerd at /run/containerd/containerd.sock instead, and so that its `opt`
//! plugin does not make /opt/containerd. What they write elsewhere anyway is undone by the
//! guard: /run/docker/plugins (a fixed path where dockerd looks for plugins), the
//! namespace file dockerd binds at EXEC-ROOT/netns/default and does not unmount on exit,
//! and /run/containerd/s, where containerd 1.6's shim makes its socket whatever
//! containerd's state directory (the socket goes with the shim; the directories stay).

pub mod common;

use anyhow::{Context as _, bail, ensure};
use chadthrottle_core::cgroup_names::{Runtime, docker_cgroup_parent};
use chadthrottle_lab::{Endpoint, Family, Lab, Proto};
use common::Test;
use common::containers::{
    Container, check_idle_refused, check_limits, check_placement, endpoint_run_args, installed,
    remove_v1_below, run_words,
};
use std::ffi::CString;
use std::os::fd::{AsFd as _, AsRawFd as _};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The container's name (the test's dockerd knows no other containers).
const NAME: &str = "ct-web";
/// A second container, under a cgroup parent whose last component is not `docker`
/// ([`APPS_LEAF`]), as docker-compose's `cgroup_parent` or a CI runner's puts one.
const APP: &str = "ct-app";
/// A container docker creates and never starts.
const IDLE: &str = "ct-idle";
/// The image, imported from an empty archive: the container's programs are the host's,
/// bind-mounted read-only (no registry is needed).
const IMAGE: &str = "ct-empty:latest";
/// How long dockerd may take to answer, and to stop, on a busy 2-core machine.
const DAEMON_WAIT: Duration = Duration::from_secs(60);
/// docker puts a container's cgroup at `PARENT/ID`; a parent whose last component is
/// `docker` keeps the layout of docker's own default (`/docker/ID`).
const PARENT_LEAF: &str = "docker";
/// [`APP`]'s parent's last component: `PARENT/ID` then names no container by its path.
const APPS_LEAF: &str = "apps";
/// Directories docker makes outside the places it is given, deepest first: dockerd looks
/// for plugins in /run/docker/plugins, containerd's shim puts its socket in
/// /run/containerd/s; /opt/containerd is containerd's `opt` plugin's default (the test's
/// containerd is given another, so it should not appear). The guard removes those that
/// did not exist before (if empty), saying so.
const FIXED_DIRS: [&str; 7] = [
    "/run/docker/plugins",
    "/run/docker",
    "/run/containerd/s",
    "/run/containerd",
    "/opt/containerd/bin",
    "/opt/containerd/lib",
    "/opt/containerd",
];
/// Where containerd 1.6's shims keep their sockets.
const SHIM_SOCKETS: &str = "/run/containerd/s";

/// Why the docker test cannot run here, if it cannot.
fn docker_missing() -> Option<String> {
    ["dockerd", "containerd", "containerd-shim-runc-v2", "runc"]
        .into_iter()
        .find(|program| installed(program).is_none())
        .map(|program| {
            format!(
                "{program} is not installed (apt-get install --no-install-recommends docker.io): the docker test is not run"
            )
        })
}

/// A dockerd and containerd of the test's own and what they made, undone on drop (also
/// when the test fails): the containers removed, dockerd then containerd stopped by PID,
/// any process left that names the directory (a shim) ended by PID, the mounts left below
/// the directory unmounted, the cgroup v1 directories made beside the lab's cgroup2 one
/// removed, those of [`FIXED_DIRS`] that docker made removed, then the directory.
struct Docker {
    /// The client of the same docker as dockerd (another on `PATH` may be newer).
    docker: PathBuf,
    dir: PathBuf,
    /// `--cgroup-parent`: below the lab's cgroup, relative to the cgroup2 mount.
    parent: String,
    /// [`APP`]'s `--cgroup-parent`, below the lab's cgroup too.
    apps: String,
    /// The lab's cgroup relative to the mount: the path runc also makes in cgroup v1.
    lab_cgroup: String,
    daemon: Option<Child>,
    /// The containerd dockerd is given.
    containerd: Option<Child>,
    /// Those of [`FIXED_DIRS`] that did not exist before this dockerd started.
    made: Vec<&'static str>,
}

impl Docker {
    /// Starts a dockerd in `lab`'s client namespace and cgroup, waits until it answers,
    /// and imports the empty image.
    fn start(lab: &Lab) -> anyhow::Result<Docker> {
        let dockerd = installed("dockerd").context("dockerd is installed")?;
        // the client of dockerd's package: beside it, or in the `bin` beside its `sbin`
        // (Debian: /usr/sbin/dockerd, /usr/bin/docker); else the one on PATH
        let sbin = dockerd.parent().context("dockerd's directory")?;
        let docker = [sbin.join("docker"), sbin.join("../bin/docker")]
            .into_iter()
            .find(|client| client.is_file())
            .or_else(|| installed("docker"))
            .context("docker (the client) is installed")?;
        let root = chadthrottle_kernel::mounts::cgroup2_root()?;
        let lab_cgroup = Path::new("/")
            .join(lab.cgroup().strip_prefix(&root)?)
            .display()
            .to_string();
        let dir = std::env::temp_dir().join(format!("{}-docker", lab.name));
        for sub in ["data", "exec", "client"] {
            std::fs::create_dir_all(dir.join(sub)).context("the docker directories")?;
        }
        // whatever the umask: ChadThrottle reads no record another user could write
        for sub in ["", "data", "exec", "client"] {
            let mode = std::os::unix::fs::PermissionsExt::from_mode(0o755);
            std::fs::set_permissions(dir.join(sub), mode)?;
        }
        let mut guard = Docker {
            docker,
            parent: format!("{lab_cgroup}/{PARENT_LEAF}"),
            apps: format!("{lab_cgroup}/{APPS_LEAF}"),
            lab_cgroup,
            daemon: None,
            containerd: None,
            made: FIXED_DIRS
                .into_iter()
                .filter(|dir| !Path::new(dir).exists())
                .collect(),
            dir,
        };
        // the key dockerd 20.10 makes for itself goes to /etc/docker unless told
        std::fs::write(
            guard.dir.join("daemon.json"),
            serde_json::json!({ "deprecated-key-path": guard.dir.join("key.json") }).to_string(),
        )?;
        // containerd's shims leave containerd for this process's init, which here reaps
        // them late: as their reaper this process reaps them itself (`reap_shims`)
        // SAFETY: prctl with these arguments sets only this process's reaper flag.
        let reaper = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        ensure!(
            reaper == 0,
            "PR_SET_CHILD_SUBREAPER: {}",
            std::io::Error::last_os_error()
        );
        std::fs::write(guard.dir.join("containerd.toml"), guard.containerd_toml())?;
        let containerd = installed("containerd").context("containerd is installed")?;
        let config = guard.path("containerd.toml");
        let args = ["--config", &config, "--log-level", "warn"];
        guard.containerd = Some(spawn_in_lab(
            &containerd,
            &args,
            lab,
            &guard.dir,
            "containerd",
        )?);
        guard.wait_containerd()?;
        let args = guard.dockerd_args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        guard.daemon = Some(spawn_in_lab(&dockerd, &args, lab, &guard.dir, "dockerd")?);
        guard.wait_ready()?;
        let archive = guard.dir.join("empty.tar");
        // an archive that holds nothing: its end, two zero blocks
        std::fs::write(&archive, [0_u8; 1024])?;
        guard.run(&["import", &archive.display().to_string(), IMAGE])?;
        Ok(guard)
    }

    fn path(&self, sub: &str) -> String {
        self.dir.join(sub).display().to_string()
    }

    fn socket(&self) -> String {
        format!("unix://{}", self.path("docker.sock"))
    }

    /// containerd's configuration: every place it writes in the directory; no CRI plugin.
    fn containerd_toml(&self) -> String {
        format!(
            "version = 2\n\
             root = \"{root}\"\n\
             state = \"{state}\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{socket}\"\n\
             [plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"{opt}\"\n",
            root = self.path("containerd/root"),
            state = self.path("containerd/state"),
            socket = self.path("containerd/containerd.sock"),
            opt = self.path("containerd/opt"),
        )
    }

    fn dockerd_args(&self) -> Vec<String> {
        let mut args: Vec<String> = ["--iptables=false", "--ip6tables=false", "--bridge=none"]
            .map(str::to_owned)
            .into();
        for (flag, value) in [
            ("--containerd", self.path("containerd/containerd.sock")),
            ("--data-root", self.path("data")),
            ("--exec-root", self.path("exec")),
            ("--pidfile", self.path("docker.pid")),
            ("-H", self.socket()),
            ("--exec-opt", "native.cgroupdriver=cgroupfs".to_owned()),
            // as the podman test: nothing asked of the temporary directory's filesystem
            ("--storage-driver", "vfs".to_owned()),
            ("--config-file", self.path("daemon.json")),
        ] {
            args.push(flag.to_owned());
            args.push(value);
        }
        args
    }

    /// Waits until containerd's socket is there; fails with its log if it exits first.
    fn wait_containerd(&mut self) -> anyhow::Result<()> {
        let socket = self.dir.join("containerd/containerd.sock");
        let deadline = Instant::now() + DAEMON_WAIT;
        while !socket.exists() {
            if let Some(containerd) = self.containerd.as_mut()
                && let Some(status) = containerd.try_wait()?
            {
                self.containerd = None;
                bail!(
                    "containerd exited ({status}):\n{}",
                    self.log_tail("containerd")
                );
            }
            ensure!(
                Instant::now() < deadline,
                "containerd made no socket in {DAEMON_WAIT:?}:\n{}",
                self.log_tail("containerd")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    /// The last lines `program` (dockerd, containerd) wrote, for a failure's message.
    fn log_tail(&self, program: &str) -> String {
        let log =
            std::fs::read_to_string(self.dir.join(format!("{program}.log"))).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(8)..].join("\n")
    }

    /// Waits until dockerd answers on its socket; fails with its log if it exits first.
    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + DAEMON_WAIT;
        loop {
            if let Some(daemon) = self.daemon.as_mut()
                && let Some(status) = daemon.try_wait()?
            {
                self.daemon = None;
                bail!("dockerd exited ({status}):\n{}", self.log_tail("dockerd"));
            }
            if self
                .run(&["version", "--format", "{{.Server.Version}}"])
                .is_ok()
            {
                return Ok(());
            }
            ensure!(
                Instant::now() < deadline,
                "dockerd did not answer in {DAEMON_WAIT:?}:\n{}",
                self.log_tail("dockerd")
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The words that run the docker client with `args`: through `env` (a lab process's
    /// wrapper is a command and its arguments), its own configuration directory, this
    /// dockerd's socket.
    fn words(&self, args: &[&str]) -> Vec<String> {
        let mut words = vec![
            "/usr/bin/env".to_owned(),
            format!("DOCKER_CONFIG={}", self.path("client")),
            self.docker.display().to_string(),
            "-H".to_owned(),
            self.socket(),
        ];
        words.extend(args.iter().map(|&arg| arg.to_owned()));
        words
    }

    /// Runs docker `args` and returns its stdout, failing with its stderr.
    fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        run_words(&self.words(args), "docker", args)
    }

    /// A lab client endpoint in container `name`: this test binary, bind-mounted into
    /// the empty image with the host's /usr, /lib and /lib64 (read-only) for its
    /// libraries; `--network host` is dockerd's namespace, the lab's client one; its
    /// cgroup under `parent`, below the lab's.
    fn client(
        &self,
        lab: &Lab,
        server: &Endpoint,
        name: &str,
        parent: &str,
    ) -> anyhow::Result<Endpoint> {
        let mut args = vec!["run".to_owned()];
        args.extend(endpoint_run_args(name, parent)?);
        args.push(IMAGE.to_owned());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        lab.client_under(server, Proto::Tcp, None, &self.words(&args))
            .with_context(|| {
                // what docker knows of the container, if it got that far
                let state = "{{.State.Status}} exit {{.State.ExitCode}} {{.State.Error}}";
                let known = self
                    .inspect(name, state)
                    .unwrap_or_else(|error| format!("{error:#}"));
                format!("container {name}: {known}")
            })
    }

    /// Creates container [`IDLE`] without starting it: docker lists it (its
    /// config.v2.json is written), and it has no cgroup.
    fn create_idle(&self) -> anyhow::Result<String> {
        self.run(&[
            "create",
            "--name",
            IDLE,
            "--network",
            "none",
            IMAGE,
            "/nothing",
        ])
    }

    fn inspect(&self, name: &str, format: &str) -> anyhow::Result<String> {
        self.run(&["inspect", "--format", format, name])
    }

    /// Container `name` as docker reports it, its endpoint's process `pid` among them.
    fn container(&self, name: &str) -> anyhow::Result<(String, u32)> {
        let pid = self.inspect(name, "{{.State.Pid}}")?.parse()?;
        Ok((self.inspect(name, "{{.Id}}")?, pid))
    }

    /// The cgroup parent docker keeps for container `id` in its data root, as ChadThrottle
    /// reads it (`DATA-ROOT/containers/ID/hostconfig.json`).
    fn recorded_parent(&self, id: &str) -> anyhow::Result<Option<String>> {
        let file = self
            .dir
            .join("data/containers")
            .join(id)
            .join("hostconfig.json");
        let json = std::fs::read_to_string(&file).with_context(|| file.display().to_string())?;
        Ok(docker_cgroup_parent(&file.display().to_string(), &json)?)
    }

    /// Undoes everything (see [`Docker`]); says what could not be undone, and what was
    /// left and had to be ended or unmounted (printed: dockerd 20.10 always leaves its
    /// netns/default mount).
    fn remove(&mut self) -> anyhow::Result<()> {
        let mut problems = Vec::new();
        if self.daemon.is_some() {
            let removed = self.run(&["ps", "--all", "--quiet"]).and_then(|ids| {
                let ids: Vec<&str> = ids.split_whitespace().collect();
                if ids.is_empty() {
                    return Ok(String::new());
                }
                let mut args = vec!["rm", "--force"];
                args.extend(ids);
                self.run(&args)
            });
            if let Err(error) = removed {
                problems.push(format!("{error:#}"));
            }
        }
        if let Err(error) = self.stop_daemon() {
            problems.push(format!("{error:#}"));
        }
        for pid in processes_naming(&self.dir) {
            println!("  cleanup: ending process {pid}, left by the test's dockerd");
            // SAFETY: kill has no memory-safety preconditions; the PID names our dir.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        }
        if let Err(error) = reap_shims() {
            problems.push(format!("{error:#}"));
        }
        for mount in mounts_below(&self.dir) {
            println!("  cleanup: unmounting {mount}, left by the test's dockerd");
            if let Err(error) = unmount(&mount) {
                problems.push(format!("unmount {mount}: {error}"));
            }
        }
        let left = mounts_below(&self.dir);
        if !left.is_empty() {
            problems.push(format!("mounts left: {left:?}"));
        }
        if let Err(error) = remove_v1_below(&self.lab_cgroup) {
            problems.push(format!("{error:#}"));
        }
        for dir in &self.made {
            if Path::new(dir).exists() {
                println!("  cleanup: removing {dir}, made by the test's docker");
            }
            // rmdir only: an empty directory this docker made
            let _ = std::fs::remove_dir(dir);
            if Path::new(dir).exists() {
                problems.push(format!("{dir} is left"));
            }
        }
        ensure!(problems.is_empty(), "{}", problems.join("; "));
        Ok(())
    }

    /// Stops dockerd, then containerd, each by its PID.
    fn stop_daemon(&mut self) -> anyhow::Result<()> {
        let dockerd = stop(self.daemon.take(), "dockerd");
        let containerd = stop(self.containerd.take(), "containerd");
        dockerd.and(containerd)
    }
}

/// Stops `child` (SIGTERM, then SIGKILL after [`DAEMON_WAIT`]) and reaps it; an error if
/// it had to be killed.
fn stop(child: Option<Child>, name: &str) -> anyhow::Result<()> {
    let Some(mut child) = child else {
        return Ok(());
    };
    // SAFETY: kill has no memory-safety preconditions; the PID is our unreaped child's.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let deadline = Instant::now() + DAEMON_WAIT;
    while child.try_wait()?.is_none() {
        if Instant::now() > deadline {
            child.kill()?;
            child.wait()?;
            bail!("{name} did not stop in {DAEMON_WAIT:?}: killed");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Starts `program args` in `lab`'s client namespace and cgroup (entered between fork and
/// exec), in `dir`, its output to `dir/NAME.log`.
fn spawn_in_lab(
    program: &Path,
    args: &[&str],
    lab: &Lab,
    dir: &Path,
    name: &str,
) -> anyhow::Result<Child> {
    let log = std::fs::File::create(dir.join(format!("{name}.log")))?;
    let procs = std::fs::File::options()
        .write(true)
        .open(lab.cgroup().join("cgroup.procs"))
        .context("the lab's cgroup.procs")?;
    let netns = lab.client_ns.as_fd().as_raw_fd();
    let procs_fd = procs.as_raw_fd();
    let mut command = Command::new(program);
    command
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: between fork and exec the child makes two system calls (setns, write) on
    // descriptors opened above, which stay open in the parent until spawn returns.
    unsafe {
        command.pre_exec(move || {
            if libc::setns(netns, libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // "0" moves the writer into the cgroup
            if libc::write(procs_fd, b"0".as_ptr().cast(), 1) != 1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = command.spawn().with_context(|| format!("start {name}"))?;
    drop(procs);
    Ok(child)
}

impl Drop for Docker {
    fn drop(&mut self) {
        if let Err(error) = self.remove() {
            eprintln!("  cleanup: {error:#}");
        }
        let _best_effort = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether process `pid` is running with `dir` in its command line.
fn names(pid: u32, dir: &Path) -> bool {
    let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let needle = dir.as_os_str().as_bytes();
    raw.windows(needle.len()).any(|window| window == needle)
}

/// The processes with `dir` in their command line (the test's dockerd, its containerd
/// and the shims containerd starts name their directory there).
fn processes_naming(dir: &Path) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let me = std::process::id();
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me && names(pid, dir))
        .collect()
}

/// Waits for (reaps) the shims containerd left to this process, its reaper: each exits
/// once its container is removed and containerd gone; one still running after 10 s is
/// killed, and that is an error.
fn reap_shims() -> anyhow::Result<()> {
    let me = std::process::id();
    let shims = || -> Vec<libc::pid_t> {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|entry| entry.file_name().to_str()?.parse::<libc::pid_t>().ok())
            .filter(|&pid| {
                // "PID (COMM) STATE PPID …": COMM may hold spaces and parentheses
                let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                    return false;
                };
                let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
                    return false;
                };
                let comm = &stat[open + 1..close];
                let ppid = stat[close + 1..].split_whitespace().nth(1);
                comm.starts_with("containerd-shim") && ppid == Some(&me.to_string())
            })
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = shims();
        for &pid in &left {
            // SAFETY: waitpid on our own child, with a valid status pointer.
            unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) };
        }
        if left.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            for &pid in &left {
                // SAFETY: kill and waitpid on our own child.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                    libc::waitpid(pid, std::ptr::null_mut(), 0);
                }
            }
            bail!("containerd's shims {left:?} did not exit in 10 s: killed");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Mount points at or below `dir` in this mount namespace, deepest first.
fn mounts_below(dir: &Path) -> Vec<String> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let prefix = dir.display().to_string();
    let mut found: Vec<String> = mounts
        .lines()
        .filter_map(|line| line.split(' ').nth(1))
        .filter(|point| *point == prefix || point.starts_with(&format!("{prefix}/")))
        .map(str::to_owned)
        .collect();
    found.sort_by_key(|point| std::cmp::Reverse(point.len()));
    found.dedup();
    found
}

/// Detaches the mount at `point` (lazily: nothing of the test's uses it any more).
fn unmount(point: &str) -> std::io::Result<()> {
    let path = CString::new(point).map_err(std::io::Error::other)?;
    // SAFETY: path is a valid NUL-terminated string for the call.
    if unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// A docker container's process in the lab: `/proc/PID/cgroup` shows its own cgroup2
/// directory `PARENT/ID` below the lab's; `limit --container NAME --up` holds its upload
/// and `limit --container ID-PREFIX --down` its download, each to the rate, ChadThrottle
/// finding the container in the data root of the running dockerd; a container docker does
/// not know, and one it created but never started, are refused in one line each and
/// leave no rule. A second container under a parent whose last component is not `docker`
/// (`LAB/apps/ID`, which no runtime's name marks as a container) is found from docker's
/// record of it and held the same; once docker has removed them, neither container's
/// cgroup is left.
fn limit_container_holds_a_docker_containers_rate() -> anyhow::Result<()> {
    let lab = Lab::new("docker", None)?;
    let mut server = lab.server(Proto::Tcp, Family::V4, None)?;
    let mut docker = Docker::start(&lab)?;
    let mut client = docker.client(&lab, &server, NAME, &docker.parent)?;
    let (id, pid) = docker.container(NAME)?;
    let container = Container {
        name: NAME,
        id: &id,
        pid,
    };
    let own = format!("{}/{id}", docker.parent);
    check_placement(&lab, &container, &own, Some(Runtime::Docker))?;
    let sockets: Vec<String> = std::fs::read_dir(SHIM_SOCKETS)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    println!("  in {SHIM_SOCKETS} (outside the test's directory): {sockets:?}");
    // nothing tells chadthrottle where this docker keeps its containers but the running
    // dockerd's command line: no variable, no daemon.json of the machine's
    check_limits(&lab, &[], &mut server, &mut client, &container)?;
    let idle = docker.create_idle()?;
    check_idle_refused(&lab, &[], IDLE, &idle)?;

    // the same under a parent of another name: found through docker's record alone
    let mut app_server = lab.server(Proto::Tcp, Family::V4, None)?;
    let mut app_client = docker.client(&lab, &app_server, APP, &docker.apps)?;
    let (app_id, app_pid) = docker.container(APP)?;
    let app = Container {
        name: APP,
        id: &app_id,
        pid: app_pid,
    };
    let app_own = format!("{}/{app_id}", docker.apps);
    check_placement(&lab, &app, &app_own, None)?;
    let recorded = docker.recorded_parent(&app_id)?;
    println!("  {APP}'s hostconfig.json: CgroupParent {recorded:?}");
    ensure!(
        recorded.as_deref() == Some(docker.apps.as_str()),
        "docker's record keeps the parent it was given ({}): {recorded:?}",
        docker.apps
    );
    check_limits(&lab, &[], &mut app_server, &mut app_client, &app)?;
    // what the guard does on failure too, here with its errors
    drop(client);
    drop(app_client);
    docker.remove()?;
    let mount = chadthrottle_kernel::mounts::cgroup2_root()?;
    for own in [&own, &app_own] {
        let dir = mount.join(own.trim_start_matches('/'));
        ensure!(
            !dir.exists(),
            "{} is left once docker is gone",
            dir.display()
        );
    }
    Ok(())
}

fn main() {
    let tests: &[(&'static str, Test)] = &[(
        "limit_container_holds_a_docker_containers_rate",
        limit_container_holds_a_docker_containers_rate,
    )];
    common::main_unless(tests, docker_missing());
}
