//! `chadthrottle limit --pid`: set or change one process's limit and return; the choice
//! of backends and bursts that a rule's `limit` shares.

use crate::cli::{Global, LimitArgs};
use crate::render;
use anyhow::Context as _;
use chadthrottle_core::backend::{
    Applied, Availability, Backend, BackendDescriptor, Change, LimitRequest, Target, choose,
};
use chadthrottle_core::bucket::default_burst;
use chadthrottle_core::download_default::{self, DefaultDownload, DefaultReason, InterfaceIngress};
use chadthrottle_core::process::validate_target;
use chadthrottle_core::status::{DirectionLimit, Enforcement};
use chadthrottle_core::system::{DatapathOptions, System};
use chadthrottle_core::{Direction, PerDirection, Rate, Size};
use std::io::Write;
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
            by_default: false,
        })
    };
    PerDirection {
        up: one(up, burst_up),
        down: one(down, burst_down),
    }
}

/// The backend of each direction: the one named, or the best one available. Checked
/// here, before anything in the kernel changes: names, directions, and what a quick look
/// at the machine tells (installing the datapath proves the rest).
pub fn choose_backends<S: System>(
    system: &S,
    upload: Option<&str>,
    download: Option<&str>,
) -> anyhow::Result<PerDirection<Enforcement>> {
    Ok(PerDirection {
        up: choose_backend(system, Direction::Up, upload, |_| None)?,
        down: choose_backend(system, Direction::Down, download, |_| None)?,
    })
}

/// The backend for `direction`: `requested`, or the best available, where `refuse` may
/// rule out a backend for what the request is (a rule) before the machine is asked.
pub fn choose_backend<S: System>(
    system: &S,
    direction: Direction,
    requested: Option<&str>,
    refuse: impl Fn(&BackendDescriptor) -> Option<Availability>,
) -> anyhow::Result<Enforcement> {
    let backends = system.backends();
    let caller = system.caller();
    let backend = choose(&backends, direction, requested, |backend| {
        refuse(backend)
            .or_else(|| super::access::backend(caller, backend))
            .unwrap_or_else(|| system.ready(backend))
    })?;
    Enforcement::from_name(backend.name)
        .with_context(|| format!("backend \"{}\" has no datapath", backend.name))
}

/// The download backend when none is named, for the processes `pids` (one process, or
/// a shared rule's members now; none: a rule without members): ifb where it is free to
/// install on every interface their downloads arrive on (`download_default::choose`),
/// else the best available other than ifb (which would share what is not free) that
/// `refuse` leaves.
pub fn default_download<S: System>(
    system: &S,
    options: &DatapathOptions,
    pids: &[u32],
    refuse: impl Fn(&BackendDescriptor) -> Option<Availability>,
) -> anyhow::Result<DefaultDownload> {
    let caller = system.caller();
    let ifb = system
        .backends()
        .into_iter()
        .find(|backend| backend.name == Enforcement::Ifb.name())
        .map_or_else(
            || Availability::Unavailable("not part of this build".into()),
            |backend| {
                super::access::backend(caller, &backend).unwrap_or_else(|| system.ready(&backend))
            },
        );
    let chosen = if ifb.is_available() && pids.is_empty() {
        DefaultDownload {
            backend: Enforcement::Shaping,
            reason: DefaultReason::NoMember,
        }
    } else {
        // the interfaces are looked at only where ifb could use them
        let interfaces = if ifb.is_available() {
            ingress_of(system, options, pids)
        } else {
            Ok(Vec::new())
        };
        download_default::choose(&ifb, &interfaces)
    };
    if chosen.backend == Enforcement::Ifb {
        return Ok(chosen);
    }
    let not_free = |backend: &BackendDescriptor| {
        (backend.name == Enforcement::Ifb.name())
            .then(|| Availability::Unavailable(chosen.reason.to_string()))
            .or_else(|| refuse(backend))
    };
    Ok(DefaultDownload {
        backend: choose_backend(system, Direction::Down, None, not_free)?,
        ..chosen
    })
}

/// The interfaces the downloads of `pids` arrive on, each once; the first that cannot be
/// read is the error.
fn ingress_of<S: System>(
    system: &S,
    options: &DatapathOptions,
    pids: &[u32],
) -> Result<Vec<InterfaceIngress>, String> {
    let mut all: Vec<InterfaceIngress> = Vec::new();
    for &pid in pids {
        for interface in system.download_ingress(options, pid)? {
            if !all.contains(&interface) {
                all.push(interface);
            }
        }
    }
    Ok(all)
}

/// What [`apply`] did: the datapath, the request as sent, what it did to open sockets,
/// and, for a download left to the default, the backend it got and why.
pub struct Limited<B> {
    pub backend: B,
    pub request: LimitRequest,
    pub applied: Applied,
    pub download_default: Option<DefaultDownload>,
}

/// Sets the limit of `pid` as `change` says and returns the datapath and the request,
/// for callers that keep going (the upstream foreground form, the TUI). Directions that
/// are set get the backend `--upload-backend`/`--download-backend` chose; a download
/// neither names gets ifb where that is free to install, else the best available. The
/// target is checked first, then the backends, and only then is anything installed.
pub fn apply<S: System>(
    system: &mut S,
    global: &Global,
    pid: u32,
    change: PerDirection<Change>,
    lasts: Option<Duration>,
) -> anyhow::Result<Limited<S::Backend>> {
    let options = global.datapath();
    let scope = system.scope(&options)?;
    let info = system.inspect(pid);
    let (process, name) = validate_target(pid, info.clone(), system.own_pid(), &scope)?;
    if let Some(info) = &info {
        super::access::target(system, info)?;
    }
    let mut backends = choose_backends(
        system,
        global.upload_backend.as_deref(),
        global.download_backend.as_deref(),
    )?;
    let download_default = if global.download_backend.is_none() && change.down.limit().is_some() {
        let chosen = default_download(system, &options, &[pid], |_| None)?;
        backends.down = chosen.backend;
        Some(chosen)
    } else {
        None
    };
    let change = change.map(|direction, change| match *change {
        Change::Set(limit) => Change::Set(DirectionLimit {
            enforcement: *backends.get(direction),
            by_default: direction == Direction::Down && download_default.is_some(),
            ..limit
        }),
        other => other,
    });
    super::access::datapath(system, global)?;
    let mut backend = system.install(&options)?;
    let request = LimitRequest {
        target: Target { process, name },
        change,
        lasts,
    };
    let applied = match backend.apply(&request) {
        // entries of exited or expired processes may hold the places a full table
        // lacks: clear them and try once more
        Err(error) => match backend.prune() {
            Ok(pruned) if !pruned.is_empty() => backend.apply(&request),
            _ => Err(error),
        },
        applied => applied,
    }
    .with_context(|| format!("cannot limit PID {pid}"))?;
    Ok(Limited {
        backend,
        request,
        applied,
        download_default,
    })
}

/// `limit --pid PID` (a rule's target is `rule_change`'s).
pub fn run<S: System>(
    system: &mut S,
    global: &Global,
    pid: u32,
    args: &LimitArgs,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let set = direction_limits(
        args.rates.up,
        args.rates.down,
        args.rates.burst,
        args.rates.burst_up,
        args.rates.burst_down,
    );
    let change = set.map(|_, limit| Change::set_or_keep(*limit));
    let limited = apply(system, global, pid, change, args.rates.lasts)?;
    print_applied(&limited, system, out)
}

/// One line on the limit as it now is, and what setting it did to open sockets; and
/// for a download left to the default, the backend it got and why.
pub fn print_applied<S: System>(
    limited: &Limited<S::Backend>,
    system: &S,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let Limited {
        backend,
        request,
        applied,
        download_default,
    } = limited;
    let process = request.target.process;
    let Some(limit) = backend
        .limits()?
        .into_iter()
        .find(|limit| limit.target == process)
    else {
        // a limit set `--for` less time than the setting took (a busy machine, the first
        // install) has lapsed by the time it is read back: said, and not an error
        let lasts = request.lasts.filter(|_| system.is_alive(process));
        let lasts =
            lasts.with_context(|| format!("PID {} exited as its limit was set", process.pid))?;
        writeln!(
            out,
            "PID {} ({}): the limit, set for {}, lapsed already: setting it took longer than that",
            process.pid,
            request.target.name,
            render::lasting(lasts)
        )?;
        return Ok(());
    };
    let now_unix = system.now_unix();
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    writeln!(
        out,
        "{}; {} open socket{} attributed, {} TCP socket{} shaped",
        render::limit_summary(&limit, now_unix),
        applied.backfilled_sockets,
        plural(applied.backfilled_sockets),
        applied.shaped_sockets,
        plural(applied.shaped_sockets),
    )?;
    if let Some(chosen) = download_default {
        print_default(chosen, out)?;
    }
    Ok(())
}

/// The line under a limit or rule whose download was left to the default: the backend
/// it got and why.
pub fn print_default(chosen: &DefaultDownload, out: &mut dyn Write) -> anyhow::Result<()> {
    writeln!(
        out,
        "download backend {}: {}",
        chosen.backend.name(),
        chosen.reason
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{CURL, WGET, machine, ok, refused};
    use super::*;
    use chadthrottle_core::fake::FakeSystem;

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
                by_default: false,
            })
        );
        assert_eq!(set.down, None);
        let set = direction_limits(rate("1M"), rate("2M"), size("256K"), None, size("1M"));
        assert_eq!(set.up.map(|l| l.burst), Some(256 << 10));
        assert_eq!(set.down.map(|l| l.burst), Some(1 << 20));
    }

    #[test]
    fn backends_default_to_the_best_available_and_unknown_ones_are_refused_by_name() {
        let system = machine();
        let both = |up, down| PerDirection { up, down };
        let pick = |up, down| choose_backends(&system, up, down).map_err(|e| e.to_string());
        assert_eq!(
            pick(None, None),
            Ok(both(Enforcement::Shaping, Enforcement::Shaping))
        );
        assert_eq!(
            pick(Some("policer"), None),
            Ok(both(Enforcement::Policer, Enforcement::Shaping))
        );
        assert_eq!(
            pick(Some("htb"), Some("ifb")),
            Ok(both(Enforcement::Htb, Enforcement::Ifb))
        );
        assert_eq!(
            pick(Some("tc"), None),
            Err(
                "unknown backend \"tc\"; known backends: shaping, policer, htb, ifb, \
                 nftables, tc_police"
                    .into()
            )
        );
        assert_eq!(
            pick(None, Some("htb")),
            Err("backend \"htb\" cannot limit downloads".into())
        );
        // what the machine says decides, not a blanket "available"
        system
            .machine()
            .unavailable
            .insert("shaping", "no iter/tcp".into());
        system
            .machine()
            .unavailable
            .insert("htb", "no sch_htb".into());
        assert_eq!(
            pick(None, None),
            Ok(both(Enforcement::Policer, Enforcement::Ifb)),
            "the next best in each direction"
        );
        assert_eq!(
            pick(Some("htb"), None),
            Err("backend \"htb\" is unavailable: no sch_htb".into())
        );
        system.machine().unavailable.insert("policer", "off".into());
        assert_eq!(
            pick(None, None),
            Ok(both(Enforcement::Nftables, Enforcement::Ifb)),
            "nftables is the last resort for uploads"
        );
        assert_eq!(
            pick(None, Some("nftables")),
            Ok(both(Enforcement::Nftables, Enforcement::Nftables)),
            "nftables takes downloads too"
        );
        assert_eq!(
            pick(Some("tc_police"), None),
            Err("backend \"tc_police\" cannot limit uploads".into())
        );
        system.machine().unavailable.insert("ifb", "off".into());
        assert_eq!(
            pick(None, None),
            Ok(both(Enforcement::Nftables, Enforcement::TcPolice)),
            "tc_police before nftables for downloads"
        );
        system
            .machine()
            .unavailable
            .insert("tc_police", "off".into());
        assert_eq!(
            pick(None, None),
            Ok(both(Enforcement::Nftables, Enforcement::Nftables)),
            "nftables is the last resort for downloads"
        );
        for name in ["nftables", "tc_police"] {
            system.machine().unavailable.insert(name, "off".into());
        }
        assert_eq!(
            pick(None, None),
            Err(
                "no backend can limit uploads here: shaping: no iter/tcp; htb: no sch_htb; \
                 policer: off; nftables: off"
                    .into()
            )
        );
    }

    #[test]
    fn a_limit_is_set_in_one_request_and_said_in_one_line() {
        let mut system = machine();
        let out = ok(
            &mut system,
            &["limit", "--pid", "4242", "--up", "1M", "--for", "10m"],
        );
        assert_eq!(
            out,
            "PID 4242 (curl): up 1MB/s (burst 409.6KB), down unlimited, expires in 10m \
             [shaping]; 3 open sockets attributed, 0 TCP sockets shaped\n"
        );
        let out = ok(
            &mut system,
            &[
                "--download-backend",
                "ifb",
                "limit",
                "--pid",
                "4242",
                "--down",
                "0",
            ],
        );
        assert!(
            out.starts_with(
                "PID 4242 (curl): up 1MB/s (burst 409.6KB), down blocked (burst 64KB), \
                 until removed [up shaping, down ifb]"
            ),
            "a later limit keeps the direction it does not name: {out}"
        );
        let machine = system.machine();
        assert_eq!(machine.requests, 2);
        let limit = &machine.limits[&CURL];
        assert_eq!(limit.limits.up.map(|l| l.rate), Some(1 << 20));
        assert_eq!(
            limit.limits.down.map(|l| (l.rate, l.enforcement)),
            Some((0, Enforcement::Ifb))
        );
    }

    #[test]
    fn a_limit_that_lapses_as_it_is_set_is_said_and_no_error() {
        let mut system = machine();
        system.machine().setting_takes = 2;
        let args = |lasts| ["limit", "--pid", "4242", "--up", "1M", "--for", lasts];
        assert_eq!(
            ok(&mut system, &args("1s")),
            "PID 4242 (curl): the limit, set for 1s, lapsed already: setting it took longer \
             than that\n"
        );
        assert_eq!(
            ok(&mut system, &args("500ms")),
            "PID 4242 (curl): the limit, set for 500ms, lapsed already: setting it took \
             longer than that\n"
        );
        let out = ok(&mut system, &args("10s"));
        assert!(
            out.starts_with(
                "PID 4242 (curl): up 1MB/s (burst 409.6KB), down unlimited, expires in 8s"
            ),
            "{out}"
        );
    }

    #[test]
    fn a_download_left_to_the_default_gets_ifb_where_free_and_says_why() {
        use chadthrottle_core::download_default::{Ingress, InterfaceIngress};
        let mut system = machine();
        let down = |system: &mut FakeSystem| {
            let out = ok(system, &["limit", "--pid", "4242", "--down", "1M"]);
            let held = system.machine().limits[&CURL].limits.down;
            (out, held.map(|l| l.enforcement))
        };
        let (out, held) = down(&mut system);
        assert_eq!(held, Some(Enforcement::Shaping), "loopback only: {out}");
        assert!(out.ends_with(
            "download backend shaping: default: no interface but loopback receives its \
             downloads\n"
        ));
        let eth0 = |ingress| InterfaceIngress {
            name: "eth0".into(),
            ingress,
        };
        system.machine().download_ingress = Ok(vec![eth0(Ingress::Free)]);
        let (out, held) = down(&mut system);
        assert_eq!(held, Some(Enforcement::Ifb), "{out}");
        assert!(out.contains("download backend ifb: default: the ingress of eth0 is free"));
        // the choice is kept with the limit: status says so after the command
        let status = ok(&mut system, &["status"]);
        let down_row = status.lines().find(|line| line.contains("down"));
        assert!(
            down_row.is_some_and(|row| row.contains("ifb (default)")),
            "{status}"
        );
        let json: serde_json::Value =
            serde_json::from_str(&ok(&mut system, &["status", "--json"])).expect("JSON");
        assert_eq!(json["limits"][0]["download_by_default"], true, "{json}");
        // an upload-only change keeps the download's choice as it was
        let out = ok(&mut system, &["limit", "--pid", "4242", "--up", "1M"]);
        assert!(out.contains("[up shaping, down ifb (default)]"), "{out}");
        system.machine().download_ingress = Ok(vec![eth0(Ingress::Foreign("clsact".into()))]);
        let (out, held) = down(&mut system);
        assert_eq!(held, Some(Enforcement::Shaping), "{out}");
        assert!(out.contains("eth0 has an ingress qdisc ChadThrottle did not add (clsact)"));
        // ifb unavailable: its interfaces are not even looked at
        system
            .machine()
            .unavailable
            .insert("ifb", "no CONFIG_IFB".into());
        system.machine().download_ingress = Err("must not be read".into());
        let (out, held) = down(&mut system);
        assert_eq!(held, Some(Enforcement::Shaping), "{out}");
        assert!(
            out.ends_with(
                "download backend shaping: default: ifb is unavailable (no CONFIG_IFB)\n"
            )
        );
        system.machine().unavailable.remove("ifb");
        system.machine().download_ingress = Ok(vec![eth0(Ingress::Foreign("clsact".into()))]);
        // shaping unavailable: the fallback is the next best but ifb, which is not free
        system.machine().unavailable.insert("shaping", "off".into());
        let (_, held) = down(&mut system);
        assert_eq!(held, Some(Enforcement::Policer));
        // a named backend is taken as named, with no default line
        system.machine().download_ingress = Ok(vec![eth0(Ingress::Free)]);
        let out = ok(
            &mut system,
            &[
                "--download-backend",
                "policer",
                "limit",
                "--pid",
                "4242",
                "--down",
                "1M",
            ],
        );
        assert!(!out.contains("download backend"), "{out}");
        assert_eq!(
            system.machine().limits[&CURL]
                .limits
                .down
                .map(|l| l.enforcement),
            Some(Enforcement::Policer)
        );
        // an upload-only change leaves the download's backend alone and says nothing
        let out = ok(&mut system, &["limit", "--pid", "4242", "--up", "1M"]);
        assert!(!out.contains("download backend"), "{out}");
    }

    #[test]
    fn a_refused_target_changes_nothing() {
        let mut system = machine();
        system.machine().own_pid = WGET;
        for (pid, expected) in [
            ("5", "no process with PID 5"),
            ("2", "PID 2 (kthreadd) is a kernel thread"),
            (
                "4243",
                "PID 4243 is a thread of process 4242: limits apply to whole processes, use --pid 4242",
            ),
            ("4343", "PID 4343 is chadthrottle itself"),
        ] {
            let error = refused(&mut system, &["limit", "--pid", pid, "--up", "1M"]);
            assert!(error.starts_with(expected), "{error}");
        }
        let error = refused(
            &mut system,
            &[
                "--upload-backend",
                "tc",
                "limit",
                "--pid",
                "4242",
                "--up",
                "1M",
            ],
        );
        assert!(error.starts_with("unknown backend \"tc\""), "{error}");
        let machine = system.machine();
        assert!(
            machine.installs.is_empty(),
            "a refusal installed the datapath"
        );
        assert_eq!(machine.requests, 0);
    }

    #[test]
    fn a_full_table_is_pruned_of_the_dead_and_tried_again() {
        let mut system = machine();
        system.machine().capacity = 1;
        ok(&mut system, &["limit", "--pid", "4343", "--up", "1M"]);
        let error = refused(&mut system, &["limit", "--pid", "4242", "--up", "1M"]);
        assert_eq!(
            error,
            "cannot limit PID 4242: the limit table is full (1 processes)"
        );
        // wget's entry outlives it (the exit hook missed it, say): pruned, then room
        {
            let mut machine = system.machine();
            machine.processes.remove(&WGET);
        }
        ok(&mut system, &["limit", "--pid", "4242", "--up", "1M"]);
        let machine = system.machine();
        assert_eq!(machine.limits.keys().copied().collect::<Vec<_>>(), [CURL]);
    }

    #[test]
    fn an_install_failure_is_the_error() {
        let mut system = machine();
        system.machine().install_error = Some("permission denied: missing CAP_BPF".into());
        let error = refused(&mut system, &["limit", "--pid", "4242", "--up", "1M"]);
        assert_eq!(error, "permission denied: missing CAP_BPF");
    }
}
