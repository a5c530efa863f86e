//! `chadthrottle limit`: set or change one process's limit and return.

use crate::cli::{Global, LimitArgs};
use crate::render;
use anyhow::Context as _;
use chadthrottle_core::backend::{Applied, Backend, Change, LimitRequest, Target, choose};
use chadthrottle_core::bucket::default_burst;
use chadthrottle_core::process::validate_target;
use chadthrottle_core::status::{DirectionLimit, Enforcement};
use chadthrottle_core::{Direction, PerDirection, Rate, Size};
use chadthrottle_kernel::{Datapath, mounts, probe, procs};
use std::time::Duration;

/// The directions' limits as asked: `--burst-up/--burst-down` over `--burst` over the
/// default burst for the rate.
pub fn direction_limits(
    up: Option<Rate>,
    down: Option<Rate>,
    burst: Option<Size>,
    burst_up: Option<Size>,
    burst_down: Option<Size>,
) -> PerDirection<Option<DirectionLimit>> {
    let one = |rate: Option<Rate>, specific: Option<Size>| {
        rate.map(|rate| DirectionLimit {
            rate: rate.bytes_per_sec(),
            burst: specific
                .or(burst)
                .unwrap_or_else(|| default_burst(rate))
                .bytes(),
            enforcement: Enforcement::default(),
        })
    };
    PerDirection {
        up: one(up, burst_up),
        down: one(down, burst_down),
    }
}

/// The backend of each direction: the one named, or the best one. Both backends are the
/// one datapath, whose availability is proven by installing it; here names and
/// directions are checked, before anything in the kernel changes.
pub fn choose_backends(
    upload: Option<&str>,
    download: Option<&str>,
) -> anyhow::Result<PerDirection<Enforcement>> {
    let backends = probe::descriptors();
    let pick = |direction, requested| -> anyhow::Result<Enforcement> {
        let backend = choose(&backends, direction, requested, |_| {
            chadthrottle_core::backend::Availability::Available
        })?;
        Enforcement::from_name(backend.name)
            .with_context(|| format!("backend \"{}\" has no datapath", backend.name))
    };
    Ok(PerDirection {
        up: pick(Direction::Up, upload)?,
        down: pick(Direction::Down, download)?,
    })
}

/// Sets the limit of `pid` and returns the datapath and the request, for callers that
/// keep going (the upstream foreground form).
pub fn apply(
    global: &Global,
    pid: u32,
    set: PerDirection<Change>,
    lasts: Option<Duration>,
) -> anyhow::Result<(Datapath, LimitRequest, Applied)> {
    let backends = choose_backends(
        global.upload_backend.as_deref(),
        global.download_backend.as_deref(),
    )?;
    let change = set.map(|direction, change| match *change {
        Change::Set(limit) => Change::Set(DirectionLimit {
            enforcement: *backends.get(direction),
            ..limit
        }),
        other => other,
    });
    let config = super::config(global)?;
    let scope = mounts::cgroup_scope(&config.cgroup)?;
    let (process, name) = validate_target(pid, procs::inspect(pid), std::process::id(), &scope)?;
    let mut datapath = Datapath::install(&config)?;
    datapath.force_qdisc(global.force);
    let request = LimitRequest {
        target: Target { process, name },
        change,
        lasts,
    };
    let applied = match datapath.apply(&request) {
        // entries of exited or expired processes may still hold places: clear them, retry
        Err(chadthrottle_kernel::Error::TableFull { .. }) => {
            datapath.prune()?;
            datapath.apply(&request)
        }
        other => other,
    }
    .with_context(|| format!("cannot limit PID {pid}"))?;
    Ok((datapath, request, applied))
}

pub fn run(global: &Global, args: &LimitArgs) -> anyhow::Result<()> {
    let set = direction_limits(
        args.up,
        args.down,
        args.burst,
        args.burst_up,
        args.burst_down,
    );
    let change = set.map(|_, limit| Change::set_or_keep(*limit));
    let (datapath, request, sockets) = apply(global, args.pid, change, args.lasts)?;
    print_applied(&datapath, &request, sockets)
}

pub fn print_applied(
    datapath: &Datapath,
    request: &LimitRequest,
    applied: Applied,
) -> anyhow::Result<()> {
    let limit = datapath
        .limits()?
        .into_iter()
        .find(|limit| limit.target == request.target.process)
        .with_context(|| {
            format!(
                "PID {} exited as its limit was set",
                request.target.process.pid
            )
        })?;
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    println!(
        "{}; {} open socket{} attributed, {} TCP socket{} shaped",
        render::limit_summary(&limit, super::unix_now()),
        applied.backfilled_sockets,
        plural(applied.backfilled_sockets),
        applied.shaped_sockets,
        plural(applied.shaped_sockets),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(text: &str) -> Option<Rate> {
        Some(text.parse().expect("valid rate"))
    }

    fn size(text: &str) -> Option<Size> {
        Some(text.parse().expect("valid size"))
    }

    #[test]
    fn bursts_default_per_rate_and_specific_beats_general() {
        let set = direction_limits(rate("10M"), None, None, None, None);
        assert_eq!(
            set.up,
            Some(DirectionLimit {
                rate: 10 << 20,
                burst: 4 << 20,
                enforcement: Enforcement::Shaping,
            })
        );
        assert_eq!(set.down, None);
        let set = direction_limits(rate("1M"), rate("2M"), size("256K"), None, size("1M"));
        assert_eq!(set.up.map(|l| l.burst), Some(256 << 10));
        assert_eq!(set.down.map(|l| l.burst), Some(1 << 20));
    }

    #[test]
    fn backends_default_to_shaping_and_unknown_ones_are_refused_by_name() {
        let both = |up, down| PerDirection { up, down };
        assert_eq!(
            choose_backends(None, None).unwrap(),
            both(Enforcement::Shaping, Enforcement::Shaping)
        );
        assert_eq!(
            choose_backends(Some("policer"), None).unwrap(),
            both(Enforcement::Policer, Enforcement::Shaping)
        );
        assert_eq!(
            choose_backends(Some("htb"), Some("ifb")).unwrap(),
            both(Enforcement::Htb, Enforcement::Ifb)
        );
        let error = choose_backends(Some("tc"), None).expect_err("no such backend");
        assert_eq!(
            error.to_string(),
            "unknown backend \"tc\"; known backends: shaping, policer, htb, ifb"
        );
        let error = choose_backends(None, Some("htb")).expect_err("htb is upload only");
        assert_eq!(error.to_string(), "backend \"htb\" cannot limit downloads");
    }
}
