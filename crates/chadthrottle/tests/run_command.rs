//! Kernel tests of `run`: a command started under a tree rule, on the real binary in the
//! network lab — the rate it is held to, the status it exits with, the user it runs as,
//! the signals passed on, and the rule gone once its last process has. Root only;
//! ignored with the reason printed otherwise.

pub mod common;

use anyhow::{Context as _, ensure};
use chadthrottle_lab::{Family, Lab, Proto};
use common::{KIB, MAX_BYTES, Test, chadthrottle, rules, run, steady, within};
use std::io::{BufRead as _, BufReader, Read as _};
use std::os::unix::process::CommandExt as _;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `chadthrottle args` started in `lab`'s cgroup, the datapath's scope: its processes are
/// those the kernel resolves rules for (the network namespace does not matter here).
fn in_lab(lab: &Lab, args: &[&str]) -> anyhow::Result<Command> {
    let procs = std::ffi::CString::new(
        lab.cgroup()
            .join("cgroup.procs")
            .into_os_string()
            .into_encoded_bytes(),
    )?;
    let mut command = Command::new(env!("CARGO_BIN_EXE_chadthrottle"));
    command
        .args(args)
        .envs(lab.env())
        .env_remove("SUDO_UID")
        .env_remove("SUDO_GID")
        .env_remove("CHADTHROTTLE_FAILPOINT");
    // SAFETY: open, write and close are async-signal-safe; the path is built before fork.
    unsafe {
        command.pre_exec(move || {
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // "0": the writing process itself
            let written = libc::write(fd, b"0".as_ptr().cast(), 1);
            libc::close(fd);
            if written != 1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok(command)
}

/// `chadthrottle run --up 1M -- sh -c script` in `lab`, to be started.
fn script_in_lab(lab: &Lab, script: &str) -> anyhow::Result<Command> {
    in_lab(lab, &["run", "--up", "1M", "--", "sh", "-c", script])
}

/// `chadthrottle run --up 1M -- command…` in `lab`, with `env` set.
fn run_command(lab: &Lab, env: &[(&str, &str)], command: &[&str]) -> anyhow::Result<Output> {
    let mut args = vec!["run", "--up", "1M", "--"];
    args.extend_from_slice(command);
    Ok(in_lab(lab, &args)?.envs(env.iter().copied()).output()?)
}

/// Checks that no rule is left.
fn no_rule_left(lab: &Lab, after: &str) -> anyhow::Result<()> {
    let left = rules(lab)?;
    ensure!(left.is_empty(), "after {after}, rules are left: {left:?}");
    Ok(())
}

/// `run --up 512K -- <lab client>`: the client is a member of the rule `run PID name`
/// from its start, its upload is held to 512 KiB/s, and when it quits `run` exits and
/// the rule is gone.
fn run_holds_the_command_to_its_rate() -> anyhow::Result<()> {
    let lab = Lab::new("run-rate", None)?;
    let mut server = lab.server(Proto::Tcp, Family::V4, None)?;
    let cgroup = lab.cgroup().to_str().context("UTF-8 cgroup path")?;
    let pin_dir = lab.pin_dir().to_str().context("UTF-8 pin dir")?;
    // `run` itself starts in the lab's namespace and cgroup, so its command does too
    let wrapper: Vec<String> = [
        env!("CARGO_BIN_EXE_chadthrottle"),
        "--cgroup",
        cgroup,
        "--pin-dir",
        pin_dir,
        "run",
        "--up",
        "512K",
        "--",
    ]
    .map(str::to_owned)
    .to_vec();
    let mut client = lab.client_under(&server, Proto::Tcp, None, &wrapper)?;
    let endpoint = client.ready.pid;
    ensure!(
        endpoint != client.pid(),
        "the endpoint is run's child, not run"
    );
    let listed = rules(&lab)?;
    ensure!(listed.len() == 1, "one rule: {listed:?}");
    let rule = &listed[0];
    let name = rule["name"].as_str().context("a name")?;
    ensure!(
        name.starts_with(&format!("run {endpoint} ")),
        "named after the command: {rule}"
    );
    ensure!(
        rule["target"] == format!("tree {endpoint}") && rule["up"] == 512 * 1024,
        "the tree of the command, 512 KiB/s up: {rule}"
    );
    let members: Vec<u64> = rule["members"]
        .as_array()
        .context("members")?
        .iter()
        .filter_map(|member| member["pid"].as_u64())
        .collect();
    ensure!(
        members == [u64::from(endpoint)],
        "the command is the member: {rule}"
    );

    let report = client.send(10.0, MAX_BYTES)?;
    within(
        "run --up 512K",
        &steady(&mut server, &report)?,
        512.0 * KIB,
        0.10,
    )?;
    client.quit()?;
    no_rule_left(&lab, "the command quit")
}

/// `run` exits with the command's status, 128 + the signal when a signal ended it, and
/// lifts its rule each time; a program that does not exist, or a rule that cannot be
/// set, is one line and exit 1, and nothing runs.
fn run_exits_with_the_commands_status() -> anyhow::Result<()> {
    let lab = Lab::new("run-status", None)?;
    for (command, expected) in [
        (["sh", "-c", "exit 7"], 7),
        (["sh", "-c", "exit 0"], 0),
        (["sh", "-c", "kill -TERM $$"], 128 + 15),
        (["sh", "-c", "kill -KILL $$"], 128 + 9),
    ] {
        let output = run_command(&lab, &[], &command)?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        println!(
            "  run -- {}: exit {:?}",
            command.join(" "),
            output.status.code()
        );
        ensure!(
            output.status.code() == Some(expected) && stderr.is_empty(),
            "run -- {command:?}: exit {:?} (expected {expected}), stderr {stderr:?}",
            output.status.code()
        );
        no_rule_left(&lab, &format!("{command:?}"))?;
    }

    let output = run_command(&lab, &[], &["/nonexistent-ct-dir/program"])?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(
        output.status.code() == Some(1)
            && stderr.trim().lines().count() == 1
            && stderr.contains("cannot run \"/nonexistent-ct-dir/program\""),
        "a missing program: exit {:?}, {stderr:?}",
        output.status.code()
    );
    no_rule_left(&lab, "a missing program")?;

    let marker = std::env::temp_dir().join(format!("ct-run-marker-{}", std::process::id()));
    let marker_path = marker.to_str().context("UTF-8")?;
    let output = chadthrottle(
        &lab,
        &[
            "--upload-backend",
            "htb",
            "run",
            "--up",
            "1M",
            "--",
            "touch",
            marker_path,
        ],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(
        output.status.code() == Some(1)
            && stderr.trim().lines().count() == 1
            && stderr.contains("cannot hold a rule"),
        "htb refused: exit {:?}, {stderr:?}",
        output.status.code()
    );
    ensure!(!marker.exists(), "the refused command ran");
    no_rule_left(&lab, "a refused rule")
}

/// Under sudo (SUDO_UID, SUDO_GID) the command runs as that user, with the user's
/// groups and login environment; without, as the caller.
fn run_drops_root_for_the_sudo_user() -> anyhow::Result<()> {
    let lab = Lab::new("run-user", None)?;
    let script = "id -u; id -g; id -G; echo \"$USER $LOGNAME $HOME\"";
    let output = run_command(
        &lab,
        &[("SUDO_UID", "65534"), ("SUDO_GID", "65534")],
        &["sh", "-c", script],
    )?;
    let said = String::from_utf8_lossy(&output.stdout);
    println!("  SUDO_UID=65534 run -- sh -c '{script}': {said:?}");
    ensure!(output.status.success(), "{output:?}");
    let lines: Vec<&str> = said.lines().collect();
    ensure!(
        lines.first() == Some(&"65534") && lines.get(1) == Some(&"65534"),
        "runs as 65534:65534: {said:?}"
    );
    ensure!(
        lines
            .get(2)
            .is_some_and(|groups| !groups.split(' ').any(|group| group == "0")),
        "root's group dropped: {said:?}"
    );
    ensure!(
        lines.get(3) == Some(&"nobody nobody /nonexistent"),
        "nobody's login environment: {said:?}"
    );
    let output = run_command(&lab, &[], &["id", "-u"])?;
    ensure!(
        String::from_utf8_lossy(&output.stdout) == "0\n",
        "without sudo, as the caller: {output:?}"
    );
    no_rule_left(&lab, "id")
}

/// A signal sent to `run` reaches the command once; `run` waits for the command's
/// descendants before it lifts the rule; `--for` ends the limit while the command runs.
fn run_forwards_signals_and_waits_for_the_tree() -> anyhow::Result<()> {
    let lab = Lab::new("run-signals", None)?;
    // the command says it is ready once its trap is set, counts the SIGTERMs it gets,
    // then exits 3
    let mut child = script_in_lab(
        &lab,
        "n=0; trap 'n=$((n+1))' TERM; echo ready; i=0; while [ $i -lt 30 ] && [ $n -eq 0 ]; \
         do sleep 0.1; i=$((i+1)); done; sleep 0.5; echo $n; exit 3",
    )?
    .stdout(Stdio::piped())
    .spawn()?;
    let mut stdout = BufReader::new(child.stdout.take().context("stdout")?);
    let mut line = String::new();
    stdout.read_line(&mut line)?;
    ensure!(line == "ready\n", "the command said {line:?}");
    ensure!(rules(&lab)?.len() == 1, "the command runs in its rule");
    // SAFETY: kill has no memory preconditions; the child is ours and not reaped.
    unsafe {
        libc::kill(i32::try_from(child.id())?, libc::SIGTERM);
    }
    let mut said = String::new();
    stdout.read_to_string(&mut said)?;
    let status = child.wait()?;
    println!(
        "  SIGTERM to run: the command counted {said:?}, exit {:?}",
        status.code()
    );
    ensure!(
        status.code() == Some(3) && said == "1\n",
        "SIGTERM reached the command, which exited 3: {said:?}, {status:?}"
    );
    no_rule_left(&lab, "the signalled command")?;

    // the command exits at once, its background child 2 s later: so does run (the child
    // lets go of run's stdout, which `output` would wait for)
    let started = Instant::now();
    let output = run_command(
        &lab,
        &[],
        &["sh", "-c", "sleep 2 </dev/null >/dev/null 2>&1 & exit 0"],
    )?;
    let took = started.elapsed();
    println!("  run -- sh -c 'sleep 2 & exit 0' took {took:?}");
    ensure!(
        output.status.success() && took >= Duration::from_millis(1800),
        "run waited for the tree: {took:?}, {output:?}"
    );
    no_rule_left(&lab, "the tree's last process")?;

    // --for: the rule lapses while the command still runs
    let mut child = in_lab(
        &lab,
        &["run", "--up", "1M", "--for", "1s", "--", "sleep", "3"],
    )?
    .spawn()?;
    std::thread::sleep(Duration::from_millis(2000));
    let lapsed = rules(&lab)?;
    let running = child.try_wait()?.is_none();
    let status = child.wait()?;
    ensure!(
        lapsed.is_empty() && running,
        "--for 1s: after 2 s the command runs ({running}) and no rule is listed: {lapsed:?}"
    );
    ensure!(status.success(), "run --for: {status:?}");
    no_rule_left(&lab, "--for")
}

/// The rule can go before the tree does: `unlimit --pid PID --tree` lifts it while the
/// command runs (run then finds it gone), and a signal to `run` while it waits for the
/// command's leftover processes ends the wait and removes the rule.
fn run_lets_go_of_its_rule_early() -> anyhow::Result<()> {
    let lab = Lab::new("run-early", None)?;
    let mut child = in_lab(&lab, &["run", "--up", "1M", "--", "sleep", "2"])?.spawn()?;
    let started = Instant::now();
    let tree = loop {
        if let Some(rule) = rules(&lab)?.first() {
            break rule["target"].as_str().context("a target")?.to_owned();
        }
        ensure!(started.elapsed() < Duration::from_secs(5), "no rule set");
        std::thread::sleep(Duration::from_millis(50));
    };
    let pid = tree.strip_prefix("tree ").context("a tree rule")?;
    let said = run(&lab, &["unlimit", "--pid", pid, "--tree"])?;
    println!("  unlimit --pid {pid} --tree: {}", said.trim());
    ensure!(
        said.starts_with(&format!("rule \"run {pid} sleep\" removed")),
        "{said}"
    );
    let status = child.wait()?;
    ensure!(
        status.success(),
        "run went on to the command's end: {status}"
    );
    no_rule_left(&lab, "unlimit")?;

    let mut child = script_in_lab(&lab, "sleep 30 </dev/null >/dev/null 2>&1 & exit 0")?.spawn()?;
    // the command has run once its shell is gone and its sleep is left: a signal before
    // that (the rule still being set: seconds on a slow machine) ends run before the
    // command ran, with the signal's status — not what this part tests
    let sleep = left_with_the_sleep(&lab)?;
    let waiting = rules(&lab)?;
    ensure!(
        waiting.len() == 1 && child.try_wait()?.is_none(),
        "run waits for the leftover sleep: {waiting:?}"
    );
    let signalled = Instant::now();
    // SAFETY: kill has no memory preconditions; the child is ours and not reaped.
    unsafe {
        libc::kill(i32::try_from(child.id())?, libc::SIGTERM);
    }
    let status = child.wait()?;
    let took = signalled.elapsed();
    println!("  SIGTERM while run waits for the tree: exit {status} after {took:?}");
    // stopping the wait means not waiting for the sleep's 30 s: run is gone while the sleep
    // still runs (lifting the rule takes a task iterator's load, up to a second or more on
    // a slow or busy machine, which is no wait for the tree)
    let sleeping = std::fs::read_to_string(format!("/proc/{sleep}/comm"))
        .is_ok_and(|comm| comm.trim() == "sleep");
    ensure!(
        status.success() && sleeping && took < Duration::from_secs(15),
        "run stopped waiting for the tree at once and exits with the command's status: \
         {status}, after {took:?}, the sleep still running: {sleeping}"
    );
    no_rule_left(&lab, "a signal while run waits")?;
    // the leftover sleep, started by this test's command, is ended by its PID before the
    // lab's cgroup goes
    // SAFETY: kill has no memory preconditions; the PID is the sleep seen in the lab's cgroup.
    unsafe {
        libc::kill(i32::try_from(sleep)?, libc::SIGKILL);
    }
    let procs = lab.cgroup().join("cgroup.procs");
    let killed = Instant::now();
    while !std::fs::read_to_string(&procs)?.trim().is_empty() {
        ensure!(
            killed.elapsed() < Duration::from_secs(5),
            "the sleep lingers"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// Waits (at most 20 s) until the lab's cgroup holds a `sleep` and no `sh`: the script
/// `run` started has exited, leaving its background sleep, whose PID is returned.
fn left_with_the_sleep(lab: &Lab) -> anyhow::Result<u32> {
    let procs = lab.cgroup().join("cgroup.procs");
    let started = Instant::now();
    loop {
        let named: Vec<(u32, String)> = std::fs::read_to_string(&procs)?
            .split_whitespace()
            .filter_map(|pid| {
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
                Some((pid.parse().ok()?, comm.trim().to_owned()))
            })
            .collect();
        let sleep = named.iter().find(|(_, name)| name == "sleep");
        if let Some((pid, _)) = sleep
            && !named.iter().any(|(_, name)| name == "sh")
        {
            return Ok(*pid);
        }
        ensure!(
            started.elapsed() < Duration::from_secs(20),
            "the script did not run to its end: the lab's cgroup holds {named:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Set in the environment of this binary run as a command that counts the SIGINTs it gets.
const COUNT_SIGINT: &str = "CT_RUN_TEST_COUNT_SIGINT";

/// This binary as the command of the Ctrl+C test: says "ready", counts every SIGINT
/// delivered for 2 s (each delivery runs the handler once), says how many, exits 0.
fn count_sigints() -> ! {
    static COUNT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    // SAFETY: the handler only adds to an atomic, which is async-signal-safe.
    let registered = unsafe {
        signal_hook::low_level::register(libc::SIGINT, || {
            COUNT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        })
    };
    if registered.is_err() {
        std::process::exit(2);
    }
    println!("ready");
    std::thread::sleep(Duration::from_secs(2));
    println!("sigint {}", COUNT.load(std::sync::atomic::Ordering::SeqCst));
    std::process::exit(0);
}

/// A pseudo-terminal: its controller (the test's end) and the terminal's path.
fn pseudo_terminal() -> anyhow::Result<(std::fs::File, std::path::PathBuf)> {
    use std::os::fd::FromRawFd as _;
    // SAFETY: posix_openpt returns a new descriptor or -1; nothing else is touched.
    let fd = unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) };
    ensure!(fd >= 0, "posix_openpt: {}", std::io::Error::last_os_error());
    // SAFETY: fd is a new descriptor of ours.
    let controller = unsafe { std::fs::File::from_raw_fd(fd) };
    let mut name = [0_u8; 128];
    // SAFETY: fd is a pseudo-terminal controller; name is valid for its length.
    let ok = unsafe {
        libc::grantpt(fd) == 0
            && libc::unlockpt(fd) == 0
            && libc::ptsname_r(fd, name.as_mut_ptr().cast(), name.len()) == 0
    };
    ensure!(ok, "pseudo-terminal: {}", std::io::Error::last_os_error());
    let path = std::ffi::CStr::from_bytes_until_nul(&name)?
        .to_str()?
        .to_owned();
    Ok((controller, path.into()))
}

/// Ctrl+C in the terminal `run` is started from reaches the command exactly once: the
/// terminal sends it to the whole foreground process group, and `run` does not send it
/// again; `run` itself lives on and exits with the command's status.
fn ctrl_c_reaches_the_command_once() -> anyhow::Result<()> {
    use std::io::Write as _;
    let lab = Lab::new("run-ctrl-c", None)?;
    let (controller, terminal) = pseudo_terminal()?;
    let open = || {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&terminal)
    };
    let me = std::env::current_exe()?;
    let mut command = in_lab(
        &lab,
        &["run", "--up", "1M", "--", me.to_str().context("UTF-8")?],
    )?;
    command
        .env(COUNT_SIGINT, "1")
        .stdin(open()?)
        .stdout(open()?)
        .stderr(open()?);
    // SAFETY: setsid and ioctl are async-signal-safe: run leads a session whose
    // controlling terminal is the pseudo-terminal, its process group in the foreground.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn()?;
    drop(command);
    let mut seen = String::new();
    let read_until = |text: &str, seen: &mut String| -> anyhow::Result<()> {
        let mut buffer = [0_u8; 256];
        while !seen.contains(text) {
            let n = (&controller).read(&mut buffer).unwrap_or(0);
            ensure!(n > 0, "the terminal closed before {text:?}: {seen:?}");
            seen.push_str(&String::from_utf8_lossy(&buffer[..n]));
        }
        Ok(())
    };
    read_until("ready", &mut seen)?;
    (&controller).write_all(&[3])?; // Ctrl+C: ISIG makes it SIGINT to the foreground group
    read_until("sigint ", &mut seen)?;
    read_until("\n", &mut seen)?;
    let status = child.wait()?;
    let count = seen
        .split("sigint ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_default()
        .to_owned();
    println!("  Ctrl+C: the command counted {count} SIGINT, run exited {status}");
    ensure!(
        count == "1" && status.success(),
        "one SIGINT and run exits 0: {seen:?}, {status}"
    );
    no_rule_left(&lab, "Ctrl+C")
}

fn main() {
    if std::env::var_os(COUNT_SIGINT).is_some() {
        count_sigints();
    }
    let tests: &[(&'static str, Test)] = &[
        (
            "run_holds_the_command_to_its_rate",
            run_holds_the_command_to_its_rate,
        ),
        (
            "run_exits_with_the_commands_status",
            run_exits_with_the_commands_status,
        ),
        (
            "run_drops_root_for_the_sudo_user",
            run_drops_root_for_the_sudo_user,
        ),
        (
            "run_forwards_signals_and_waits_for_the_tree",
            run_forwards_signals_and_waits_for_the_tree,
        ),
        (
            "run_lets_go_of_its_rule_early",
            run_lets_go_of_its_rule_early,
        ),
        (
            "ctrl_c_reaches_the_command_once",
            ctrl_c_reaches_the_command_once,
        ),
    ];
    common::main(tests);
}
