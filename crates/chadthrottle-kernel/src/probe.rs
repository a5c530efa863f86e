//! `chadthrottle backends`: what enforces limits here, and why not where it cannot.
//!
//! The policer proves it is available by trying: it loads every program of the datapath
//! into the kernel (the verifier runs) without attaching or pinning anything, so the
//! answer is the kernel's, and nothing is left behind.

use crate::error::describe;
use crate::install::{load, load_program};
use crate::names::{BACKEND_NAME, PROGRAMS};
use crate::privileges::{self, Operation};
use aya::Btf;
use chadthrottle_core::PerDirection;
use chadthrottle_core::backend::{Availability, BackendDescriptor};

/// The eBPF policer: the datapath of this crate.
pub const POLICER: BackendDescriptor = BackendDescriptor {
    name: BACKEND_NAME,
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
    vec![POLICER]
}

/// Whether `backend` can work here, by trying.
pub fn availability(backend: &BackendDescriptor) -> Availability {
    if backend.name != POLICER.name {
        return Availability::Unavailable(format!(
            "\"{}\" is not part of this build",
            backend.name
        ));
    }
    match policer() {
        Ok(()) => Availability::Available,
        Err(reason) => Availability::Unavailable(reason),
    }
}

fn policer() -> Result<(), String> {
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
    for program in PROGRAMS {
        load_program(&mut ebpf, program, &btf)
            .map_err(|error| format!("the kernel refused {program}: {}", describe(&error)))?;
    }
    Ok(())
}
