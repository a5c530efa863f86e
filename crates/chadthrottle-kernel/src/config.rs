//! Where the datapath is attached and pinned and how large its tables are: what every
//! layer above is told, from the loader up.

use std::path::PathBuf;

pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/chadthrottle";
pub const DEFAULT_MAX_LIMITS: u32 = 65_536;
pub const DEFAULT_MAX_CONNECTIONS: u32 = 65_536;
pub const DEFAULT_MAX_RULES: u32 = 4_096;
pub const DEFAULT_MAX_MEMBERS: u32 = 65_536;
/// Processes whose accounting is kept (least recently active ones are evicted beyond).
pub const MAX_ACCOUNTED_PROCESSES: u32 = 16_384;
/// The kernel's ceiling for pid_max on 64-bit machines (`PID_MAX_LIMIT`, 2^22).
pub const PID_MAX_LIMIT: u32 = 1 << 22;

/// Where the datapath is attached and pinned, and how large its tables are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The cgroup2 directory the programs attach to; they see every socket created in it
    /// and below.
    pub cgroup: PathBuf,
    /// The bpffs directory holding the pins.
    pub pin_dir: PathBuf,
    /// How many processes can be limited at once (used when the tables are created).
    pub max_limits: u32,
    /// How many connections are accounted at once; beyond, the least recently active
    /// connection's entry is reused (used when the tables are created).
    pub max_connections: u32,
    /// How many rules can be set at once (`ct_rules`, and `ct_match` as large; used when
    /// the tables are created).
    pub max_rules: u32,
    /// How many processes rules can govern at once (`ct_members`), and hold in tree
    /// rules' trees (`ct_tree`); used when the tables are created.
    pub max_members: u32,
    /// Whether the datapath accounts every process and connection (for `top`); fixed
    /// when it is installed. Off only to measure what accounting costs.
    pub accounting: bool,
}
