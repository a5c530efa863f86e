//! Kernel tests of the command line's rules: `limit` and `unlimit` with a rule target,
//! `rules` and `status` listing them, on the real binary in the network lab — the same
//! rules `tests/rules.rs` proves through the kernel crate's API, here as a user types
//! them. Root only; ignored with the reason printed otherwise.

pub mod common;

use anyhow::{Context as _, ensure};
use chadthrottle_lab::{Family, Lab, Proto};
use common::programs::Programs;
use common::{KIB, MAX_BYTES, MIB, Test, chadthrottle, rules, run, status, steady, within};
use serde_json::Value;
use std::time::Duration;

/// The PIDs of a rule's listed members, sorted.
fn member_pids(rule: &Value) -> anyhow::Result<Vec<u64>> {
    let mut pids = rule["members"]
        .as_array()
        .with_context(|| format!("members is an array: {rule}"))?
        .iter()
        .map(|member| member["pid"].as_u64().context("a member has a pid"))
        .collect::<anyhow::Result<Vec<u64>>>()?;
    pids.sort_unstable();
    Ok(pids)
}

/// Runs a command that must be refused: exit 1, one line on stderr naming `names`.
fn refused(lab: &Lab, args: &[&str], names: &str) -> anyhow::Result<()> {
    let output = chadthrottle(lab, args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(
        output.status.code() == Some(1),
        "chadthrottle {}: exit {:?}, stderr {stderr}",
        args.join(" "),
        output.status.code()
    );
    ensure!(
        stderr.trim().lines().count() == 1 && stderr.contains(names),
        "chadthrottle {}: one line naming {names:?} expected, got {stderr:?}",
        args.join(" ")
    );
    Ok(())
}

/// `limit --exe` sets a rule over the running processes of a file and those started
/// after it; `rules --json` and `status --json` list it with both as members; the two
/// together move what the rule allows; a refused command changes nothing; `unlimit --exe`
/// removes it and `reset` takes everything out.
fn limit_exe_sets_a_rule_that_rules_lists_and_unlimit_removes() -> anyhow::Result<()> {
    let lab = Lab::new("rules-cli", None)?;
    let programs = Programs::new("cli")?;
    let app = programs.install("ct-cli")?;
    let exe = app.to_str().context("the program's path is UTF-8")?;
    let mut server = lab.server(Proto::Tcp, Family::V4, None)?;
    let mut before = lab.client_program(&server, Proto::Tcp, &app)?;
    let said = run(
        &lab,
        &[
            "limit",
            "--exe",
            exe,
            "--up",
            "2M",
            "--upload-backend",
            "policer",
        ],
    )?;
    println!("  {}", said.trim());
    ensure!(said.contains(exe), "limit names the rule: {said}");
    let mut after = lab.client_program(&server, Proto::Tcp, &app)?;

    let listed = rules(&lab)?;
    ensure!(listed.len() == 1, "one rule listed: {listed:?}");
    let rule = &listed[0];
    ensure!(
        rule["name"] == format!("exe {exe}") && rule["mode"] == "shared",
        "the rule as set: {rule}"
    );
    ensure!(rule["up"] == 2 * 1024 * 1024, "2 MiB/s up: {rule}");
    let mut clients = vec![u64::from(before.pid()), u64::from(after.pid())];
    clients.sort_unstable();
    ensure!(
        member_pids(rule)? == clients,
        "members {:?}, clients {clients:?}",
        member_pids(rule)?
    );
    let in_status = status(&lab)?;
    ensure!(
        in_status["rules"].as_array().map(Vec::len) == Some(1)
            && in_status["rules"][0]["name"] == rule["name"],
        "status --json lists the rule: {in_status}"
    );

    // the first client's connection was open before the rule: both are held together
    before.start_send(10.0, MAX_BYTES)?;
    after.start_send(10.0, MAX_BYTES)?;
    let report = before.finish_send()?;
    after.finish_send()?;
    within(
        "two processes of one executable under one rule",
        &steady(&mut server, &report)?,
        2.0 * MIB,
        0.10,
    )?;

    // refusals: one line each, and the rule as it was
    refused(
        &lab,
        &["limit", "--exe", "/nonexistent-ct-dir/app", "--up", "1M"],
        "/nonexistent-ct-dir",
    )?;
    refused(
        &lab,
        &[
            "limit",
            "--exe",
            exe,
            "--up",
            "1M",
            "--upload-backend",
            "htb",
        ],
        "htb",
    )?;
    refused(&lab, &["unlimit", "--name", "ct-no-such"], "ct-no-such")?;
    ensure!(
        without_stats(&rules(&lab)?) == without_stats(&listed),
        "refusals changed the rules"
    );

    run(&lab, &["unlimit", "--exe", exe])?;
    ensure!(rules(&lab)?.is_empty(), "unlimit removed the rule");
    run(&lab, &["limit", "--name", "ct-cli", "--down", "1M"])?;
    ensure!(rules(&lab)?.len() == 1, "a name rule is listed");
    run(&lab, &["reset"])?;
    ensure!(rules(&lab)?.is_empty(), "reset took the rule out");
    run(&lab, &["limit", "--user", "0", "--down", "1M"])?;
    let listed = rules(&lab)?;
    ensure!(
        listed.len() == 1 && listed[0]["name"] == "user 0",
        "after a reset, a new rule is the only one listed: {listed:?}"
    );
    Ok(())
}

/// Rules as listed, their counters aside (they move while the last packets drain).
fn without_stats(listed: &[Value]) -> Vec<Value> {
    listed
        .iter()
        .map(|rule| {
            let mut rule = rule.clone();
            if let Some(fields) = rule.as_object_mut() {
                fields.remove("stats");
            }
            rule
        })
        .collect()
}

/// `--for` on a rule: the kernel holds the rule, then stops matching it when its time is
/// up, with no ChadThrottle process running: the member's connection, held to 256 KiB/s,
/// runs unlimited after, and `rules` no longer lists the rule.
fn a_rule_set_for_a_while_lapses_in_the_kernel() -> anyhow::Result<()> {
    let lab = Lab::new("rules-for", None)?;
    let programs = Programs::new("for")?;
    let app = programs.install("ct-for")?;
    let exe = app.to_str().context("the program's path is UTF-8")?;
    let mut server = lab.server(Proto::Tcp, Family::V4, None)?;
    let mut client = lab.client_program(&server, Proto::Tcp, &app)?;
    run(
        &lab,
        &[
            "limit",
            "--exe",
            exe,
            "--up",
            "256K",
            "--burst",
            "64K",
            "--for",
            "7s",
            "--upload-backend",
            "policer",
        ],
    )?;
    let listed = rules(&lab)?;
    ensure!(
        listed.len() == 1 && listed[0]["expires_at"].as_u64().is_some(),
        "the rule is listed with its expiry: {listed:?}"
    );
    let set_at = std::time::Instant::now();
    // held while the rule lasts (the receiver's steady state: what the socket buffer
    // took at once does not count)
    client.start_send(4.0, MAX_BYTES)?;
    let report = client.finish_send()?;
    let held = steady(&mut server, &report)?.rate;
    ensure!(
        held < 1.5 * 256.0 * KIB,
        "under the rule the client moved {:.0} KiB/s, far above 256 KiB/s",
        held / KIB
    );
    std::thread::sleep(Duration::from_secs(8).saturating_sub(set_at.elapsed()));
    ensure!(rules(&lab)?.is_empty(), "the lapsed rule is still listed");
    client.start_send(4.0, MAX_BYTES)?;
    let report = client.finish_send()?;
    let free = steady(&mut server, &report)?.rate;
    println!(
        "  under the rule {:.0} KiB/s, after it lapsed {:.0} KiB/s",
        held / KIB,
        free / KIB
    );
    ensure!(
        free > 8.0 * 256.0 * KIB,
        "after the rule lapsed the client moved only {:.0} KiB/s",
        free / KIB
    );
    Ok(())
}

fn main() {
    let tests: &[(&'static str, Test)] = &[
        (
            "limit_exe_sets_a_rule_that_rules_lists_and_unlimit_removes",
            limit_exe_sets_a_rule_that_rules_lists_and_unlimit_removes,
        ),
        (
            "a_rule_set_for_a_while_lapses_in_the_kernel",
            a_rule_set_for_a_while_lapses_in_the_kernel,
        ),
    ];
    common::main(tests);
}
