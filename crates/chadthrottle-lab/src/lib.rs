//! ChadThrottle's network lab, used by the kernel tests and the benchmark.
//!
//! A [`Lab`] is two private network namespaces joined by veth (and, for real round-trip
//! times, a delayed link: netem where the kernel has it, else a userspace TAP delay line),
//! a private cgroup2 directory and a private bpffs pin directory. Traffic comes from lab
//! endpoints: this same executable re-started as a traffic generator (`generator`), which
//! counts goodput in 100 ms bins, driven through an [`Endpoint`] handle (`endpoint`) by
//! the commands in `protocol`. Every binary using the lab must call [`run_if_endpoint`] first.

pub mod bench;
pub mod bench_backend_cost;
pub mod bench_daemon;
pub mod bench_monitor;
pub mod bench_rule_budgets;
pub mod bench_rules;
pub mod bench_shaper;
pub mod case;
pub mod cgroup;
pub mod compare;
pub mod daemon;
pub mod delay;
pub mod endpoint;
pub mod filters;
pub mod generator;
pub mod htb_script;
pub mod lab;
pub mod lab_datapath;
pub mod latency;
pub mod limiter;
pub mod machine_cpu;
pub mod net;
pub mod netem;
pub mod netns;
pub mod programs;
pub mod protocol;
pub mod spawn;
pub mod stats;
pub mod table;
pub mod taking_effect;
pub mod trickle;

pub use endpoint::Endpoint;
pub use generator::run_if_endpoint;
pub use lab::{DelayKind, Family, Lab, unavailable};
pub use protocol::Proto;

/// CLOCK_MONOTONIC in ns: the clock of every bin and report, shared by all namespaces.
pub fn now_ns() -> u64 {
    chadthrottle_kernel::clock::monotonic_ns()
}
