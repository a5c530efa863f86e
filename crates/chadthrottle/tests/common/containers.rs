//! What the container tests (podman's, docker's) share: finding a runtime's programs and
//! running them, checking where a container runs, the rates and refusals `limit
//! --container` must give, and removing the cgroup v1 directories a runtime makes beside
//! the lab's cgroup2 one on a host that mounts both (runc makes the container's cgroup
//! path in every hierarchy).

use super::{
    Env, MAX_BYTES, MIB, WARMUP_NS, chadthrottle_with, rules_with, run_with, steady, within,
};
use anyhow::{Context as _, ensure};
use chadthrottle_core::cgroup_names::{Runtime, cgroup2_path, container_in_cgroup};
use chadthrottle_lab::{Endpoint, Lab};
use std::os::fd::{AsFd as _, AsRawFd as _};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The absolute path of `program` on `PATH`, if it is installed.
pub fn installed(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
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

/// Removes `relative` (the lab's cgroup path, `/` excluded) and what is below it from
/// every cgroup v1 hierarchy: a runtime's monitor may leave its own directories a moment
/// after the container is gone, so they are retried for 5 s; says which are left, if any.
pub fn remove_v1_below(relative: &str) -> anyhow::Result<()> {
    let relative = relative.trim_start_matches('/');
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

/// As the rule tests: 6 s transfers, the last 4 measured, within ±10 %.
const SECONDS: f64 = 6.0;
const TOLERANCE: f64 = 0.10;

/// Runs `words` (a program and its arguments, the first an absolute path) and returns its
/// stdout; fails with its stderr, naming it `what` and `args`.
pub fn run_words(words: &[String], what: &str, args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new(&words[0])
        .args(&words[1..])
        .output()
        .with_context(|| format!("run {what}"))?;
    ensure!(
        output.status.success(),
        "{what} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// The arguments of `podman run` and `docker run` (after `run`) that make container
/// `name` a lab client: stdin kept open (the endpoint's commands), the network of the
/// runtime's namespace (the lab's client one), its cgroup below `parent`, and the host's
/// /usr, /lib, /lib64 and this test binary bind-mounted read-only, so that an empty root
/// runs the endpoint.
pub fn endpoint_run_args(name: &str, parent: &str) -> anyhow::Result<Vec<String>> {
    let exe = std::env::current_exe()?.display().to_string();
    let mut args: Vec<String> = [
        "-i",
        "--name",
        name,
        "--network",
        "host",
        "--cgroup-parent",
        parent,
    ]
    .map(str::to_owned)
    .into();
    for dir in ["/usr", "/lib", "/lib64", &exe] {
        args.push("-v".to_owned());
        args.push(format!("{dir}:{dir}:ro"));
    }
    Ok(args)
}

/// A container a runtime runs in the lab, as the runtime reports it.
pub struct Container<'a> {
    pub name: &'a str,
    /// The full id.
    pub id: &'a str,
    /// Its process (the lab endpoint).
    pub pid: u32,
}

/// Checks that `container` is where its runtime was told to put it: its cgroup2 directory
/// is `own` (printed with every line of /proc/PID/cgroup) and is taken for the container
/// of `runtime` from its path alone — or, `None`, is not (a parent not laid out as the
/// runtime's default: only the runtime's record says it is a container); its network is
/// the lab's client namespace.
pub fn check_placement(
    lab: &Lab,
    container: &Container<'_>,
    own: &str,
    runtime: Option<Runtime>,
) -> anyhow::Result<()> {
    let Container { name, id, pid } = *container;
    let lines = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))?;
    println!("  container {name} {id}, PID {pid}; /proc/{pid}/cgroup:");
    for line in lines.lines() {
        println!("    {line}");
    }
    let cgroup = cgroup2_path(&format!("/proc/{pid}/cgroup"), &lines)?;
    ensure!(
        cgroup == own,
        "the container's cgroup2 directory is {cgroup}, not its own below the lab's ({own})"
    );
    let found = container_in_cgroup(&cgroup);
    match runtime {
        Some(runtime) => {
            let found = found.context("the cgroup is taken for a container")?;
            ensure!(
                found.id == id && found.runtime == runtime,
                "the cgroup names {found:?}"
            );
        }
        None => ensure!(
            found.is_none(),
            "the path alone is not taken for a container: {found:?}"
        ),
    }
    let netns = |path: String| std::fs::metadata(path).map(|meta| meta.ino());
    let lab_netns = format!("/proc/self/fd/{}", lab.client_ns.as_fd().as_raw_fd());
    ensure!(
        netns(format!("/proc/{pid}/ns/net"))? == netns(lab_netns)?,
        "the container is not in the lab's client namespace"
    );
    Ok(())
}

/// What `limit --container` must do to `container`, whose endpoint is `client` talking to
/// `server`, with `env` given to `chadthrottle`: `--container NAME --up 1M` holds its
/// upload and `--container ID-PREFIX --down 1M` (the 12 digits `ps` shows) its download,
/// each to the rate; `rules` lists the container's process as the rule's member; `unlimit`
/// takes each away; a name no container has is refused in one line and sets no rule.
pub fn check_limits(
    lab: &Lab,
    env: Env<'_>,
    server: &mut Endpoint,
    client: &mut Endpoint,
    container: &Container<'_>,
) -> anyhow::Result<()> {
    let Container { name, id, pid } = *container;
    let run = |args: &[&str]| run_with(lab, env, args);
    let rules = || rules_with(lab, env);
    let said = run(&[
        "limit",
        "--container",
        name,
        "--up",
        "1M",
        "--upload-backend",
        "policer",
    ])?;
    println!("  {}", said.trim());
    let listed = rules()?;
    ensure!(
        listed.len() == 1 && listed[0]["name"] == format!("container {name}"),
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
        &steady(server, &report)?,
        MIB,
        TOLERANCE,
    )?;
    run(&["unlimit", "--container", name])?;
    ensure!(rules()?.is_empty(), "unlimit removed the rule");

    let prefix = &id[..12];
    let said = run(&["limit", "--container", prefix, "--down", "1M"])?;
    println!("  {}", said.trim());
    server.start_send_all(SECONDS, MAX_BYTES, 1)?;
    let report = server.finish_send()?;
    within(
        "the container's download under --container ID-PREFIX --down 1M",
        &client.received_steady(&report, WARMUP_NS)?,
        MIB,
        TOLERANCE,
    )?;
    run(&["unlimit", "--container", prefix])?;
    ensure!(rules()?.is_empty(), "unlimit removed the rule");

    refused_in_one_line(lab, env, "ct-nope", "container \"ct-nope\" is not running")
}

/// `limit --container IDLE` of a container its runtime lists (`idle_id`) but never
/// started is refused in one line saying why — on a host with cgroup v1 beside cgroup2,
/// that its runtime may have left it in v1 only — and sets no rule.
pub fn check_idle_refused(
    lab: &Lab,
    env: Env<'_>,
    idle: &str,
    idle_id: &str,
) -> anyhow::Result<()> {
    let hybrid = !chadthrottle_kernel::mounts::cgroup_v1_mounts().is_empty();
    let why = if hybrid {
        "has no cgroup2 directory of its own: it is stopped, or its runtime put it in cgroup v1 hierarchies only"
    } else {
        "is not running: it has no cgroup"
    };
    let line = format!("container \"{idle}\" ({}) {why}", &idle_id[..12]);
    refused_in_one_line(lab, env, idle, &line)
}

/// `limit --container SPEC --up 1M` exits 1 with one line containing `line` (printed),
/// and no rule is set.
fn refused_in_one_line(lab: &Lab, env: Env<'_>, spec: &str, line: &str) -> anyhow::Result<()> {
    let output = chadthrottle_with(lab, env, &["limit", "--container", spec, "--up", "1M"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("  {}", stderr.trim());
    ensure!(
        output.status.code() == Some(1)
            && stderr.trim().lines().count() == 1
            && stderr.contains(line),
        "container {spec:?} is refused in one line containing {line:?}: {stderr:?}"
    );
    ensure!(rules_with(lab, env)?.is_empty(), "the refusal set no rule");
    Ok(())
}
