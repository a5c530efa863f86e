//! How well rules hold their budgets, and how the rule machinery keeps up: the figures
//! issue 13 asks for. Four processes of one executable (two started before the rule, two
//! after) under one shared budget or each under its own; a tree rule over a shell that
//! starts short-lived downloaders one after another; and `apply` of a large rules file,
//! timed through the command line.

use crate::programs::Programs;
use crate::stats::{Summary, summarize};
use crate::{Endpoint, Family, Lab, Proto};
use anyhow::{Context as _, ensure};
use chadthrottle_core::status::{DirectionLimit, Enforcement};
use chadthrottle_core::{Direction, PerDirection};
use chadthrottle_kernel::Datapath;
use chadthrottle_kernel::rule_keys::exe_key;
use chadthrottle_kernel::rules::{RuleEntry, RuleTarget};
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const MAX_BYTES: u64 = 64 << 30;

/// A budget's limit with the command line's default burst, held by `enforcement` (with
/// the policer behind it).
fn held_by(enforcement: Enforcement, rate: u64) -> Option<DirectionLimit> {
    let burst = chadthrottle_core::rate::Rate::new(rate).map_or(rate, |rate| {
        chadthrottle_core::bucket::default_burst(rate).bytes()
    });
    Some(DirectionLimit {
        rate,
        burst,
        enforcement,
        by_default: false,
    })
}

/// A budget's limit as the command line sets it by default for a rule: shaping.
fn shaped(rate: u64) -> Option<DirectionLimit> {
    held_by(Enforcement::Shaping, rate)
}

fn rule(
    id: u32,
    rank: u8,
    target: RuleTarget,
    each: bool,
    direction: Direction,
    rate: u64,
) -> RuleEntry {
    let mut limits = PerDirection::<Option<DirectionLimit>>::default();
    *limits.get_mut(direction) = shaped(rate);
    RuleEntry {
        id,
        order: id,
        rank,
        each,
        target,
        limits,
        expires_at_ns: 0,
    }
}

/// One case of four processes of one executable under one exe rule.
#[derive(Debug, Clone)]
pub struct AppCase {
    /// Steady rate of each process (after the warm-up), bytes per second.
    pub each_rate: Vec<f64>,
    /// Their sum.
    pub aggregate: Summary,
}

/// The exe rule of an [`AppCase`].
#[derive(Debug, Clone, Copy)]
pub struct AppRule {
    /// The direction it limits, which the four processes move data in.
    pub direction: Direction,
    /// A budget per process instead of one shared.
    pub each: bool,
    /// What holds it (the policer behind).
    pub backend: Enforcement,
    /// Bytes per second.
    pub rate: u64,
}

/// Four clients of `app` (each with a server of its own, so that each one's goodput is
/// read apart), two started before the exe rule `app_rule` and two after, all moving data
/// in its direction for `seconds`.
pub fn app_case(
    lab: &Lab,
    datapath: &mut Datapath,
    app: &Path,
    app_rule: AppRule,
    seconds: f64,
) -> anyhow::Result<AppCase> {
    let AppRule {
        direction,
        each,
        backend,
        rate,
    } = app_rule;
    let mut servers = Vec::new();
    for _ in 0..4 {
        servers.push(lab.server(Proto::Tcp, Family::V4, None)?);
    }
    let mut clients = Vec::new();
    for server in &servers[..2] {
        clients.push(lab.client_program(server, Proto::Tcp, app)?);
    }
    let target = RuleTarget::Match(exe_key(app)?);
    let mut limit = rule(1, 2, target, each, direction, rate);
    *limit.limits.get_mut(direction) = held_by(backend, rate);
    datapath.set_rule(&limit)?;
    for server in &servers[2..] {
        clients.push(lab.client_program(server, Proto::Tcp, app)?);
    }
    let (senders, receivers): (&mut Vec<Endpoint>, &mut Vec<Endpoint>) = match direction {
        Direction::Up => (&mut clients, &mut servers),
        Direction::Down => (&mut servers, &mut clients),
    };
    for sender in senders.iter_mut() {
        sender.start_send(seconds, MAX_BYTES)?;
    }
    let mut reports = Vec::new();
    for sender in senders.iter_mut() {
        reports.push(sender.finish_send()?);
    }
    std::thread::sleep(Duration::from_millis(200));
    let warmup = crate::bench::warmup_ns(seconds);
    // one window for all: from the last start's warm-up to the first end
    let start = reports.iter().map(|r| r.start_ns).max().unwrap_or(0) + warmup;
    let end = reports.iter().map(|r| r.end_ns).min().unwrap_or(0);
    let mut each_rate = Vec::new();
    let mut sum: Vec<u64> = Vec::new();
    for receiver in receivers.iter_mut() {
        let bins = receiver.bins()?.between(start, end);
        each_rate.push(summarize(&bins).rate);
        if sum.len() < bins.len() {
            sum.resize(bins.len(), 0);
        }
        for (total, bytes) in sum.iter_mut().zip(bins) {
            *total += bytes;
        }
    }
    datapath.remove_rule(1)?;
    for endpoint in clients.into_iter().chain(servers) {
        let _gone = endpoint.quit();
    }
    Ok(AppCase {
        each_rate,
        aggregate: summarize(&sum),
    })
}

/// A process started by the benchmark, killed (its process group) on drop.
struct Started(Child);

impl Drop for Started {
    fn drop(&mut self) {
        if let Ok(group) = i32::try_from(self.0.id()) {
            // SAFETY: kill(2) with a negative PID signals that process group; no memory.
            unsafe { libc::kill(-group, libc::SIGKILL) };
        }
        let _reaped = self.0.wait();
    }
}

/// `program` run in the network namespace of process `pid` (through nsenter), in a
/// process group of its own.
fn in_netns_of(pid: u32, program: &str, args: &[&str]) -> Command {
    use std::os::unix::process::CommandExt as _;
    let mut command = Command::new("nsenter");
    command
        .arg(format!("--net=/proc/{pid}/ns/net"))
        .arg(program)
        .args(args)
        .process_group(0);
    command
}

/// Sends to every connection it accepts until the peer goes (a thread each): the far end
/// of the short downloaders. Prints its port first.
const SOURCE: &str = "import socket, sys, threading
s = socket.socket()
s.bind((sys.argv[1], 0))
s.listen(64)
print(s.getsockname()[1], flush=True)
chunk = b'x' * 65536
def serve(c):
    try:
        while True:
            c.sendall(chunk)
    except OSError:
        pass
    c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
";

/// What the tree of short downloaders moved.
#[derive(Debug, Clone, Copy)]
pub struct TreeCase {
    pub downloads: u32,
    pub bytes: u64,
    pub burst: u64,
    pub seconds: f64,
    /// Bytes the rule's budget passed (IP bytes, `skb->len`): about `bytes` if every
    /// downloader was charged to it.
    pub rule_bytes: u64,
    /// Packets the policer behind dropped.
    pub dropped_packets: u64,
}

/// A tree rule of `rate` (download, held by `backend`: shaping or ifb) over a shell that
/// runs `downloads` downloaders one after another, each reading `each_bytes` from its own
/// connection and exiting.
///
/// The client namespace gets a default route through its interface first, as a machine's
/// downloads arrive on its default route's: the shell has no connection when its rule is
/// set, and ifb puts its class where the members' sockets and default routes lead.
pub fn tree_case(
    lab: &Lab,
    datapath: &mut Datapath,
    backend: Enforcement,
    rate: u64,
    downloads: u32,
    each_bytes: u64,
) -> anyhow::Result<TreeCase> {
    // an endpoint on each side only to name the namespaces
    let anchor_server = lab.server(Proto::Tcp, Family::V4, None)?;
    let anchor_client = lab.client(&anchor_server, Proto::Tcp, None, None)?;
    let server_ip = lab.server_ip(Family::V4).to_string();
    let route = in_netns_of(
        anchor_client.pid(),
        "ip",
        &["route", "replace", "default", "dev", lab.client_device()],
    )
    .status()
    .context("run ip route in the client namespace")?;
    ensure!(route.success(), "ip route replace default: {route}");
    let mut source = Started(
        in_netns_of(anchor_server.pid(), "python3", &["-c", SOURCE, &server_ip])
            .stdout(Stdio::piped())
            .spawn()
            .context("start python3 in the server namespace")?,
    );
    let mut port = String::new();
    BufReader::new(source.0.stdout.take().context("stdout")?)
        .read_line(&mut port)
        .context("read the source's port")?;
    let port = port.trim().to_owned();
    ensure!(!port.is_empty(), "the source printed no port");
    let script = format!(
        "read line; for i in $(seq {downloads}); do \
         head -c {each_bytes} < /dev/tcp/{server_ip}/{port} > /dev/null || exit 1; done"
    );
    let mut shell = Started(
        in_netns_of(anchor_client.pid(), "bash", &["-c", &script])
            .stdin(Stdio::piped())
            .spawn()
            .context("start bash in the client namespace")?,
    );
    std::fs::write(lab.cgroup().join("cgroup.procs"), shell.0.id().to_string())
        .context("move bash into the lab's cgroup")?;
    let limit = RuleEntry {
        limits: PerDirection {
            up: None,
            down: held_by(backend, rate),
        },
        ..rule(
            1,
            1,
            RuleTarget::Tree(shell.0.id()),
            false,
            Direction::Down,
            rate,
        )
    };
    datapath.set_rule(&limit)?;
    let started = Instant::now();
    writeln!(shell.0.stdin.as_mut().context("stdin")?, "go")?;
    let status = shell.0.wait()?;
    let seconds = started.elapsed().as_secs_f64();
    ensure!(status.success(), "the downloaders' shell failed: {status}");
    let down = datapath
        .rules()?
        .first()
        .map(|rule| rule.stats.down)
        .unwrap_or_default();
    datapath.remove_rule(1)?;
    drop(source);
    let _gone = (anchor_client.quit(), anchor_server.quit());
    Ok(TreeCase {
        downloads,
        bytes: u64::from(downloads) * each_bytes,
        burst: limit.limits.down.map_or(0, |l| l.burst),
        seconds,
        rule_bytes: down.bytes,
        dropped_packets: down.dropped_packets,
    })
}

/// Wall time of `chadthrottle apply FILE` with `rules` name rules (matching nothing),
/// then of the same `apply` again (no change), run from `chadthrottle` beside this
/// binary, confined to the lab.
pub fn apply_time(lab: &Lab, rules: usize) -> anyhow::Result<(f64, f64)> {
    let chadthrottle = std::env::current_exe()?.with_file_name("chadthrottle");
    ensure!(
        chadthrottle.exists(),
        "{} is missing: build the workspace first",
        chadthrottle.display()
    );
    let file = std::env::temp_dir().join(format!("ct-bench-rules-{}.toml", std::process::id()));
    let mut text = String::new();
    for index in 0..rules {
        text.push_str(&format!(
            "[[rule]]\nname = \"r{index:04}\"\nprocess_name = \"ctb-{index:04}\"\ndown = \"1M\"\n\n"
        ));
    }
    std::fs::write(&file, text)?;
    let run = || -> anyhow::Result<f64> {
        let started = Instant::now();
        let output = Command::new(&chadthrottle)
            .arg("apply")
            .arg(&file)
            .envs(lab.env())
            .output()
            .context("run chadthrottle apply")?;
        let took = started.elapsed().as_secs_f64();
        ensure!(
            output.status.success(),
            "chadthrottle apply: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(took)
    };
    let first = run();
    let again = run();
    let _gone = std::fs::remove_file(&file);
    Ok((first?, again?))
}

/// The exec storm's program, compiled at run time with the system's `cc`: with 3
/// arguments (`ADDR PORT`) it sends one UDP datagram and exits; with 5 (`RATE SECONDS
/// ADDR PORT`) it waits for a line on its stdin, then starts itself that way RATE times a
/// second for SECONDS (fork and exec, paced by the clock, reaping as it goes) and prints
/// how many it started, in how many nanoseconds, and how many failed.
const STORM_C: &str = r#"#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
static long long now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}
int main(int argc, char **argv) {
    if (argc == 3) {
        struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
        int s = socket(AF_INET, SOCK_DGRAM, 0);
        inet_pton(AF_INET, argv[1], &to.sin_addr);
        return sendto(s, "x", 1, 0, (struct sockaddr *)&to, sizeof(to)) == 1 ? 0 : 1;
    }
    if (argc != 5) return 2;
    long rate = atol(argv[1]), total = rate * atol(argv[2]), started = 0, failed = 0;
    if (getchar() == EOF) return 2;
    long long t0 = now();
    for (long i = 0; i < total; i++) {
        long long due = t0 + i * 1000000000LL / rate;
        while (now() < due) {
            int status;
            if (waitpid(-1, &status, WNOHANG) > 0) {
                if (!WIFEXITED(status) || WEXITSTATUS(status)) failed++;
            } else {
                struct timespec nap = {0, 50000};
                nanosleep(&nap, NULL);
            }
        }
        pid_t pid = fork();
        if (pid == 0) {
            execl("/proc/self/exe", argv[0], argv[3], argv[4], (char *)NULL);
            _exit(3);
        }
        if (pid > 0) started++;
    }
    long long t1 = now();
    int status;
    while (wait(&status) > 0)
        if (!WIFEXITED(status) || WEXITSTATUS(status)) failed++;
    printf("%ld %lld %ld\n", started, t1 - t0, failed);
    return 0;
}
"#;

/// What the exec storm did.
#[derive(Debug, Clone, Copy)]
pub struct Storm {
    pub execs: u64,
    pub seconds: f64,
    pub failed: u64,
    /// Datagrams the exe rule's budget passed: one per process that was its member by
    /// its first packet.
    pub matched: u64,
    /// Datagrams the server read.
    pub received: u64,
}

/// `rate` execs a second for `seconds` of one executable under an exe rule; each
/// process sends one datagram.
pub fn exec_storm(
    lab: &Lab,
    datapath: &mut Datapath,
    programs: &Programs,
    rate: u64,
    seconds: u64,
) -> anyhow::Result<Storm> {
    let source = programs.path("storm.c");
    let program = programs.path("ct-storm");
    std::fs::write(&source, STORM_C)?;
    let output = Command::new("cc")
        .args(["-O2", "-o"])
        .arg(&program)
        .arg(&source)
        .output()
        .context("run cc (the exec storm is a C program)")?;
    ensure!(
        output.status.success(),
        "cc: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut server = lab.server(Proto::Udp, Family::V4, None)?;
    let anchor = lab.client(&server, Proto::Udp, None, None)?;
    let target = RuleTarget::Match(exe_key(&program)?);
    datapath.set_rule(&rule(1, 2, target, false, Direction::Up, 1 << 30))?;
    let (addr, port) = (
        server.ready.addr.ip().to_string(),
        server.ready.addr.port().to_string(),
    );
    let program_text = program.to_string_lossy().into_owned();
    let (rate_text, seconds_text) = (rate.to_string(), seconds.to_string());
    let mut command = in_netns_of(
        anchor.pid(),
        &program_text,
        &[&rate_text, &seconds_text, &addr, &port],
    );
    let mut driver = Started(
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("start the storm")?,
    );
    // nsenter execs the driver in its place: same PID, moved before it starts forking
    std::fs::write(lab.cgroup().join("cgroup.procs"), driver.0.id().to_string())
        .context("move the storm into the lab's cgroup")?;
    writeln!(driver.0.stdin.as_mut().context("stdin")?, "go")?;
    let mut line = String::new();
    BufReader::new(driver.0.stdout.take().context("stdout")?)
        .read_line(&mut line)
        .context("read the storm's report")?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .with_context(|| format!("the storm said {line:?}"))?;
    let [execs, ns, failed] = fields[..] else {
        anyhow::bail!("the storm said {line:?}");
    };
    std::thread::sleep(Duration::from_millis(300));
    let matched = datapath
        .rules()?
        .first()
        .map_or(0, |rule| rule.stats.up.packets);
    let received = server.bins()?.bytes.iter().sum();
    datapath.remove_rule(1)?;
    drop(driver);
    let _gone = (anchor.quit(), server.quit());
    Ok(Storm {
        execs,
        seconds: ns as f64 / 1e9,
        failed,
        matched,
        received,
    })
}
