//! `chadthrottle status`: every active limit and every rule with live counters.

use crate::cli::{Global, StatusArgs};
use crate::render;
use chadthrottle_core::backend::{Backend as _, RuleBackend as _};
use chadthrottle_core::rule_request::RuleStatus;
use chadthrottle_core::status::{ActiveLimit, LimitStatus, StatusReport};
use chadthrottle_core::system::System;
use std::io::Write;

/// The limits and rules in force and the member table's overflow count, as `status`
/// lists them; `prune` first drops the limits of processes that are gone (a reader that
/// only looks, the daemon, leaves that to the commands).
pub fn held<S: System>(
    system: &mut S,
    global: &Global,
    prune: bool,
) -> anyhow::Result<(Vec<ActiveLimit>, Vec<RuleStatus>, u64)> {
    // nothing installed holds nothing
    Ok(match system.open(&global.datapath())? {
        Some(mut backend) => {
            if prune {
                backend.prune()?;
            }
            (backend.limits()?, backend.rules()?, backend.ungoverned()?)
        }
        None => (Vec::new(), Vec::new(), 0),
    })
}

/// `status --json`'s document.
pub fn report(limits: &[ActiveLimit], rules: &[RuleStatus], full: u64) -> StatusReport {
    StatusReport {
        limits: limits.iter().map(LimitStatus::new).collect(),
        rules: rules.iter().map(RuleStatus::entry).collect(),
        member_table_full: full,
    }
}

pub fn run<S: System>(
    system: &mut S,
    global: &Global,
    args: &StatusArgs,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let (limits, rules, full) = held(system, global, true)?;
    if args.json {
        let report = report(&limits, &rules, full);
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        let now = system.now_unix();
        write!(out, "{}", render::status_table(&limits, now))?;
        if !rules.is_empty() {
            write!(out, "\nrules:\n{}", render::rules_table(&rules, now))?;
        }
        write!(out, "{}", render::member_table_full(full))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{STEAM, WGET, machine, ok, rules_machine};

    #[test]
    fn status_lists_the_rules_after_the_limits() {
        let mut system = rules_machine();
        ok(&mut system, &["limit", "--pid", "4242", "--up", "1M"]);
        ok(
            &mut system,
            &["limit", "--exe", "/usr/bin/steam", "--down", "5M", "--each"],
        );
        let json: serde_json::Value =
            serde_json::from_str(&ok(&mut system, &["status", "--json"])).expect("JSON");
        assert_eq!(json["limits"].as_array().map(Vec::len), Some(1), "{json}");
        let rules = json["rules"].as_array().expect("rules");
        assert_eq!(rules.len(), 1, "{json}");
        assert_eq!(rules[0]["name"], "exe /usr/bin/steam");
        assert_eq!(rules[0]["mode"], "each");
        assert_eq!(rules[0]["down"], 5 << 20);
        assert_eq!(rules[0]["members"][0]["pid"], STEAM);
        let text = ok(&mut system, &["status"]);
        let (limits, rules) = text.split_once("\nrules:\n").expect("a rules section");
        assert!(
            limits.starts_with("PID") && limits.contains("curl"),
            "{text}"
        );
        assert!(
            rules.starts_with("NAME") && rules.contains("exe /usr/bin/steam"),
            "{text}"
        );
        ok(&mut system, &["unlimit", "--exe", "/usr/bin/steam"]);
        assert!(
            !ok(&mut system, &["status"]).contains("rules:"),
            "no section without rules"
        );
    }

    #[test]
    fn status_and_rules_say_when_the_member_table_was_full() {
        let mut system = rules_machine();
        ok(
            &mut system,
            &["limit", "--exe", "/usr/bin/steam", "--down", "5M"],
        );
        for command in [&["status"][..], &["rules"]] {
            let text = ok(&mut system, command);
            assert!(!text.contains("member table"), "{command:?}: {text}");
        }
        system.machine().ungoverned = 3;
        for command in [&["status"][..], &["rules"]] {
            let text = ok(&mut system, command);
            assert!(
                text.contains(
                    "\n3 times a process matched a rule but the member table was full: it is \
                     not limited until a rule change finds it room"
                ),
                "{command:?}: {text}"
            );
        }
        for command in [&["status", "--json"][..], &["rules", "--json"]] {
            let json: serde_json::Value =
                serde_json::from_str(&ok(&mut system, command)).expect("JSON");
            assert_eq!(json["member_table_full"], 3, "{command:?}: {json}");
        }
    }

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
