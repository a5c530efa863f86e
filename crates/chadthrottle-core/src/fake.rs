//! An in-memory machine behind the [`crate::system`] seam: processes, a limit table, rules
//! (resolved against the directories, cgroups, users and containers a test gives it, their
//! members by the kernel's precedence) and a usage source that hold what tests put in them. The command line's and the TUI
//! runner's tests run on it without root; it follows the rules the real datapath keeps
//! (a request's outcome, a limit going with its process, a full table, one rule per
//! target) so that what they
//! assert is the commands' behaviour, not the fake's.

use crate::access::{HidePid, Installed, Requested};
use crate::backend::{
    Applied, Availability, Backend, BackendDescriptor, LimitRequest, RuleBackend,
};
use crate::cgroup_names::{ContainerRecord, unit_cgroup};
use crate::direction::{Direction, PerDirection};
use crate::download_default::InterfaceIngress;
use crate::process::Uids;
use crate::process::{ProcessInfo, ProcessRef};
use crate::resolution::{CgroupLayout, ResolveError, container_cgroup, resolve_tree};
use crate::rule_request::{ProcessFacts, ResolvedTarget, RuleApplied, RuleRequest, RuleStatus};
use crate::rule_target::{Candidate, RuleTarget, UserSpec, governing};
use crate::saved::Running;
use crate::status::{ActiveLimit, DirStats, Enforcement};
use crate::system::{DatapathOptions, Processes, ResetReport, System, UsageSource};
use crate::usage::{Layer, LimitRates, ProcessDetails, Reading, Source};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// What the fake refuses with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FakeError(pub String);

/// A process the fake machine runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeProcess {
    pub info: ProcessInfo,
    pub exe: Option<String>,
    pub details: ProcessDetails,
    /// The PID of the process that started it, if it runs.
    pub parent: Option<u32>,
}

impl FakeProcess {
    /// A plain process in the cgroup2 root, with an executable `/usr/bin/<name>`.
    pub fn new(pid: u32, start_time: u64, name: &str) -> FakeProcess {
        FakeProcess {
            info: ProcessInfo {
                pid,
                tgid: pid,
                start_time,
                name: name.to_owned(),
                kernel_thread: false,
                cgroup: Some("/".to_owned()),
                uids: Uids::of(0),
            },
            exe: Some(format!("/usr/bin/{name}")),
            details: ProcessDetails {
                pid,
                cmdline: name.to_owned(),
                exe: format!("/usr/bin/{name}"),
                ..ProcessDetails::default()
            },
            parent: None,
        }
    }

    /// The same process, started by `parent`.
    pub const fn child_of(mut self, parent: u32) -> FakeProcess {
        self.parent = Some(parent);
        self
    }

    /// The same process, running the executable `exe`.
    pub fn running(mut self, exe: &str) -> FakeProcess {
        self.exe = Some(exe.to_owned());
        exe.clone_into(&mut self.details.exe);
        self
    }

    /// The same process, in the cgroup2 directory `cgroup`.
    pub fn in_cgroup(mut self, cgroup: &str) -> FakeProcess {
        self.info.cgroup = Some(cgroup.to_owned());
        self
    }

    /// The same process, run by `uid`.
    pub fn owned_by(mut self, uid: u32) -> FakeProcess {
        self.info.uids = Uids::of(uid);
        self
    }

    pub const fn process(&self) -> ProcessRef {
        ProcessRef {
            pid: self.info.pid,
            start_time: self.info.start_time,
        }
    }
}

/// Everything the fake machine holds; tests set it up and read it back through
/// [`FakeSystem::machine`].
#[derive(Debug, Clone)]
pub struct FakeMachine {
    /// Processes and threads by PID.
    pub processes: BTreeMap<u32, FakeProcess>,
    /// The datapaths installed, by `--pin-dir` (`None`: the default), with the options
    /// they were installed with. They share one limit table.
    pub installs: BTreeMap<Option<PathBuf>, DatapathOptions>,
    /// Refuses `install` with this message (missing privileges, say).
    pub install_error: Option<String>,
    /// The limit table, by PID.
    pub limits: BTreeMap<u32, ActiveLimit>,
    /// How many processes the table holds at most.
    pub capacity: usize,
    /// How many rules the rule table holds at most.
    pub rule_capacity: usize,
    /// Backends that are not available here, with the reason.
    pub unavailable: BTreeMap<&'static str, String>,
    /// What the kernel makes the datapath do without (nothing by default: a new kernel).
    pub degraded: crate::kernel_floor::Degraded,
    /// The interfaces every process's downloads arrive on, with their ingress; by default
    /// none (loopback only), so a download left to the default keeps shaping.
    pub download_ingress: Result<Vec<InterfaceIngress>, String>,
    /// Requests that reached the limit table (`apply` and `remove` calls): one per kernel
    /// round trip.
    pub requests: usize,
    /// `Backend::follow` calls, and the error they answer with (`None`: they succeed).
    pub follows: usize,
    pub follow_error: Option<String>,
    /// Open sockets per PID, attributed when a limit is set.
    pub sockets: BTreeMap<u32, usize>,
    /// Readings the usage source returns, oldest first; the last one repeats.
    pub readings: VecDeque<Reading>,
    /// Which run of the accounting's counters the readings are from: `reset` starts
    /// another, as the kernel's does.
    pub accounting_epoch: u64,
    /// Unix time (seconds) as the fake's clock reads it.
    pub now_unix: u64,
    /// Seconds the clock moves on while a limit or a rule is set: a machine too busy to
    /// set it at once.
    pub setting_takes: u64,
    pub own_pid: u32,
    /// The cgroup2 path the datapath attaches to.
    pub scope: String,
    /// Who runs the commands.
    pub caller: Uids,
    /// User names by uid.
    pub users: BTreeMap<u32, String>,
    pub hidepid: HidePid,
    /// The rules held, in the order they were set.
    pub rules: Vec<FakeRule>,
    /// Directories that exist (for an executable that is not installed yet).
    pub directories: BTreeSet<PathBuf>,
    /// cgroup2 directories beside the processes' own (and their parents).
    pub cgroups: BTreeSet<String>,
    /// Containers as their runtimes' files list them, running or not.
    pub containers: Vec<ContainerRecord>,
    /// What the kernel's hooks counted as processes left out of a full member table.
    pub ungoverned: u64,
}

/// A rule the fake holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeRule {
    pub request: RuleRequest,
    pub expires_at: Option<u64>,
    /// Counters summed over the members; tests set them.
    pub stats: PerDirection<DirStats>,
}

impl Default for FakeMachine {
    fn default() -> FakeMachine {
        FakeMachine {
            processes: BTreeMap::new(),
            installs: BTreeMap::new(),
            install_error: None,
            limits: BTreeMap::new(),
            capacity: 65_536,
            rule_capacity: 4_096,
            unavailable: BTreeMap::new(),
            degraded: crate::kernel_floor::Degraded {
                release: "6.18".to_owned(),
                without: Vec::new(),
            },
            download_ingress: Ok(Vec::new()),
            follows: 0,
            follow_error: None,
            requests: 0,
            sockets: BTreeMap::new(),
            readings: VecDeque::new(),
            accounting_epoch: 1,
            now_unix: 1_700_000_000,
            setting_takes: 0,
            own_pid: 1,
            scope: "/".to_owned(),
            caller: Uids::of(0),
            users: BTreeMap::from([(0, "root".to_owned())]),
            hidepid: HidePid::Off,
            rules: Vec::new(),
            directories: BTreeSet::from([PathBuf::from("/usr/bin")]),
            cgroups: BTreeSet::from(["/".to_owned()]),
            containers: Vec::new(),
            ungoverned: 0,
        }
    }
}

impl FakeMachine {
    /// Starts `process`.
    pub fn spawn(&mut self, process: FakeProcess) {
        self.processes.insert(process.info.pid, process);
    }

    /// Ends `pid`; its limit goes with it, as the datapath's exit hook does.
    pub fn exit(&mut self, pid: u32) {
        self.processes.remove(&pid);
        self.limits.remove(&pid);
    }

    fn alive(&self, process: ProcessRef) -> bool {
        self.processes
            .get(&process.pid)
            .is_some_and(|p| p.info.start_time == process.start_time)
    }

    /// What a rule may match on of the process `p`.
    fn facts(&self, p: &FakeProcess) -> ProcessFacts {
        let mut ancestors = Vec::new();
        let mut parent = p.parent;
        while let Some(found) = parent.and_then(|pid| self.processes.get(&pid)) {
            if ancestors.len() > self.processes.len() {
                break; // a loop a test made up
            }
            ancestors.push(found.process());
            parent = found.parent;
        }
        ProcessFacts {
            process: p.process(),
            ancestors,
            exe: p.exe.as_ref().map(PathBuf::from),
            name: p.info.name.clone(),
            uid: p.info.uids.real,
            cgroup: p.info.cgroup.clone(),
        }
    }

    /// Drops the rules whose `--for` ran out, as the kernel's expiry does.
    fn expire_rules(&mut self) {
        let now = self.now_unix;
        self.rules
            .retain(|rule| rule.expires_at.is_none_or(|at| at > now));
    }

    /// The rule (by index) that governs each process a rule limits: a PID limit beats any
    /// rule, then the lowest rank, then the lowest order.
    fn governed(&self) -> BTreeMap<u32, usize> {
        self.processes
            .values()
            .filter(|p| p.info.tgid == p.info.pid && !p.info.kernel_thread)
            .filter(|p| !self.limits.contains_key(&p.info.pid))
            .filter_map(|p| {
                let facts = self.facts(p);
                let candidates = self
                    .rules
                    .iter()
                    .enumerate()
                    .filter(|(_, rule)| rule.request.resolved.matches(&facts))
                    .map(|(index, rule)| Candidate {
                        rank: rule.request.spec.target.rank(),
                        order: rule.request.spec.order,
                        rule: index,
                    });
                governing(candidates).map(|winner| (p.info.pid, winner.rule))
            })
            .collect()
    }

    /// Every cgroup2 directory: those listed, the processes' and their parents.
    fn cgroup_dirs(&self) -> Vec<String> {
        let mut dirs = self.cgroups.clone();
        for cgroup in self
            .processes
            .values()
            .filter_map(|p| p.info.cgroup.clone())
        {
            let mut path = cgroup.as_str();
            while !path.is_empty() {
                dirs.insert(path.to_owned());
                path = path.rsplit_once('/').map_or("", |(parent, _)| parent);
            }
        }
        dirs.into_iter().collect()
    }

    fn resolve(&self, target: &RuleTarget) -> Result<ResolvedTarget, ResolveError> {
        Ok(match target {
            RuleTarget::Tree(pid) => {
                let info = self.processes.get(pid).map(|p| p.info.clone());
                resolve_tree(*pid, info)?
            }
            RuleTarget::Exe(path) => {
                let directory = path.parent().unwrap_or(Path::new("/"));
                if !self.directories.contains(directory) {
                    return Err(ResolveError::ExeDirectory {
                        exe: path.display().to_string(),
                        directory: directory.display().to_string(),
                    });
                }
                ResolvedTarget::Exe { path: path.clone() }
            }
            RuleTarget::Name(name) => ResolvedTarget::Name(name.clone()),
            RuleTarget::CgroupPath(path) => {
                if !self.cgroup_dirs().contains(path) {
                    return Err(ResolveError::CgroupMissing(path.clone()));
                }
                ResolvedTarget::Cgroup { path: path.clone() }
            }
            RuleTarget::Unit(unit) => ResolvedTarget::Cgroup {
                path: unit_cgroup(unit, &self.cgroup_dirs())?,
            },
            RuleTarget::Container(spec) => ResolvedTarget::Cgroup {
                path: container_cgroup(
                    spec,
                    &self.cgroup_dirs(),
                    &self.containers,
                    CgroupLayout::Unified,
                    // the fake's cgroups are all the machine's
                    |_| true,
                )?,
            },
            RuleTarget::User(UserSpec::Uid(uid)) => ResolvedTarget::Uid(*uid),
            RuleTarget::User(UserSpec::Name(name)) => self
                .users
                .iter()
                .find(|(_, user)| *user == name)
                .map(|(uid, _)| ResolvedTarget::Uid(*uid))
                .ok_or_else(|| ResolveError::UnknownUser(name.clone()))?,
        })
    }
}

/// The fake machine, shared by the system and the backends and usage sources it hands out.
#[derive(Debug, Clone, Default)]
pub struct FakeSystem {
    machine: Arc<Mutex<FakeMachine>>,
}

fn lock(machine: &Mutex<FakeMachine>) -> MutexGuard<'_, FakeMachine> {
    // a test that panicked while holding it has failed already; its state is still readable
    machine.lock().unwrap_or_else(PoisonError::into_inner)
}

impl FakeSystem {
    pub fn new(machine: FakeMachine) -> FakeSystem {
        FakeSystem {
            machine: Arc::new(Mutex::new(machine)),
        }
    }

    /// The machine's state, to set up or to check.
    pub fn machine(&self) -> MutexGuard<'_, FakeMachine> {
        lock(&self.machine)
    }
}

impl Processes for FakeSystem {
    fn inspect(&self, pid: u32) -> Option<ProcessInfo> {
        self.machine().processes.get(&pid).map(|p| p.info.clone())
    }

    fn start_time(&self, pid: u32) -> Option<u64> {
        self.machine()
            .processes
            .get(&pid)
            .map(|p| p.info.start_time)
    }

    fn exe(&self, pid: u32) -> Option<String> {
        self.machine()
            .processes
            .get(&pid)
            .and_then(|p| p.exe.clone())
    }

    fn running(&self) -> Vec<Running> {
        self.machine()
            .processes
            .values()
            .filter_map(|p| {
                Some(Running {
                    pid: p.info.pid,
                    exe: p.exe.clone()?,
                    start_time: p.info.start_time,
                })
            })
            .collect()
    }

    fn details(&self, process: ProcessRef) -> Option<ProcessDetails> {
        let machine = self.machine();
        machine
            .alive(process)
            .then(|| machine.processes.get(&process.pid))
            .flatten()
            .map(|p| p.details.clone())
    }

    fn own_pid(&self) -> u32 {
        self.machine().own_pid
    }

    fn caller(&self) -> Uids {
        self.machine().caller
    }

    fn user_name(&self, uid: u32) -> String {
        self.machine()
            .users
            .get(&uid)
            .cloned()
            .unwrap_or_else(|| uid.to_string())
    }

    fn hidepid(&self) -> HidePid {
        self.machine().hidepid
    }

    fn resolve(&self, target: &RuleTarget) -> Result<ResolvedTarget, String> {
        self.machine()
            .resolve(target)
            .map_err(|error| error.to_string())
    }
}

/// A cgroup's id in the fake: its path, hashed (the kernel's is its inode).
fn cgroup_id(options: &DatapathOptions) -> u64 {
    use std::hash::{Hash as _, Hasher as _};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    options.cgroup.hash(&mut hasher);
    hasher.finish()
}

impl System for FakeSystem {
    type Error = FakeError;
    type Backend = FakeBackend;
    type Usage = FakeUsage;

    fn requested(&self, options: &DatapathOptions) -> Result<Requested, FakeError> {
        let machine = self.machine();
        let installed = machine.installs.get(&options.pin_dir);
        Ok(Requested {
            cgroup_id: cgroup_id(options),
            installed: installed.map(|installed| Installed {
                cgroup_id: cgroup_id(installed),
                max_limits: installed.max_limits.unwrap_or(65_536),
                max_connections: installed.max_connections.unwrap_or(65_536),
            }),
        })
    }

    fn scope(&self, _options: &DatapathOptions) -> Result<String, FakeError> {
        Ok(self.machine().scope.clone())
    }

    fn install(&mut self, options: &DatapathOptions) -> Result<FakeBackend, FakeError> {
        let mut machine = self.machine();
        if let Some(error) = &machine.install_error {
            return Err(FakeError(error.clone()));
        }
        machine
            .installs
            .entry(options.pin_dir.clone())
            .or_insert_with(|| options.clone());
        Ok(FakeBackend {
            machine: Arc::clone(&self.machine),
            force: options.force,
        })
    }

    fn open(&mut self, options: &DatapathOptions) -> Result<Option<FakeBackend>, FakeError> {
        let installed = self.machine().installs.contains_key(&options.pin_dir);
        Ok(installed.then(|| FakeBackend {
            machine: Arc::clone(&self.machine),
            force: options.force,
        }))
    }

    fn reset(&mut self, options: &DatapathOptions) -> Result<ResetReport, FakeError> {
        let mut machine = self.machine();
        let installed = machine.installs.remove(&options.pin_dir).is_some();
        machine.limits.clear();
        machine.rules.clear();
        machine.accounting_epoch += 1;
        Ok(ResetReport {
            removed: if installed {
                vec!["ct_limits".to_owned()]
            } else {
                Vec::new()
            },
            removed_pin_dir: installed,
            pin_dir: options
                .pin_dir
                .clone()
                .unwrap_or_else(|| "/sys/fs/bpf/chadthrottle".into()),
            ..ResetReport::default()
        })
    }

    fn backends(&self) -> Vec<BackendDescriptor> {
        Enforcement::ALL
            .into_iter()
            .map(|enforcement| BackendDescriptor {
                name: enforcement.name(),
                priority: match enforcement {
                    Enforcement::Shaping => 20,
                    Enforcement::Htb | Enforcement::Ifb => 15,
                    Enforcement::Policer => 10,
                    Enforcement::TcPolice => 6,
                    Enforcement::Nftables => 5,
                },
                directions: PerDirection {
                    up: !matches!(enforcement, Enforcement::Ifb | Enforcement::TcPolice),
                    down: enforcement != Enforcement::Htb,
                },
                summary: "",
            })
            .collect()
    }

    fn prove(&self, backend: &BackendDescriptor) -> Availability {
        self.ready(backend)
    }

    fn degraded(&self) -> crate::kernel_floor::Degraded {
        self.machine().degraded.clone()
    }

    fn ready(&self, backend: &BackendDescriptor) -> Availability {
        match self.machine().unavailable.get(backend.name) {
            Some(reason) => Availability::Unavailable(reason.clone()),
            None => Availability::Available,
        }
    }

    fn download_ingress(
        &self,
        _options: &DatapathOptions,
        _pid: u32,
    ) -> Result<Vec<InterfaceIngress>, String> {
        self.machine().download_ingress.clone()
    }

    fn now_unix(&self) -> u64 {
        self.machine().now_unix
    }

    fn usage(
        &mut self,
        _options: &DatapathOptions,
        fallback: Option<String>,
    ) -> (FakeUsage, Option<String>) {
        let usage = FakeUsage {
            machine: Arc::clone(&self.machine),
            fallback: fallback.is_some(),
            epoch: self.machine().accounting_epoch,
        };
        (usage, fallback)
    }

    fn as_caller<T: Send>(&self, work: impl FnOnce() -> T + Send) -> std::io::Result<T> {
        Ok(work())
    }
}

/// The fake limit table.
#[derive(Debug)]
pub struct FakeBackend {
    machine: Arc<Mutex<FakeMachine>>,
    /// Whether it was opened with `--force`.
    pub force: bool,
}

impl Backend for FakeBackend {
    type Error = FakeError;

    fn apply(&mut self, request: &LimitRequest) -> Result<Applied, FakeError> {
        let mut machine = lock(&self.machine);
        machine.requests += 1;
        let process = request.target.process;
        if !machine.alive(process) {
            return Err(FakeError(format!("PID {} has exited", process.pid)));
        }
        let now = machine
            .limits
            .get(&process.pid)
            .filter(|limit| limit.target == process)
            .map(|limit| limit.limits)
            .unwrap_or_default();
        let limits = request.outcome(&now);
        if limits.up.is_none() && limits.down.is_none() {
            machine.limits.remove(&process.pid);
            return Ok(Applied::default());
        }
        if !machine.limits.contains_key(&process.pid) && machine.limits.len() >= machine.capacity {
            return Err(FakeError(format!(
                "the limit table is full ({} processes)",
                machine.capacity
            )));
        }
        let expires_at = request
            .lasts
            .map(|lasts| machine.now_unix + lasts.as_secs());
        machine.limits.insert(
            process.pid,
            ActiveLimit {
                target: process,
                name: request.target.name.clone(),
                limits,
                expires_at,
                stats: PerDirection::default(),
            },
        );
        machine.now_unix += machine.setting_takes;
        Ok(Applied {
            backfilled_sockets: machine.sockets.get(&process.pid).copied().unwrap_or(0),
            shaped_sockets: 0,
        })
    }

    fn remove(
        &mut self,
        pid: u32,
        directions: PerDirection<bool>,
    ) -> Result<Option<ActiveLimit>, FakeError> {
        let mut machine = lock(&self.machine);
        machine.requests += 1;
        let Some(before) = machine.limits.get(&pid).cloned() else {
            return Ok(None);
        };
        let after = before
            .limits
            .map(|direction, limit| limit.filter(|_| !directions.get(direction)));
        if after.up.is_none() && after.down.is_none() {
            machine.limits.remove(&pid);
        } else if let Some(limit) = machine.limits.get_mut(&pid) {
            limit.limits = after;
        }
        Ok(Some(before))
    }

    fn limits(&self) -> Result<Vec<ActiveLimit>, FakeError> {
        let machine = lock(&self.machine);
        let now = machine.now_unix;
        // as the kernel's table reads: a limit whose `--for` ran out is not listed
        Ok(machine
            .limits
            .values()
            .filter(|limit| limit.expires_at.is_none_or(|at| at > now))
            .cloned()
            .collect())
    }

    fn follow(&mut self) -> Result<(), FakeError> {
        let mut machine = lock(&self.machine);
        machine.follows += 1;
        machine
            .follow_error
            .clone()
            .map_or(Ok(()), |error| Err(FakeError(error)))
    }

    fn prune(&mut self) -> Result<Vec<ActiveLimit>, FakeError> {
        let mut machine = lock(&self.machine);
        let now = machine.now_unix;
        let gone: Vec<u32> = machine
            .limits
            .values()
            .filter(|limit| {
                !machine.alive(limit.target) || limit.expires_at.is_some_and(|at| at <= now)
            })
            .map(|limit| limit.target.pid)
            .collect();
        Ok(gone
            .into_iter()
            .filter_map(|pid| machine.limits.remove(&pid))
            .collect())
    }

    fn stats(
        &self,
        target: ProcessRef,
        direction: Direction,
    ) -> Result<Option<DirStats>, FakeError> {
        Ok(lock(&self.machine)
            .limits
            .get(&target.pid)
            .filter(|limit| limit.target == target)
            .map(|limit| *limit.stats.get(direction)))
    }
}

impl RuleBackend for FakeBackend {
    fn set_rule(&mut self, request: &RuleRequest) -> Result<RuleApplied, FakeError> {
        let mut machine = lock(&self.machine);
        machine.requests += 1;
        machine.expire_rules();
        let set: Vec<&crate::status::DirectionLimit> = request
            .limits
            .iter()
            .filter_map(|(_, l)| l.as_ref())
            .collect();
        if set.is_empty() {
            return Err(FakeError(format!(
                "rule \"{}\" limits no direction",
                request.spec.name
            )));
        }
        let each = request.spec.mode == crate::rule_target::Mode::Each;
        for (direction, limit) in request.limits.iter() {
            if let Some(limit) = limit
                && let Some(why) = limit.enforcement.refused_for_rule(direction, each)
            {
                return Err(FakeError(format!(
                    "backend \"{}\" cannot hold this rule: {why}",
                    limit.enforcement.name()
                )));
            }
        }
        // as the kernel's match table: one rule per target
        if let Some(other) = machine.rules.iter().find(|r| {
            r.request.resolved == request.resolved && r.request.spec.name != request.spec.name
        }) {
            return Err(FakeError(format!(
                "rule \"{}\" has the same target already: change or remove it first",
                other.request.spec.name
            )));
        }
        let rule = FakeRule {
            request: request.clone(),
            expires_at: request
                .lasts
                .map(|lasts| machine.now_unix + lasts.as_secs()),
            stats: PerDirection::default(),
        };
        let name = &request.spec.name;
        let index = match machine
            .rules
            .iter()
            .position(|r| r.request.spec.name == *name)
        {
            Some(index) => {
                machine.rules[index] = rule;
                index
            }
            None if machine.rules.len() >= machine.rule_capacity => {
                return Err(FakeError(format!(
                    "the rule table is full ({} rules)",
                    machine.rule_capacity
                )));
            }
            None => {
                machine.rules.push(rule);
                machine.rules.len() - 1
            }
        };
        let members: Vec<u32> = machine
            .governed()
            .into_iter()
            .filter(|(_, rule)| *rule == index)
            .map(|(pid, _)| pid)
            .collect();
        machine.now_unix += machine.setting_takes;
        Ok(RuleApplied {
            members: members.len(),
            backfilled_sockets: members
                .iter()
                .map(|pid| machine.sockets.get(pid).copied().unwrap_or(0))
                .sum(),
            shaped_sockets: 0,
        })
    }

    fn remove_rule(&mut self, name: &str) -> Result<bool, FakeError> {
        let mut machine = lock(&self.machine);
        machine.requests += 1;
        let before = machine.rules.len();
        machine.rules.retain(|rule| rule.request.spec.name != name);
        Ok(machine.rules.len() < before)
    }

    fn ungoverned(&self) -> Result<u64, FakeError> {
        Ok(lock(&self.machine).ungoverned)
    }

    fn rules(&mut self) -> Result<Vec<RuleStatus>, FakeError> {
        let mut machine = lock(&self.machine);
        machine.expire_rules();
        let governed = machine.governed();
        let mut rules: Vec<RuleStatus> = machine
            .rules
            .iter()
            .enumerate()
            .map(|(index, rule)| RuleStatus {
                spec: rule.request.spec.clone(),
                resolved: rule.request.resolved.clone(),
                limits: rule.request.limits,
                members: governed
                    .iter()
                    .filter(|(_, governing)| **governing == index)
                    .filter_map(|(pid, _)| machine.processes.get(pid).map(FakeProcess::process))
                    .collect(),
                stats: rule.stats,
                expires_at: rule.expires_at,
            })
            .collect();
        rules.sort_by_key(|rule| rule.spec.order);
        Ok(rules)
    }
}

/// The fake usage source: hands out the machine's readings in turn.
#[derive(Debug)]
pub struct FakeUsage {
    machine: Arc<Mutex<FakeMachine>>,
    fallback: bool,
    /// The machine's accounting epoch when this source was opened: like the kernel's, a
    /// source goes on naming the counters it opened after a `reset`.
    epoch: u64,
}

impl UsageSource for FakeUsage {
    type Error = FakeError;

    fn kind(&self) -> (Source, Layer) {
        if self.fallback {
            (Source::SockDiag, Layer::TcpStream)
        } else {
            (Source::Ebpf, Layer::TransportPayload)
        }
    }

    fn read(&mut self) -> Result<Reading, FakeError> {
        let mut machine = lock(&self.machine);
        let reading = if machine.readings.len() > 1 {
            machine.readings.pop_front()
        } else {
            machine.readings.front().cloned()
        };
        reading.ok_or_else(|| FakeError("no reading".to_owned()))
    }

    fn epoch(&mut self) -> Result<Option<String>, FakeError> {
        if self.fallback {
            return Ok(None);
        }
        Ok(Some(format!(
            "fake/{}",
            lock(&self.machine).accounting_epoch
        )))
    }

    fn is_current(&mut self) -> Result<bool, FakeError> {
        Ok(lock(&self.machine).accounting_epoch == self.epoch)
    }

    fn limits(&mut self) -> Result<HashMap<ProcessRef, LimitRates>, FakeError> {
        Ok(lock(&self.machine)
            .limits
            .values()
            .map(|limit| (limit.target, LimitRates::of(&limit.limits)))
            .collect())
    }

    fn rules(&mut self) -> Result<HashMap<ProcessRef, (String, LimitRates)>, FakeError> {
        let mut machine = lock(&self.machine);
        machine.expire_rules();
        Ok(machine
            .governed()
            .into_iter()
            .filter_map(|(pid, index)| {
                let process = machine.processes.get(&pid)?.process();
                let rule = &machine.rules[index].request;
                Some((
                    process,
                    (rule.spec.name.clone(), LimitRates::of(&rule.limits)),
                ))
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Change, Target};
    use crate::status::DirectionLimit;

    fn request(process: &FakeProcess, up: Change, down: Change) -> LimitRequest {
        LimitRequest {
            target: Target {
                process: process.process(),
                name: process.info.name.clone(),
            },
            change: PerDirection { up, down },
            lasts: None,
        }
    }

    const LIMIT: DirectionLimit = DirectionLimit {
        rate: 1024,
        burst: 65_536,
        enforcement: Enforcement::Shaping,
        by_default: false,
    };

    #[test]
    fn the_fake_table_follows_the_datapath_rules() {
        let curl = FakeProcess::new(42, 7, "curl");
        let mut system = FakeSystem::default();
        system.machine().spawn(curl.clone());
        let mut backend = system
            .install(&DatapathOptions::default())
            .expect("install");
        backend
            .apply(&request(&curl, Change::Set(LIMIT), Change::Keep))
            .expect("set");
        backend
            .apply(&request(&curl, Change::Keep, Change::Set(LIMIT)))
            .expect("add the other direction");
        let limits = backend.limits().expect("limits");
        assert_eq!(limits.len(), 1);
        assert_eq!(limits[0].limits.up, Some(LIMIT));
        assert_eq!(limits[0].limits.down, Some(LIMIT));
        backend
            .apply(&request(&curl, Change::Lift, Change::Lift))
            .expect("lift both");
        assert!(backend.limits().expect("limits").is_empty());
        assert_eq!(system.machine().requests, 3);

        backend
            .apply(&request(&curl, Change::Set(LIMIT), Change::Keep))
            .expect("set again");
        system.machine().exit(42);
        assert!(backend.limits().expect("limits").is_empty());
        let error = backend
            .apply(&request(&curl, Change::Set(LIMIT), Change::Keep))
            .expect_err("gone");
        assert_eq!(error.to_string(), "PID 42 has exited");
    }

    #[test]
    fn a_full_fake_table_refuses_a_new_process_only() {
        let (a, b) = (FakeProcess::new(10, 1, "a"), FakeProcess::new(11, 1, "b"));
        let mut system = FakeSystem::new(FakeMachine {
            capacity: 1,
            ..FakeMachine::default()
        });
        system.machine().spawn(a.clone());
        system.machine().spawn(b.clone());
        let mut backend = system
            .install(&DatapathOptions::default())
            .expect("install");
        backend
            .apply(&request(&a, Change::Set(LIMIT), Change::Keep))
            .expect("first");
        backend
            .apply(&request(&a, Change::Keep, Change::Set(LIMIT)))
            .expect("same process again");
        assert!(
            backend
                .apply(&request(&b, Change::Set(LIMIT), Change::Keep))
                .is_err()
        );
    }

    fn rule(system: &FakeSystem, name: &str, target: RuleTarget, order: u32) -> RuleRequest {
        let resolved = system.resolve(&target).expect("resolves");
        RuleRequest {
            spec: crate::rule_target::RuleSpec {
                name: name.into(),
                target,
                limits: PerDirection {
                    up: None,
                    down: Some(crate::rule_target::RuleLimit {
                        rate: crate::Rate::new(1024).expect("valid"),
                        burst: None,
                        backend: None,
                    }),
                },
                mode: crate::rule_target::Mode::Shared,
                order,
                enabled: true,
            },
            resolved,
            limits: PerDirection {
                up: None,
                down: Some(LIMIT),
            },
            lasts: None,
        }
    }

    fn members(backend: &mut FakeBackend) -> Vec<(String, Vec<u32>)> {
        backend
            .rules()
            .expect("rules")
            .into_iter()
            .map(|r| (r.spec.name, r.members.iter().map(|m| m.pid).collect()))
            .collect()
    }

    #[test]
    fn rules_govern_by_rank_then_order_and_a_pid_limit_beats_them() {
        let mut system = FakeSystem::default();
        {
            let mut machine = system.machine();
            machine.spawn(FakeProcess::new(10, 1, "steam").owned_by(1000));
            machine.spawn(
                FakeProcess::new(11, 1, "steamwebhelper")
                    .child_of(10)
                    .owned_by(1000),
            );
            machine.spawn(FakeProcess::new(12, 1, "curl").owned_by(1000));
            machine.users.insert(1000, "alice".into());
        }
        let mut backend = system
            .install(&DatapathOptions::default())
            .expect("install");
        let user = crate::rule_target::parse_user("alice").expect("valid");
        let tree = RuleTarget::Tree(10);
        let applied = backend
            .set_rule(&rule(&system, "alice", user, 0))
            .expect("set");
        assert_eq!(applied.members, 3);
        backend
            .set_rule(&rule(&system, "steam", tree, 1))
            .expect("set");
        assert_eq!(
            members(&mut backend),
            [("alice".into(), vec![12]), ("steam".into(), vec![10, 11])],
            "the tree outranks the user, set later or not"
        );
        backend
            .apply(&LimitRequest {
                target: crate::backend::Target {
                    process: ProcessRef {
                        pid: 11,
                        start_time: 1,
                    },
                    name: "steamwebhelper".into(),
                },
                change: PerDirection {
                    up: Change::Set(LIMIT),
                    down: Change::Keep,
                },
                lasts: None,
            })
            .expect("a PID limit");
        assert_eq!(members(&mut backend)[1], ("steam".into(), vec![10]));
        assert!(backend.remove_rule("steam").expect("removed"));
        assert!(!backend.remove_rule("steam").expect("already gone"));
        assert_eq!(members(&mut backend), [("alice".into(), vec![10, 12])]);
        // one rule per target, as the kernel's match table: another name is refused
        let uid = crate::rule_target::parse_user("1000").expect("valid");
        let error = backend
            .set_rule(&rule(&system, "uid", uid, 2))
            .map(|_| ())
            .map_err(|error| error.to_string());
        assert_eq!(
            error,
            Err("rule \"alice\" has the same target already: change or remove it first".into())
        );
        assert_eq!(members(&mut backend), [("alice".into(), vec![10, 12])]);
    }

    #[test]
    fn targets_the_fake_cannot_find_are_refused_in_one_line() {
        let system = FakeSystem::default();
        system.machine().spawn(
            FakeProcess::new(20, 1, "syncthing").in_cgroup("/system.slice/syncthing.service"),
        );
        let resolve = |target: RuleTarget| system.resolve(&target);
        assert_eq!(
            resolve(RuleTarget::Unit("syncthing.service".into())),
            Ok(ResolvedTarget::Cgroup {
                path: "/system.slice/syncthing.service".into()
            })
        );
        assert_eq!(
            resolve(RuleTarget::CgroupPath("/system.slice".into())),
            Ok(ResolvedTarget::Cgroup {
                path: "/system.slice".into()
            })
        );
        for (target, message) in [
            (
                RuleTarget::Unit("nope.service".into()),
                "unit \"nope.service\" is not running",
            ),
            (
                RuleTarget::Container("web".into()),
                "container \"web\" is not running",
            ),
            (
                RuleTarget::User(UserSpec::Name("bob".into())),
                "user \"bob\" is not in the user database",
            ),
            (
                RuleTarget::Exe("/opt/x/y".into()),
                "executable \"/opt/x/y\": its directory \"/opt/x\" does not exist",
            ),
            (
                RuleTarget::CgroupPath("/nope".into()),
                "cgroup path \"/nope\" does not exist",
            ),
            (RuleTarget::Tree(99), "tree PID 99: no process with PID 99"),
        ] {
            let error = resolve(target).expect_err(message);
            assert!(
                error.starts_with(message) && !error.contains('\n'),
                "{error}"
            );
        }
    }

    #[test]
    fn readings_come_in_turn_and_the_last_repeats() {
        let reading = |at_ns| Reading {
            at_ns,
            processes: vec![],
            connections: vec![],
            interfaces: vec![],
        };
        let mut system = FakeSystem::default();
        system.machine().readings = VecDeque::from([reading(1), reading(2)]);
        let (mut usage, note) = system.usage(&DatapathOptions::default(), None);
        assert_eq!(note, None);
        let at: Vec<u64> = (0..3)
            .map(|_| usage.read().expect("reading").at_ns)
            .collect();
        assert_eq!(at, [1, 2, 2]);
    }
}
