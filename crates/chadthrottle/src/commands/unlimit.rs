//! `chadthrottle unlimit --pid`: lift a process's limit, or some of its directions.

use crate::cli::{Global, UnlimitArgs};
use crate::render::directions_from_flags;
use anyhow::bail;
use chadthrottle_core::backend::Backend;
use chadthrottle_core::system::System;
use std::io::Write;

/// `unlimit --pid PID` (a rule's target is `rule_change`'s).
pub fn run<S: System>(
    system: &mut S,
    global: &Global,
    pid: u32,
    args: &UnlimitArgs,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let directions = directions_from_flags(args.up, args.down);
    super::access::pid(system, pid)?;
    let removed = match system.open(&global.datapath())? {
        Some(mut backend) => backend.remove(pid, directions)?,
        None => None,
    };
    let Some(limit) = removed else {
        bail!("PID {pid} has no limit (`chadthrottle status` lists the limits in force)");
    };
    let lifted: Vec<&str> = directions
        .iter()
        .filter(|(direction, lift)| **lift && limit.limits.get(*direction).is_some())
        .map(|(direction, _)| direction.as_str())
        .collect();
    if lifted.is_empty() {
        bail!("PID {pid} ({}) has no such limit to lift", limit.name);
    }
    writeln!(
        out,
        "PID {pid} ({}): lifted the {} limit",
        limit.name,
        lifted.join(" and ")
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{CURL, machine, ok, refused};

    #[test]
    fn lifting_one_direction_keeps_the_other() {
        let mut system = machine();
        ok(
            &mut system,
            &["limit", "--pid", "4242", "--up", "1M", "--down", "2M"],
        );
        let out = ok(&mut system, &["unlimit", "--pid", "4242", "--up"]);
        assert_eq!(out, "PID 4242 (curl): lifted the up limit\n");
        {
            let machine = system.machine();
            let limit = &machine.limits[&CURL];
            assert_eq!(limit.limits.up, None);
            assert_eq!(limit.limits.down.map(|l| l.rate), Some(2 << 20));
        }
        let error = refused(&mut system, &["unlimit", "--pid", "4242", "--up"]);
        assert_eq!(error, "PID 4242 (curl) has no such limit to lift");
        let out = ok(&mut system, &["unlimit", "--pid", "4242"]);
        assert_eq!(out, "PID 4242 (curl): lifted the down limit\n");
        assert!(system.machine().limits.is_empty());
    }

    #[test]
    fn no_limit_or_no_datapath_is_an_error() {
        let mut system = machine();
        let error = refused(&mut system, &["unlimit", "--pid", "4242"]);
        assert_eq!(
            error,
            "PID 4242 has no limit (`chadthrottle status` lists the limits in force)"
        );
        assert!(
            system.machine().installs.is_empty(),
            "unlimit installed the datapath"
        );
        ok(&mut system, &["limit", "--pid", "4343", "--up", "1M"]);
        let error = refused(&mut system, &["unlimit", "--pid", "4242", "--down"]);
        assert!(error.starts_with("PID 4242 has no limit"), "{error}");
    }
}
