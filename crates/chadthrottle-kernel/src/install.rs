//! Putting the datapath into the kernel so that it outlives the command, finding it
//! again, and taking it out.
//!
//! Everything lives under the pin directory: one pin per map, one per link. A link is
//! pinned right after it is attached, so a crash at any point leaves either a pinned
//! link (found and kept by the next run) or none (its attachment died with the process):
//! there is never a second copy, and `reset` finds everything by name.

use crate::error::Error;
use crate::layout::{self, Acct, Conn, Limit, LimitKey, Meta, Owner, ProcInfo, SockState, Stats};
use crate::mounts::{self, PinDirPlan};
use crate::names::{
    GLOBAL_ACCOUNTING, GLOBAL_NS_PER_TICK, ITER_TCP, MAP_CONNS, MAP_LIMITS, MAP_META, MAP_OWNER,
    MAP_PROC_ACCT, MAP_PROC_INFO, MAP_STATS, MAPS, PROG_EGRESS, PROG_INGRESS, PROG_ITER_TCP,
    PROG_PROCESS_EXIT, PROG_SOCK_CREATE, PROG_SOCK_OPS, PROG_TC_INGRESS, PROGRAMS,
    TRACEPOINT_PROCESS_EXIT, link_pin,
};
use crate::object::{OBJECT, object_id};
use crate::privileges::{self, Operation};
use aya::maps::{Array, MapData};
use aya::programs::links::{CgroupAttachMode, FdLink};
use aya::programs::{
    BtfTracePoint, CgroupSkb, CgroupSkbAttachType, CgroupSock, Iter, SchedClassifier, SockOps,
};
use aya::{Btf, Ebpf, EbpfLoader};
use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/chadthrottle";
pub const DEFAULT_MAX_LIMITS: u32 = 65_536;
pub const DEFAULT_MAX_CONNECTIONS: u32 = 65_536;
/// Processes whose accounting is kept (least recently active ones are evicted beyond).
pub const MAX_ACCOUNTED_PROCESSES: u32 = 16_384;

/// Where the datapath is attached and pinned, and how large its tables are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The cgroup2 directory the programs attach to; they see every socket created in it
    /// and below.
    pub cgroup: PathBuf,
    /// The bpffs directory holding the pins.
    pub pin_dir: PathBuf,
    /// How many processes can be limited at once (used when the tables are created).
    pub max_limits: u32,
    /// How many connections are accounted at once; beyond, the least recently active
    /// connection's entry is reused (used when the tables are created).
    pub max_connections: u32,
    /// Whether the datapath accounts every process and connection (for `top`); fixed
    /// when it is installed. Off only to measure what accounting costs.
    pub accounting: bool,
}

impl Config {
    /// For loading programs against an install that is already pinned: its maps are
    /// reused as they are (their sizes included), the cgroup is not used. Set `pin_dir`.
    pub(crate) fn for_pins() -> Config {
        Config {
            cgroup: PathBuf::new(),
            pin_dir: PathBuf::new(),
            max_limits: DEFAULT_MAX_LIMITS,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            accounting: true,
        }
    }
}

/// The pinned maps, opened.
pub(crate) struct PinnedMaps {
    pub limits: MapData,
    pub stats: MapData,
    pub owner: MapData,
    pub proc_acct: MapData,
    pub proc_info: MapData,
    pub conns: MapData,
    pub meta: Meta,
}

/// Opens the maps pinned under `pin_dir`; `None` if there is no datapath there.
pub(crate) fn open_pins(pin_dir: &Path) -> Result<Option<PinnedMaps>, Error> {
    if !pin_dir.join(MAP_META).exists() {
        return Ok(None);
    }
    let open = |name: &'static str| {
        MapData::from_pin(pin_dir.join(name)).map_err(Error::map("open pinned", name))
    };
    let (limits, stats, owner, meta) = (
        open(MAP_LIMITS)?,
        open(MAP_STATS)?,
        open(MAP_OWNER)?,
        open(MAP_META)?,
    );
    // the version is checked before the accounting maps, which older installs lack
    check_version(pin_dir, &meta)?;
    let (proc_acct, proc_info, conns) =
        (open(MAP_PROC_ACCT)?, open(MAP_PROC_INFO)?, open(MAP_CONNS)?);
    layout::check_map::<LimitKey, Limit>(MAP_LIMITS, &limits)?;
    layout::check_map::<LimitKey, Stats>(MAP_STATS, &stats)?;
    layout::check_map::<i32, SockState>(MAP_OWNER, &owner)?;
    layout::check_map::<Owner, Acct>(MAP_PROC_ACCT, &proc_acct)?;
    layout::check_map::<Owner, ProcInfo>(MAP_PROC_INFO, &proc_info)?;
    layout::check_map::<u64, Conn>(MAP_CONNS, &conns)?;
    Ok(Some(PinnedMaps {
        limits,
        stats,
        owner,
        proc_acct,
        proc_info,
        conns,
        meta: read_meta(&meta)?,
    }))
}

/// Refuses pinned state of another layout version (0: an install that crashed before
/// writing its meta, which this one completes).
fn check_version(pin_dir: &Path, meta: &MapData) -> Result<(), Error> {
    layout::check_map::<u32, Meta>(MAP_META, meta)?;
    let meta_value = read_meta(meta)?;
    if meta_value.layout_version != layout::LAYOUT_VERSION && meta_value.layout_version != 0 {
        return Err(Error::ForeignInstall {
            pin_dir: pin_dir.to_owned(),
            layout: meta_value.layout_version,
            object: meta_value.object_id,
        });
    }
    Ok(())
}

/// Test hook: `CHADTHROTTLE_FAILPOINT=<point>` aborts the process at that point, as a
/// `kill -9` would, so tests can prove a crash leaves nothing `reset` cannot remove.
fn failpoint(point: &str) {
    if std::env::var_os("CHADTHROTTLE_FAILPOINT").is_some_and(|value| value == point) {
        std::process::abort();
    }
}

/// Makes sure the datapath is attached at `config.cgroup` and pinned at
/// `config.pin_dir`, installing what is missing; returns the opened maps.
pub(crate) fn install(config: &Config) -> Result<PinnedMaps, Error> {
    mounts::cgroup_scope(&config.cgroup)?;
    let plan = mounts::plan_pin_dir(&config.pin_dir)?;
    privileges::check(Operation::Install {
        mount_bpffs: matches!(plan, PinDirPlan::Mount { .. }),
    })?;
    let _lock = crate::lock::lock()?;
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

    let mut ebpf = load(Some(config))?;
    failpoint("loaded");
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
        },
    )?;
    failpoint("meta");
    let cgroup = File::open(&config.cgroup).map_err(Error::io("open", &config.cgroup))?;
    let btf = Btf::from_sys_fs().map_err(|source| Error::Load {
        source: aya::EbpfError::BtfError(source),
    })?;
    for program in missing {
        let link = attach(&mut ebpf, program, &cgroup, &btf)?;
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

/// Parses the object and creates (or, with `config`, reuses the pinned) maps. Programs
/// are not loaded yet.
pub(crate) fn load(config: Option<&Config>) -> Result<Ebpf, Error> {
    let mut loader = EbpfLoader::new();
    let ns_per_tick = crate::clock::ns_per_tick();
    loader.override_global(GLOBAL_NS_PER_TICK, &ns_per_tick, true);
    let accounting = u32::from(config.is_none_or(|config| config.accounting));
    loader.override_global(GLOBAL_ACCOUNTING, &accounting, true);
    let max_limits = config.map_or(DEFAULT_MAX_LIMITS, |config| config.max_limits);
    let entries = max_limits.saturating_mul(2);
    loader.map_max_entries(MAP_LIMITS, entries);
    loader.map_max_entries(MAP_STATS, entries);
    loader.map_max_entries(MAP_PROC_ACCT, MAX_ACCOUNTED_PROCESSES);
    loader.map_max_entries(MAP_PROC_INFO, MAX_ACCOUNTED_PROCESSES);
    loader.map_max_entries(
        MAP_CONNS,
        config.map_or(DEFAULT_MAX_CONNECTIONS, |config| config.max_connections),
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

/// The object with the maps pinned at `pin_dir` and `program` loaded into the kernel: for
/// the programs run or attached on demand (the TCP iterator, the tc classifier).
pub(crate) fn load_with_pins(pin_dir: &Path, program: &'static str) -> Result<Ebpf, Error> {
    let config = Config {
        pin_dir: pin_dir.to_owned(),
        ..Config::for_pins()
    };
    let mut ebpf = load(Some(&config))?;
    let btf = Btf::from_sys_fs().map_err(|source| Error::Load {
        source: aya::EbpfError::BtfError(source),
    })?;
    load_program(&mut ebpf, program, &btf)?;
    Ok(ebpf)
}

/// Loads `program` into the kernel (the verifier runs here).
pub(crate) fn load_program(ebpf: &mut Ebpf, program: &'static str, btf: &Btf) -> Result<(), Error> {
    let not_found = || Error::program("find", program)(aya::programs::ProgramError::NotLoaded);
    let prog = ebpf.program_mut(program).ok_or_else(not_found)?;
    let loaded = match program {
        PROG_SOCK_CREATE => <&mut CgroupSock>::try_from(prog).and_then(|p| p.load()),
        PROG_EGRESS | PROG_INGRESS => <&mut CgroupSkb>::try_from(prog).and_then(|p| p.load()),
        PROG_SOCK_OPS => <&mut SockOps>::try_from(prog).and_then(|p| p.load()),
        PROG_ITER_TCP => <&mut Iter>::try_from(prog).and_then(|p| p.load(ITER_TCP, btf)),
        PROG_TC_INGRESS => <&mut SchedClassifier>::try_from(prog).and_then(|p| p.load()),
        PROG_PROCESS_EXIT => {
            <&mut BtfTracePoint>::try_from(prog).and_then(|p| p.load(TRACEPOINT_PROCESS_EXIT, btf))
        }
        _ => return Err(not_found()),
    };
    loaded.map_err(Error::program("load", program))
}

fn attach(
    ebpf: &mut Ebpf,
    program: &'static str,
    cgroup: &File,
    btf: &Btf,
) -> Result<FdLink, Error> {
    load_program(ebpf, program, btf)?;
    let prog = ebpf
        .program_mut(program)
        .ok_or_else(|| Error::program("find", program)(aya::programs::ProgramError::NotLoaded))?;
    // a cgroup *link* is always multi-attach: it coexists with other programs (systemd's,
    // firewalls') and the kernel refuses the BPF_F_ALLOW_MULTI flag on it (EINVAL)
    let mode = CgroupAttachMode::Single;
    let attach_error = Error::program("attach", program);
    let link_error = |source| Error::Link { program, source };
    match program {
        PROG_SOCK_CREATE => {
            let prog = <&mut CgroupSock>::try_from(prog).map_err(attach_error)?;
            let link = prog
                .attach(cgroup, mode)
                .and_then(|id| prog.take_link(id))
                .map_err(Error::program("attach", program))?;
            FdLink::try_from(link).map_err(link_error)
        }
        PROG_EGRESS | PROG_INGRESS => {
            let kind = if program == PROG_EGRESS {
                CgroupSkbAttachType::Egress
            } else {
                CgroupSkbAttachType::Ingress
            };
            let prog = <&mut CgroupSkb>::try_from(prog).map_err(attach_error)?;
            let link = prog
                .attach(cgroup, kind, mode)
                .and_then(|id| prog.take_link(id))
                .map_err(Error::program("attach", program))?;
            FdLink::try_from(link).map_err(link_error)
        }
        PROG_SOCK_OPS => {
            let prog = <&mut SockOps>::try_from(prog).map_err(attach_error)?;
            let link = prog
                .attach(cgroup, mode)
                .and_then(|id| prog.take_link(id))
                .map_err(Error::program("attach", program))?;
            FdLink::try_from(link).map_err(link_error)
        }
        _ => {
            let prog = <&mut BtfTracePoint>::try_from(prog).map_err(attach_error)?;
            let link = prog
                .attach()
                .and_then(|id| prog.take_link(id))
                .map_err(Error::program("attach", program))?;
            Ok(FdLink::from(link))
        }
    }
}

fn read_meta(map: &MapData) -> Result<Meta, Error> {
    let fd = map
        .fd()
        .as_fd()
        .try_clone_to_owned()
        .map_err(Error::io("duplicate", MAP_META))?;
    let map = MapData::from_fd(fd).map_err(Error::map("open", MAP_META))?;
    let array: Array<MapData, Meta> = layout::typed(MAP_META, map)?;
    array.get(&0, 0).map_err(Error::map("read", MAP_META))
}

fn write_meta(pin_dir: &Path, meta: Meta) -> Result<(), Error> {
    let map =
        MapData::from_pin(pin_dir.join(MAP_META)).map_err(Error::map("open pinned", MAP_META))?;
    let mut array: Array<MapData, Meta> = layout::typed(MAP_META, map)?;
    array.set(0, meta, 0).map_err(Error::map("write", MAP_META))
}

/// What `reset` removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResetReport {
    /// Pin files removed (links first: removing a link's pin detaches it).
    pub removed: Vec<String>,
    pub removed_pin_dir: bool,
    pub unmounted_bpffs: bool,
    /// Entries in the pin directory that are not ChadThrottle's, left alone.
    pub foreign: Vec<String>,
    /// Shaped sockets whose own pacing rate and window clamp were put back.
    pub restored_sockets: usize,
}

/// Removes every pin ChadThrottle made under `pin_dir`, the directory, and the bpffs it
/// mounted (if nothing else uses it). Safe to run at any time, any number of times.
pub fn reset(pin_dir: &Path) -> Result<ResetReport, Error> {
    privileges::check(Operation::Reset)?;
    let _lock = crate::lock::lock()?;
    let mut report = ResetReport::default();
    // shaped sockets get their own settings back while the programs are still there
    if let Ok(Some(pins)) = open_pins(pin_dir) {
        report.restored_sockets = crate::datapath::lift_all(pin_dir, pins)?;
    }
    // every qdisc the htb and ifb backends installed goes, and what it replaced comes back
    crate::qdiscs::sync(pin_dir, &[], crate::qdiscs::Reach::Shrink)?;
    let pins = PROGRAMS
        .into_iter()
        .rev()
        .map(link_pin)
        .chain(MAPS.iter().map(|name| (*name).to_owned()));
    for name in pins {
        let path = pin_dir.join(&name);
        match std::fs::remove_file(&path) {
            Ok(()) => report.removed.push(name),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(Error::io("remove", path)(error)),
        }
    }
    if let Ok(entries) = std::fs::read_dir(pin_dir) {
        report.foreign = entries
            .filter_map(Result::ok)
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .collect();
        report.foreign.sort();
        if report.foreign.is_empty() {
            std::fs::remove_dir(pin_dir).map_err(Error::io("remove", pin_dir))?;
            report.removed_pin_dir = true;
        }
    }
    report.unmounted_bpffs = mounts::release_bpffs(pin_dir)?;
    Ok(report)
}
