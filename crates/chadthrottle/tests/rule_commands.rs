//! Kernel tests of the command line's rules: `limit` and `unlimit` with a rule target,
//! `rules` and `status` listing them, on the real binary in the network lab — the same
//! rules `tests/rules.rs` proves through the kernel crate's API, here as a user types
//! them. Root only; ignored with the reason printed otherwise.

pub mod common;

use anyhow::{Context as _, ensure};
use chadthrottle_lab::programs::Programs;
use chadthrottle_lab::{Family, Lab, Proto};
use common::{KIB, MAX_BYTES, MIB, Test, refused, rules, run, status, steady, within};
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

    // top says which rule governs each member it lists, and shows the rule's limit (a
    // process appears in top once it moved a packet since the accounting began: the
    // first client's handshake came before it)
    let top: Value = serde_json::from_str(&run(
        &lab,
        &["top", "--once", "--json", "--interval", "200ms"],
    )?)?;
    let shown: Vec<&Value> = top["processes"]
        .as_array()
        .context("top --json has processes")?
        .iter()
        .filter(|process| clients.iter().any(|pid| process["pid"] == *pid))
        .collect();
    ensure!(!shown.is_empty(), "top lists no member: {top}");
    for process in shown {
        ensure!(
            process["rule"] == rule["name"] && process["limit"]["up"] == 2 * 1024 * 1024,
            "top shows a member under the rule: {process}"
        );
    }

    // the first client's connection was open before the rule: both are held together
    before.start_send(10.0, MAX_BYTES)?;
    after.start_send(10.0, MAX_BYTES)?;
    std::thread::sleep(Duration::from_secs(3));
    by_application(&lab, rule, &clients)?;
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

/// `top --by app --json` while `clients` send under `rule`: one application row for the
/// rule, its members among the clients, its rates the sum of its members' and its upload
/// near the rule's shared budget (the rates are top's, over a 2 s window).
fn by_application(lab: &Lab, rule: &Value, clients: &[u64]) -> anyhow::Result<()> {
    let top: Value = serde_json::from_str(&run(
        lab,
        &["top", "--once", "--json", "--by", "app", "--interval", "2s"],
    )?)?;
    let applications = top["applications"]
        .as_array()
        .context("top --by app --json has applications")?;
    let under_rule: Vec<&Value> = applications
        .iter()
        .filter(|a| a["rule"] == rule["name"])
        .collect();
    ensure!(under_rule.len() == 1, "one application for the rule: {top}");
    let application = under_rule[0];
    ensure!(
        application["kind"] == "rule" && application["key"] == rule["name"],
        "keyed by the rule: {application}"
    );
    let members = application["processes"]
        .as_array()
        .context("an application lists its processes")?;
    let pids: Vec<u64> = members.iter().filter_map(|p| p["pid"].as_u64()).collect();
    ensure!(
        pids.len() == 2 && pids.iter().all(|pid| clients.contains(pid)),
        "both clients, and only they, under the rule: {pids:?}, clients {clients:?}"
    );
    ensure!(
        application["process_count"] == 2,
        "process_count: {application}"
    );
    let sum = |field: &str| -> anyhow::Result<u64> {
        members
            .iter()
            .map(|p| p[field].as_u64().with_context(|| format!("{field} of {p}")))
            .sum()
    };
    for field in ["tx_rate", "rx_rate", "tx_bytes", "rx_bytes"] {
        ensure!(
            application[field].as_u64() == Some(sum(field)?),
            "the application's {field} is its members' sum: {application}"
        );
    }
    let listed_once = clients.iter().all(|client| {
        let times = applications
            .iter()
            .flat_map(|a| a["processes"].as_array().into_iter().flatten())
            .filter(|p| p["pid"] == *client)
            .count();
        times == 1
    });
    ensure!(listed_once, "each client is listed once: {top}");
    #[expect(clippy::cast_precision_loss, reason = "a rate in bytes per second")]
    let tx_rate = application["tx_rate"].as_u64().context("tx_rate")? as f64;
    let error = (tx_rate - 2.0 * MIB) / (2.0 * MIB);
    println!(
        "  top --by app: the rule's 2 members together {:.1} KiB/s up against 2048 KiB/s ({:+.1} %)",
        tx_rate / KIB,
        error * 100.0
    );
    ensure!(
        error.abs() <= 0.25,
        "top --by app: the members' combined upload is {:+.1} % off the rule's 2 MiB/s",
        error * 100.0
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

/// `apply` sets a file of three rules (an executable, a process name, a user) that
/// `rules --json` lists with the lab's processes as members; applied again it changes
/// nothing; a file with an error at a known line changes nothing and names the line; a
/// file without one rule removes that one (the next moves up a place) and leaves the
/// rule `limit` set; `reset` takes
/// everything out.
fn apply_sets_a_rules_file_and_again_changes_nothing() -> anyhow::Result<()> {
    let lab = Lab::new("rules-apply", None)?;
    let programs = Programs::new("apply")?;
    let by_exe = programs.install("ct-apply-e")?;
    let by_name = programs.install("ct-apply-n")?;
    let by_cli = programs.install("ct-apply-c")?;
    let [exe, cli_exe] =
        [&by_exe, &by_cli].map(|path| path.to_str().unwrap_or_default().to_owned());
    let file = programs.path("rules.toml");
    let shown = file
        .to_str()
        .context("the file's path is UTF-8")?
        .to_owned();
    let server = lab.server(Proto::Tcp, Family::V4, None)?;
    let exe_client = lab.client_program(&server, Proto::Tcp, &by_exe)?;
    let name_client = lab.client_program(&server, Proto::Tcp, &by_name)?;
    let user_process = common::users::UsersProcess::start(&lab)?;
    run(&lab, &["limit", "--exe", &cli_exe, "--down", "1M"])?;

    let three = format!(
        "[[rule]]\nname = \"by-exe\"\nexe = \"{exe}\"\nup = \"2M\"\n\n\
         [[rule]]\nname = \"by-name\"\nprocess_name = \"ct-apply-n\"\ndown = \"3M\"\nmode = \"each\"\n\n\
         [[rule]]\nname = \"by-user\"\nuser = \"nobody\"\nup = \"1M\"\n"
    );
    std::fs::write(&file, &three)?;
    let said = run(&lab, &["apply", &shown, "--dry-run"])?;
    print!("{said}");
    ensure!(
        said.ends_with("3 added, 0 changed, 0 removed, 0 unchanged (dry run: nothing changed)\n"),
        "the dry run: {said}"
    );
    ensure!(rules(&lab)?.len() == 1, "the dry run set nothing");
    let said = run(&lab, &["apply", &shown])?;
    print!("{said}");
    ensure!(
        said == format!(
            "+ by-exe: exe {exe} ↑2MB/s (shared)\n+ by-name: name ct-apply-n ↓3MB/s (each)\n\
             + by-user: user nobody ↑1MB/s (shared)\n3 added, 0 changed, 0 removed, 0 unchanged\n"
        ),
        "the first apply: {said}"
    );
    let listed = rules(&lab)?;
    let names: Vec<&str> = listed.iter().filter_map(|r| r["name"].as_str()).collect();
    let cli_name = format!("exe {cli_exe}");
    ensure!(
        names == [cli_name.as_str(), "by-exe", "by-name", "by-user"],
        "the rules listed: {names:?}"
    );
    let members = |index: usize| member_pids(&listed[index]);
    ensure!(
        members(1)? == [u64::from(exe_client.pid())]
            && members(2)? == [u64::from(name_client.pid())]
            && members(3)? == [user_process.pid().parse::<u64>()?],
        "each rule governs its process: {listed:?}"
    );
    ensure!(
        listed[1]["up"] == 2 * 1024 * 1024 && listed[2]["mode"] == "each",
        "the rules as the file says: {listed:?}"
    );

    let said = run(&lab, &["apply", &shown])?;
    ensure!(
        said == "0 added, 0 changed, 0 removed, 3 unchanged\n",
        "the second apply: {said}"
    );
    let before = without_stats(&rules(&lab)?);

    // errors at known lines (a user that does not exist, a bad rate): one line naming the
    // place, and nothing changes
    std::fs::write(&file, three.replace("\"nobody\"", "\"ct-no-such-user\""))?;
    refused(
        &lab,
        &["apply", &shown],
        &format!("{shown}:14:8: rule \"by-user\": user \"ct-no-such-user\""),
    )?;
    std::fs::write(
        &file,
        three.replace("down = \"3M\"", "down = \"3 parsecs\""),
    )?;
    refused(
        &lab,
        &["apply", &shown],
        &format!("{shown}:9:8: invalid rate"),
    )?;
    ensure!(
        without_stats(&rules(&lab)?) == before,
        "a refused file changed the rules"
    );

    // the name rule taken out of the file goes; the rule `limit` set stays
    let without_name = three.replace(
        "[[rule]]\nname = \"by-name\"\nprocess_name = \"ct-apply-n\"\ndown = \"3M\"\nmode = \"each\"\n\n",
        "",
    );
    std::fs::write(&file, without_name)?;
    let said = run(&lab, &["apply", &shown])?;
    ensure!(
        said == "- by-name\n~ by-user: order 2 → 1\n0 added, 1 changed, 1 removed, 1 unchanged\n",
        "the apply without by-name (by-user moves up a place): {said}"
    );
    let said = run(&lab, &["apply", &shown])?;
    ensure!(
        said == "0 added, 0 changed, 0 removed, 2 unchanged\n",
        "applied again: {said}"
    );
    let names: Vec<String> = rules(&lab)?
        .iter()
        .filter_map(|r| r["name"].as_str().map(str::to_owned))
        .collect();
    ensure!(
        names == [cli_name.as_str(), "by-exe", "by-user"],
        "the rules left: {names:?}"
    );

    // `limit --save` moves the command line's rule into the file: apply finds it held
    let said = run(
        &lab,
        &["limit", "--exe", &cli_exe, "--down", "1M", "--save", &shown],
    )?;
    print!("{said}");
    ensure!(
        said.ends_with(&format!("saved as rule \"exe-ct-apply-c\" in {shown}\n")),
        "limit --save: {said}"
    );
    let said = run(&lab, &["apply", &shown])?;
    ensure!(
        said == "0 added, 0 changed, 0 removed, 3 unchanged\n",
        "apply after --save: {said}"
    );
    let mut placed: Vec<(String, u64)> = rules(&lab)?
        .iter()
        .filter_map(|r| Some((r["name"].as_str()?.to_owned(), r["order"].as_u64()?)))
        .collect();
    placed.sort_by_key(|(_, order)| *order);
    let expected = [("by-exe", 0), ("by-user", 1), ("exe-ct-apply-c", 2)]
        .map(|(name, order)| (name.to_owned(), order));
    ensure!(
        placed == expected,
        "the rules after --save, with their places in the file: {placed:?}"
    );

    run(&lab, &["reset"])?;
    ensure!(rules(&lab)?.is_empty(), "reset left rules");
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
        (
            "apply_sets_a_rules_file_and_again_changes_nothing",
            apply_sets_a_rules_file_and_again_changes_nothing,
        ),
    ];
    common::main(tests);
}
