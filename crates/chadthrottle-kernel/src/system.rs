//! The real machine behind the core's `System` seam: the datapath, the backends' probes,
//! the usage sources and /proc. The command line and the TUI's runner reach the kernel
//! through this one type; their tests use the core's in-memory fake instead.

use crate::error::Error;
use crate::install::{Config, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_LIMITS, DEFAULT_PIN_DIR};
use crate::usage_source::KernelUsage;
use crate::{Datapath, mounts, probe, procs};
use chadthrottle_core::backend::{Availability, BackendDescriptor};
use chadthrottle_core::process::{ProcessInfo, ProcessRef};
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
}

impl System for Kernel {
    type Error = Error;
    type Backend = Datapath;
    type Usage = KernelUsage;

    fn scope(&self, options: &DatapathOptions) -> Result<String, Error> {
        mounts::cgroup_scope(&Kernel::config(options)?.cgroup)
    }

    fn install(&mut self, options: &DatapathOptions) -> Result<Datapath, Error> {
        let mut datapath = Datapath::install(&Kernel::config(options)?)?;
        datapath.force_qdisc(options.force);
        Ok(datapath)
    }

    fn open(&mut self, options: &DatapathOptions) -> Result<Option<Datapath>, Error> {
        let mut datapath = Datapath::open(&pin_dir(options))?;
        if let Some(datapath) = &mut datapath {
            datapath.force_qdisc(options.force);
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

    fn ready(&self, _backend: &BackendDescriptor) -> Availability {
        // what every backend needs and a look can tell; what the kernel was built with
        // beyond that only loading tells, and installing the datapath loads it
        if !Path::new(VMLINUX_BTF).exists() {
            return Availability::Unavailable(format!(
                "the kernel has no BTF ({VMLINUX_BTF}); CONFIG_DEBUG_INFO_BTF is needed to \
                 read process start times and to hook process exit"
            ));
        }
        match mounts::cgroup2_root() {
            Ok(_) => Availability::Available,
            Err(error) => Availability::Unavailable(crate::describe(&error)),
        }
    }

    fn now_unix(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs())
    }

    fn usage(
        &mut self,
        options: &DatapathOptions,
        fallback: bool,
    ) -> (KernelUsage, Option<String>) {
        match Kernel::config(options) {
            Ok(config) => KernelUsage::open(&config, fallback),
            Err(error) => KernelUsage::open_fallback(&error),
        }
    }
}
