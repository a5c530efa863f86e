//! The lowest layer of the datapath: parsing the embedded object, creating its maps (or
//! reusing pinned ones), loading a program into the kernel, and finding a program of the
//! parsed object by name and kind. Nothing here attaches or pins.

use crate::config::{
    Config, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_LIMITS, DEFAULT_MAX_MEMBERS, DEFAULT_MAX_RULES,
    MAX_ACCOUNTED_PROCESSES, PID_MAX_LIMIT,
};
use crate::error::Error;
use crate::names::{
    GLOBAL_ACCOUNTING, GLOBAL_COARSE_CLOCK, GLOBAL_NS_PER_TICK, GLOBAL_POLICE_SLOT, ITER_TASK,
    ITER_TCP, MAP_CONNS, MAP_LIMITS, MAP_MARKS, MAP_MATCH, MAP_MEMBERS, MAP_PROC_ACCT,
    MAP_PROC_INFO, MAP_RULES, MAP_STATS, MAP_TREE, MAPS, PROG_EGRESS, PROG_INGRESS, PROG_ITER_TASK,
    PROG_ITER_TCP, PROG_PROCESS_EXEC, PROG_PROCESS_EXIT, PROG_PROCESS_FORK, PROG_SOCK_CREATE,
    PROG_SOCK_OPS, PROG_SOCK_OWNER, PROG_TC_INGRESS, PROG_TC_POLICE, TRACEPOINT_PROCESS_EXEC,
    TRACEPOINT_PROCESS_EXIT, TRACEPOINT_PROCESS_FORK, hook_of,
};
use crate::object::OBJECT;
use aya::programs::{
    BtfTracePoint, CgroupSkb, CgroupSock, Iter, Program, ProgramError, SchedClassifier, SockOps,
};
use aya::{Btf, Ebpf, EbpfLoader};
use chadthrottle_core::kernel_floor::named_refusal;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Entries of each sized map created only to load programs against (no config).
const PROBE_ENTRIES: u32 = 64;

/// Parses the object and creates (or, with `config`, reuses the pinned) maps; without a
/// config, small ones to try programs against. Programs are not loaded yet.
pub(crate) fn load(config: Option<&Config>) -> Result<Ebpf, Error> {
    load_for_slot(config, 0)
}

/// [`load`], with `police_slot` as the slot [`PROG_TC_POLICE`] matches.
fn load_for_slot(config: Option<&Config>, police_slot: u32) -> Result<Ebpf, Error> {
    let mut loader = EbpfLoader::new();
    loader.override_global(GLOBAL_POLICE_SLOT, &police_slot, true);
    let ns_per_tick = crate::clock::ns_per_tick();
    loader.override_global(GLOBAL_NS_PER_TICK, &ns_per_tick, true);
    let accounting = u32::from(config.is_none_or(|config| config.accounting));
    loader.override_global(GLOBAL_ACCOUNTING, &accounting, true);
    let coarse_clock = u32::from(crate::helper_probe::coarse_clock());
    loader.override_global(GLOBAL_COARSE_CLOCK, &coarse_clock, true);
    // without a config the maps exist only for the verifier (`backends`, a backend's
    // readiness): a few entries each, not the megabytes an install's take
    let size = |entries: u32| {
        if config.is_some() {
            entries
        } else {
            PROBE_ENTRIES
        }
    };
    let max_limits = config.map_or(DEFAULT_MAX_LIMITS, |config| config.max_limits);
    let entries = size(max_limits.saturating_mul(2));
    loader.map_max_entries(MAP_LIMITS, entries);
    loader.map_max_entries(MAP_STATS, entries);
    let max_rules = size(config.map_or(DEFAULT_MAX_RULES, |config| config.max_rules));
    let max_members = size(config.map_or(DEFAULT_MAX_MEMBERS, |config| config.max_members));
    loader.map_max_entries(MAP_RULES, max_rules);
    loader.map_max_entries(MAP_MATCH, max_rules);
    loader.map_max_entries(MAP_MEMBERS, max_members);
    loader.map_max_entries(MAP_TREE, max_members);
    loader.map_max_entries(MAP_MARKS, size(mark_values(crate::procs::pid_max())));
    loader.map_max_entries(MAP_PROC_ACCT, size(MAX_ACCOUNTED_PROCESSES));
    loader.map_max_entries(MAP_PROC_INFO, size(MAX_ACCOUNTED_PROCESSES));
    loader.map_max_entries(
        MAP_CONNS,
        size(config.map_or(DEFAULT_MAX_CONNECTIONS, |config| config.max_connections)),
    );
    let pins: Vec<(&str, PathBuf)> = config
        .map(|config| {
            MAPS.iter()
                .map(|&name| (name, config.pin_dir.join(name)))
                .collect()
        })
        .unwrap_or_default();
    for (name, path) in &pins {
        loader.map_pin_path(name, path.as_path());
    }
    loader.load(OBJECT).map_err(|source| Error::Load { source })
}

/// Values of `ct_marks` for tgids below `pid_max`: one byte per tgid, eight to a value (an
/// array's value takes 8 bytes at least), so `pid_max` bytes in all — 4 MiB at the kernel's
/// `PID_MAX_LIMIT` (2^22). A tgid past them (pid_max raised after the install) is resolved
/// as if marked: it costs the lookups the mark saves, nothing else.
fn mark_values(pid_max: u32) -> u32 {
    pid_max.min(PID_MAX_LIMIT).div_ceil(8).max(1)
}

/// The object with the maps pinned at `pin_dir` and `program` loaded into the kernel: for
/// the programs run or attached on demand (the TCP iterator, the tc classifier). The
/// pinned maps are reused as they are, sizes included; the cgroup is not used.
pub(crate) fn load_with_pins(pin_dir: &Path, program: &'static str) -> Result<Ebpf, Error> {
    let mut ebpf = load_for_slot(Some(&pinned_config(pin_dir)), 0)?;
    load_program(&mut ebpf, program, btf()?)?;
    Ok(ebpf)
}

/// The object with the maps pinned at `pin_dir` and [`PROG_TC_POLICE`] loaded, matching
/// the process of `slot`: each police filter holds a program of its own.
pub(crate) fn load_police(pin_dir: &Path, slot: u32) -> Result<Ebpf, Error> {
    let mut ebpf = load_for_slot(Some(&pinned_config(pin_dir)), slot)?;
    load_program(&mut ebpf, PROG_TC_POLICE, btf()?)?;
    Ok(ebpf)
}

/// The configuration under which the maps pinned at `pin_dir` are reused as they are.
fn pinned_config(pin_dir: &Path) -> Config {
    Config {
        cgroup: PathBuf::new(),
        pin_dir: pin_dir.to_owned(),
        max_limits: DEFAULT_MAX_LIMITS,
        max_connections: DEFAULT_MAX_CONNECTIONS,
        max_rules: DEFAULT_MAX_RULES,
        max_members: DEFAULT_MAX_MEMBERS,
        accounting: true,
    }
}

/// The kernel's own type information, which the iterators and the tracepoints load
/// against; parsed once per process (a command loads programs from several objects, and in
/// an emulated guest one parse of /sys/kernel/btf/vmlinux took 7–11 s; aya's loader
/// parses its own copy for each object, which cannot be avoided). A failure is not kept:
/// the next call tries again.
pub(crate) fn btf() -> Result<&'static Btf, Error> {
    static KERNEL_BTF: OnceLock<Btf> = OnceLock::new();
    if let Some(btf) = KERNEL_BTF.get() {
        return Ok(btf);
    }
    let parsed = Btf::from_sys_fs().map_err(|source| Error::Load {
        source: aya::EbpfError::BtfError(source),
    })?;
    Ok(KERNEL_BTF.get_or_init(|| parsed))
}

/// The program `name` of `ebpf` as the kind `P` it is loaded and attached as; the error
/// names the program, whether the object lacks it or has it as another kind.
pub(crate) fn program<'a, P>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut P, Error>
where
    &'a mut P: TryFrom<&'a mut Program, Error = ProgramError>,
{
    let program = ebpf
        .program_mut(name)
        .ok_or_else(|| Error::program("find", name)(ProgramError::NotLoaded))?;
    program.try_into().map_err(Error::program("find", name))
}

/// Loads `name` into the kernel (the verifier runs here).
pub(crate) fn load_program(ebpf: &mut Ebpf, name: &'static str, btf: &Btf) -> Result<(), Error> {
    let loaded = match name {
        PROG_SOCK_CREATE | PROG_SOCK_OWNER => program::<CgroupSock>(ebpf, name)?.load(),
        PROG_EGRESS | PROG_INGRESS => program::<CgroupSkb>(ebpf, name)?.load(),
        PROG_SOCK_OPS => program::<SockOps>(ebpf, name)?.load(),
        PROG_ITER_TCP => program::<Iter>(ebpf, name)?.load(ITER_TCP, btf),
        PROG_ITER_TASK => program::<Iter>(ebpf, name)?.load(ITER_TASK, btf),
        PROG_TC_INGRESS | PROG_TC_POLICE => program::<SchedClassifier>(ebpf, name)?.load(),
        PROG_PROCESS_EXIT => {
            program::<BtfTracePoint>(ebpf, name)?.load(TRACEPOINT_PROCESS_EXIT, btf)
        }
        PROG_PROCESS_EXEC => {
            program::<BtfTracePoint>(ebpf, name)?.load(TRACEPOINT_PROCESS_EXEC, btf)
        }
        PROG_PROCESS_FORK => {
            program::<BtfTracePoint>(ebpf, name)?.load(TRACEPOINT_PROCESS_FORK, btf)
        }
        _ => return Err(Error::program("find", name)(ProgramError::NotLoaded)),
    };
    loaded.map_err(|source| {
        let log = source.to_string();
        match named_refusal(hook_of(name), &log, &osrelease()) {
            Some(reason) => Error::NeedsNewerKernel {
                program: name,
                reason,
            },
            None => Error::program("load", name)(source),
        }
    })
}

/// This kernel's release (`uname -r`), for the reason a refusal gives.
pub(crate) fn osrelease() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "unknown".to_owned(), |text| text.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_marks_hold_a_byte_for_every_pid_below_pid_max_and_no_more_than_the_limit() {
        // Debian's default (systemd raises it to the limit), then the limit and past it
        assert_eq!(mark_values(32_768), 4_096);
        assert_eq!(mark_values(32_769), 4_097);
        assert_eq!(mark_values(PID_MAX_LIMIT), 524_288);
        assert_eq!(mark_values(u32::MAX), 524_288);
        assert_eq!(mark_values(0), 1);
    }
}
