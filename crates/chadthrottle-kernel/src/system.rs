//! The real machine behind the core's `System` seam: the datapath, the backends' probes,
//! the usage sources and /proc. The command line and the TUI's runner reach the kernel
//! through this one type; their tests use the core's in-memory fake instead.

use crate::config::{
    Config, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_LIMITS, DEFAULT_MAX_MEMBERS, DEFAULT_MAX_RULES,
    DEFAULT_PIN_DIR,
};
use crate::error::Error;
use crate::usage_source::KernelUsage;
use crate::{Datapath, mounts, probe, procs};
use chadthrottle_core::access::{HidePid, Installed, Requested};
use chadthrottle_core::backend::{Availability, BackendDescriptor};
use chadthrottle_core::download_default::InterfaceIngress;
use chadthrottle_core::process::Uids;
use chadthrottle_core::process::{ProcessInfo, ProcessRef};
use chadthrottle_core::rule_request::ResolvedTarget;
use chadthrottle_core::rule_target::RuleTarget;
use chadthrottle_core::saved::Running;
use chadthrottle_core::system::{DatapathOptions, Processes, ResetReport, System};
use chadthrottle_core::usage::ProcessDetails;
use std::path::{Path, PathBuf};

/// Where the kernel publishes its own type information; every backend needs it.
const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// This machine.
#[derive(Debug, Clone, Copy, Default)]
pub struct Kernel;

impl Kernel {
    /// The datapath's place and sizes, with the defaults filled in (`--cgroup` defaults
    /// to the root of the cgroup2 mount).
    pub fn config(options: &DatapathOptions) -> Result<Config, Error> {
        let cgroup = match &options.cgroup {
            Some(path) => path.clone(),
            None => mounts::cgroup2_root()?,
        };
        Ok(Config {
            cgroup,
            pin_dir: pin_dir(options),
            max_limits: options.max_limits.unwrap_or(DEFAULT_MAX_LIMITS),
            max_connections: options.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS),
            max_rules: DEFAULT_MAX_RULES,
            max_members: DEFAULT_MAX_MEMBERS,
            accounting: true,
        })
    }
}

fn pin_dir(options: &DatapathOptions) -> PathBuf {
    options
        .pin_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_PIN_DIR))
}

impl Processes for Kernel {
    fn inspect(&self, pid: u32) -> Option<ProcessInfo> {
        procs::inspect(pid)
    }

    fn start_time(&self, pid: u32) -> Option<u64> {
        procs::start_time(pid)
    }

    fn exe(&self, pid: u32) -> Option<String> {
        procs::exe(pid)
    }

    fn running(&self) -> Vec<Running> {
        procs::running()
    }

    fn details(&self, process: ProcessRef) -> Option<ProcessDetails> {
        procs::details(process.pid, process.start_time)
    }

    fn own_pid(&self) -> u32 {
        std::process::id()
    }

    fn caller(&self) -> Uids {
        crate::privileges::caller()
    }

    fn user_name(&self, uid: u32) -> String {
        procs::user_name(uid)
    }

    fn hidepid(&self) -> HidePid {
        mounts::proc_hidepid()
    }

    fn resolve(&self, target: &RuleTarget) -> Result<ResolvedTarget, String> {
        crate::targets::resolve(target)
    }
}

impl System for Kernel {
    type Error = Error;
    type Backend = Datapath;
    type Usage = KernelUsage;

    fn requested(&self, options: &DatapathOptions) -> Result<Requested, Error> {
        // without the capabilities, that is what stands in the way first
        crate::privileges::check(crate::privileges::Operation::Install { mount_bpffs: false })?;
        let config = Kernel::config(options)?;
        let installed = match crate::pins::open_pins(&config.pin_dir)? {
            Some(pins) => {
                let conns = pins
                    .conns
                    .info()
                    .map_err(crate::error::Error::map("read", crate::names::MAP_CONNS))?;
                Some(Installed {
                    cgroup_id: pins.meta.cgroup_id,
                    max_limits: match pins.meta.max_limits {
                        0 => DEFAULT_MAX_LIMITS,
                        max => max,
                    },
                    max_connections: conns.max_entries(),
                })
            }
            None => None,
        };
        Ok(Requested {
            cgroup_id: mounts::cgroup_id(&config.cgroup)?,
            installed,
        })
    }

    fn scope(&self, options: &DatapathOptions) -> Result<String, Error> {
        mounts::cgroup_scope(&Kernel::config(options)?.cgroup)
    }

    fn install(&mut self, options: &DatapathOptions) -> Result<Datapath, Error> {
        let config = Kernel::config(options)?;
        let mut datapath = Datapath::install(&config)?;
        datapath.force_qdisc(options.force);
        datapath.set_scope(config.cgroup);
        Ok(datapath)
    }

    fn open(&mut self, options: &DatapathOptions) -> Result<Option<Datapath>, Error> {
        let mut datapath = Datapath::open(&pin_dir(options))?;
        if let Some(datapath) = &mut datapath {
            datapath.force_qdisc(options.force);
            if let Ok(config) = Kernel::config(options) {
                datapath.set_scope(config.cgroup);
            }
        }
        Ok(datapath)
    }

    fn reset(&mut self, options: &DatapathOptions) -> Result<ResetReport, Error> {
        let pin_dir = pin_dir(options);
        let report = crate::reset(&pin_dir)?;
        Ok(ResetReport {
            pin_dir,
            removed: report.removed,
            removed_pin_dir: report.removed_pin_dir,
            unmounted_bpffs: report.unmounted_bpffs,
            foreign: report.foreign,
            restored_sockets: report.restored_sockets,
        })
    }

    fn backends(&self) -> Vec<BackendDescriptor> {
        probe::descriptors()
    }

    fn prove(&self, backend: &BackendDescriptor) -> Availability {
        probe::availability(backend)
    }

    fn degraded(&self) -> chadthrottle_core::kernel_floor::Degraded {
        chadthrottle_core::kernel_floor::Degraded {
            release: chadthrottle_core::kernel_floor::release_line(&crate::loader::osrelease())
                .to_owned(),
            without: crate::helper_probe::done_without(),
        }
    }

    fn ready(&self, backend: &BackendDescriptor) -> Availability {
        // what every backend needs and a look can tell; what the kernel was built with
        // beyond that only loading tells, and installing the datapath loads it
        if !Path::new(VMLINUX_BTF).exists() {
            return Availability::Unavailable(format!(
                "the kernel has no BTF ({VMLINUX_BTF}); CONFIG_DEBUG_INFO_BTF is needed to \
                 read process start times and to hook process exit"
            ));
        }
        if let Err(error) = mounts::cgroup2_root() {
            return Availability::Unavailable(crate::describe(&error));
        }
        match probe::ready(backend) {
            Ok(()) => Availability::Available,
            Err(reason) => Availability::Unavailable(reason),
        }
    }

    fn download_ingress(
        &self,
        options: &DatapathOptions,
        pid: u32,
    ) -> Result<Vec<InterfaceIngress>, String> {
        crate::qdisc_sync::download_ingress(&pin_dir(options), pid)
    }

    fn as_caller<T: Send>(&self, work: impl FnOnce() -> T + Send) -> std::io::Result<T> {
        crate::privileges::as_caller(work)
    }

    fn now_unix(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs())
    }

    fn usage(
        &mut self,
        options: &DatapathOptions,
        fallback: Option<String>,
    ) -> (KernelUsage, Option<String>) {
        match Kernel::config(options) {
            Ok(config) => KernelUsage::open(&config, fallback),
            Err(error) => KernelUsage::open_fallback(&error),
        }
    }
}
