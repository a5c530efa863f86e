//! Kernel tests of changes made at once: 32 limits set together, with every backend
//! mixed, must each leave their own limit in the table and, for the qdisc backends, their
//! own HTB class on the interface. Three rounds, each process changing backend and rate
//! from one to the next (classes are freed and taken again); then 32 limits lifted
//! together must leave every interface as it was. Once with `chadthrottle limit` and
//! `unlimit` commands, once with the library's calls from threads of one process (a TUI
//! and a command at once), where the calls start within microseconds of each other.
//!
//! Same harness as datapath.rs. The classes are read with iproute2 inside the lab's client
//! namespace, as tests/qdiscs.rs reads them; a class is matched to its limit by rate, so
//! every limit gets a rate of its own.

pub mod common;
pub mod iproute;

use anyhow::{Context as _, bail, ensure};
use chadthrottle_core::backend::{Backend, Change, LimitRequest, Target};
use chadthrottle_core::htb_class::{ETHERNET_HEADER, wire_rate};
use chadthrottle_core::status::{DirectionLimit, Enforcement};
use chadthrottle_core::{PerDirection, ProcessRef};
use chadthrottle_kernel::{Datapath, procs};
use chadthrottle_lab::{Endpoint, Family, Lab, Proto};
use common::{Test, pid};
use iproute::{DEVICE, ifb_devices, iproute};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Output;
use std::sync::Barrier;

const PROCESSES: usize = 32;
const ROUNDS: usize = 3;

/// How one of the processes is limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Shaping,
    Policer,
    Htb,
    Ifb,
    HtbAndIfb,
}

impl Kind {
    /// Of every 8 processes: 2 shaped, 2 policed, 2 with an htb upload, 1 with an ifb
    /// download, 1 with both.
    const fn of(index: usize) -> Kind {
        match index % 8 {
            0 | 4 => Kind::Shaping,
            1 | 5 => Kind::Policer,
            2 | 6 => Kind::Htb,
            3 => Kind::Ifb,
            _ => Kind::HtbAndIfb,
        }
    }

    /// The backend of each direction (up, down); every command sets both, so that the
    /// next round's replaces the whole limit.
    const fn backends(self) -> (&'static str, &'static str) {
        match self {
            Kind::Shaping => ("shaping", "shaping"),
            Kind::Policer => ("policer", "policer"),
            Kind::Htb => ("htb", "shaping"),
            Kind::Ifb => ("policer", "ifb"),
            Kind::HtbAndIfb => ("htb", "ifb"),
        }
    }
}

/// One process's limit in one round: a rate of its own in each direction (bytes per
/// second), 16 KiB/s apart from every other, so that a class's rate says whose it is.
struct Planned {
    pid: u32,
    kind: Kind,
    up: u64,
    down: u64,
}

/// Round `round`: each process moves on to the next kind and a rate 1 KiB/s higher.
fn plan(clients: &[Endpoint], round: usize) -> Vec<Planned> {
    clients
        .iter()
        .enumerate()
        .map(|(index, client)| {
            let step = u64::try_from(index * 16 + round).unwrap_or(0) * 1024;
            Planned {
                pid: client.pid(),
                kind: Kind::of(index + round),
                up: (1 << 20) + step,
                down: (2 << 20) + step,
            }
        })
        .collect()
}

fn limit_args(planned: &Planned) -> Vec<String> {
    let (up, down) = planned.kind.backends();
    [
        "limit",
        "--pid",
        &planned.pid.to_string(),
        "--up",
        &format!("{}B", planned.up),
        "--upload-backend",
        up,
        "--down",
        &format!("{}B", planned.down),
        "--download-backend",
        down,
    ]
    .map(str::to_owned)
    .to_vec()
}

/// Runs every command at once (each thread waits for the others before starting its own)
/// and returns their outputs in order.
fn run_together(lab: &Lab, commands: &[Vec<String>]) -> Vec<Output> {
    let start = Barrier::new(commands.len());
    std::thread::scope(|scope| {
        let threads: Vec<_> = commands
            .iter()
            .map(|args| {
                let start = &start;
                scope.spawn(move || {
                    let args: Vec<&str> = args.iter().map(String::as_str).collect();
                    start.wait();
                    common::chadthrottle(lab, &args)
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|thread| thread.join().expect("the command's thread runs to its end"))
            .collect()
    })
}

fn all_succeeded(what: &str, commands: &[Vec<String>], outputs: &[Output]) -> anyhow::Result<()> {
    let failures: Vec<String> = commands
        .iter()
        .zip(outputs)
        .filter(|(_, output)| !output.status.success())
        .map(|(args, output)| {
            format!(
                "chadthrottle {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr).trim()
            )
        })
        .collect();
    ensure!(
        failures.is_empty(),
        "{} of {} {what} commands failed:\n{}",
        failures.len(),
        commands.len(),
        failures.join("\n")
    );
    Ok(())
}

/// The HTB classes on `device` as (class id, rate in bits per second), from
/// `tc class show`: `class htb c7:5 root prio 0 rate 8388Kbit ceil …`.
fn classes(inside: &Endpoint, device: &str) -> anyhow::Result<Vec<(String, u64)>> {
    let text = iproute(inside, "tc", &["class", "show", "dev", device])?;
    text.lines()
        .filter(|line| line.starts_with("class htb "))
        .map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let id = words.get(2).context("a class id")?;
            let rate = words
                .iter()
                .position(|word| *word == "rate")
                .and_then(|at| words.get(at + 1))
                .with_context(|| format!("a rate in {line:?}"))?;
            Ok(((*id).to_owned(), tc_rate(rate)?))
        })
        .collect()
}

/// A rate as `tc` prints it (`792bit`, `8Mbit`, `104857Kbit`), in bits per second.
fn tc_rate(text: &str) -> anyhow::Result<u64> {
    let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let scale = match &text[digits.len()..] {
        "bit" => 1,
        "Kbit" => 1_000,
        "Mbit" => 1_000_000,
        "Gbit" => 1_000_000_000,
        other => bail!("tc printed a rate in {other:?}: {text}"),
    };
    Ok(digits.parse::<u64>().context("tc's rate is a number")? * scale)
}

/// The class on `device` of every limit in `held` (PID, rate in bytes per second): there
/// must be as many classes as limits, each at one limit's rate as HTB is given it
/// (compensated for headers; tc prints it cut to a few digits).
fn class_of_each(
    inside: &Endpoint,
    device: &str,
    mtu: u32,
    held: &[(u32, u64)],
) -> anyhow::Result<BTreeMap<u32, String>> {
    let found = classes(inside, device)?;
    ensure!(
        found.len() == held.len(),
        "{} limits on {device} but {} classes: {found:?}",
        held.len(),
        found.len()
    );
    let mut unmatched = found.clone();
    let mut class_of = BTreeMap::new();
    for &(pid, rate) in held {
        let bits = wire_rate(rate, mtu, ETHERNET_HEADER) * 8;
        let at = unmatched
            .iter()
            .position(|(_, shown)| shown.abs_diff(bits) <= bits / 1000 + 1000)
            .with_context(|| {
                format!(
                    "no class on {device} at {bits} bit/s (PID {pid}'s limit of {rate} B/s); \
                     classes: {found:?}"
                )
            })?;
        class_of.insert(pid, unmatched.remove(at).0);
    }
    Ok(class_of)
}

/// Every process with a qdisc-held limit has a class of its own, the same for its two
/// directions, on the interface (uploads) and on its IFB (downloads).
fn one_class_per_process(inside: &Endpoint, mtu: u32, planned: &[Planned]) -> anyhow::Result<()> {
    let held = |backend: &str, direction: fn(&Planned) -> (&'static str, u64)| {
        planned
            .iter()
            .filter(|limit| direction(limit).0 == backend)
            .map(|limit| (limit.pid, direction(limit).1))
            .collect::<Vec<_>>()
    };
    let uploads = held("htb", |limit| (limit.kind.backends().0, limit.up));
    let downloads = held("ifb", |limit| (limit.kind.backends().1, limit.down));
    let up_classes = class_of_each(inside, DEVICE, mtu, &uploads)?;
    let ifbs = ifb_devices(inside)?;
    let [ifb] = ifbs.as_slice() else {
        bail!("one IFB device for {DEVICE}, found {ifbs:?}");
    };
    let down_classes = class_of_each(inside, ifb, mtu, &downloads)?;
    let mut owner: BTreeMap<&str, u32> = BTreeMap::new();
    for (pid, class) in up_classes.iter().chain(&down_classes) {
        if let Some(other) = owner.insert(class, *pid) {
            ensure!(
                other == *pid,
                "PIDs {other} and {pid} are both in class {class} \
                 (uploads {up_classes:?}, downloads {down_classes:?})"
            );
        }
    }
    println!(
        "  {} processes in {} distinct classes: {} on {DEVICE}, {} on {ifb}",
        up_classes
            .keys()
            .chain(down_classes.keys())
            .collect::<BTreeSet<_>>()
            .len(),
        owner.len(),
        up_classes.len(),
        down_classes.len()
    );
    Ok(())
}

fn link_mtu(inside: &Endpoint, device: &str) -> anyhow::Result<u32> {
    let links: Value = serde_json::from_str(&iproute(
        inside,
        "ip",
        &["-j", "link", "show", "dev", device],
    )?)?;
    let mtu = links[0]["mtu"].as_u64().context("the link has an MTU")?;
    Ok(u32::try_from(mtu)?)
}

/// Every planned limit is listed by `status --json` with its rates and backends, and
/// nothing else is.
fn every_limit_is_listed(lab: &Lab, planned: &[Planned]) -> anyhow::Result<()> {
    let status: Value = serde_json::from_str(&common::run(lab, &["status", "--json"])?)?;
    let listed = status["limits"].as_array().context("a list of limits")?;
    ensure!(
        listed.len() == planned.len(),
        "{} limits listed for {} set",
        listed.len(),
        planned.len()
    );
    for limit in planned {
        let entry = listed
            .iter()
            .find(|entry| entry["pid"] == limit.pid)
            .with_context(|| format!("PID {} ({:?}) is not listed", limit.pid, limit.kind))?;
        let (up, down) = limit.kind.backends();
        for (direction, backend, rate) in [("up", up, limit.up), ("down", down, limit.down)] {
            ensure!(
                entry[direction].as_u64() == Some(rate)
                    && entry["backend"][direction].as_str() == Some(backend),
                "PID {} ({:?}) {direction}: expected {rate} B/s by {backend}, listed {entry}",
                limit.pid,
                limit.kind
            );
        }
    }
    println!("  status lists all {} limits as set", planned.len());
    Ok(())
}

/// How one test sets or lifts many limits at once.
trait AtOnce {
    /// Sets every limit in `planned` at once; every one must succeed.
    fn limit(&self, lab: &Lab, planned: &[Planned]) -> anyhow::Result<()>;
    /// Lifts the limits of every process in `clients` at once.
    fn unlimit(&self, lab: &Lab, clients: &[Endpoint]) -> anyhow::Result<()>;
}

/// Rounds of limits set at once, each checked in the table and on the interfaces, then
/// every limit lifted at once: no limit, IFB or qdisc of ours is left.
fn rounds_at_once(name: &str, at_once: &dyn AtOnce) -> anyhow::Result<()> {
    let lab = Lab::new(name, None)?;
    let server = lab.server(Proto::Tcp, Family::V4, None)?;
    let clients: Vec<Endpoint> = (0..PROCESSES)
        .map(|_| lab.client(&server, Proto::Tcp, None, None))
        .collect::<anyhow::Result<_>>()?;
    let inside = &clients[0];
    let qdiscs_before = iproute(inside, "tc", &["qdisc", "show"])?;
    let mtu = link_mtu(inside, DEVICE)?;

    for round in 0..ROUNDS {
        println!("  round {round}:");
        let planned = plan(&clients, round);
        at_once.limit(&lab, &planned)?;
        every_limit_is_listed(&lab, &planned)?;
        one_class_per_process(inside, mtu, &planned)?;
    }

    at_once.unlimit(&lab, &clients)?;
    let status: Value = serde_json::from_str(&common::run(&lab, &["status", "--json"])?)?;
    ensure!(
        status["limits"].as_array().is_some_and(Vec::is_empty),
        "no limit is left after every unlimit: {status}"
    );
    ensure!(
        ifb_devices(inside)?.is_empty(),
        "the IFB went with the last download limit: {:?}",
        ifb_devices(inside)?
    );
    let qdiscs_after = iproute(inside, "tc", &["qdisc", "show"])?;
    ensure!(
        qdiscs_after == qdiscs_before,
        "every qdisc is back as it was:\n{qdiscs_after}\nwas:\n{qdiscs_before}"
    );
    println!("  {PROCESSES} limits lifted at once left the interfaces as they were");
    Ok(())
}

/// `chadthrottle limit` and `unlimit` commands, started together.
struct Commands;

impl AtOnce for Commands {
    fn limit(&self, lab: &Lab, planned: &[Planned]) -> anyhow::Result<()> {
        let limits: Vec<Vec<String>> = planned.iter().map(limit_args).collect();
        all_succeeded("limit", &limits, &run_together(lab, &limits))
    }

    fn unlimit(&self, lab: &Lab, clients: &[Endpoint]) -> anyhow::Result<()> {
        let unlimits: Vec<Vec<String>> = clients
            .iter()
            .map(|client| vec!["unlimit".to_owned(), "--pid".to_owned(), pid(client)])
            .collect();
        all_succeeded("unlimit", &unlimits, &run_together(lab, &unlimits))
    }
}

/// The library's `Backend` calls from threads of one process, each with a `Datapath` of
/// its own opened beforehand (as a TUI holds one): the calls themselves start together,
/// with no command's start-up between them.
struct Threads;

impl Threads {
    /// Runs `work` on a datapath of its own per item, all started together.
    fn together<T: Sync>(
        lab: &Lab,
        items: &[T],
        work: impl Fn(&mut Datapath, &T) -> anyhow::Result<()> + Sync,
    ) -> anyhow::Result<()> {
        let mut datapaths = items
            .iter()
            .map(|_| Datapath::open(lab.pin_dir())?.context("the datapath is installed"))
            .collect::<anyhow::Result<Vec<Datapath>>>()?;
        let start = Barrier::new(items.len());
        let failures: Vec<String> = std::thread::scope(|scope| {
            let threads: Vec<_> = datapaths
                .iter_mut()
                .zip(items)
                .map(|(datapath, item)| {
                    let (start, work) = (&start, &work);
                    scope.spawn(move || {
                        start.wait();
                        work(datapath, item)
                    })
                })
                .collect();
            threads
                .into_iter()
                .filter_map(|thread| match thread.join() {
                    Ok(Ok(())) => None,
                    Ok(Err(error)) => Some(format!("{error:#}")),
                    Err(_) => Some("a thread panicked".to_owned()),
                })
                .collect()
        });
        ensure!(
            failures.is_empty(),
            "{} of {} calls failed:\n{}",
            failures.len(),
            items.len(),
            failures.join("\n")
        );
        Ok(())
    }
}

impl AtOnce for Threads {
    fn limit(&self, lab: &Lab, planned: &[Planned]) -> anyhow::Result<()> {
        Datapath::install(&lab.config())?;
        Threads::together(lab, planned, |datapath, limit| {
            let (up, down) = limit.kind.backends();
            let set = |rate: u64, backend: &str| -> anyhow::Result<Change> {
                Ok(Change::Set(DirectionLimit {
                    rate,
                    burst: rate,
                    enforcement: Enforcement::from_name(backend).context("a backend")?,
                    by_default: false,
                }))
            };
            let process = ProcessRef {
                pid: limit.pid,
                start_time: procs::start_time(limit.pid).context("the client runs")?,
            };
            let request = LimitRequest {
                target: Target {
                    process,
                    name: "ct-lab".to_owned(),
                },
                change: PerDirection {
                    up: set(limit.up, up)?,
                    down: set(limit.down, down)?,
                },
                lasts: None,
            };
            datapath
                .apply(&request)
                .with_context(|| format!("apply for PID {}", limit.pid))?;
            Ok(())
        })
    }

    fn unlimit(&self, lab: &Lab, clients: &[Endpoint]) -> anyhow::Result<()> {
        Threads::together(lab, clients, |datapath, client| {
            let both = PerDirection {
                up: true,
                down: true,
            };
            datapath
                .remove(client.pid(), both)
                .with_context(|| format!("remove for PID {}", client.pid()))?
                .with_context(|| format!("PID {} had a limit", client.pid()))?;
            Ok(())
        })
    }
}

fn thirty_two_limit_commands_at_once_each_get_their_own_entry_and_class() -> anyhow::Result<()> {
    rounds_at_once("concurrent-cli", &Commands)
}

fn thirty_two_applies_in_one_process_at_once_each_get_their_own_class() -> anyhow::Result<()> {
    rounds_at_once("concurrent-lib", &Threads)
}

const TESTS: &[(&str, Test)] = &[
    (
        "thirty_two_limit_commands_at_once_each_get_their_own_entry_and_class",
        thirty_two_limit_commands_at_once_each_get_their_own_entry_and_class,
    ),
    (
        "thirty_two_applies_in_one_process_at_once_each_get_their_own_class",
        thirty_two_applies_in_one_process_at_once_each_get_their_own_class,
    ),
];

fn main() {
    common::main(TESTS);
}
