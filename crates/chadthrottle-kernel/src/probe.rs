//! `chadthrottle backends`: what enforces limits here, and why not where it cannot.
//!
//! A backend proves it is available by trying: every program it needs is loaded into the
//! kernel (the verifier runs) without attaching or pinning anything, so the answer is the
//! kernel's, and nothing is left behind. Both backends are the one datapath: the policer
//! runs behind the shaper whichever is chosen.

use crate::error::describe;
use crate::install::{load, load_program};
use crate::names::{PROG_ITER_TCP, PROGRAMS};
use crate::privileges::{self, Operation};
use aya::Btf;
use chadthrottle_core::PerDirection;
use chadthrottle_core::backend::{Availability, BackendDescriptor};
use chadthrottle_core::status::Enforcement;

/// Per-socket shaping by TCP itself, the policer behind it.
pub const SHAPING: BackendDescriptor = BackendDescriptor {
    name: Enforcement::Shaping.name(),
    priority: 20,
    directions: PerDirection {
        up: true,
        down: true,
    },
    summary: "TCP holds the rate itself, without drops: the process's budget is divided among \
              its sockets by demand and applied as pacing caps (upload) and receive-window \
              clamps (download) by sock_ops; UDP, and downloads at round trips too short for \
              a window to express the rate, are held by the policer behind it",
};

/// The eBPF policer alone.
pub const POLICER: BackendDescriptor = BackendDescriptor {
    name: Enforcement::Policer.name(),
    priority: 10,
    directions: PerDirection {
        up: true,
        down: true,
    },
    summary: "eBPF token bucket per process on cgroup_skb; over the limit, uploads are dropped \
              with congestion notification (TCP backs off, UDP senders see no error) and \
              downloads are dropped",
};

/// Every backend this build has.
pub fn descriptors() -> Vec<BackendDescriptor> {
    vec![SHAPING, POLICER]
}

/// Whether `backend` can work here, by trying.
pub fn availability(backend: &BackendDescriptor) -> Availability {
    let Some(enforcement) = Enforcement::from_name(backend.name) else {
        return Availability::Unavailable(format!(
            "\"{}\" is not part of this build",
            backend.name
        ));
    };
    match try_load(enforcement) {
        Ok(()) => Availability::Available,
        Err(reason) => Availability::Unavailable(reason),
    }
}

fn try_load(enforcement: Enforcement) -> Result<(), String> {
    privileges::check(Operation::Install { mount_bpffs: false })
        .map_err(|error| describe(&error))?;
    crate::mounts::cgroup2_root().map_err(|error| describe(&error))?;
    let btf = Btf::from_sys_fs().map_err(|error| {
        format!(
            "the kernel has no BTF (/sys/kernel/btf/vmlinux: {error}); CONFIG_DEBUG_INFO_BTF \
             is needed to read process start times and to hook process exit"
        )
    })?;
    let mut ebpf = load(None).map_err(|error| describe(&error))?;
    let iterator = (enforcement == Enforcement::Shaping).then_some(PROG_ITER_TCP);
    for program in PROGRAMS.into_iter().chain(iterator) {
        load_program(&mut ebpf, program, &btf)
            .map_err(|error| format!("the kernel refused {program}: {}", describe(&error)))?;
    }
    Ok(())
}
