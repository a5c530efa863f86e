//! What the global options ask of the datapath: where it is attached and pinned, how large
//! its tables are, whether it may replace a qdisc it did not create.

use std::path::PathBuf;

/// Where the datapath is attached and pinned and how large its tables are, as the global
/// options ask. `None` where the option was not given: the installed datapath's value (or
/// the default for a new install) applies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DatapathOptions {
    /// `--cgroup`: the cgroup2 directory to attach to; `None` is the root of the cgroup2
    /// mount.
    pub cgroup: Option<PathBuf>,
    /// `--pin-dir`: the bpffs directory holding the pins; `None` is the default.
    pub pin_dir: Option<PathBuf>,
    /// `--max-limits`.
    pub max_limits: Option<u32>,
    /// `--max-connections`.
    pub max_connections: Option<u32>,
    /// `--force`: the htb backend may replace a root qdisc ChadThrottle did not create.
    pub force: bool,
}
