//! The datapath installed in a lab and driven through the library, as `chadthrottle
//! limit` drives it: the benchmark's way of setting and lifting limits.

use crate::{Endpoint, Lab};
use anyhow::Context as _;
use chadthrottle_core::backend::{Backend, Change, LimitRequest, Target};
use chadthrottle_core::process::validate_target;
use chadthrottle_core::status::{DirectionLimit, Enforcement};
use chadthrottle_core::{Direction, PerDirection, ProcessRef};
use chadthrottle_kernel::Datapath;

/// `ProcessRef` and name of a lab process, checked as `chadthrottle limit` checks it.
pub fn target(lab: &Lab, endpoint: &Endpoint) -> anyhow::Result<Target> {
    let scope = chadthrottle_kernel::mounts::cgroup_scope(lab.cgroup())?;
    let pid = endpoint.pid();
    let (process, name) = validate_target(
        pid,
        chadthrottle_kernel::procs::inspect(pid),
        std::process::id(),
        &scope,
    )?;
    Ok(Target { process, name })
}

/// Limits `target` in one direction, or lifts its limit with `None`.
pub fn limit(
    datapath: &mut Datapath,
    target: &Target,
    direction: Direction,
    limit: Option<DirectionLimit>,
) -> anyhow::Result<()> {
    let mut change = PerDirection::default();
    *change.get_mut(direction) = Change::set_or_lift(limit);
    datapath.apply(&LimitRequest {
        target: target.clone(),
        change,
        lasts: None,
    })?;
    Ok(())
}

/// Packets the datapath dropped for `process` in `direction` since its limit was set.
pub fn dropped(datapath: &Datapath, process: ProcessRef, direction: Direction) -> u64 {
    datapath
        .stats(process, direction)
        .ok()
        .flatten()
        .map_or(0, |stats| stats.dropped_packets)
}

/// Why the kernel cannot carry `enforcement`, if it cannot: what `chadthrottle limit`
/// asks before it takes a backend (its own program or what it needs of tc or netfilter;
/// tc_police where the kernel lacks act_police), so that the benchmark names the refusal
/// rather than failing each case on it.
pub fn refusal(enforcement: Enforcement) -> Option<String> {
    let Some(backend) = chadthrottle_kernel::probe::descriptors()
        .into_iter()
        .find(|backend| backend.name == enforcement.name())
    else {
        return Some(format!(
            "\"{}\" is not part of this build",
            enforcement.name()
        ));
    };
    chadthrottle_kernel::probe::ready(&backend).err()
}

/// The backend `chadthrottle limit` gives `direction` when none is named, on this kernel:
/// for a download ifb where it works (the lab's ingress is always free, so
/// `core::download_default` would choose it), else — and for an upload — the available
/// backend of the highest priority but ifb, as `limit`'s `choose_backend` finds it.
pub fn default_enforcement(direction: Direction) -> anyhow::Result<Enforcement> {
    use chadthrottle_core::backend::{Availability, BackendDescriptor, choose};
    let ready = |backend: &BackendDescriptor| match chadthrottle_kernel::probe::ready(backend) {
        Ok(()) => Availability::Available,
        Err(reason) => Availability::Unavailable(reason),
    };
    let descriptors = chadthrottle_kernel::probe::descriptors();
    let ifb = Enforcement::Ifb.name();
    if direction == Direction::Down && refusal(Enforcement::Ifb).is_none() {
        return Ok(Enforcement::Ifb);
    }
    let chosen = choose(&descriptors, direction, None, |backend| {
        if backend.name == ifb {
            Availability::Unavailable("not the fallback".to_owned())
        } else {
            ready(backend)
        }
    })?;
    Enforcement::from_name(chosen.name)
        .with_context(|| format!("backend {} has no enforcement", chosen.name))
}

/// The burst `chadthrottle limit` gives `rate` by default, in bytes.
pub fn default_burst(rate: u64) -> u64 {
    chadthrottle_core::bucket::default_burst(
        chadthrottle_core::Rate::new(rate).unwrap_or(chadthrottle_core::Rate::BLOCK),
    )
    .bytes()
}

/// Installs the datapath confined to `lab`.
pub fn install(lab: &Lab) -> anyhow::Result<Datapath> {
    install_with(lab, true)
}

/// Installs the datapath confined to `lab`, with or without its accounting.
pub fn install_with(lab: &Lab, accounting: bool) -> anyhow::Result<Datapath> {
    let config = chadthrottle_kernel::Config {
        accounting,
        ..lab.config()
    };
    Datapath::install(&config).context("cannot install the datapath in the lab")
}
