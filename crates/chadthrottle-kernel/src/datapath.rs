//! The limit table of an installed datapath: setting, lifting, listing and counting
//! limits. This is the eBPF backend behind the core's `Backend` trait.
//!
//! Every change (`apply`, `remove`, `prune`, and `reset`'s lifting) takes the state lock
//! once, before its first read of the table, and holds it to its last write, the qdisc
//! sync and the sockets' reconcile included: two commands never pick the same HTB class
//! or sync the interfaces from a table the other is changing. The lock is not held
//! between changes (a TUI keeps a `Datapath` open for long), and reads take none.

use crate::backfill::{Stamp, backfill};
use crate::clock;
use crate::config::Config;
use crate::error::Error;
use crate::install;
use crate::layout::{
    self, DIR_DOWN, DIR_UP, LIMIT_BY_DEFAULT, LIMIT_NFT, LIMIT_POLICE, LIMIT_QDISC, LIMIT_SHAPE,
    Limit, LimitKey, MatchKey, Member, Owner, RATE_UNLIMITED, Rule, SCOPE_PROCESS, SockState,
    Stats,
};
use crate::lock::{self, StateLock};
use crate::names::{
    MAP_COUNTERS, MAP_LIMITS, MAP_MATCH, MAP_MEMBERS, MAP_OWNER, MAP_RULES, MAP_STATS, MAP_TREE,
};
use crate::nft_sync::{self, NftLimit};
use crate::pins::{PinnedMaps, open_pins};
use crate::police_sync::{self, PoliceLimit};
use crate::privileges::{self, Operation};
use crate::procs;
use crate::qdisc_sync::{self, ClassLimit, Reach};
use crate::task_iterator;
use crate::tcp_iterator;
use aya::maps::{HashMap, MapData, MapError, PerCpuArray, PerCpuHashMap, PerCpuValues, SkStorage};
use chadthrottle_core::backend::{Applied, Backend, Change, LimitRequest, Target};
use chadthrottle_core::bucket;
use chadthrottle_core::htb_class;
use chadthrottle_core::nft_limit;
use chadthrottle_core::police_limit;
use chadthrottle_core::status::{
    ActiveLimit, DirStats, DirectionLimit, Enforcement, held_by_nftables, held_by_police,
    held_by_qdisc,
};
use chadthrottle_core::{Direction, PerDirection, ProcessRef};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Update flag: copy the value under the entry's `bpf_spin_lock`.
pub(crate) const BPF_F_LOCK: u64 = 4;
/// Update flag: only create, never overwrite.
const BPF_NOEXIST: u64 = 1;

/// The `ct_limit_key.dir` of `direction` (`DIR_UP` or `DIR_DOWN`, both below 2).
pub(crate) const fn dir_code(direction: Direction) -> u16 {
    match direction {
        Direction::Up => DIR_UP as u16,
        Direction::Down => DIR_DOWN as u16,
    }
}

const fn direction_of(dir: u16) -> Direction {
    if dir as u32 == DIR_DOWN {
        Direction::Down
    } else {
        Direction::Up
    }
}

/// The key of `pid`'s own budget in `direction` (a PID limit, or an each-mode member's).
const fn key(pid: u32, direction: Direction) -> LimitKey {
    LimitKey {
        id: pid,
        dir: dir_code(direction),
        scope: SCOPE_PROCESS,
    }
}

/// A fresh entry for `target`: a bucket that starts empty, or a counting-only one for a
/// direction without a limit. `class_id` is the HTB class of a qdisc-held limit.
fn new_entry(
    target: &Target,
    limit: Option<DirectionLimit>,
    now: u64,
    expires: u64,
    class_id: u32,
) -> Limit {
    let (rate, burst) = limit.map_or((RATE_UNLIMITED, 0), |l| (l.rate, l.burst));
    let enforcement = limit.map(|l| l.enforcement);
    // a police filter is named by a slot taken from the HTB classes' numbers
    let slotted = enforcement.is_some_and(|e| e.is_qdisc() || e == Enforcement::TcPolice);
    // behind an nftables rule the policer must hold the rule's whole bucket
    let bucket_burst = match enforcement {
        Some(Enforcement::Nftables) => nft_limit::backstop_burst(rate, burst),
        Some(Enforcement::TcPolice) => police_limit::backstop_burst(burst),
        _ => burst,
    };
    Limit {
        flags: match enforcement {
            Some(Enforcement::Shaping) => LIMIT_SHAPE,
            Some(Enforcement::Htb | Enforcement::Ifb) => LIMIT_QDISC,
            Some(Enforcement::Nftables) => LIMIT_NFT,
            Some(Enforcement::TcPolice) => LIMIT_POLICE,
            _ => 0,
        } | if limit.is_some_and(|l| l.by_default) {
            LIMIT_BY_DEFAULT
        } else {
            0
        },
        class_id: if slotted { class_id } else { 0 },
        start_time: target.process.start_time,
        bucket: bucket::Bucket::new(rate, bucket_burst, now),
        burst,
        expires_at_ns: expires,
        comm: layout::comm_bytes(&target.name),
        ..Limit::default()
    }
}

/// An installed datapath, opened.
pub struct Datapath {
    pub(crate) limits: HashMap<MapData, LimitKey, Limit>,
    pub(crate) stats: PerCpuHashMap<MapData, LimitKey, Stats>,
    pub(crate) owner: SkStorage<MapData, SockState>,
    pub(crate) rules: HashMap<MapData, u32, Rule>,
    pub(crate) matches: HashMap<MapData, MatchKey, u32>,
    pub(crate) tree: HashMap<MapData, u32, Member>,
    pub(crate) members: HashMap<MapData, u32, Member>,
    pub(crate) counters: PerCpuArray<MapData, u64>,
    pub(crate) capacity: u32,
    pub(crate) pin_dir: PathBuf,
    pub(crate) force_qdisc: bool,
    /// The cgroup the programs are attached to, where the caller knows it (a cgroup
    /// rule must lie inside it); `None`: the whole cgroup2 tree.
    pub(crate) scope: Option<PathBuf>,
}

impl Datapath {
    /// Opens the datapath described by `config`, attaching and pinning it first if it is
    /// not there (or only partly there, after a crash).
    pub fn install(config: &Config) -> Result<Datapath, Error> {
        Datapath::from_pins(install::install(config)?, &config.pin_dir)
    }

    /// Opens the datapath pinned at `pin_dir`; `None` if none is installed there.
    pub fn open(pin_dir: &Path) -> Result<Option<Datapath>, Error> {
        privileges::check(Operation::UsePins)?;
        // an install in progress pins its maps one after another: wait until it is done
        let _held = lock::lock()?;
        open_pins(pin_dir)?
            .map(|pins| Datapath::from_pins(pins, pin_dir))
            .transpose()
    }

    pub(crate) fn from_pins(pins: PinnedMaps, pin_dir: &Path) -> Result<Datapath, Error> {
        Ok(Datapath {
            limits: layout::typed(MAP_LIMITS, pins.limits)?,
            stats: layout::typed(MAP_STATS, pins.stats)?,
            owner: layout::typed(MAP_OWNER, pins.owner)?,
            rules: layout::typed(MAP_RULES, pins.rules)?,
            matches: layout::typed(MAP_MATCH, pins.matches)?,
            tree: layout::typed(MAP_TREE, pins.tree)?,
            members: layout::typed(MAP_MEMBERS, pins.members)?,
            counters: layout::typed(MAP_COUNTERS, pins.counters)?,
            capacity: pins.meta.max_limits,
            pin_dir: pin_dir.to_owned(),
            force_qdisc: false,
            scope: None,
        })
    }

    /// Lets the qdisc backends replace a root qdisc ChadThrottle did not create (it is
    /// remembered and put back when the limits go); without, such a limit is refused.
    pub fn force_qdisc(&mut self, force: bool) {
        self.force_qdisc = force;
    }

    /// The cgroup the datapath is attached to (`--cgroup`), for checking that a cgroup
    /// rule's target lies inside it.
    pub fn set_scope(&mut self, scope: PathBuf) {
        self.scope = Some(scope);
    }

    /// The limits in force held by a backend of `flag` (`LIMIT_*`), of live processes,
    /// with the PID and direction of each.
    fn held_by(&self, flag: u32) -> Vec<(u32, Direction, Limit)> {
        let mut held = Vec::new();
        for key in self.process_keys() {
            let Ok(Some(limit)) = self.entry(key.id, direction_of(key.dir)) else {
                continue;
            };
            if limit.flags & flag != 0
                && limit.bucket.rate != RATE_UNLIMITED
                && procs::is_alive(key.id, limit.start_time)
            {
                held.push((key.id, direction_of(key.dir), limit));
            }
        }
        held
    }

    /// The qdisc-held limits in force: of live processes, and of the shared rules a class
    /// holds (one entry per live member).
    fn class_limits(&self) -> Vec<ClassLimit> {
        self.held_by(LIMIT_QDISC)
            .into_iter()
            .map(|(pid, direction, limit)| ClassLimit {
                pid,
                direction,
                class_id: limit.class_id,
                rate: limit.bucket.rate,
            })
            .chain(self.rule_class_limits())
            .collect()
    }

    /// The nftables-held limits in force, of live processes.
    fn nft_limits(&self) -> Vec<NftLimit> {
        self.held_by(LIMIT_NFT)
            .into_iter()
            .map(|(pid, direction, limit)| NftLimit {
                pid,
                direction,
                rate: limit.bucket.rate,
                burst: limit.burst,
            })
            .collect()
    }

    /// The police-held limits in force, of live processes.
    fn police_limits(&self) -> Vec<PoliceLimit> {
        self.held_by(LIMIT_POLICE)
            .into_iter()
            .map(|(pid, _, limit)| PoliceLimit {
                pid,
                slot: limit.class_id,
                rate: limit.bucket.rate,
                burst: limit.burst,
            })
            .collect()
    }

    /// Brings the tc_police backend's filters in line with the table of limits.
    fn sync_police(&self, held: &StateLock, grow: bool) -> Result<(), Error> {
        police_sync::sync(held, &self.pin_dir, &self.police_limits(), grow)
    }

    /// Brings the nftables backend's tables in line with the table of limits.
    fn sync_nftables(&self, held: &StateLock) -> Result<(), Error> {
        nft_sync::sync(held, &self.pin_dir, &self.nft_limits())
    }

    /// Brings the qdisc backends' interfaces in line with the table.
    pub(crate) fn sync_qdiscs(&self, held: &StateLock, reach: Reach) -> Result<(), Error> {
        qdisc_sync::sync(held, &self.pin_dir, &self.class_limits(), reach)
    }

    /// The HTB class for `pid`: the one its other direction has, or the lowest free one.
    /// Free until written, so the caller holds the lock until the entry is in the table.
    fn class_for(&self, held: &StateLock, pid: u32) -> Result<u32, Error> {
        for direction in Direction::ALL {
            if let Ok(Some(limit)) = self.entry(pid, direction)
                && limit.class_id != 0
            {
                return Ok(limit.class_id);
            }
        }
        self.unused_class(held)
    }

    /// The lowest HTB class (or police slot) no budget has, of a process or of a rule.
    /// Free until written, so the caller holds the lock until the budget is in the table.
    pub(crate) fn unused_class(&self, _held: &StateLock) -> Result<u32, Error> {
        let used: BTreeSet<u16> = self
            .limits
            .iter()
            .filter_map(Result::ok)
            .filter(|(_, limit)| limit.class_id != 0)
            .map(|(_, limit)| u16::try_from(limit.class_id & 0xffff).unwrap_or(0))
            .collect();
        htb_class::free_minor(&used)
            .map(htb_class::class_id)
            .ok_or(Error::TableFull { capacity: 0xfffe })
    }

    /// A process a rule governs goes back to its rule once its PID limit is gone: an
    /// each-mode member's own budget, which the PID limit replaced, is made again by the
    /// resolver (a shared rule's budget needs nothing: the packet path finds it).
    fn back_to_rule(&self, pid: u32) -> Result<(), Error> {
        if self.members.get(&pid, 0).is_ok() {
            task_iterator::resolve_all(&self.pin_dir)?;
        }
        Ok(())
    }

    /// Shapes the open sockets of `pid` as its limits now say, or gives them their own
    /// settings back (the sock_ops callbacks keep them current from then on).
    fn reconcile(&self, pid: u32) -> Result<usize, Error> {
        tcp_iterator::reconcile(&self.pin_dir, &[pid])
    }

    /// Lifts every limit and gives the shaped sockets of the processes that had them their
    /// own settings back (for `reset`, which holds the lock). Returns how many sockets
    /// were restored.
    ///
    /// Rules go too, first, so that the resolver (still attached until `reset` unpins it)
    /// finds none and makes no new member budget meanwhile; then the memberships and
    /// every budget, of processes and of rules.
    pub(crate) fn lift_all(&mut self, _held: &StateLock) -> Result<usize, Error> {
        let ids: Vec<u32> = self.rules.keys().filter_map(Result::ok).collect();
        for id in ids {
            let _absent = self.rules.remove(&id);
        }
        let matches: Vec<MatchKey> = self.matches.keys().filter_map(Result::ok).collect();
        for key in matches {
            let _absent = self.matches.remove(&key);
        }
        let tree: Vec<u32> = self.tree.keys().filter_map(Result::ok).collect();
        for pid in tree {
            let _absent = self.tree.remove(&pid);
        }
        let mut pids: BTreeSet<u32> = self.members.keys().filter_map(Result::ok).collect();
        for pid in &pids {
            let _absent = self.members.remove(pid);
        }
        let keys: Vec<LimitKey> = self.limits.keys().filter_map(Result::ok).collect();
        for key in keys {
            if key.scope == SCOPE_PROCESS {
                pids.insert(key.id);
            }
            let _absent = self.limits.remove(&key);
            let _absent = self.stats.remove(&key);
        }
        let pids: Vec<u32> = pids.into_iter().collect();
        tcp_iterator::reconcile(&self.pin_dir, &pids)
    }

    /// The keys of processes' own budgets (PID limits and each-mode members' budgets).
    fn process_keys(&self) -> Vec<LimitKey> {
        self.limits
            .keys()
            .filter_map(Result::ok)
            .filter(|key| key.scope == SCOPE_PROCESS)
            .collect()
    }

    /// How many processes can be limited at once.
    pub const fn capacity(&self) -> u32 {
        self.capacity
    }

    /// `pid`'s PID limit in `direction` (a rule member's own budget is not one: it is the
    /// rule's, and a PID limit written over it wins).
    fn entry(&self, pid: u32, direction: Direction) -> Result<Option<Limit>, Error> {
        match self.limits.get(&key(pid, direction), BPF_F_LOCK) {
            Ok(limit) if limit.rule != 0 => Ok(None),
            Ok(limit) => Ok(Some(limit)),
            Err(MapError::KeyNotFound) => Ok(None),
            Err(error) => Err(Error::map("read", MAP_LIMITS)(error)),
        }
    }

    fn write(&mut self, pid: u32, direction: Direction, limit: Limit) -> Result<(), Error> {
        // before the entry: the exit hook must look for it when the process exits
        crate::pins::write_pid_limits(&self.pin_dir, true)?;
        self.limits
            .insert(key(pid, direction), limit, BPF_F_LOCK)
            .map_err(|error| self.table_error(error, MAP_LIMITS))
    }

    pub(crate) fn table_error(&self, error: MapError, map: &'static str) -> Error {
        let full = matches!(&error, MapError::SyscallError(call) if call.io_error.raw_os_error() == Some(libc::E2BIG));
        if full {
            Error::TableFull {
                capacity: self.capacity,
            }
        } else {
            Error::map("write", map)(error)
        }
    }

    fn zero_stats(&mut self, pid: u32, direction: Direction, flags: u64) -> Result<(), Error> {
        self.zero_budget_stats(key(pid, direction), flags)
    }

    /// Fresh (zero) counters for budget `key`; `flags` `BPF_NOEXIST` keeps existing ones.
    pub(crate) fn zero_budget_stats(&mut self, key: LimitKey, flags: u64) -> Result<(), Error> {
        let cpus = aya::util::nr_cpus().map_or(1, |n| n.max(1));
        let zeros = PerCpuValues::try_from(vec![Stats::default(); cpus])
            .map_err(|source| Error::io("size per-CPU values for", MAP_STATS)(source))?;
        match self.stats.insert(key, zeros, flags) {
            Ok(()) => Ok(()),
            Err(MapError::SyscallError(call))
                if call.io_error.raw_os_error() == Some(libc::EEXIST) =>
            {
                Ok(())
            }
            Err(error) => Err(self.table_error(error, MAP_STATS)),
        }
    }

    /// Tells the exit hook whether any PID limit is left, after limits were deleted: with
    /// none, an exit no rule touched looks up no budget.
    fn publish_pid_limits(&self) -> Result<(), Error> {
        let any = self.process_keys().iter().any(|key| {
            self.limits
                .get(key, BPF_F_LOCK)
                .is_ok_and(|limit| limit.rule == 0)
        });
        crate::pins::write_pid_limits(&self.pin_dir, any)
    }

    /// Deletes `pid`'s PID limit (a rule member's budget stays: the rule governs it).
    fn delete(&mut self, pid: u32) {
        for direction in Direction::ALL {
            if !matches!(self.entry(pid, direction), Ok(Some(_))) {
                continue;
            }
            // absent entries are fine: the exit hook may have been first
            let _absent = self.limits.remove(&key(pid, direction));
            let _absent = self.stats.remove(&key(pid, direction));
        }
    }

    fn read_stats(&self, pid: u32, direction: Direction) -> Result<DirStats, Error> {
        self.read_budget_stats(&key(pid, direction))
    }

    /// The counters of budget `key`, summed over the CPUs (zero if it has none).
    pub(crate) fn read_budget_stats(&self, key: &LimitKey) -> Result<DirStats, Error> {
        match self.stats.get(key, 0) {
            Ok(values) => Ok(DirStats::sum(values.iter().map(|cpu| DirStats {
                bytes: cpu.bytes,
                packets: cpu.packets,
                dropped_bytes: cpu.dropped_bytes,
                dropped_packets: cpu.dropped_packets,
            }))),
            Err(MapError::KeyNotFound) => Ok(DirStats::default()),
            Err(error) => Err(Error::map("read", MAP_STATS)(error)),
        }
    }

    /// The limit of `pid` as the table holds it, expired or not.
    fn read(&self, pid: u32) -> Result<Option<(ActiveLimit, u64)>, Error> {
        let entries = PerDirection {
            up: self.entry(pid, Direction::Up)?,
            down: self.entry(pid, Direction::Down)?,
        };
        let Some(first) = entries.up.or(entries.down) else {
            return Ok(None);
        };
        let limits = entries.map(|direction, entry| {
            entry
                .filter(|limit| limit.bucket.rate != RATE_UNLIMITED)
                .map(|limit| DirectionLimit {
                    rate: limit.bucket.rate,
                    burst: limit.burst,
                    enforcement: match (limit.flags, direction) {
                        (flags, _) if flags & LIMIT_SHAPE != 0 => Enforcement::Shaping,
                        (flags, Direction::Up) if flags & LIMIT_QDISC != 0 => Enforcement::Htb,
                        (flags, Direction::Down) if flags & LIMIT_QDISC != 0 => Enforcement::Ifb,
                        (flags, _) if flags & LIMIT_NFT != 0 => Enforcement::Nftables,
                        (flags, _) if flags & LIMIT_POLICE != 0 => Enforcement::TcPolice,
                        _ => Enforcement::Policer,
                    },
                    by_default: limit.flags & LIMIT_BY_DEFAULT != 0,
                })
        });
        let stats = PerDirection {
            up: self.read_stats(pid, Direction::Up)?,
            down: self.read_stats(pid, Direction::Down)?,
        };
        let limit = ActiveLimit {
            target: ProcessRef {
                pid,
                start_time: first.start_time,
            },
            name: first.comm(),
            limits,
            expires_at: (first.expires_at_ns != 0)
                .then(|| clock::boottime_to_unix_secs(first.expires_at_ns)),
            stats,
        };
        Ok(Some((limit, first.expires_at_ns)))
    }

    /// The processes with an entry of their own (`read` tells PID limits from members).
    fn pids(&self) -> BTreeSet<u32> {
        self.process_keys().into_iter().map(|key| key.id).collect()
    }

    /// The unlimited, counting-only entry a lifted direction keeps while the other
    /// direction is still limited.
    fn lifted_entry(target: &Target, expires_at_ns: u64) -> Limit {
        Limit {
            start_time: target.process.start_time,
            bucket: bucket::Bucket::new(RATE_UNLIMITED, 0, clock::monotonic_ns()),
            expires_at_ns,
            comm: layout::comm_bytes(&target.name),
            ..Limit::default()
        }
    }

    /// Writes the entries `request` asks for. Returns `false` when no direction is left
    /// limited, having deleted the process's entries.
    fn apply_entries(&mut self, held: &StateLock, request: &LimitRequest) -> Result<bool, Error> {
        let process = request.target.process;
        let now = clock::monotonic_ns();
        let expires = request.lasts.map_or(0, |lasts| {
            clock::boottime_ns().saturating_add(u64::try_from(lasts.as_nanos()).unwrap_or(u64::MAX))
        });
        let existing = PerDirection {
            up: self.entry(process.pid, Direction::Up)?,
            down: self.entry(process.pid, Direction::Down)?,
        }
        .map(|_, entry| entry.filter(|limit| limit.start_time == process.start_time));
        let limited =
            |entry: &Option<Limit>| entry.is_some_and(|l| l.bucket.rate != RATE_UNLIMITED);
        let left_limited = request
            .change
            .iter()
            .any(|(direction, change)| match change {
                Change::Set(_) => true,
                Change::Keep => limited(existing.get(direction)),
                Change::Lift => false,
            });
        if !left_limited {
            self.delete(process.pid);
            self.publish_pid_limits()?;
            return Ok(false);
        }
        let class_id = if request.sets_qdisc() || request.sets_police() {
            self.class_for(held, process.pid)?
        } else {
            0
        };
        for direction in Direction::ALL {
            let existing = *existing.get(direction);
            let value = match (request.change.get(direction), existing) {
                (Change::Set(limit), _) => {
                    new_entry(&request.target, Some(*limit), now, expires, class_id)
                }
                (Change::Lift, Some(old)) if limited(&Some(old)) => {
                    Datapath::lifted_entry(&request.target, expires)
                }
                (Change::Keep | Change::Lift, Some(old)) if old.expires_at_ns == expires => {
                    continue;
                }
                (Change::Keep | Change::Lift, Some(old)) => Limit {
                    expires_at_ns: expires,
                    ..old
                },
                (Change::Keep | Change::Lift, None) => {
                    new_entry(&request.target, None, now, expires, 0)
                }
            };
            self.write(process.pid, direction, value)?;
            // fresh counters for a new target (and for a stale one whose PID was reused)
            let flags = if existing.is_some() { BPF_NOEXIST } else { 0 };
            self.zero_stats(process.pid, direction, flags)?;
        }
        Ok(true)
    }
}

impl Backend for Datapath {
    type Error = Error;

    fn apply(&mut self, request: &LimitRequest) -> Result<Applied, Error> {
        let held = lock::lock()?;
        let process = request.target.process;
        let before = PerDirection {
            up: self.entry(process.pid, Direction::Up)?,
            down: self.entry(process.pid, Direction::Down)?,
        };
        // on failure, put back what was there (counters of an existing limit stay)
        let restore = |datapath: &mut Datapath| {
            for (direction, old) in before.iter() {
                match old {
                    Some(old) => {
                        let _best_effort = datapath.write(process.pid, direction, *old);
                    }
                    None => {
                        let _absent = datapath.limits.remove(&key(process.pid, direction));
                        let _absent = datapath.stats.remove(&key(process.pid, direction));
                    }
                }
            }
        };
        let nft_now = request.change.iter().any(|(_, change)| {
            change
                .limit()
                .is_some_and(|l| l.enforcement == Enforcement::Nftables)
        });
        if nft_now {
            // refused before anything changes
            nft_sync::own_cgroup(process.pid)?;
        }
        let result = self.apply_entries(&held, request).and_then(|limited| {
            if !limited {
                self.back_to_rule(process.pid)?;
                return Ok(0);
            }
            let owner = Owner {
                tgid: process.pid,
                _pad: 0,
                start_time: process.start_time,
            };
            backfill(owner, &mut self.owner, Stamp::All)
        });
        // the process may have exited (and its PID been reused) while this ran: its
        // entries must not outlive it
        let result = result.and_then(|stamped| {
            if procs::is_alive(process.pid, process.start_time) {
                Ok(stamped)
            } else {
                Err(Error::ProcessExited { pid: process.pid })
            }
        });
        let qdisc_before = before
            .iter()
            .any(|(_, entry)| entry.is_some_and(|l| l.flags & LIMIT_QDISC != 0));
        let qdisc_now = request.sets_qdisc();
        let nft_before = before
            .iter()
            .any(|(_, entry)| entry.is_some_and(|l| l.flags & LIMIT_NFT != 0));
        let police_before = before
            .iter()
            .any(|(_, entry)| entry.is_some_and(|l| l.flags & LIMIT_POLICE != 0));
        let police_now = request.sets_police();
        let result = result.and_then(|backfilled_sockets| {
            if nft_before || nft_now {
                self.sync_nftables(&held)?;
            }
            if police_before || police_now {
                self.sync_police(&held, true)?;
            }
            if qdisc_before || qdisc_now {
                self.sync_qdiscs(
                    &held,
                    Reach::Grow {
                        force: self.force_qdisc,
                    },
                )?;
            }
            let shaped_sockets = self.reconcile(process.pid)?;
            Ok(Applied {
                backfilled_sockets,
                shaped_sockets,
            })
        });
        match result {
            Ok(applied) => Ok(applied),
            Err(error) => {
                restore(self);
                if qdisc_before || qdisc_now {
                    // back to what the table says again (the refusal changed nothing)
                    let _best_effort = self.sync_qdiscs(&held, Reach::Shrink);
                }
                if nft_before || nft_now {
                    let _best_effort = self.sync_nftables(&held);
                }
                if police_before || police_now {
                    let _best_effort = self.sync_police(&held, false);
                }
                self.reconcile(process.pid).ok();
                Err(error)
            }
        }
    }

    fn remove(
        &mut self,
        pid: u32,
        directions: PerDirection<bool>,
    ) -> Result<Option<ActiveLimit>, Error> {
        let held = lock::lock()?;
        let Some((limit, expires_at_ns)) = self.read(pid)? else {
            return Ok(None);
        };
        let keeps_a_limit = limit
            .limits
            .iter()
            .any(|(direction, set)| set.is_some() && !directions.get(direction));
        let qdisc_held = held_by_qdisc(&limit.limits);
        let nft_held = held_by_nftables(&limit.limits);
        let police_held = held_by_police(&limit.limits);
        if !keeps_a_limit {
            self.delete(pid);
            self.publish_pid_limits()?;
            self.back_to_rule(pid)?;
            if qdisc_held {
                self.sync_qdiscs(&held, Reach::Shrink)?;
            }
            if nft_held {
                self.sync_nftables(&held)?;
            }
            if police_held {
                self.sync_police(&held, false)?;
            }
            self.reconcile(pid)?;
            return Ok(Some(limit));
        }
        for (direction, lift) in directions.iter() {
            if *lift && limit.limits.get(direction).is_some() {
                let target = Target {
                    process: limit.target,
                    name: limit.name.clone(),
                };
                self.write(
                    pid,
                    direction,
                    Datapath::lifted_entry(&target, expires_at_ns),
                )?;
            }
        }
        if qdisc_held {
            self.sync_qdiscs(&held, Reach::Shrink)?;
        }
        if nft_held {
            self.sync_nftables(&held)?;
        }
        if police_held {
            self.sync_police(&held, false)?;
        }
        self.reconcile(pid)?;
        Ok(Some(limit))
    }

    fn limits(&self) -> Result<Vec<ActiveLimit>, Error> {
        let now = clock::boottime_ns();
        let mut limits = Vec::new();
        for pid in self.pids() {
            if let Some((limit, expires_at_ns)) = self.read(pid)?
                && (expires_at_ns == 0 || expires_at_ns > now)
            {
                limits.push(limit);
            }
        }
        Ok(limits)
    }

    /// Only grows: a namespace's qdiscs are installed where now wanted and re-rated (HTB
    /// keeps a changed class's tokens), tc_police's filters set where missing; nothing is
    /// removed here that `prune` or a change would not remove.
    fn follow(&mut self) -> Result<(), Error> {
        let held = lock::lock()?;
        let classes = self.class_limits();
        if !classes.is_empty() {
            qdisc_sync::sync(&held, &self.pin_dir, &classes, Reach::Grow { force: false })?;
        }
        let police = self.police_limits();
        if !police.is_empty() {
            police_sync::sync(&held, &self.pin_dir, &police, true)?;
        }
        Ok(())
    }

    /// Deletes entries whose process is gone or whose `--for` has run out (the datapath
    /// and the exit hook delete most of them first). Returns the limits removed.
    fn prune(&mut self) -> Result<Vec<ActiveLimit>, Error> {
        let held = lock::lock()?;
        let now = clock::boottime_ns();
        let mut pruned = Vec::new();
        let mut qdisc_held = false;
        let mut nft_held = false;
        let mut police_held = false;
        for pid in self.pids() {
            let Some((limit, expires_at_ns)) = self.read(pid)? else {
                continue;
            };
            let expired = expires_at_ns != 0 && expires_at_ns <= now;
            if expired || !procs::is_alive(pid, limit.target.start_time) {
                qdisc_held |= held_by_qdisc(&limit.limits);
                nft_held |= held_by_nftables(&limit.limits);
                police_held |= held_by_police(&limit.limits);
                self.delete(pid);
                pruned.push(limit);
            }
        }
        if !pruned.is_empty() {
            self.publish_pid_limits()?;
        }
        if qdisc_held {
            self.sync_qdiscs(&held, Reach::Shrink)?;
        }
        if nft_held {
            self.sync_nftables(&held)?;
        }
        if police_held {
            self.sync_police(&held, false)?;
        }
        Ok(pruned)
    }

    fn stats(&self, target: ProcessRef, direction: Direction) -> Result<Option<DirStats>, Error> {
        match self.entry(target.pid, direction)? {
            Some(limit) if limit.start_time == target.start_time => {
                self.read_stats(target.pid, direction).map(Some)
            }
            _ => Ok(None),
        }
    }
}
