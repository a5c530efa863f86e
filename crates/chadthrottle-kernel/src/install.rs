//! Putting the datapath into the kernel so that it outlives the command: mounting the
//! pin directory's bpffs, writing the meta, attaching and pinning every link that is
//! missing.
//!
//! Everything lives under the pin directory: one pin per map, one per link. A link is
//! pinned right after it is attached, so a crash at any point leaves either a pinned
//! link (found and kept by the next run) or none (its attachment died with the process):
//! there is never a second copy, and `reset` finds everything by name.

use crate::config::Config;
use crate::error::Error;
use crate::helper_probe;
use crate::layout::{self, Meta};
use crate::loader::{self, load_program};
use crate::lock::StateLock;
use crate::mounts::{self, PinDirPlan};
use crate::names::{
    MAP_META, PROG_EGRESS, PROG_INGRESS, PROG_SOCK_CREATE, PROG_SOCK_OPS, PROGRAMS, link_pin,
};
use crate::object::object_id;
use crate::pins::{PinnedMaps, open_pins, write_meta};
use crate::privileges::{self, Operation};
use aya::programs::links::{CgroupAttachMode, FdLink};
use aya::programs::{BtfTracePoint, CgroupSkb, CgroupSkbAttachType, CgroupSock, SockOps};
use aya::{Btf, Ebpf};
use std::fs::File;

/// Test hook: `CHADTHROTTLE_FAILPOINT=<point>` aborts the process at that point, as a
/// `kill -9` would, so tests can prove a crash leaves nothing `reset` cannot remove.
fn failpoint(point: &str) {
    if std::env::var_os("CHADTHROTTLE_FAILPOINT").is_some_and(|value| value == point) {
        std::process::abort();
    }
}

/// Makes sure the datapath is attached at `config.cgroup` and pinned at
/// `config.pin_dir`, installing what is missing; returns the opened maps. Takes the
/// state lock for the time it looks and installs.
pub(crate) fn install(config: &Config) -> Result<PinnedMaps, Error> {
    mounts::cgroup_scope(&config.cgroup)?;
    let plan = mounts::plan_pin_dir(&config.pin_dir)?;
    privileges::check(Operation::Install {
        mount_bpffs: matches!(plan, PinDirPlan::Mount { .. }),
    })?;
    let held = crate::lock::lock()?;
    install_locked(&held, config)
}

fn install_locked(_held: &StateLock, config: &Config) -> Result<PinnedMaps, Error> {
    // decided again under the lock: another command may have mounted it meanwhile
    let plan = mounts::plan_pin_dir(&config.pin_dir)?;
    mounts::prepare_pin_dir(&config.pin_dir, &plan)?;
    failpoint("mounted");

    let cgroup_id = mounts::cgroup_id(&config.cgroup)?;
    let existing = open_pins(&config.pin_dir)?;
    if let Some(pins) = &existing
        && pins.meta.cgroup_id != 0
        && pins.meta.cgroup_id != cgroup_id
    {
        return Err(Error::OtherCgroup {
            pin_dir: config.pin_dir.clone(),
            cgroup: config.cgroup.clone(),
            installed: pins.meta.cgroup_id,
            requested: cgroup_id,
        });
    }
    let missing: Vec<&'static str> = PROGRAMS
        .into_iter()
        .filter(|program| !config.pin_dir.join(link_pin(program)).exists())
        .collect();
    let existing = match existing {
        Some(pins) if missing.is_empty() && pins.meta.layout_version != 0 => return Ok(pins),
        other => other,
    };
    if let Some(pins) = &existing
        && pins.meta.layout_version != 0
        && pins.meta.object_id != object_id()
    {
        return Err(Error::ForeignInstall {
            pin_dir: config.pin_dir.clone(),
            layout: pins.meta.layout_version,
            object: pins.meta.object_id,
        });
    }

    let mut ebpf = loader::load(Some(config))?;
    failpoint("loaded");
    // the rules in the pinned maps stay, and so does the record of their kinds
    let rule_ranks = existing.as_ref().map_or(0, |pins| pins.meta.rule_ranks);
    let pid_limits = existing.as_ref().map_or(0, |pins| pins.meta.pid_limits);
    let max_limits = existing.as_ref().map_or(config.max_limits, |pins| {
        if pins.meta.max_limits == 0 {
            config.max_limits
        } else {
            pins.meta.max_limits
        }
    });
    write_meta(
        &config.pin_dir,
        Meta {
            layout_version: layout::LAYOUT_VERSION,
            max_limits,
            cgroup_id,
            object_id: object_id(),
            rule_ranks,
            pid_limits,
        },
    )?;
    failpoint("meta");
    let cgroup = File::open(&config.cgroup).map_err(Error::io("open", &config.cgroup))?;
    let btf = loader::btf()?;
    for program in missing {
        let link = attach(&mut ebpf, program, &cgroup, btf)?;
        let path = config.pin_dir.join(link_pin(program));
        link.pin(&path)
            .map_err(|source| Error::Pin { path, source })?;
        failpoint(&format!("attached:{program}"));
    }
    // the links hold the programs now; the maps are reopened from their pins
    drop(ebpf);
    open_pins(&config.pin_dir)?.ok_or_else(|| {
        Error::io("open", config.pin_dir.join(MAP_META))(std::io::ErrorKind::NotFound.into())
    })
}

/// Loads `program` and attaches it for good: to `cgroup`, or (the exit hook) to its
/// tracepoint. The link returned is what keeps it attached.
fn attach(
    ebpf: &mut Ebpf,
    program: &'static str,
    cgroup: &File,
    btf: &Btf,
) -> Result<FdLink, Error> {
    // the program attached as `program` on this kernel (the link's pin keeps `program`'s name)
    let loaded = helper_probe::in_place_of(program);
    load_program(ebpf, loaded, btf)?;
    // a cgroup *link* is always multi-attach: it coexists with other programs (systemd's,
    // firewalls') and the kernel refuses the BPF_F_ALLOW_MULTI flag on it (EINVAL)
    let mode = CgroupAttachMode::Single;
    let attach_error = Error::program("attach", program);
    let link_error = |source| Error::Link { program, source };
    match program {
        PROG_SOCK_CREATE => {
            let prog = loader::program::<CgroupSock>(ebpf, loaded)?;
            let link = prog
                .attach(cgroup, mode)
                .and_then(|id| prog.take_link(id))
                .map_err(attach_error)?;
            FdLink::try_from(link).map_err(link_error)
        }
        PROG_EGRESS | PROG_INGRESS => {
            let kind = if program == PROG_EGRESS {
                CgroupSkbAttachType::Egress
            } else {
                CgroupSkbAttachType::Ingress
            };
            let prog = loader::program::<CgroupSkb>(ebpf, program)?;
            let link = prog
                .attach(cgroup, kind, mode)
                .and_then(|id| prog.take_link(id))
                .map_err(attach_error)?;
            FdLink::try_from(link).map_err(link_error)
        }
        PROG_SOCK_OPS => {
            let prog = loader::program::<SockOps>(ebpf, program)?;
            let link = prog
                .attach(cgroup, mode)
                .and_then(|id| prog.take_link(id))
                .map_err(attach_error)?;
            FdLink::try_from(link).map_err(link_error)
        }
        _ => {
            let prog = loader::program::<BtfTracePoint>(ebpf, program)?;
            let link = prog
                .attach()
                .and_then(|id| prog.take_link(id))
                .map_err(attach_error)?;
            Ok(FdLink::from(link))
        }
    }
}
