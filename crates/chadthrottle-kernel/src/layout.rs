//! Rust mirrors of `bpf/include/chadthrottle.h`, field for field, and the constants the
//! C shares with them.
//!
//! Guarded four ways: the C `_Static_assert`s, the const asserts below, [`check_map`],
//! which compares a loaded or pinned map's key and value sizes with these types before
//! anything reads or writes it, and `object_check`, a unit test that compares every
//! field's name, offset and size and every constant here with the committed object's BTF.

use crate::error::Error;
use aya::Pod;
use aya::maps::{Map, MapData, MapError};
use std::mem::size_of;

/// Bump together with `CT_LAYOUT_VERSION` in the C header.
pub const LAYOUT_VERSION: u32 = 14;

pub const DIR_UP: u32 = 0;
pub const DIR_DOWN: u32 = 1;
/// The bucket model's "count, never drop".
pub const RATE_UNLIMITED: u64 = chadthrottle_core::bucket::UNLIMITED;
pub const COMM_LEN: usize = 16;
pub const CMDLINE_LEN: usize = 128;
/// Epochs a socket counts in its process's division after its last report.
pub const SHARE_WINDOW: usize = 8;
/// `ct_conn.family` of an IPv6 connection.
pub const AF_INET6: u16 = libc::AF_INET6 as u16;
/// `ct_limit.flags`: the direction's TCP sockets are shaped.
pub const LIMIT_SHAPE: u32 = 1;
/// `ct_limit.flags`: an HTB class (`class_id`) holds the direction (backends htb, ifb).
pub const LIMIT_QDISC: u32 = 2;
/// `ct_limit.flags`: an nftables rule holds the direction (backend nftables).
pub const LIMIT_NFT: u32 = 4;
/// `ct_limit.flags`: a tc police filter (its slot in `class_id`) holds the direction
/// (backend tc_police).
pub const LIMIT_POLICE: u32 = 8;
/// `ct_limit.flags`, read by no program: the download default chose the backend.
pub const LIMIT_BY_DEFAULT: u32 = 16;
/// `ct_limit_key.scope`: the key's id is a tgid (a PID limit or an each-mode member).
pub const SCOPE_PROCESS: u16 = 0;
/// `ct_limit_key.scope`: the key's id is a rule id (a shared rule's budget).
pub const SCOPE_RULE: u16 = 1;
/// `ct_match_key.kind` of an exe rule.
pub const MATCH_EXE: u32 = 1;
/// `ct_match_key.kind` of a process name (comm) rule.
pub const MATCH_NAME: u32 = 2;
/// `ct_match_key.kind` of a user (real uid) rule.
pub const MATCH_UID: u32 = 3;
/// `ct_match_key.kind` of a cgroup rule.
pub const MATCH_CGROUP: u32 = 4;
/// `ct_rule.rank` of each target kind: lower wins.
pub const RANK_TREE: u32 = 1;
pub const RANK_EXE: u32 = 2;
pub const RANK_NAME: u32 = 3;
pub const RANK_CGROUP: u32 = 4;
pub const RANK_USER: u32 = 5;
/// `ct_rule.flags`: a budget per member process.
pub const RULE_EACH: u32 = 1;
/// Index in `ct_counters`: hook runs that found a process's rule but could not make it a
/// member (a full table).
pub const COUNTER_UNGOVERNED: u32 = 0;
/// Entries of `ct_counters`.
pub const COUNTERS: u32 = 1;

/// `ct_meta.rule_ranks` with a rule of rank `rank` (a `RANK_*`).
pub const fn rank_bit(rank: u32) -> u32 {
    1 << rank
}

/// `struct ct_owner`: the process a socket belongs to.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Owner {
    pub tgid: u32,
    pub _pad: u32,
    pub start_time: u64,
}

/// `struct ct_shape`: one direction of a shaped socket.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Shape {
    pub mark_bytes: u64,
    pub mark_ns: u64,
    pub check_ns: u64,
    pub epoch: u32,
    pub cap: u32,
    pub window: u32,
    /// An ifb-held download: the least round trip seen (µs) its queue bound is sized on.
    pub min_rtt_us: u32,
}

/// `struct ct_sock`: the socket storage value — owner, the socket's own counters, and the
/// shaping backend's state with the socket's settings from before it.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SockState {
    pub owner: Owner,
    pub acct: Acct,
    pub flushed_ns: u64,
    pub unreported_tx_packets: u64,
    pub unreported_rx_packets: u64,
    pub shape: [Shape; 2],
    pub orig_pacing: u32,
    pub orig_clamp: u32,
    pub added_cb_flags: u32,
    pub shaped: u32,
    pub orig_cwnd_clamp: u32,
    pub cwnd_clamp: u32,
}

/// `struct ct_share`: how a limited process's budget is divided among its sockets.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Share {
    pub epoch_ns: u64,
    pub light: u64,
    pub share: u64,
    pub epoch: u32,
    pub busy: u32,
    pub lights: u32,
    pub seen: [u32; SHARE_WINDOW],
    pub _pad: u32,
}

/// `struct ct_limit_key`: a budget (a process's or a shared rule's) and a direction.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct LimitKey {
    /// A tgid ([`SCOPE_PROCESS`]) or a rule id ([`SCOPE_RULE`]).
    pub id: u32,
    pub dir: u16,
    pub scope: u16,
}

/// `struct ct_bucket` is the core's model itself: `bucket::Bucket` is `#[repr(C)]` with the
/// C struct's fields in its order, so the datapath's state and the model cannot drift.
pub use chadthrottle_core::bucket::Bucket as BucketState;

/// `struct ct_limit`: one direction's bucket and whose it is.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limit {
    /// `struct bpf_spin_lock`; the kernel skips it when copying with `BPF_F_LOCK`.
    pub lock: u32,
    /// `LIMIT_*`
    pub flags: u32,
    pub start_time: u64,
    pub bucket: BucketState,
    pub burst: u64,
    pub expires_at_ns: u64,
    pub comm: [u8; COMM_LEN],
    /// Written as zero by userspace (a new limit starts a new division).
    pub share: Share,
    /// With `LIMIT_QDISC`: the HTB class (major:minor) the packets are put in.
    pub class_id: u32,
    /// 0: a PID limit; else the each-mode rule whose member budget this is (made by the
    /// datapath's resolver, never over a PID limit).
    pub rule: u32,
}

/// `struct ct_match_key`: what an exe, name, uid or cgroup rule matches.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct MatchKey {
    pub kind: u32,
    pub dev: u32,
    pub a: u64,
    pub b: u64,
}

/// `struct ct_rule_dir`: one direction of a rule, the budget a member starts with.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RuleDir {
    pub bucket: BucketState,
    pub burst: u64,
    pub flags: u32,
    pub _pad: u32,
}

/// `struct ct_rule`: a rule's precedence, mode and per-direction template.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rule {
    pub rank: u32,
    pub order: u32,
    pub flags: u32,
    pub _pad: u32,
    /// CLOCK_BOOTTIME when the rule lapses; 0: never.
    pub expires_at_ns: u64,
    pub dir: [RuleDir; 2],
}

/// `struct ct_member`: the rule governing a process (`ct_members`), or the tree rule a
/// process is in (`ct_tree`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Member {
    pub start_time: u64,
    pub rule: u32,
    pub _pad: u32,
}

/// `struct ct_stats`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub bytes: u64,
    pub packets: u64,
    pub dropped_bytes: u64,
    pub dropped_packets: u64,
}

/// `struct ct_acct`: transport payload bytes and wire packets, both directions.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Acct {
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub rx_packets: u64,
}

/// `struct ct_proc_info`: name and command line captured at the first socket.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcInfo {
    pub comm: [u8; COMM_LEN],
    pub exit_ns: u64,
    pub cmdline_len: u32,
    pub _pad: u32,
    pub cmdline: [u8; CMDLINE_LEN],
}

/// `struct ct_conn`: one connection's owner, endpoints and accounting.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Conn {
    pub owner: Owner,
    pub acct: Acct,
    pub local_addr: [u32; 4],
    pub remote_addr: [u32; 4],
    pub family: u16,
    pub protocol: u16,
    pub local_port: u16,
    pub remote_port: u16,
    pub state: u32,
    pub _pad: u32,
    pub last_ns: u64,
}

/// `struct ct_meta`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Meta {
    pub layout_version: u32,
    pub max_limits: u32,
    pub cgroup_id: u64,
    pub object_id: u64,
    /// `rank_bit` of every rank some rule has (the hooks look up only those kinds).
    pub rule_ranks: u32,
    /// Nonzero while a PID limit may exist (the exit hook looks up the budgets of a
    /// process whose mark is clear only then): set before one is written, cleared when
    /// none is left (`pins::write_pid_limits`).
    pub pid_limits: u32,
}

const _: () = assert!(size_of::<Owner>() == 16);
const _: () = assert!(size_of::<SockState>() == 176);
const _: () = assert!(size_of::<Shape>() == 40);
const _: () = assert!(size_of::<Share>() == 72);
const _: () = assert!(size_of::<LimitKey>() == 8);
const _: () = assert!(size_of::<BucketState>() == 48);
const _: () = assert!(size_of::<Limit>() == 176);
const _: () = assert!(size_of::<Acct>() == 32);
const _: () = assert!(size_of::<ProcInfo>() == 160);
const _: () = assert!(size_of::<Conn>() == 104);
const _: () = assert!(size_of::<Stats>() == 32);
const _: () = assert!(size_of::<Meta>() == 32);
const _: () = assert!(COUNTER_UNGOVERNED < COUNTERS);
const _: () = assert!(size_of::<MatchKey>() == 24);
const _: () = assert!(size_of::<RuleDir>() == 64);
const _: () = assert!(size_of::<Rule>() == 152);
const _: () = assert!(size_of::<Member>() == 16);

// SAFETY: each type is #[repr(C)], made only of integers and integer arrays, with every
// padding byte an explicit field, so any bit pattern is a valid value.
unsafe impl Pod for Owner {}
// SAFETY: as above.
unsafe impl Pod for LimitKey {}
// SAFETY: as above.
unsafe impl Pod for Limit {}
// SAFETY: as above.
unsafe impl Pod for Stats {}
// SAFETY: as above.
unsafe impl Pod for Meta {}
// SAFETY: as above.
unsafe impl Pod for Acct {}
// SAFETY: as above.
unsafe impl Pod for SockState {}
// SAFETY: as above.
unsafe impl Pod for ProcInfo {}
// SAFETY: as above.
unsafe impl Pod for Conn {}
// SAFETY: as above.
unsafe impl Pod for Shape {}
// SAFETY: as above.
unsafe impl Pod for Share {}
// SAFETY: as above.
unsafe impl Pod for MatchKey {}
// SAFETY: as above.
unsafe impl Pod for RuleDir {}
// SAFETY: as above.
unsafe impl Pod for Rule {}
// SAFETY: as above.
unsafe impl Pod for Member {}

/// A NUL-padded C string, without the padding.
fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

impl Limit {
    /// The process name as set, without the NUL padding.
    pub fn comm(&self) -> String {
        c_string(&self.comm)
    }
}

impl ProcInfo {
    /// The process name (the thread group leader's `comm`).
    pub fn comm(&self) -> String {
        c_string(&self.comm)
    }

    /// The arguments that were read (at most [`CMDLINE_LEN`] bytes of them), joined by
    /// spaces as `ps` shows them.
    pub fn cmdline(&self) -> String {
        let len = (self.cmdline_len as usize).min(CMDLINE_LEN);
        let args: Vec<String> = self.cmdline[..len]
            .split(|&b| b == 0)
            .filter(|arg| !arg.is_empty())
            .map(|arg| String::from_utf8_lossy(arg).into_owned())
            .collect();
        args.join(" ")
    }
}

impl Conn {
    /// Local and remote socket addresses.
    pub fn endpoints(&self) -> (std::net::SocketAddr, std::net::SocketAddr) {
        let addr = |words: &[u32; 4], port: u16| {
            let ip = if self.family == AF_INET6 {
                let mut bytes = [0u8; 16];
                for (chunk, word) in bytes.chunks_exact_mut(4).zip(words) {
                    chunk.copy_from_slice(&word.to_ne_bytes());
                }
                std::net::IpAddr::from(bytes)
            } else {
                std::net::IpAddr::from(words[0].to_ne_bytes())
            };
            std::net::SocketAddr::new(ip, port)
        };
        (
            addr(&self.local_addr, self.local_port),
            addr(&self.remote_addr, self.remote_port),
        )
    }
}

/// `comm` as the datapath stores it: at most 15 bytes and a NUL.
pub fn comm_bytes(name: &str) -> [u8; COMM_LEN] {
    let mut comm = [0; COMM_LEN];
    let bytes = name.as_bytes();
    let len = bytes.len().min(COMM_LEN - 1);
    comm[..len].copy_from_slice(&bytes[..len]);
    comm
}

/// Refuses a map whose key or value size differs from the Rust mirror: reading it would
/// misinterpret every field.
pub fn check_map<K, V>(name: &'static str, map: &MapData) -> Result<(), Error> {
    let info = map.info().map_err(|source| Error::Map {
        op: "inspect",
        map: name,
        source,
    })?;
    let expected = (size_of::<K>(), size_of::<V>());
    let found = (info.key_size() as usize, info.value_size() as usize);
    if expected == found {
        Ok(())
    } else {
        Err(Error::LayoutMismatch {
            map: name,
            expected,
            found,
        })
    }
}

/// Opens `data` as the typed map `T` (after [`check_map`]).
pub fn typed<T: TryFrom<Map, Error = MapError>>(
    name: &'static str,
    data: MapData,
) -> Result<T, Error> {
    Map::from_map_data(data)
        .and_then(T::try_from)
        .map_err(Error::map("open", name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdline_joins_arguments_and_stops_at_what_was_read() {
        let mut info = ProcInfo {
            comm: comm_bytes("curl"),
            exit_ns: 0,
            cmdline_len: 0,
            _pad: 0,
            cmdline: [0; CMDLINE_LEN],
        };
        let args = b"curl\0-o\0/dev/null\0https://x\0";
        info.cmdline[..args.len()].copy_from_slice(args);
        assert_eq!(info.cmdline(), "");
        info.cmdline_len = 12;
        assert_eq!(info.cmdline(), "curl -o /dev");
        info.cmdline_len = args.len() as u32;
        assert_eq!(info.cmdline(), "curl -o /dev/null https://x");
        assert_eq!(info.comm(), "curl");
    }

    #[test]
    fn connection_endpoints_decode_both_families() {
        let v4 = Conn {
            family: 2,
            local_addr: [u32::from_ne_bytes([198, 18, 0, 1]), 0, 0, 0],
            remote_addr: [u32::from_ne_bytes([198, 18, 0, 2]), 0, 0, 0],
            local_port: 40000,
            remote_port: 443,
            ..Conn::default()
        };
        let (local, remote) = v4.endpoints();
        assert_eq!(local.to_string(), "198.18.0.1:40000");
        assert_eq!(remote.to_string(), "198.18.0.2:443");
        let mut words = [0u32; 4];
        let ip: std::net::Ipv6Addr = "2001:2::2".parse().unwrap();
        for (word, chunk) in words.iter_mut().zip(ip.octets().chunks_exact(4)) {
            *word = u32::from_ne_bytes(chunk.try_into().unwrap());
        }
        let v6 = Conn {
            family: AF_INET6,
            remote_addr: words,
            remote_port: 80,
            ..Conn::default()
        };
        assert_eq!(v6.endpoints().1.to_string(), "[2001:2::2]:80");
    }

    #[test]
    fn comm_is_truncated_and_round_trips() {
        let limit = Limit {
            comm: comm_bytes("a-very-long-process-name"),
            ..Limit::default()
        };
        assert_eq!(limit.comm(), "a-very-long-pro");
        let short = Limit {
            comm: comm_bytes("curl"),
            ..Limit::default()
        };
        assert_eq!(short.comm(), "curl");
    }
}
