//! Every kernel effect ChadThrottle has, behind one seam.
//!
//! The eBPF datapath (C under `bpf/`, compiled once and embedded) is loaded with aya,
//! attached to a cgroup with multi-attach links and pinned in bpffs, so limits live in
//! the kernel after the command exits. [`Datapath`] implements the core's `Backend`
//! trait; the command line and the TUI see nothing else of the kernel but the few
//! procfs and privilege helpers re-exported here.
//!
//! The modules are layered, each using only those below it:
//! - the machine as the command line sees it (`system`: [`Kernel`], and the usage source
//!   `top` and the TUI read, `usage_source`), over
//! - operations: the limit table ([`Datapath`]), [`reset`], the accounting, the probe of
//!   backends, and what the limit table drives: the TCP iterator's reconcile
//!   (`tcp_iterator`) and the qdisc backends' sync (`qdisc_sync`);
//! - the pinned state: `install` (attach and pin what is missing) over `pins` (open the
//!   pinned maps, meta, version checks);
//! - the loader (`loader`): parse the object, create or reuse maps, load and find programs;
//! - helpers every layer uses: `config`, `error`, `names`, `layout`, `object`, `mounts`,
//!   `procs`, `netns`, `privileges`, `lock`, `clock`, `rtnetlink`, `backfill`, `query`,
//!   `targets` (rule targets resolved on this machine), `launch` (`run`'s command,
//!   held before its first instruction).

pub mod accounting;
mod backfill;
mod bucket_check;
pub mod clock;
mod config;
mod datapath;
mod error;
mod helper_probe;
mod install;
pub mod launch;
mod layout;
mod link_detach;
mod loader;
mod lock;
pub mod mounts;
pub mod names;
mod netns;
pub mod nft_netlink;
mod nft_sync;
mod object;
mod object_check;
mod pins;
pub mod police_sync;
pub mod privileges;
pub mod probe;
pub mod procs;
mod qdisc_sync;
pub mod query;
mod record;
mod reset;
mod rtnetlink;
mod rule_book;
pub mod rule_keys;
pub mod rules;
mod share_check;
pub mod sockdiag;
pub mod system;
mod targets;
mod task_iterator;
mod tcp_iterator;
pub mod usage_source;
mod verdicts;
pub mod verifier_work;

pub use accounting::Accounting;
pub use config::{
    Config, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_LIMITS, DEFAULT_MAX_MEMBERS, DEFAULT_MAX_RULES,
    DEFAULT_PIN_DIR,
};
pub use datapath::Datapath;
pub use error::{Error, describe};
pub use layout::MatchKey;
pub use reset::{ResetReport, reset};
pub use system::Kernel;
