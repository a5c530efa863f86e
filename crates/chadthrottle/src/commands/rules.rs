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
    Ok(listing(system, global)?.0)
}

/// The rules in force, and how many times a process matched one while the member table
/// was full (it then stays ungoverned until the next rule change).
fn listing<S: System>(system: &mut S, global: &Global) -> anyhow::Result<(Vec<RuleStatus>, u64)> {
    // nothing installed holds no rules
    Ok(match system.open(&global.datapath())? {
        Some(mut backend) => (backend.rules()?, backend.ungoverned()?),
        None => (Vec::new(), 0),
    })
}

pub fn run<S: System>(
    system: &mut S,
    global: &Global,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let (rules, full) = listing(system, global)?;
    if json {
        let report = RulesReport {
            rules: rules.iter().map(RuleStatus::entry).collect(),
            member_table_full: full,
        };
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        write!(out, "{}", render::rules_table(&rules, system.now_unix()))?;
        write!(out, "{}", render::member_table_full(full))?;
    }
    Ok(())
}
