//! ChadThrottle's pure core: everything that can be decided without root or a kernel.
//!
//! The kernel crate (`chadthrottle-kernel`) and the command line build on these types;
//! keeping them here means the arithmetic and the user-facing grammar are tested by
//! plain unit tests on any machine.

pub mod access;
pub mod application;
pub mod backend;
pub mod bucket;
pub mod cgroup_names;
pub mod daemon_config;
pub mod direction;
pub mod docker_root;
pub mod download_default;
pub mod duration;
pub mod fake;
pub mod file_error;
pub mod file_trust;
pub mod fnv;
pub mod htb_class;
pub mod kernel_floor;
pub mod locality;
pub mod meter;
pub mod metrics;
pub mod metrics_fixtures;
pub mod metrics_text;
pub mod monitor;
pub mod nft_limit;
pub mod options;
pub mod police_limit;
pub mod process;
pub mod process_targets;
pub mod qdisc_plan;
pub mod rate;
pub mod resolution;
pub mod rule_plan;
pub mod rule_request;
pub mod rule_target;
pub mod rules_file;
pub mod saved;
pub mod status;
pub mod system;
pub mod table_order;
pub mod tally;
pub mod usage;
pub mod usage_history;

pub use direction::{Direction, PerDirection};
pub use process::ProcessRef;
pub use rate::{Rate, Size};
