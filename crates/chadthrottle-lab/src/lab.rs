//! One lab: two network namespaces (a client side, whose processes are limited, and a
//! server side), joined by a veth pair and optionally by a delayed link (netem where the
//! kernel has it, else a TAP pair and a userspace delay line), a private cgroup2 directory
//! for the client side, and a private pin directory. Everything has a unique name and is
//! removed on drop, also when the test fails.

use crate::cgroup::TestCgroup;
use crate::delay::{DelayLine, End};
use crate::endpoint::Endpoint;
use crate::net::Added;
use crate::netem;
use crate::netns::NetNs;
use crate::protocol::{EndpointArgs, Proto, Role};
use crate::spawn::Placement;
use anyhow::Context as _;
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

// 198.18.0.0/15 and 2001:2::/48 are reserved for benchmarking (RFC 2544, RFC 5180).
const VETH_CLIENT: (Ipv4Addr, Ipv6Addr) = (
    Ipv4Addr::new(198, 18, 0, 1),
    Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1),
);
const VETH_SERVER: (Ipv4Addr, Ipv6Addr) = (
    Ipv4Addr::new(198, 18, 0, 2),
    Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2),
);
const DELAY_CLIENT: (Ipv4Addr, Ipv6Addr) = (
    Ipv4Addr::new(198, 18, 1, 1),
    Ipv6Addr::new(0x2001, 2, 0, 1, 0, 0, 0, 1),
);
const DELAY_SERVER: (Ipv4Addr, Ipv6Addr) = (
    Ipv4Addr::new(198, 18, 1, 2),
    Ipv6Addr::new(0x2001, 2, 0, 1, 0, 0, 0, 2),
);

const VETH_CLIENT_NAME: &str = "veth-c";
const TAP_CLIENT: &str = "tap-c";
const NETEM_CLIENT: &str = "dly-c";
const NETEM_SERVER: &str = "dly-s";

/// Names a qdisc kind (one that needs no options, such as `fq`) that every lab puts as
/// the root of the client side's interface to the server, in place of veth's default
/// (no queue): for measuring what a qdisc on the sender's interface changes (BENCHMARKS.md,
/// "sch_fq in a 6.1 guest"). Unset, the interface keeps its default.
pub const CLIENT_QDISC_ENV: &str = "CHADTHROTTLE_LAB_CLIENT_QDISC";

/// What delays the lab's delayed link, so that a report can say what it measured over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DelayKind {
    /// A second veth pair whose server end holds every packet for the whole round trip in
    /// a netem qdisc: the kernel's timers, no userspace hop, and the client side's
    /// interface as bare as the plain veth's (the qdisc backends install theirs there).
    Netem,
    /// A TAP pair joined by threads that hold each frame for half the round trip each way
    /// (`delay`): for kernels without netem, such as this host's.
    Userspace,
}

impl std::fmt::Display for DelayKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DelayKind::Netem => "netem (the kernel's qdisc on the server side's egress)",
            DelayKind::Userspace => "the userspace TAP delay line (no netem in this kernel)",
        })
    }
}

/// The delayed link a lab holds.
enum Delay {
    /// The veth pair and its qdisc go with the namespaces.
    Netem,
    Line(DelayLine),
}

impl Delay {
    fn kind(&self) -> DelayKind {
        match self {
            Delay::Netem => DelayKind::Netem,
            Delay::Line(_) => DelayKind::Userspace,
        }
    }
}

/// A link between the lab's namespaces whose round trip takes `rtt`: netem if the kernel
/// has it, else the userspace delay line.
fn delayed_link(client_ns: &NetNs, server_ns: &NetNs, rtt: Duration) -> anyhow::Result<Delay> {
    let server_fd = server_ns.as_fd().as_raw_fd();
    client_ns.run(|| crate::net::add_veth(NETEM_CLIENT, NETEM_SERVER, server_fd))??;
    match server_ns.run(|| netem::add_root(NETEM_SERVER, rtt))?? {
        Added::Added => {
            client_ns.run(|| crate::net::configure(NETEM_CLIENT, &addresses(DELAY_CLIENT)))??;
            server_ns.run(|| crate::net::configure(NETEM_SERVER, &addresses(DELAY_SERVER)))??;
            Ok(Delay::Netem)
        }
        Added::Missing => {
            client_ns.run(|| crate::net::delete_link(NETEM_CLIENT))??;
            let line = DelayLine::new(
                &End {
                    netns: client_ns,
                    name: TAP_CLIENT,
                    addresses: &addresses(DELAY_CLIENT),
                },
                &End {
                    netns: server_ns,
                    name: "tap-s",
                    addresses: &addresses(DELAY_SERVER),
                },
                rtt / 2,
            )?;
            Ok(Delay::Line(line))
        }
    }
}

fn addresses((v4, v6): (Ipv4Addr, Ipv6Addr)) -> [(IpAddr, u8); 2] {
    [(IpAddr::V4(v4), 24), (IpAddr::V6(v6), 64)]
}

/// A bpffs pin directory of the lab's own, under /tmp; on drop every pin directory in
/// that bpffs (a test may install a second datapath beside the first) is reset and the
/// bpffs unmounted.
struct PinDir {
    base: PathBuf,
    pins: PathBuf,
}

/// Resets every pin directory in the lab bpffs under `base`, unmounts it and removes
/// `base`.
fn remove_pin_base(base: &Path) {
    let mount = base.join("bpf");
    let entries = std::fs::read_dir(&mount)
        .into_iter()
        .flatten()
        .filter_map(Result::ok);
    for dir in entries.filter(|entry| entry.path().is_dir()) {
        let _already_clean = chadthrottle_kernel::reset(&dir.path());
    }
    let mounted =
        || chadthrottle_kernel::mounts::mount_of(&mount).is_some_and(|m| m.point == mount);
    if mounted() {
        if let Ok(path) = std::ffi::CString::new(mount.as_os_str().as_encoded_bytes()) {
            // SAFETY: path is a valid NUL-terminated string.
            unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) };
        }
    }
    if !mounted() {
        let _best_effort = std::fs::remove_dir_all(base);
    }
    // the record ChadThrottle kept of the bpffs it mounted there goes with the mount
    chadthrottle_kernel::mounts::forget_stale_bpffs();
}

impl Drop for PinDir {
    fn drop(&mut self) {
        remove_pin_base(&self.base);
    }
}

/// Every lab's name starts with this (its cgroup and its /tmp directory):
/// `ct-test-<pid>-<n>-<test>`.
const LAB_PREFIX: &str = "ct-test-";

/// Whether the process that named a lab `name` is gone.
fn abandoned(name: &str) -> bool {
    let creator = name
        .strip_prefix(LAB_PREFIX)
        .and_then(|rest| rest.split('-').next());
    creator
        .and_then(|pid| pid.parse::<u32>().ok())
        .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists())
}

/// Removes what labs of processes that are gone left behind (a test or a benchmark killed
/// before its guards ran): their pins and bpffs mounts, then their cgroups.
fn sweep_abandoned() {
    let abandoned_in = |dir: &Path| -> Vec<PathBuf> {
        let entries = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .filter_map(Result::ok);
        entries
            .filter(|entry| abandoned(&entry.file_name().to_string_lossy()))
            .map(|entry| entry.path())
            .collect()
    };
    for base in abandoned_in(&std::env::temp_dir()) {
        remove_pin_base(&base);
    }
    if let Ok(root) = chadthrottle_kernel::mounts::cgroup2_root() {
        for cgroup in abandoned_in(&root) {
            crate::cgroup::remove(&cgroup);
        }
    }
}

/// Serialises labs across processes: measurements on a 2-core machine disturb each other.
struct LabLock {
    _file: File,
}

fn lab_lock() -> anyhow::Result<LabLock> {
    let path = Path::new("/run/lock/chadthrottle-lab.lock");
    std::fs::create_dir_all("/run/lock")?;
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    // SAFETY: the descriptor is open for the duration of the call.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    Ok(LabLock { _file: file })
}

pub struct Lab {
    pub name: String,
    // dropped in this order: pins (detaches the datapath), cgroup (ends its processes),
    // the delayed link, then the namespaces
    pins: PinDir,
    cgroup: TestCgroup,
    delay: Option<Delay>,
    pub client_ns: NetNs,
    pub server_ns: NetNs,
    _lock: LabLock,
}

/// Why the lab cannot run here, if it cannot (not root, no cgroup2): tests skip with it.
pub fn unavailable() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some(
            "the network lab needs root (namespaces, cgroups, BPF): run the tests with sudo".into(),
        );
    }
    chadthrottle_kernel::mounts::cgroup2_root()
        .err()
        .map(|error| format!("the network lab needs cgroup2: {error}"))
}

impl Lab {
    /// A lab for the test `test`; with `delay`, a second link whose round trip takes it.
    pub fn new(test: &str, delay: Option<Duration>) -> anyhow::Result<Lab> {
        static COUNT: AtomicU32 = AtomicU32::new(0);
        let lock = lab_lock()?;
        sweep_abandoned();
        let short: String = test
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(12)
            .collect();
        let name = format!(
            "{LAB_PREFIX}{}-{}-{short}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        );
        let base = std::env::temp_dir().join(&name);
        let pins = PinDir {
            pins: base.join("bpf").join("pins"),
            base,
        };
        let cgroup = TestCgroup::new(&name).context("cannot create the lab's cgroup")?;
        let client_ns = NetNs::new().context("cannot create the client namespace")?;
        let server_ns = NetNs::new().context("cannot create the server namespace")?;
        let server_fd = server_ns.as_fd().as_raw_fd();
        client_ns.run(|| crate::net::add_veth(VETH_CLIENT_NAME, "veth-s", server_fd))??;
        client_ns.run(|| crate::net::configure(VETH_CLIENT_NAME, &addresses(VETH_CLIENT)))??;
        server_ns.run(|| crate::net::configure("veth-s", &addresses(VETH_SERVER)))??;
        let delay = delay
            .map(|rtt| delayed_link(&client_ns, &server_ns, rtt))
            .transpose()
            .context("cannot create the delayed link")?;
        let lab = Lab {
            name,
            pins,
            cgroup,
            delay,
            client_ns,
            server_ns,
            _lock: lock,
        };
        if let Some(kind) = lab.client_qdisc() {
            let device = lab.client_device();
            let added = lab
                .client_ns
                .run(|| crate::net::add_root_qdisc(device, &kind, None))??;
            anyhow::ensure!(
                added == Added::Added,
                "{CLIENT_QDISC_ENV}={kind}: this kernel has no such qdisc"
            );
        }
        Ok(lab)
    }

    /// The root qdisc [`CLIENT_QDISC_ENV`] asks for on the client side's interface.
    pub fn client_qdisc(&self) -> Option<String> {
        std::env::var(CLIENT_QDISC_ENV)
            .ok()
            .filter(|kind| !kind.is_empty())
    }

    /// The server address traffic uses: across the delayed link if the lab has one.
    pub fn server_ip(&self, family: Family) -> IpAddr {
        let (v4, v6) = if self.delay.is_some() {
            DELAY_SERVER
        } else {
            VETH_SERVER
        };
        match family {
            Family::V4 => IpAddr::V4(v4),
            Family::V6 => IpAddr::V6(v6),
        }
    }

    /// Frames the userspace delay line lost so far (0 without one; netem's limit holds
    /// the fastest lab flow for the whole delay, see `netem::packet_limit`).
    pub fn delay_losses(&self) -> u64 {
        match &self.delay {
            Some(Delay::Line(line)) => line.lost_frames(),
            Some(Delay::Netem) | None => 0,
        }
    }

    /// What delays the delayed link, if the lab has one.
    pub fn delay_kind(&self) -> Option<DelayKind> {
        self.delay.as_ref().map(Delay::kind)
    }

    /// The line a benchmark prints under rows over the delayed link: what the link was,
    /// and for the userspace line the frames it lost (`lost`, summed over the labs of a
    /// run); `None` without a delayed link.
    pub fn delay_note(kind: Option<DelayKind>, lost: u64) -> Option<String> {
        match kind? {
            DelayKind::Userspace => Some(format!(
                "(delayed link: the userspace line; {lost} frames lost by the lab itself)"
            )),
            DelayKind::Netem => Some("(delayed link: netem on the server side's egress)".into()),
        }
    }

    /// The cgroup the datapath attaches to and the client processes live in.
    pub fn cgroup(&self) -> &Path {
        self.cgroup.path()
    }

    pub fn pin_dir(&self) -> &Path {
        &self.pins.pins
    }

    /// The datapath configuration confined to this lab.
    pub fn config(&self) -> chadthrottle_kernel::Config {
        chadthrottle_kernel::Config {
            cgroup: self.cgroup().to_owned(),
            pin_dir: self.pin_dir().to_owned(),
            max_limits: chadthrottle_kernel::DEFAULT_MAX_LIMITS,
            max_connections: chadthrottle_kernel::DEFAULT_MAX_CONNECTIONS,
            max_rules: chadthrottle_kernel::DEFAULT_MAX_RULES,
            max_members: chadthrottle_kernel::DEFAULT_MAX_MEMBERS,
            accounting: true,
        }
    }

    /// Environment that confines the `chadthrottle` binary to this lab (its cgroup, its
    /// pins, and the TUI's saved limits in the lab's directory, removed with it).
    pub fn env(&self) -> [(&'static str, PathBuf); 3] {
        [
            ("CHADTHROTTLE_CGROUP", self.cgroup().to_owned()),
            ("CHADTHROTTLE_PIN_DIR", self.pin_dir().to_owned()),
            ("CHADTHROTTLE_SAVED_LIMITS", self.saved_limits()),
        ]
    }

    /// Where the TUI run in this lab saves its limits.
    pub fn saved_limits(&self) -> PathBuf {
        self.pins.base.join("saved-limits.json")
    }

    /// A server endpoint in the server namespace (outside the lab's cgroup: never limited).
    pub fn server(
        &self,
        proto: Proto,
        family: Family,
        cc: Option<&str>,
    ) -> anyhow::Result<Endpoint> {
        self.start_server(Role::Listen, proto, family, cc)
    }

    /// A TCP echo server in the server namespace: the latency probe's far end.
    pub fn echo_server(&self, family: Family) -> anyhow::Result<Endpoint> {
        self.start_server(Role::Echo, Proto::Tcp, family, None)
    }

    fn start_server(
        &self,
        role: Role,
        proto: Proto,
        family: Family,
        cc: Option<&str>,
    ) -> anyhow::Result<Endpoint> {
        let args = EndpointArgs {
            role,
            proto,
            addr: SocketAddr::new(self.server_ip(family), 0),
            cc: cc.map(str::to_owned),
        };
        Endpoint::start(
            &args,
            &Placement {
                netns: Some(&self.server_ns),
                ..Placement::default()
            },
        )
    }

    /// A client endpoint connected to `server`, in the client namespace and the lab's
    /// cgroup; with `pid`, it gets exactly that PID.
    pub fn client(
        &self,
        server: &Endpoint,
        proto: Proto,
        cc: Option<&str>,
        pid: Option<u32>,
    ) -> anyhow::Result<Endpoint> {
        self.start_client(server, proto, cc, pid, &[])
    }

    /// A client endpoint like [`Lab::client`], whose executable is `program`, a copy of
    /// this one (see `Placement`).
    pub fn client_program(
        &self,
        server: &Endpoint,
        proto: Proto,
        program: &Path,
    ) -> anyhow::Result<Endpoint> {
        let args = EndpointArgs {
            role: Role::Connect,
            proto,
            addr: server.ready.addr,
            cc: None,
        };
        let placement = Placement {
            netns: Some(&self.client_ns),
            cgroup: Some(self.cgroup()),
            program: Some(program),
            ..Placement::default()
        };
        Endpoint::start(&args, &placement)
    }

    /// A client endpoint like [`Lab::client`], run by `wrapper` (see `Placement`).
    pub fn client_under(
        &self,
        server: &Endpoint,
        proto: Proto,
        cc: Option<&str>,
        wrapper: &[String],
    ) -> anyhow::Result<Endpoint> {
        self.start_client(server, proto, cc, None, wrapper)
    }

    fn start_client(
        &self,
        server: &Endpoint,
        proto: Proto,
        cc: Option<&str>,
        pid: Option<u32>,
        wrapper: &[String],
    ) -> anyhow::Result<Endpoint> {
        let args = EndpointArgs {
            role: Role::Connect,
            proto,
            addr: server.ready.addr,
            cc: cc.map(str::to_owned),
        };
        let placement = Placement {
            netns: Some(&self.client_ns),
            cgroup: Some(self.cgroup()),
            pid,
            wrapper,
            program: None,
        };
        Endpoint::start(&args, &placement)
    }

    /// The client namespace's interface that traffic to [`Lab::server_ip`] leaves by.
    pub fn client_device(&self) -> &'static str {
        match self.delay {
            Some(Delay::Netem) => NETEM_CLIENT,
            Some(Delay::Line(_)) => TAP_CLIENT,
            None => VETH_CLIENT_NAME,
        }
    }
}
