//! What a lab endpoint and its driver say to each other: how an endpoint is started
//! (its arguments), and the JSON line it answers each command with.

use crate::stats::Bins;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// The first argument that turns this executable into a lab endpoint.
pub const ENDPOINT_ARG: &str = "--chadthrottle-lab-endpoint";

/// Payload of every UDP datagram an endpoint sends.
pub const UDP_PAYLOAD: usize = 1400;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub const fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// The first line an endpoint prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ready {
    pub pid: u32,
    /// Where it listens, or where it connected to.
    pub addr: SocketAddr,
}

/// What one `send` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendReport {
    /// Bytes the application handed to the socket.
    pub bytes: u64,
    /// Send calls that failed (a policed UDP sender must see none).
    pub errors: u64,
    /// TCP segments retransmitted during the send.
    pub retransmits: u64,
    pub start_ns: u64,
    pub end_ns: u64,
}

/// The receive queues of an endpoint's UDP sockets, summed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UdpQueues {
    /// Datagrams the kernel dropped at them: those that found a queue full (the endpoint
    /// did not read fast enough), and those a cgroup ingress program such as the policer
    /// refused (the kernel counts both in one counter).
    pub dropped: u64,
    /// Memory the queues still hold for the endpoint to read, in bytes of kernel memory
    /// (more than the payload): 0 once it has read everything that arrived.
    pub queued: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    Ready(Ready),
    Sent(SendReport),
    Bins(Bins),
    UdpQueues(UdpQueues),
    Opened(usize),
    Churned(u64),
    /// Connections whose pacing rate was capped (see `pace`).
    Paced(usize),
    Probed(ProbeReport),
    ThreadDone,
    /// The endpoint's new process name (see `rename`).
    Renamed(String),
    /// The endpoint's real uid after `setuid` (see `become_user`).
    UidSet(u32),
}

/// What an endpoint does with its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Listen,
    Connect,
    /// Listen and send back what each connection sends (TCP only).
    Echo,
}

impl Role {
    const fn as_str(self) -> &'static str {
        match self {
            Role::Listen => "listen",
            Role::Connect => "connect",
            Role::Echo => "echo",
        }
    }
}

/// How an endpoint starts: `listen|connect|echo tcp|udp ADDR [CC]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointArgs {
    pub role: Role,
    pub proto: Proto,
    pub addr: SocketAddr,
    /// TCP congestion control (`bbr`, `cubic`); the namespace default if `None`.
    pub cc: Option<String>,
}

impl EndpointArgs {
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec![
            ENDPOINT_ARG.to_owned(),
            self.role.as_str().to_owned(),
            self.proto.as_str().to_owned(),
            self.addr.to_string(),
        ];
        args.extend(self.cc.clone());
        args
    }

    pub(crate) fn parse(args: &[String]) -> anyhow::Result<EndpointArgs> {
        let [role, proto, addr, rest @ ..] = args else {
            anyhow::bail!("usage: {ENDPOINT_ARG} listen|connect|echo tcp|udp ADDR [CC]");
        };
        Ok(EndpointArgs {
            role: match role.as_str() {
                "listen" => Role::Listen,
                "connect" => Role::Connect,
                "echo" => Role::Echo,
                other => anyhow::bail!("unknown role {other:?}"),
            },
            proto: match proto.as_str() {
                "tcp" => Proto::Tcp,
                "udp" => Proto::Udp,
                other => anyhow::bail!("unknown protocol {other:?}"),
            },
            addr: addr.parse()?,
            cc: rest.first().cloned(),
        })
    }
}

/// One exchange: when it started and how long the answer took.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    pub at_ns: u64,
    pub rtt_ns: u64,
}

/// What one probe run measured.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeReport {
    pub samples: Vec<Sample>,
    /// Why the probe stopped early, if it did.
    pub error: Option<String>,
}
