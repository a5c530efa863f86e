//! The pinned maps of an install: opening them, checking they are of this build's
//! layout, and reading and writing the install's meta (`ct_meta`).

use crate::error::Error;
use crate::layout::{
    self, Acct, Conn, Limit, LimitKey, MatchKey, Member, Meta, Owner, ProcInfo, Rule, SockState,
    Stats,
};
use crate::names::{
    MAP_CONNS, MAP_COUNTERS, MAP_LIMITS, MAP_MARKS, MAP_MATCH, MAP_MEMBERS, MAP_META, MAP_OWNER,
    MAP_PROC_ACCT, MAP_PROC_INFO, MAP_RULES, MAP_STATS, MAP_TREE,
};
use aya::maps::{Array, MapData};
use std::os::fd::AsFd;
use std::path::Path;

/// The pinned maps, opened.
pub(crate) struct PinnedMaps {
    pub limits: MapData,
    pub stats: MapData,
    pub owner: MapData,
    pub proc_acct: MapData,
    pub proc_info: MapData,
    pub conns: MapData,
    pub rules: MapData,
    pub matches: MapData,
    pub tree: MapData,
    pub members: MapData,
    pub counters: MapData,
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
    let (rules, matches, tree, members, counters) = (
        open(MAP_RULES)?,
        open(MAP_MATCH)?,
        open(MAP_TREE)?,
        open(MAP_MEMBERS)?,
        open(MAP_COUNTERS)?,
    );
    layout::check_map::<LimitKey, Limit>(MAP_LIMITS, &limits)?;
    layout::check_map::<LimitKey, Stats>(MAP_STATS, &stats)?;
    layout::check_map::<i32, SockState>(MAP_OWNER, &owner)?;
    layout::check_map::<Owner, Acct>(MAP_PROC_ACCT, &proc_acct)?;
    layout::check_map::<Owner, ProcInfo>(MAP_PROC_INFO, &proc_info)?;
    layout::check_map::<u64, Conn>(MAP_CONNS, &conns)?;
    layout::check_map::<u32, Rule>(MAP_RULES, &rules)?;
    layout::check_map::<MatchKey, u32>(MAP_MATCH, &matches)?;
    layout::check_map::<u32, Member>(MAP_TREE, &tree)?;
    layout::check_map::<u32, Member>(MAP_MEMBERS, &members)?;
    layout::check_map::<u32, u64>(MAP_COUNTERS, &counters)?;
    // only the datapath uses the marks; checked so that a map of another shape is refused
    layout::check_map::<u32, u64>(MAP_MARKS, &open(MAP_MARKS)?)?;
    Ok(Some(PinnedMaps {
        limits,
        stats,
        owner,
        proc_acct,
        proc_info,
        conns,
        rules,
        matches,
        tree,
        members,
        counters,
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

pub(crate) fn write_meta(pin_dir: &Path, meta: Meta) -> Result<(), Error> {
    update_meta(pin_dir, |current| *current = meta)
}

/// Changes the meta through `change`, keeping what it leaves alone; written only when it
/// changed. Only userspace writes the meta, under the state lock, so the read and the write
/// race with nothing.
fn update_meta(pin_dir: &Path, change: impl FnOnce(&mut Meta)) -> Result<(), Error> {
    let map =
        MapData::from_pin(pin_dir.join(MAP_META)).map_err(Error::map("open pinned", MAP_META))?;
    let mut array: Array<MapData, Meta> = layout::typed(MAP_META, map)?;
    let before = array.get(&0, 0).map_err(Error::map("read", MAP_META))?;
    let mut meta = before;
    change(&mut meta);
    if meta == before {
        return Ok(());
    }
    array.set(0, meta, 0).map_err(Error::map("write", MAP_META))
}

/// Records which ranks of rule exist (`Meta::rule_ranks`).
pub(crate) fn write_rule_ranks(pin_dir: &Path, rule_ranks: u32) -> Result<(), Error> {
    update_meta(pin_dir, |meta| meta.rule_ranks = rule_ranks)
}

/// Records whether a PID limit may exist (`Meta::pid_limits`).
pub(crate) fn write_pid_limits(pin_dir: &Path, may_exist: bool) -> Result<(), Error> {
    update_meta(pin_dir, |meta| meta.pid_limits = u32::from(may_exist))
}
