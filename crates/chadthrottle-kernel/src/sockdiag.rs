//! The usage source without eBPF: TCP sockets' own counters from `sock_diag`
//! (`tcpi_bytes_acked`, `tcpi_bytes_received`), attributed to processes through their
//! descriptor tables in /proc. Needs no privileges (an unprivileged user sees the
//! processes whose /proc/PID/fd it may read), never captures packets, counts TCP only.

use crate::clock;
use crate::error::Error;
use chadthrottle_core::ProcessRef;
use chadthrottle_core::usage::{
    ConnectionReading, Counters, ProcessReading, Protocol, Reading, tcp_state_name,
};
use netlink_packet_core::{
    NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_sock_diag::SockDiagMessage;
use netlink_packet_sock_diag::constants::{AF_INET, AF_INET6, IPPROTO_TCP};
use netlink_packet_sock_diag::inet::{
    ExtensionFlags, InetRequest, SocketId, StateFlags, nlas::Nla,
};
use netlink_sys::protocols::NETLINK_SOCK_DIAG;
use netlink_sys::{Socket, SocketAddr};
use procfs::process::FDTarget;
use std::collections::HashMap;

/// One TCP socket as sock_diag reports it.
#[derive(Debug, Clone)]
struct TcpSocket {
    inode: u64,
    local: std::net::SocketAddr,
    remote: std::net::SocketAddr,
    state: u8,
    bytes_acked: u64,
    bytes_received: u64,
}

/// Dumps every TCP socket of one address family with its `tcp_info`.
fn dump(family: u8) -> Result<Vec<TcpSocket>, Error> {
    let io = |what: &'static str| Error::io(what, "sock_diag");
    let mut socket = Socket::new(NETLINK_SOCK_DIAG).map_err(io("open"))?;
    socket.bind_auto().map_err(io("bind"))?;
    socket
        .connect(&SocketAddr::new(0, 0))
        .map_err(io("connect"))?;
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    let mut request = NetlinkMessage::new(
        header,
        SockDiagMessage::InetRequest(InetRequest {
            family,
            protocol: IPPROTO_TCP,
            extensions: ExtensionFlags::INFO,
            states: StateFlags::all(),
            socket_id: if family == AF_INET {
                SocketId::new_v4()
            } else {
                SocketId::new_v6()
            },
        })
        .into(),
    );
    request.finalize();
    let mut buffer = vec![0; request.buffer_len()];
    request.serialize(&mut buffer);
    socket.send(&buffer, 0).map_err(io("send to"))?;

    let mut sockets = Vec::new();
    let mut receive = vec![0; 1 << 16];
    loop {
        let size = socket
            .recv(&mut &mut receive[..], 0)
            .map_err(io("receive from"))?;
        let mut offset = 0;
        while offset < size {
            let message = NetlinkMessage::<SockDiagMessage>::deserialize(&receive[offset..size])
                .map_err(|error| io("parse")(std::io::Error::other(error.to_string())))?;
            let length = message.header.length as usize;
            match message.payload {
                NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(response)) => {
                    let info = response.nlas.iter().find_map(|nla| match nla {
                        Nla::TcpInfo(info) => Some(info),
                        _ => None,
                    });
                    let id = &response.header.socket_id;
                    sockets.push(TcpSocket {
                        inode: u64::from(response.header.inode),
                        local: std::net::SocketAddr::new(id.source_address, id.source_port),
                        remote: std::net::SocketAddr::new(
                            id.destination_address,
                            id.destination_port,
                        ),
                        state: response.header.state,
                        bytes_acked: info.map_or(0, |i| i.bytes_acked),
                        bytes_received: info.map_or(0, |i| i.bytes_received),
                    });
                }
                NetlinkPayload::Done(_) => return Ok(sockets),
                NetlinkPayload::Error(error) => {
                    return Err(io("dump")(std::io::Error::other(format!("{error:?}"))));
                }
                _ => {}
            }
            if length == 0 {
                break;
            }
            offset += length;
        }
    }
}

#[derive(Debug, Clone)]
struct Holder {
    process: ProcessRef,
    name: String,
    cmdline: String,
}

/// Socket inode → the process holding it, for every process whose descriptors we may read.
fn holders() -> HashMap<u64, Holder> {
    let mut map = HashMap::new();
    let Ok(processes) = procfs::process::all_processes() else {
        return map;
    };
    for process in processes.filter_map(Result::ok) {
        let (Ok(stat), Ok(fds)) = (process.stat(), process.fd()) else {
            continue;
        };
        let Ok(pid) = u32::try_from(process.pid) else {
            continue;
        };
        let mut holder = None;
        for fd in fds.filter_map(Result::ok) {
            if let FDTarget::Socket(inode) = fd.target {
                let holder = holder.get_or_insert_with(|| Holder {
                    process: ProcessRef {
                        pid,
                        start_time: stat.starttime,
                    },
                    name: stat.comm.clone(),
                    cmdline: process.cmdline().map(|a| a.join(" ")).unwrap_or_default(),
                });
                map.entry(inode).or_insert_with(|| holder.clone());
            }
        }
    }
    map
}

#[derive(Debug)]
struct ProcessTotals {
    holder: Holder,
    counters: Counters,
    exited_at_ns: Option<u64>,
}

/// The fallback usage source. Totals count from the first reading: a socket's bytes
/// before then count once when it is first seen, and a closed socket's bytes stay.
#[derive(Debug, Default)]
pub struct SockDiag {
    /// Last counters of each socket seen, by inode: (tx, rx).
    sockets: HashMap<u64, (u64, u64)>,
    processes: HashMap<ProcessRef, ProcessTotals>,
}

impl SockDiag {
    pub fn new() -> SockDiag {
        SockDiag::default()
    }

    pub fn read(&mut self) -> Result<Reading, Error> {
        let at_ns = clock::monotonic_ns();
        let mut sockets = dump(AF_INET)?;
        sockets.extend(dump(AF_INET6)?);
        let holders = holders();
        let mut connections = Vec::new();
        let mut alive = HashMap::new();
        for socket in sockets {
            let Some(holder) = holders.get(&socket.inode) else {
                continue; // not ours to see, or a timewait socket without inode
            };
            let (last_tx, last_rx) = self
                .sockets
                .insert(socket.inode, (socket.bytes_acked, socket.bytes_received))
                .unwrap_or((0, 0));
            let totals = self
                .processes
                .entry(holder.process)
                .or_insert_with(|| ProcessTotals {
                    holder: holder.clone(),
                    counters: Counters::default(),
                    exited_at_ns: None,
                });
            totals.counters.tx_bytes += socket.bytes_acked.saturating_sub(last_tx);
            totals.counters.rx_bytes += socket.bytes_received.saturating_sub(last_rx);
            alive.insert(socket.inode, ());
            connections.push(ConnectionReading {
                id: socket.inode,
                process: holder.process,
                protocol: Protocol::Tcp,
                local: socket.local,
                remote: socket.remote,
                state: tcp_state_name(u32::from(socket.state)).to_owned(),
                counters: Counters {
                    tx_bytes: socket.bytes_acked,
                    rx_bytes: socket.bytes_received,
                    ..Counters::default()
                },
                last_active_ns: at_ns,
            });
        }
        self.sockets.retain(|inode, _| alive.contains_key(inode));
        for (process, totals) in &mut self.processes {
            if totals.exited_at_ns.is_none()
                && !crate::procs::is_alive(process.pid, process.start_time)
            {
                totals.exited_at_ns = Some(at_ns);
            }
        }
        let linger_from = at_ns.saturating_sub(chadthrottle_core::monitor::LINGER_NS);
        self.processes
            .retain(|_, totals| totals.exited_at_ns.is_none_or(|t| t >= linger_from));
        let processes = self
            .processes
            .values()
            .map(|totals| ProcessReading {
                process: totals.holder.process,
                name: totals.holder.name.clone(),
                cmdline: totals.holder.cmdline.clone(),
                counters: totals.counters,
                exited_at_ns: totals.exited_at_ns,
            })
            .collect();
        Ok(Reading {
            at_ns,
            processes,
            connections,
            interfaces: crate::accounting::interfaces(),
        })
    }
}
