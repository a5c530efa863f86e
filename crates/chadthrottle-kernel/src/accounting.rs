//! Reading the datapath's accounting of every process and connection: the eBPF usage
//! source behind `chadthrottle top`.
//!
//! The datapath counts every packet of every socket that has an owner. Sockets created
//! after the datapath was attached have one; [`Accounting::adopt_open_sockets`] gives
//! the older ones in the cgroup scope their holder as owner (never taking over a socket
//! that already has one).

use crate::backfill::{Stamp, backfill};
use crate::clock;
use crate::config::Config;
use crate::error::Error;
use crate::install;
use crate::layout::{self, Acct, Conn, Owner, ProcInfo, SockState};
use crate::names::{MAP_CONNS, MAP_OWNER, MAP_PROC_ACCT, MAP_PROC_INFO};
use crate::pins::PinnedMaps;
use aya::maps::{HashMap, MapData, MapError, PerCpuHashMap, SkStorage};
use chadthrottle_core::ProcessRef;
use chadthrottle_core::process::cgroup_within;
use chadthrottle_core::usage::{
    ConnectionReading, Counters, InterfaceReading, ProcessReading, Protocol, Reading,
    tcp_state_name,
};
use std::collections::HashMap as StdHashMap;
use std::path::PathBuf;

/// Update flag: only create, never overwrite.
const BPF_NOEXIST: u64 = 1;

/// Name and command line read from /proc for processes the datapath has no record of
/// (their sockets predate it), and when they were first seen gone.
#[derive(Debug, Clone)]
struct ProcfsInfo {
    name: String,
    cmdline: String,
    gone_at_ns: Option<u64>,
}

/// The accounting maps of an installed datapath.
pub struct Accounting {
    proc_acct: PerCpuHashMap<MapData, Owner, Acct>,
    proc_info: HashMap<MapData, Owner, ProcInfo>,
    conns: HashMap<MapData, u64, Conn>,
    owner: SkStorage<MapData, SockState>,
    procfs: StdHashMap<Owner, ProcfsInfo>,
    /// This boot and this install of the counters map (its kernel id): a `reset` and a
    /// reinstall, or a reboot, give another, so a reader can tell counters that started
    /// again at zero.
    epoch: String,
    /// The counters map's kernel id, and where it is pinned: a `reset` unpins it (this
    /// source then holds maps nothing updates), a new install pins another.
    map_id: u32,
    pin: PathBuf,
}

impl Accounting {
    /// Opens the accounting of the datapath described by `config`, installing the
    /// datapath if it is not there.
    pub fn install(config: &Config) -> Result<Accounting, Error> {
        Accounting::from_pins(
            install::install(config)?,
            config.pin_dir.join(MAP_PROC_ACCT),
        )
    }

    fn from_pins(pins: PinnedMaps, pin: PathBuf) -> Result<Accounting, Error> {
        let map_id = pins
            .proc_acct
            .info()
            .map_err(Error::map("read the id of", MAP_PROC_ACCT))?
            .id();
        let boot_id = clock::boot_id().map_err(Error::io("read", clock::BOOT_ID))?;
        Ok(Accounting {
            epoch: format!("{boot_id}/{map_id}"),
            map_id,
            pin,
            proc_acct: layout::typed(MAP_PROC_ACCT, pins.proc_acct)?,
            proc_info: layout::typed(MAP_PROC_INFO, pins.proc_info)?,
            conns: layout::typed(MAP_CONNS, pins.conns)?,
            owner: layout::typed(MAP_OWNER, pins.owner)?,
            procfs: StdHashMap::new(),
        })
    }

    /// Gives every socket without an owner, held by a process in `scope` (a cgroup2 path
    /// as /proc/PID/cgroup shows it), its holder as owner; returns how many were stamped.
    /// A socket shared by several processes goes to whichever is visited first.
    pub fn adopt_open_sockets(&mut self, scope: &str) -> usize {
        let Ok(processes) = procfs::process::all_processes() else {
            return 0;
        };
        let mut stamped = 0;
        for process in processes.filter_map(Result::ok) {
            let Some(info) = u32::try_from(process.pid)
                .ok()
                .and_then(crate::procs::inspect)
            else {
                continue;
            };
            let in_scope = info
                .cgroup
                .as_deref()
                .is_some_and(|cgroup| cgroup_within(cgroup, scope));
            if info.kernel_thread || info.pid != info.tgid || !in_scope {
                continue;
            }
            let owner = Owner {
                tgid: info.tgid,
                _pad: 0,
                start_time: info.start_time,
            };
            // a process that exits meanwhile, or refuses pidfd_getfd, keeps its sockets
            // unattributed; that is all
            let adopted = backfill(owner, &mut self.owner, Stamp::Unowned).unwrap_or(0);
            if adopted > 0 {
                let cmdline = process.cmdline().unwrap_or_default();
                self.record_process(owner, &info.name, &cmdline);
            }
            stamped += adopted;
        }
        stamped
    }

    /// Writes what `cgroup/sock_create` would have recorded for a process whose sockets
    /// predate the datapath, so that it keeps its name after it exits (and the exit hook
    /// can mark it). An existing record is kept.
    fn record_process(&mut self, owner: Owner, name: &str, args: &[String]) {
        let mut info = ProcInfo {
            comm: layout::comm_bytes(name),
            exit_ns: 0,
            cmdline_len: 0,
            _pad: 0,
            cmdline: [0; layout::CMDLINE_LEN],
        };
        let joined: Vec<u8> = args
            .iter()
            .flat_map(|arg| arg.bytes().chain(std::iter::once(0)))
            .take(layout::CMDLINE_LEN)
            .collect();
        info.cmdline[..joined.len()].copy_from_slice(&joined);
        info.cmdline_len = joined.len() as u32;
        // another record (from sock_create) or a full table: either way nothing to add
        let _kept = self.proc_info.insert(owner, info, BPF_NOEXIST);
    }

    /// Which run of the counters this is (see the field).
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// Whether the counters map pinned now is the one this reads (see the field).
    pub fn is_current(&self) -> Result<bool, Error> {
        if !self.pin.exists() {
            return Ok(false);
        }
        let pinned =
            MapData::from_pin(&self.pin).map_err(Error::map("open pinned", MAP_PROC_ACCT))?;
        let info = pinned
            .info()
            .map_err(Error::map("read the id of", MAP_PROC_ACCT))?;
        Ok(info.id() == self.map_id)
    }

    /// Everything counted so far, with the interfaces' counters.
    pub fn read(&mut self) -> Result<Reading, Error> {
        let at_ns = clock::monotonic_ns();
        let mut processes = Vec::new();
        let owners: Vec<Owner> = self
            .proc_acct
            .keys()
            .collect::<Result<_, _>>()
            .map_err(Error::map("list", MAP_PROC_ACCT))?;
        for owner in owners {
            let values = match self.proc_acct.get(&owner, 0) {
                Ok(values) => values,
                Err(MapError::KeyNotFound) => continue, // evicted meanwhile
                Err(error) => return Err(Error::map("read", MAP_PROC_ACCT)(error)),
            };
            let counters = values
                .iter()
                .fold(Counters::default(), |sum, cpu| Counters {
                    rx_bytes: sum.rx_bytes.wrapping_add(cpu.rx_bytes),
                    tx_bytes: sum.tx_bytes.wrapping_add(cpu.tx_bytes),
                    rx_packets: sum.rx_packets.wrapping_add(cpu.rx_packets),
                    tx_packets: sum.tx_packets.wrapping_add(cpu.tx_packets),
                });
            let (name, cmdline, exited_at_ns) = match self.proc_info.get(&owner, 0) {
                Ok(info) => (
                    info.comm(),
                    info.cmdline(),
                    (info.exit_ns != 0).then_some(info.exit_ns),
                ),
                Err(_) => {
                    let known = self.procfs_info(owner, at_ns);
                    (known.name, known.cmdline, known.gone_at_ns)
                }
            };
            processes.push(ProcessReading {
                process: ProcessRef {
                    pid: owner.tgid,
                    start_time: owner.start_time,
                },
                name,
                cmdline,
                counters,
                exited_at_ns,
            });
        }
        // forget /proc facts of processes the datapath no longer holds (evicted)
        let held: std::collections::HashSet<ProcessRef> =
            processes.iter().map(|p| p.process).collect();
        self.procfs.retain(|owner, _| {
            held.contains(&ProcessRef {
                pid: owner.tgid,
                start_time: owner.start_time,
            })
        });
        let mut connections = Vec::new();
        for entry in self.conns.iter() {
            let (cookie, conn) = match entry {
                Ok(entry) => entry,
                Err(MapError::KeyNotFound) => continue,
                Err(error) => return Err(Error::map("read", MAP_CONNS)(error)),
            };
            let protocol = match i32::from(conn.protocol) {
                libc::IPPROTO_TCP => Protocol::Tcp,
                libc::IPPROTO_UDP => Protocol::Udp,
                _ => continue,
            };
            let (local, remote) = conn.endpoints();
            connections.push(ConnectionReading {
                id: cookie,
                process: ProcessRef {
                    pid: conn.owner.tgid,
                    start_time: conn.owner.start_time,
                },
                protocol,
                local,
                remote,
                state: match protocol {
                    Protocol::Tcp => tcp_state_name(conn.state).to_owned(),
                    Protocol::Udp => String::new(),
                },
                counters: Counters {
                    rx_bytes: conn.acct.rx_bytes,
                    tx_bytes: conn.acct.tx_bytes,
                    rx_packets: conn.acct.rx_packets,
                    tx_packets: conn.acct.tx_packets,
                },
                last_active_ns: conn.last_ns,
            });
        }
        Ok(Reading {
            at_ns,
            processes,
            connections,
            interfaces: interfaces(),
        })
    }

    fn procfs_info(&mut self, owner: Owner, now_ns: u64) -> ProcfsInfo {
        let info = self.procfs.entry(owner).or_insert_with(|| {
            let process = i32::try_from(owner.tgid)
                .ok()
                .and_then(|pid| procfs::process::Process::new(pid).ok());
            let name = process
                .as_ref()
                .and_then(|p| p.stat().ok())
                .filter(|stat| stat.starttime == owner.start_time)
                .map(|stat| stat.comm);
            let cmdline = process
                .as_ref()
                .and_then(|p| p.cmdline().ok())
                .map(|args| args.join(" "));
            ProcfsInfo {
                gone_at_ns: name.is_none().then_some(now_ns),
                name: name.unwrap_or_else(|| "?".to_owned()),
                cmdline: cmdline.unwrap_or_default(),
            }
        });
        if info.gone_at_ns.is_none() && !crate::procs::is_alive(owner.tgid, owner.start_time) {
            info.gone_at_ns = Some(now_ns);
        }
        info.clone()
    }
}

/// The IP addresses of each interface in this network namespace (`getifaddrs`).
fn interface_addresses() -> StdHashMap<String, Vec<std::net::IpAddr>> {
    let mut addresses: StdHashMap<String, Vec<std::net::IpAddr>> = StdHashMap::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list head we free below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return addresses;
    }
    let mut entry = list;
    while !entry.is_null() {
        // SAFETY: entry is a node of the list getifaddrs returned, not yet freed.
        let node = unsafe { &*entry };
        entry = node.ifa_next;
        if node.ifa_addr.is_null() || node.ifa_name.is_null() {
            continue;
        }
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        let name = unsafe { std::ffi::CStr::from_ptr(node.ifa_name) }
            .to_string_lossy()
            .into_owned();
        // SAFETY: ifa_addr points to a sockaddr whose family says its real type.
        let ip = unsafe {
            match i32::from((*node.ifa_addr).sa_family) {
                libc::AF_INET => {
                    let v4 = &*node.ifa_addr.cast::<libc::sockaddr_in>();
                    Some(std::net::IpAddr::from(v4.sin_addr.s_addr.to_ne_bytes()))
                }
                libc::AF_INET6 => {
                    let v6 = &*node.ifa_addr.cast::<libc::sockaddr_in6>();
                    Some(std::net::IpAddr::from(v6.sin6_addr.s6_addr))
                }
                _ => None,
            }
        };
        if let Some(ip) = ip {
            addresses.entry(name).or_default().push(ip);
        }
    }
    // SAFETY: list came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(list) };
    addresses
}

/// Counters (/proc/net/dev) and addresses of every interface in this network namespace.
pub fn interfaces() -> Vec<InterfaceReading> {
    let Ok(devices) = procfs::net::dev_status() else {
        return Vec::new();
    };
    let mut addresses = interface_addresses();
    devices
        .into_values()
        .map(|device| InterfaceReading {
            addresses: addresses.remove(&device.name).unwrap_or_default(),
            name: device.name,
            rx_bytes: device.recv_bytes,
            tx_bytes: device.sent_bytes,
        })
        .collect()
}
