//! Every kernel effect ChadThrottle has, behind one seam.
//!
//! The eBPF datapath (C under `bpf/`, compiled once and embedded) is loaded with aya,
//! attached to a cgroup with multi-attach links and pinned in bpffs, so limits live in
//! the kernel after the command exits. [`Datapath`] implements the core's `Backend`
//! trait; the command line and the TUI see nothing else of the kernel but the few
//! procfs and privilege helpers re-exported here.

pub mod accounting;
mod backfill;
mod bucket_check;
pub mod clock;
mod datapath;
mod error;
mod install;
mod layout;
mod lock;
pub mod mounts;
pub mod names;
mod netns;
mod object;
mod object_check;
pub mod privileges;
pub mod probe;
pub mod procs;
mod qdiscs;
pub mod query;
mod shaping;
mod share_check;
pub mod sockdiag;
pub mod system;
mod tc;
pub mod usage_source;

pub use accounting::Accounting;
pub use datapath::Datapath;
pub use error::{Error, describe};
pub use install::{
    Config, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_LIMITS, DEFAULT_PIN_DIR, ResetReport, reset,
};
pub use system::Kernel;
