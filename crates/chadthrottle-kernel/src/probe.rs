//! `chadthrottle backends`: what enforces limits here, and why not where it cannot.
//!
//! A backend proves it is available by trying: every program it needs is loaded into the
//! kernel (the verifier runs; the programs all backends share once per process, for all of
//! them) without attaching or pinning anything, and the qdisc backends build their qdiscs,
//! classes and filter in a network namespace of their own that vanishes with the probe; so
//! the answer is the kernel's, and nothing is left behind. All backends run with the one
//! datapath: its policer is behind whichever is chosen.

use crate::error::describe;
use crate::loader::{self, load, load_program};
use crate::names::{PROG_ITER_TASK, PROG_ITER_TCP, PROG_TC_INGRESS, PROG_TC_POLICE, PROGRAMS};
use crate::privileges::{self, Operation};
use crate::rtnetlink::Rtnl;
use aya::programs::SchedClassifier;
use chadthrottle_core::Direction;
use chadthrottle_core::PerDirection;
use chadthrottle_core::backend::{Availability, BackendDescriptor};
use chadthrottle_core::htb_class::{self, QDISC_HANDLE};
use chadthrottle_core::status::Enforcement;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::OnceLock;

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

/// HTB classes on the egress interfaces in use, the datapath choosing the class.
pub const HTB: BackendDescriptor = BackendDescriptor {
    name: Enforcement::Htb.name(),
    priority: 15,
    directions: PerDirection {
        up: true,
        down: false,
    },
    summary: "an HTB qdisc at the root of each egress interface in use, one class per limited \
              process (picked by the datapath through skb->priority, rate compensated for \
              L2 headers); unclassified traffic passes unqueued; replaces the interface's \
              root qdisc (a foreign one only with --force) and puts it back",
};

/// Downloads redirected to IFB devices with HTB classes.
pub const IFB: BackendDescriptor = BackendDescriptor {
    name: Enforcement::Ifb.name(),
    priority: 15,
    directions: PerDirection {
        up: false,
        down: true,
    },
    summary: "a tc classifier on the ingress of each interface in use finds each packet's \
              socket and owner and redirects a limited process's downloads to an IFB device \
              whose HTB queues them, one class per process; other traffic is untouched",
};

/// An nftables rule per process, below the eBPF backends.
pub const NFTABLES: BackendDescriptor = BackendDescriptor {
    name: Enforcement::Nftables.name(),
    priority: 5,
    directions: PerDirection {
        up: true,
        down: true,
    },
    summary: "rules per process in ChadThrottle's own nftables table (inet chadthrottle) \
              match the packets of sockets made in the process's cgroup (socket cgroupv2) \
              and drop what is over the rate (limit rate over): uploads at the output hook; \
              downloads at the input hook by the connection's conntrack mark, which its \
              packets out set (bits 16-23; conntrack then tracks the namespace's \
              connections); the process must be alone in a cgroup of its own; the policer \
              is the backstop",
};

/// A tc police action per process at the ingress, below the eBPF backends; above
/// nftables for downloads, as it needs neither a cgroup of the process's own nor conntrack.
pub const TC_POLICE: BackendDescriptor = BackendDescriptor {
    name: Enforcement::TcPolice.name(),
    priority: 6,
    directions: PerDirection {
        up: false,
        down: true,
    },
    summary: "downloads only: on the ingress of each interface in use, one filter per limited \
              process (a tc classifier that finds each packet's socket and owner, matching \
              only that process's) with a police action that drops what is over the rate; \
              other traffic goes on untouched; the policer is the backstop",
};

/// Every backend this build has.
pub fn descriptors() -> Vec<BackendDescriptor> {
    vec![SHAPING, POLICER, HTB, IFB, NFTABLES, TC_POLICE]
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

/// The program `enforcement` needs beyond those every backend shares (and the task
/// iterator): the one that tells whether this kernel can carry it.
fn own_program(enforcement: Enforcement) -> Option<&'static str> {
    match enforcement {
        Enforcement::Shaping => Some(PROG_ITER_TCP),
        Enforcement::Ifb => Some(PROG_TC_INGRESS),
        Enforcement::TcPolice => Some(PROG_TC_POLICE),
        Enforcement::Policer | Enforcement::Htb | Enforcement::Nftables => None,
    }
}

/// Whether the program `backend` needs of its own loads here (the verifier runs, against
/// small maps; nothing is attached): what `limit` asks before it chooses, so that a kernel
/// that refuses it (shaping on 5.10: no socket storage nor `bpf_setsockopt` from the TCP
/// iterator) makes it pick the next backend, with the refusal named, never shown as a
/// verifier log; for nftables, whether the kernel takes its table (5.10 has no socket
/// cgroupv2 match). Asked of the kernel once per process and program: a command asks for
/// each direction, and `backends` for each backend; an acceptance of the TCP iterator or
/// the ingress classifier is remembered for the boot (`verdicts`), so that the next
/// command need not ask again.
pub fn ready(backend: &BackendDescriptor) -> Result<(), String> {
    static NFTABLES: OnceLock<Result<(), String>> = OnceLock::new();
    static TC_POLICE: OnceLock<Result<(), String>> = OnceLock::new();
    let enforcement = Enforcement::from_name(backend.name);
    if enforcement == Some(Enforcement::TcPolice) {
        // its program and the police action: the kernel's tc may lack the action alone
        return TC_POLICE.get_or_init(police_verdict).clone();
    }
    if enforcement == Some(Enforcement::Nftables) {
        // no program of its own: what it needs is the netfilter expressions
        return NFTABLES.get_or_init(nftables_support).clone();
    }
    match enforcement.and_then(own_program) {
        Some(program) => remembered_verdict(program),
        None => Ok(()),
    }
}

/// [`own_verdict`], or this boot's acceptance of `program` where one is recorded.
fn remembered_verdict(program: &'static str) -> Result<(), String> {
    if crate::verdicts::accepted(program) {
        return Ok(());
    }
    let verdict = own_verdict(program);
    if verdict.is_ok() {
        crate::verdicts::remember(program);
    }
    verdict
}

/// The kernel's verdict on `program` (the TCP iterator or the tc classifier), loaded alone
/// against small maps; once per process and program.
fn own_verdict(program: &'static str) -> Result<(), String> {
    static TCP_ITERATOR: OnceLock<Result<(), String>> = OnceLock::new();
    static CLASSIFIER: OnceLock<Result<(), String>> = OnceLock::new();
    let cell = if program == PROG_ITER_TCP {
        &TCP_ITERATOR
    } else {
        &CLASSIFIER
    };
    cell.get_or_init(|| {
        let btf = loader::btf().map_err(|error| describe(&error))?;
        let mut ebpf = load(None).map_err(|error| describe(&error))?;
        load_program(&mut ebpf, program, btf).map_err(|error| refusal(program, &error))
    })
    .clone()
}

/// Why the kernel refused `program`: the named reason for a helper it lacks, else the
/// error with its verifier log.
fn refusal(program: &'static str, error: &crate::Error) -> String {
    match error {
        crate::Error::NeedsNewerKernel { reason, .. } => reason.clone(),
        other => format!("the kernel refused {program}: {}", describe(other)),
    }
}

/// Whether `enforcement` works here: the programs every backend shares (their verdict is
/// the kernel's, asked once per process: `backends` proves five backends, and each would
/// otherwise have the verifier go through the same programs again, which under an
/// emulated 6.1 took most of a minute per backend), then what the backend needs of its
/// own: its program, its qdiscs or its nftables table, tried each time.
fn try_load(enforcement: Enforcement) -> Result<(), String> {
    static SHARED: OnceLock<Result<(), String>> = OnceLock::new();
    SHARED.get_or_init(load_shared).clone()?;
    match enforcement {
        Enforcement::Shaping => own_verdict(PROG_ITER_TCP),
        Enforcement::Htb => qdisc_support(Direction::Up, None),
        Enforcement::Ifb => with_classifier(PROG_TC_INGRESS, |fd| {
            qdisc_support(Direction::Down, Some(fd))
        }),
        Enforcement::Nftables => nftables_support(),
        Enforcement::TcPolice => police_verdict(),
        Enforcement::Policer => Ok(()),
    }
}

/// Whether the tc_police backend works here: its program loads (the verifier runs) and a
/// filter with it and a police action is taken (the kernel's tc may lack the action
/// alone), tried in a namespace of its own.
fn police_verdict() -> Result<(), String> {
    with_classifier(PROG_TC_POLICE, police_support)
}

/// Loads the tc classifier `program` alone (the verifier runs) and hands its descriptor to
/// `test`, which builds what uses it: the descriptor is needed there, so the program is
/// loaded each time, not cached.
fn with_classifier(
    program: &'static str,
    test: impl FnOnce(u32) -> Result<(), String>,
) -> Result<(), String> {
    let btf = loader::btf().map_err(|error| describe(&error))?;
    let mut ebpf = load(None).map_err(|error| describe(&error))?;
    load_program(&mut ebpf, program, btf).map_err(|error| refusal(program, &error))?;
    let classifier =
        loader::program::<SchedClassifier>(&mut ebpf, program).map_err(|error| describe(&error))?;
    let fd = classifier.fd().map_err(|error| describe(&error))?;
    test(u32::try_from(fd.as_fd().as_raw_fd()).unwrap_or(0))
}

/// Loads every program all backends run with (the task iterator too: it resolves rules,
/// whatever the backend) into one object against small maps.
fn load_shared() -> Result<(), String> {
    privileges::check(Operation::Install { mount_bpffs: false })
        .map_err(|error| describe(&error))?;
    crate::mounts::cgroup2_root().map_err(|error| describe(&error))?;
    let btf = loader::btf().map_err(|error| {
        format!(
            "the kernel has no BTF ({}); CONFIG_DEBUG_INFO_BTF is needed to read process \
             start times and to hook process exit",
            describe(&error)
        )
    })?;
    let mut ebpf = load(None).map_err(|error| describe(&error))?;
    for program in PROGRAMS.into_iter().chain([PROG_ITER_TASK]) {
        let program = crate::helper_probe::in_place_of(program);
        load_program(&mut ebpf, program, btf).map_err(|error| refusal(program, &error))?;
    }
    Ok(())
}

/// Whether this kernel takes the nftables backend's table, chain and rule (nf_tables, its
/// `inet` family, the `socket`, `ct` mark, `bitwise` and `limit` expressions), by trying in a network namespace
/// of its own that vanishes with the thread.
fn nftables_support() -> Result<(), String> {
    let root = crate::mounts::cgroup2_root().map_err(|error| describe(&error))?;
    let cgroup_id = crate::mounts::cgroup_id(&root).map_err(|error| describe(&error))?;
    in_own_namespace(|| {
        let rules = crate::nft_netlink::Rules {
            up: vec![crate::nft_netlink::UploadRule {
                cgroup_id,
                level: 0,
                rate: 1 << 20,
                burst: 0,
            }],
            down: vec![crate::nft_netlink::DownloadRule {
                cgroup_id,
                level: 0,
                mark: crate::nft_netlink::MARK_MASK,
                rate: 1 << 20,
                burst: 0,
            }],
        };
        crate::nft_netlink::replace(&rules).map_err(|error| {
            chadthrottle_core::kernel_floor::nft_socket_cgroup_refusal(
                error.raw_os_error(),
                &crate::loader::osrelease(),
            )
            .unwrap_or_else(|| {
                format!(
                    "the kernel refused an nftables table with socket cgroupv2, conntrack mark \
                     and limit rules (CONFIG_NF_TABLES, CONFIG_NF_TABLES_INET, \
                     CONFIG_NFT_SOCKET, CONFIG_NFT_CT, CONFIG_NF_CONNTRACK_MARK, \
                     CONFIG_NFT_LIMIT): {error}"
                )
            })
        })
    })
}

/// Whether this kernel can carry the qdisc backend for `direction`, by trying in a network
/// namespace of its own that vanishes with the thread: an IFB device, an HTB qdisc and
/// class on it, and for downloads an ingress qdisc with the classifier `classifier_fd`
/// behind a mirred redirect. Nothing outside that namespace is touched.
fn qdisc_support(direction: Direction, classifier_fd: Option<u32>) -> Result<(), String> {
    in_own_namespace(|| {
        let mut rtnl = Rtnl::open().map_err(|e| format!("rtnetlink: {e}"))?;
        let ifb = rtnl
            .add_ifb("ct-probe", 10)
            .map_err(|e| format!("cannot create an IFB device (CONFIG_IFB): {e}"))?;
        rtnl.add_htb_root(ifb, QDISC_HANDLE)
            .map_err(|e| format!("cannot add an HTB qdisc (CONFIG_NET_SCH_HTB): {e}"))?;
        rtnl.set_class(
            ifb,
            QDISC_HANDLE,
            htb_class::class_id(1),
            1 << 20,
            1 << 20,
            1514,
        )
        .map_err(|e| format!("cannot add an HTB class: {e}"))?;
        if direction == Direction::Down {
            let fd = classifier_fd.ok_or("the classifier was not loaded")?;
            rtnl.add_ingress(ifb).map_err(|e| {
                format!("cannot add an ingress qdisc (CONFIG_NET_SCH_INGRESS): {e}")
            })?;
            rtnl.add_redirect_filter(ifb, false, fd, PROG_TC_INGRESS, ifb)
                .map_err(|e| {
                    format!(
                        "cannot add a BPF filter with a mirred action \
                                 (CONFIG_NET_CLS_BPF, CONFIG_NET_ACT_MIRRED): {e}"
                    )
                })?;
        }
        Ok(())
    })
}

/// Whether this kernel takes the tc_police backend's filter (an ingress qdisc, the
/// classifier `classifier_fd` with a police action), by trying on the loopback of a network
/// namespace of its own that vanishes with the thread.
fn police_support(classifier_fd: u32) -> Result<(), String> {
    in_own_namespace(|| {
        let mut rtnl = Rtnl::open().map_err(|e| format!("rtnetlink: {e}"))?;
        let links = rtnl.links().map_err(|e| format!("list interfaces: {e}"))?;
        let lo = links
            .iter()
            .find(|link| link.loopback)
            .ok_or("a new network namespace has no loopback")?;
        rtnl.add_ingress(lo.index)
            .map_err(|e| format!("cannot add an ingress qdisc (CONFIG_NET_SCH_INGRESS): {e}"))?;
        rtnl.set_police_filter(
            lo.index,
            false,
            1,
            (classifier_fd, PROG_TC_POLICE),
            1 << 20,
            1 << 20,
        )
        .map_err(|e| {
            format!(
                "the kernel has no tc police action (CONFIG_NET_ACT_POLICE) or no BPF \
                 classifier (CONFIG_NET_CLS_BPF): adding a BPF filter with a police action \
                 failed: {e}"
            )
        })
    })
}

/// Runs `work` on a thread of its own in a new network namespace, which vanishes with the
/// thread: what a probe builds there touches nothing outside.
fn in_own_namespace(work: impl FnOnce() -> Result<(), String> + Send) -> Result<(), String> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                // SAFETY: unshare(CLONE_NEWNET) moves only this thread, which ends here.
                if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                    return Err(format!(
                        "cannot create a network namespace to try it in: {}",
                        std::io::Error::last_os_error()
                    ));
                }
                work()
            })
            .join()
            .unwrap_or_else(|_| Err("the probe thread panicked".into()))
    })
}
