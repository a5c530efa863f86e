//! Who uses the network: what a usage source reads (counters) and what the monitor
//! makes of it (a [`Snapshot`] with rates).
//!
//! `chadthrottle top --once --json` prints a [`Snapshot`]. The field names listed in the
//! README are a contract: add fields freely, never rename or drop one (a test pins them).
//! rx is download, tx upload; rates in bytes per second, totals in bytes since
//! accounting started.

use crate::direction::PerDirection;
use crate::locality::Locality;
use crate::process::ProcessRef;
use crate::rate::format_rate;
use crate::status::DirectionLimit;
use serde::Serialize;
use std::fmt;
use std::net::SocketAddr;

/// Which layer's bytes a source counts; shown in the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    /// TCP/UDP payload: what applications sent and received (retransmissions included).
    TransportPayload,
    /// TCP payload acknowledged by the peer / received in order (`tcp_info`), TCP only.
    TcpStream,
}

/// Where the figures come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The eBPF datapath: every packet of every process, TCP and UDP.
    Ebpf,
    /// The fallback: `sock_diag` TCP counters and /proc, without eBPF.
    SockDiag,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_packets: u64,
    pub tx_packets: u64,
}

/// A process as a source reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessReading {
    pub process: ProcessRef,
    pub name: String,
    pub cmdline: String,
    pub counters: Counters,
    /// When the process exited (CLOCK_MONOTONIC, ns); sources keep exited processes'
    /// final counters.
    pub exited_at_ns: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

/// A connection (or UDP socket) as a source reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionReading {
    /// Unique while the socket lives (the socket cookie or inode).
    pub id: u64,
    pub process: ProcessRef,
    pub protocol: Protocol,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// TCP state name (`ESTABLISHED`, …); empty for UDP.
    pub state: String,
    pub counters: Counters,
    /// When the connection last carried a packet (CLOCK_MONOTONIC, ns).
    pub last_active_ns: u64,
}

/// An interface's counters (all traffic, every layer the device counts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceReading {
    pub name: String,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// Its IP addresses (connections whose local address is one of them use it).
    pub addresses: Vec<std::net::IpAddr>,
}

/// Everything a source read at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    /// CLOCK_MONOTONIC, ns.
    pub at_ns: u64,
    pub processes: Vec<ProcessReading>,
    pub connections: Vec<ConnectionReading>,
    pub interfaces: Vec<InterfaceReading>,
}

/// A process's limit as shown beside its usage: bytes per second, `None` unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LimitRates {
    pub up: Option<u64>,
    pub down: Option<u64>,
}

impl LimitRates {
    /// The rates of `limits`, as shown beside the usage.
    pub fn of(limits: &PerDirection<Option<DirectionLimit>>) -> LimitRates {
        LimitRates {
            up: limits.up.map(|limit| limit.rate),
            down: limits.down.map(|limit| limit.rate),
        }
    }
}

impl fmt::Display for LimitRates {
    /// `⚡ ↓1MB/s ↑-` as `top` and the TUI show it: download first, `blocked` for a rate
    /// of 0, `-` for a direction without a limit. The space after `⚡` is there because
    /// terminals disagree on whether the emoji takes one cell or two, and one that draws
    /// it in one cell would otherwise overdraw the arrow.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let direction = |rate: Option<u64>| match rate {
            None => "-".to_owned(),
            Some(0) => "blocked".to_owned(),
            Some(rate) => format_rate(rate),
        };
        write!(f, "⚡ ↓{} ↑{}", direction(self.down), direction(self.up))
    }
}

/// Traffic by where the peer is: bytes since the monitor started, and rates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Split {
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_rate: u64,
    pub tx_rate: u64,
}

/// What /proc says about a process, for the TUI's System tab.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProcessDetails {
    pub pid: u32,
    pub cmdline: String,
    pub exe: String,
    pub cwd: String,
    pub user: String,
    /// Resident memory, bytes.
    pub memory: u64,
    pub threads: u64,
}

/// One process in a snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProcessUsage {
    pub pid: u32,
    pub start_time: u64,
    pub name: String,
    pub cmdline: String,
    pub rx_rate: u64,
    pub tx_rate: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub limit: Option<LimitRates>,
    /// The rule that governs the process (its name, as `rules` lists it), when a rule
    /// does; `limit` is then the rule's (a shared rule's rate is the budget of all its
    /// members together). `None` for a process under its own PID limit or none.
    pub rule: Option<String>,
    /// Bytes exchanged with Internet peers and with local ones (see `locality`), from the
    /// connections seen while the monitor ran.
    pub internet: Split,
    pub local: Split,
    /// The process has exited; its final totals stay.
    pub exited: bool,
}

impl ProcessUsage {
    /// Which process (and which incarnation of its PID) the row is.
    pub const fn process(&self) -> ProcessRef {
        ProcessRef {
            pid: self.pid,
            start_time: self.start_time,
        }
    }
}

/// One connection in a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConnectionUsage {
    pub pid: u32,
    pub protocol: Protocol,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub state: String,
    pub locality: Locality,
    pub rx_rate: u64,
    pub tx_rate: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InterfaceUsage {
    pub name: String,
    pub rx_rate: u64,
    pub tx_rate: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub addresses: Vec<std::net::IpAddr>,
}

/// What `top` shows: processes busiest first, then connections and interfaces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    pub interval_ms: u64,
    pub source: Source,
    /// Which bytes the process and connection figures count.
    pub counted: Layer,
    /// Why the figures are limited, when they are (the fallback's reason).
    pub note: Option<String>,
    pub processes: Vec<ProcessUsage>,
    pub interfaces: Vec<InterfaceUsage>,
    pub connections: Vec<ConnectionUsage>,
}

/// The name of a TCP state as the kernel numbers it (`BPF_TCP_*`, the same as `ss`'s).
pub fn tcp_state_name(state: u32) -> &'static str {
    match state {
        1 => "ESTABLISHED",
        2 => "SYN_SENT",
        3 => "SYN_RECV",
        4 => "FIN_WAIT1",
        5 => "FIN_WAIT2",
        6 => "TIME_WAIT",
        7 => "CLOSE",
        8 => "CLOSE_WAIT",
        9 => "LAST_ACK",
        10 => "LISTEN",
        11 => "CLOSING",
        12 => "NEW_SYN_RECV",
        _ => "UNKNOWN",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_states_are_named_like_ss() {
        assert_eq!(tcp_state_name(1), "ESTABLISHED");
        assert_eq!(tcp_state_name(10), "LISTEN");
        assert_eq!(tcp_state_name(12), "NEW_SYN_RECV");
        assert_eq!(tcp_state_name(0), "UNKNOWN");
        assert_eq!(tcp_state_name(13), "UNKNOWN");
    }

    #[test]
    fn a_limit_reads_download_first_with_blocked_and_unlimited_named() {
        let limit = |up, down| LimitRates { up, down }.to_string();
        assert_eq!(limit(None, Some(1 << 20)), "⚡ ↓1MB/s ↑-");
        assert_eq!(limit(Some(512 * 1024), Some(0)), "⚡ ↓blocked ↑512KB/s");
        assert_eq!(limit(Some(1_000_000), None), "⚡ ↓- ↑976.56KB/s");
        assert_eq!(limit(None, None), "⚡ ↓- ↑-");
    }
}
