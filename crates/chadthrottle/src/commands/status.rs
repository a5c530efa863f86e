//! `chadthrottle status`: every active limit with live counters.

use crate::cli::{Global, StatusArgs};
use crate::render;
use chadthrottle_core::backend::Backend;
use chadthrottle_core::status::{ActiveLimit, LimitStatus, StatusReport};
use chadthrottle_core::system::System;
use std::io::Write;

pub fn run<S: System>(
    system: &mut S,
    global: &Global,
    args: &StatusArgs,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let limits: Vec<ActiveLimit> = match system.open(&global.datapath())? {
        Some(mut backend) => {
            backend.prune()?;
            backend.limits()?
        }
        None => Vec::new(),
    };
    if args.json {
        let report = StatusReport {
            limits: limits.iter().map(LimitStatus::new).collect(),
            rules: Vec::new(),
        };
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        write!(out, "{}", render::status_table(&limits, system.now_unix()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{WGET, machine, ok};

    #[test]
    fn status_lists_live_limits_and_prunes_the_dead() {
        let mut system = machine();
        assert_eq!(ok(&mut system, &["status"]), "no active limits\n");
        ok(&mut system, &["limit", "--pid", "4242", "--up", "1M"]);
        ok(&mut system, &["limit", "--pid", "4343", "--down", "500K"]);
        system.machine().processes.remove(&WGET);
        let json: serde_json::Value =
            serde_json::from_str(&ok(&mut system, &["status", "--json"])).expect("JSON");
        let limits = json["limits"].as_array().expect("limits");
        assert_eq!(limits.len(), 1, "{json}");
        assert_eq!(limits[0]["pid"], 4242);
        assert_eq!(limits[0]["up"], 1 << 20);
        assert_eq!(limits[0]["down"], serde_json::Value::Null);
        assert_eq!(limits[0]["backend"]["up"], "shaping");
        let table = ok(&mut system, &["status"]);
        assert!(table.starts_with("PID"), "{table}");
        assert!(table.contains("curl") && !table.contains("wget"), "{table}");
    }
}
