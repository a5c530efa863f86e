//! `chadthrottle unlimit`: lift a process's limit.

use crate::cli::{Global, UnlimitArgs};
use crate::render::directions_from_flags;
use anyhow::bail;
use chadthrottle_core::backend::Backend;
use chadthrottle_kernel::Datapath;

pub fn run(global: &Global, args: &UnlimitArgs) -> anyhow::Result<()> {
    let directions = directions_from_flags(args.up, args.down);
    let removed = match Datapath::open(&global.pin_dir)? {
        Some(mut datapath) => datapath.remove(args.pid, directions)?,
        None => None,
    };
    let Some(limit) = removed else {
        bail!(
            "PID {} has no limit (`chadthrottle status` lists the limits in force)",
            args.pid
        );
    };
    let lifted: Vec<&str> = directions
        .iter()
        .filter(|(direction, lift)| **lift && limit.limits.get(*direction).is_some())
        .map(|(direction, _)| direction.as_str())
        .collect();
    if lifted.is_empty() {
        bail!(
            "PID {} ({}) has no such limit to lift",
            args.pid,
            limit.name
        );
    }
    println!(
        "PID {} ({}): lifted the {} limit",
        args.pid,
        limit.name,
        lifted.join(" and ")
    );
    Ok(())
}
