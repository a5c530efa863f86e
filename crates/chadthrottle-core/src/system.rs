//! The seam between the user interfaces and the machine: everything the command line and
//! the TUI's runner ask of the kernel and of /proc, as traits.
//!
//! The kernel crate implements them for the real machine; [`crate::fake`] implements them
//! in memory, so the commands' behaviour (messages, exit codes, which directions a request
//! lifts, what the TUI restores) is tested on any machine, without root.

use crate::access::{HidePid, Requested};
use crate::backend::{Availability, BackendDescriptor, RuleBackend};
use crate::download_default::InterfaceIngress;
pub use crate::options::DatapathOptions;
use crate::process::{ProcessInfo, ProcessRef, Uids};
use crate::rule_request::ResolvedTarget;
use crate::rule_target::RuleTarget;
use crate::saved::Running;
use crate::usage::{Layer, LimitRates, ProcessDetails, Reading, Source};
use std::collections::HashMap;
use std::error::Error;
use std::path::PathBuf;

/// What `reset` took out of the kernel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResetReport {
    /// The pin directory that was cleared.
    pub pin_dir: PathBuf,
    /// Pin files removed (links first, then maps).
    pub removed: Vec<String>,
    /// Whether the pin directory itself was removed (it was empty afterwards).
    pub removed_pin_dir: bool,
    /// Whether the bpffs ChadThrottle had mounted was unmounted.
    pub unmounted_bpffs: bool,
    /// Files in the pin directory that are not ChadThrottle's, left alone.
    pub foreign: Vec<String>,
    /// Shaped sockets whose own pacing rate and window clamp were put back.
    pub restored_sockets: usize,
}

/// Where usage figures come from, read again at every refresh.
pub trait UsageSource {
    type Error: Error + Send + Sync + 'static;

    /// Which source it is and which layer's bytes it counts.
    fn kind(&self) -> (Source, Layer);

    /// Every process's and connection's counters now.
    fn read(&mut self) -> Result<Reading, Self::Error>;

    /// What identifies this run of the counters (a boot and one install of the
    /// accounting), so that a reader can tell counters that started again at zero (after
    /// a `reset` or a reboot) from counters that grew; `None` for a source whose totals
    /// do not only grow (the fallback's sum over the connections open now). Its form is
    /// `BOOT/RUN`: a process ([`ProcessRef`]) is the same process across the runs of one
    /// boot (see [`crate::tally::boot_of`]).
    fn epoch(&mut self) -> Result<Option<String>, Self::Error>;

    /// Whether the counters this source reads are still the installed ones: false once
    /// the datapath was reset (and perhaps installed again) since the source was opened,
    /// when it goes on reading counters nothing updates. A reader that runs for long (the
    /// daemon) opens the source again then.
    fn is_current(&mut self) -> Result<bool, Self::Error>;

    /// The PID limits in force, to show beside the usage.
    fn limits(&mut self) -> Result<HashMap<ProcessRef, LimitRates>, Self::Error>;

    /// The rule governing each process a rule governs (a PID limit outranks every rule):
    /// its name and its rates.
    fn rules(&mut self) -> Result<HashMap<ProcessRef, (String, LimitRates)>, Self::Error>;
}

/// What /proc says about processes.
pub trait Processes {
    /// `pid` as it is now; `None` if no such process or thread exists.
    fn inspect(&self, pid: u32) -> Option<ProcessInfo>;

    /// The start time of `pid` now; `None` if it is gone.
    fn start_time(&self, pid: u32) -> Option<u64>;

    /// Whether `process` still runs (the same incarnation, not a reused PID).
    fn is_alive(&self, process: ProcessRef) -> bool {
        self.start_time(process.pid) == Some(process.start_time)
    }

    /// The executable of `pid`, if /proc shows it.
    fn exe(&self, pid: u32) -> Option<String>;

    /// Every process whose executable /proc shows.
    fn running(&self) -> Vec<Running>;

    /// The System tab's details of `process`, if it still runs.
    fn details(&self, process: ProcessRef) -> Option<ProcessDetails>;

    /// The PID of the running ChadThrottle.
    fn own_pid(&self) -> u32;

    /// The user ids of the running ChadThrottle: who is asking.
    fn caller(&self) -> Uids;

    /// The name of user `uid`, or the number.
    fn user_name(&self, uid: u32) -> String;

    /// What /proc lets users see of other users' processes.
    fn hidepid(&self) -> HidePid;

    /// What the kernel is to match for `target`: a path with its symlinks resolved, a user
    /// name's uid, a unit's or container's cgroup, a tree's first process. The error is
    /// one line naming the value (`crate::resolution::ResolveError`'s forms).
    fn resolve(&self, target: &RuleTarget) -> Result<ResolvedTarget, String>;
}

/// The machine the commands act on.
pub trait System: Processes {
    type Error: Error + Send + Sync + 'static;
    type Backend: RuleBackend;
    type Usage: UsageSource + Send + 'static;

    /// The datapath `options` name: the cgroup it would attach to and what is installed
    /// at its pin directory (for [`crate::access::check_datapath`]).
    fn requested(&self, options: &DatapathOptions) -> Result<Requested, Self::Error>;

    /// The cgroup2 path (`/`, `/user.slice/…`) the datapath is, or would be, attached to.
    fn scope(&self, options: &DatapathOptions) -> Result<String, Self::Error>;

    /// The datapath, installed first if it is not there.
    fn install(&mut self, options: &DatapathOptions) -> Result<Self::Backend, Self::Error>;

    /// The installed datapath; `None` if there is none.
    fn open(&mut self, options: &DatapathOptions) -> Result<Option<Self::Backend>, Self::Error>;

    /// Takes everything ChadThrottle put in the kernel out again.
    fn reset(&mut self, options: &DatapathOptions) -> Result<ResetReport, Self::Error>;

    /// Every backend this build has.
    fn backends(&self) -> Vec<BackendDescriptor>;

    /// Whether `backend` works here, proven by trying it (slow: loads programs, builds
    /// qdiscs in a throwaway namespace). For `backends`.
    fn prove(&self, backend: &BackendDescriptor) -> Availability;

    /// What this kernel makes the datapath do without (helpers newer than it), for
    /// `backends`.
    fn degraded(&self) -> crate::kernel_floor::Degraded;

    /// Whether `backend` can work here as far as a quick look tells (what the kernel was
    /// built with, what is mounted); installing the datapath proves the rest. For
    /// choosing a backend on every `limit`.
    fn ready(&self, backend: &BackendDescriptor) -> Availability;

    /// The interfaces `pid`'s downloads arrive on (in its network namespace) and what is
    /// on their ingress: what the default download backend is chosen from
    /// ([`crate::download_default::choose`]). Err: why they could not be read.
    fn download_ingress(
        &self,
        options: &DatapathOptions,
        pid: u32,
    ) -> Result<Vec<InterfaceIngress>, String>;

    /// Unix time now, in seconds (expiries are shown relative to it).
    fn now_unix(&self) -> u64;

    /// The datapath's accounting if it can be had, else the fallback and why;
    /// `fallback` is a reason to take the fallback at once.
    fn usage(
        &mut self,
        options: &DatapathOptions,
        fallback: Option<String>,
    ) -> (Self::Usage, Option<String>);

    /// Runs `work` (file I/O on a path a user named) with the permissions of the user who
    /// started ChadThrottle, not the capabilities it was granted.
    fn as_caller<T: Send>(&self, work: impl FnOnce() -> T + Send) -> std::io::Result<T>;
}
