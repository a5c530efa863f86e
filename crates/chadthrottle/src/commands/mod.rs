//! One module per command. Each takes the parsed arguments, does the work through the
//! kernel crate, and prints; errors go back to `main`, which prints them on one line.

pub mod backends;
pub mod foreground;
pub mod limit;
pub mod reset;
pub mod status;
pub mod top;
pub mod tui;
pub mod unlimit;

use crate::cli::Global;
use anyhow::Context as _;
use chadthrottle_kernel::{Config, mounts};
use std::time::{SystemTime, UNIX_EPOCH};

/// Where the datapath attaches and pins, with `--cgroup` defaulting to the cgroup2 root.
pub fn config(global: &Global) -> anyhow::Result<Config> {
    let cgroup = match &global.cgroup {
        Some(path) => path.clone(),
        None => mounts::cgroup2_root().context("cannot find the default --cgroup")?,
    };
    Ok(Config {
        cgroup,
        pin_dir: global.pin_dir.clone(),
        max_limits: global.max_limits,
        max_connections: global.max_connections,
        accounting: true,
    })
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}
