//! `chadthrottle rules`: every rule in force with the processes it governs and its counters.

use crate::cli::Global;
use crate::render;
use chadthrottle_core::backend::RuleBackend as _;
use chadthrottle_core::rule_request::RuleStatus;
use chadthrottle_core::status::RulesReport;
use chadthrottle_core::system::System;
use std::io::Write;

/// Every rule in force, as the kernel lists it (the TUI's rules view reads it too).
pub fn held<S: System>(system: &mut S, global: &Global) -> anyhow::Result<Vec<RuleStatus>> {
    // nothing installed holds no rules
    Ok(match system.open(&global.datapath())? {
        Some(mut backend) => backend.rules()?,
        None => Vec::new(),
    })
}

pub fn run<S: System>(
    system: &mut S,
    global: &Global,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let rules = held(system, global)?;
    if json {
        let report = RulesReport {
            rules: rules.iter().map(RuleStatus::entry).collect(),
        };
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        write!(out, "{}", render::rules_table(&rules, system.now_unix()))?;
    }
    Ok(())
}
