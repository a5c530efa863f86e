//! The daemon on the fake machine, with a database in a temporary directory: what it
//! writes is what `usage` reads back, across a restart and a datapath reset.

use super::super::testing::{CURL, WGET, machine, ok, refused, rules_machine};
use chadthrottle_core::fake::FakeSystem;
use chadthrottle_tui::fixtures::{reading, usage};
use std::path::{Path, PathBuf};

/// A configuration file sampling every second into `dir/usage.db`, its metrics on a port
/// the system picks (tests run side by side).
fn config(dir: &Path) -> PathBuf {
    let path = dir.join("config.toml");
    let text = format!(
        "interval = \"1s\"\ndatabase = \"{}\"\n[metrics]\nlisten = \"127.0.0.1:0\"\n",
        dir.join("usage.db").display()
    );
    std::fs::write(&path, text).expect("write the configuration");
    path
}

/// The usage source's next readings: curl at 1000 B/s and wget at 100 B/s, at these
/// seconds since their counters started.
fn readings_at(system: &FakeSystem, seconds: &[u64]) {
    let processes = [usage(CURL, "curl", 1000), usage(WGET, "wget", 100)];
    let mut machine = system.machine();
    machine.readings = seconds.iter().map(|&s| reading(&processes, s)).collect();
    machine
        .processes
        .values_mut()
        .for_each(|p| p.info.start_time = 1);
}

/// Download bytes per application, as `usage --json` reports them.
fn downloads(system: &mut FakeSystem, config: &Path, by: &str) -> Vec<(String, u64)> {
    let out = ok(
        system,
        &[
            "usage",
            "--config",
            &config.display().to_string(),
            "--by",
            by,
            "--json",
        ],
    );
    let report: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    report["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|row| {
            let key = ["app", "user", "day", "name"]
                .iter()
                .find_map(|k| row[k].as_str())
                .unwrap_or_default()
                .to_owned();
            (key, row["rx_bytes"].as_u64().expect("rx_bytes"))
        })
        .collect()
}

fn daemon(system: &mut FakeSystem, config: &Path, count: u64) -> String {
    daemon_with_rules(system, config, Path::new("/nonexistent/rules.toml"), count)
}

#[test]
fn the_daemon_counts_each_byte_once_across_a_restart_and_a_reset() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = config(dir.path());
    let mut system = machine();
    readings_at(&system, &[10, 20, 30]);
    let log = daemon(&mut system, &config, 3);
    assert!(log.contains("no rules file"), "{log}");
    assert!(log.contains("stopped after 3 samples"), "{log}");
    // a new database counts the counters whole: 1 + 1000 × 30
    assert_eq!(
        downloads(&mut system, &config, "app"),
        [
            ("/usr/bin/curl".to_owned(), 30_001),
            ("/usr/bin/wget".to_owned(), 3001)
        ]
    );
    // restarted: it resumes from the stored counters
    readings_at(&system, &[45, 50]);
    daemon(&mut system, &config, 2);
    assert_eq!(
        downloads(&mut system, &config, "app"),
        [
            ("/usr/bin/curl".to_owned(), 50_001),
            ("/usr/bin/wget".to_owned(), 5001)
        ]
    );
    // the datapath is reset: the counters start again, in a new epoch
    system.machine().accounting_epoch += 1;
    readings_at(&system, &[7]);
    daemon(&mut system, &config, 1);
    assert_eq!(
        downloads(&mut system, &config, "app"),
        [
            ("/usr/bin/curl".to_owned(), 57_002),
            ("/usr/bin/wget".to_owned(), 5702)
        ]
    );
    assert_eq!(
        downloads(&mut system, &config, "user"),
        [("root".to_owned(), 57_002 + 5702)]
    );
    let processes = downloads(&mut system, &config, "process");
    assert_eq!(processes.len(), 2, "{processes:?}");
}

#[test]
fn a_rule_governing_a_process_is_part_of_its_application() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = config(dir.path());
    let mut system = machine();
    readings_at(&system, &[10]);
    ok(&mut system, &["limit", "--name", "wget", "--down", "1M"]);
    daemon(&mut system, &config, 1);
    let out = ok(
        &mut system,
        &["usage", "--config", &config.display().to_string()],
    );
    // grouped as `top --by app` groups: the rule is the application
    assert!(out.contains("  rule name wget\n"), "{out}");
    assert!(out.contains("  /usr/bin/curl\n"), "{out}");
    let json = ok(
        &mut system,
        &[
            "usage",
            "--config",
            &config.display().to_string(),
            "--rule",
            "name wget",
            "--by",
            "process",
            "--json",
        ],
    );
    let report: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    let rows = report["rows"].as_array().expect("rows");
    assert!(!rows.is_empty(), "{json}");
    for row in rows {
        assert_eq!(
            (&row["app"], &row["app_kind"], &row["exe"], &row["rule"]),
            (
                &serde_json::json!("name wget"),
                &serde_json::json!("rule"),
                &serde_json::json!("/usr/bin/wget"),
                &serde_json::json!("name wget")
            ),
            "{json}"
        );
    }
}

#[test]
fn an_unwritable_database_is_logged_once_and_the_daemon_goes_on() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = config(dir.path());
    // a directory where the database file should be: every open fails
    std::fs::create_dir(dir.path().join("usage.db")).expect("directory");
    let mut system = machine();
    readings_at(&system, &[10, 20]);
    let log = daemon(&mut system, &config, 2);
    assert_eq!(log.matches("usage database").count(), 1, "{log}");
    assert!(log.contains("stopped after 2 samples"), "{log}");
}

#[test]
fn the_daemon_refuses_a_bad_configuration_a_missing_one_and_a_user_before_starting() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "interval = \"10s\"\nintervall = \"5s\"\n").expect("write");
    let mut system = machine();
    let error = refused(
        &mut system,
        &["daemon", "--config", &config.display().to_string()],
    );
    assert!(
        error.starts_with(&format!("{}:2:1: ", config.display())),
        "{error}"
    );
    let error = refused(
        &mut system,
        &["daemon", "--config", "/nonexistent/config.toml"],
    );
    assert!(error.contains("/nonexistent/config.toml"), "{error}");
    system.machine().caller = chadthrottle_core::process::Uids::of(1000);
    let error = refused(
        &mut system,
        &[
            "daemon",
            "--config",
            &self::config(dir.path()).display().to_string(),
        ],
    );
    assert!(
        error.contains("the daemon") && error.contains("root"),
        "{error}"
    );
    assert!(!dir.path().join("usage.db").exists(), "nothing started");
    let error = refused(
        &mut system,
        &[
            "usage",
            "--since",
            "yesterday",
            "--config",
            &self::config(dir.path()).display().to_string(),
        ],
    );
    assert!(error.contains("\"yesterday\""), "{error}");
}

#[test]
fn usage_without_a_database_says_so() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = config(dir.path());
    let mut system = machine();
    let error = refused(
        &mut system,
        &["usage", "--config", &config.display().to_string()],
    );
    assert!(
        error.contains("usage.db") && error.contains("daemon"),
        "{error}"
    );
}

/// The daemon with `rules` as its rules file, stopping after `count` samples.
fn daemon_with_rules(system: &mut FakeSystem, config: &Path, rules: &Path, count: u64) -> String {
    ok(
        system,
        &[
            "daemon",
            "--config",
            &config.display().to_string(),
            "--rules",
            &rules.display().to_string(),
            "--count",
            &count.to_string(),
        ],
    )
}

const STEAM_RULE: &str = "[[rule]]\nname = \"steam\"\nexe = \"/usr/bin/steam\"\ndown = \"5M\"\n";

#[test]
fn the_rules_file_is_applied_at_start_and_again_when_it_changes() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = config(dir.path());
    let rules = dir.path().join("rules.toml");
    std::fs::write(&rules, STEAM_RULE).expect("write the rules file");
    let mut system = rules_machine();
    readings_at(&system, &[10]);
    // samples (and looks at the file) at 0, 1 and 2 s; the file changes at 1.5 s
    let changer = {
        let rules = rules.clone();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(1500));
            std::fs::write(&rules, STEAM_RULE.replace("\"5M\"", "\"2MB\"")).expect("rewrite");
        })
    };
    let log = daemon_with_rules(&mut system, &config, &rules, 3);
    changer.join().expect("the file was changed");
    assert_eq!(log.matches("applying").count(), 2, "{log}");
    assert!(log.contains("+ steam: exe /usr/bin/steam ↓5MB/s"), "{log}");
    assert!(log.contains("~ steam: ↓5MB/s → ↓2MB/s"), "{log}");
    let held = ok(&mut system, &["rules", "--json"]);
    assert!(held.contains("\"steam\""), "{held}");
}

#[test]
fn a_broken_rules_file_is_logged_where_it_is_and_the_daemon_goes_on() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = config(dir.path());
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        "[[rule]]\nname = \"steam\"\nexe = \"/usr/bin/steam\"\n",
    )
    .expect("write the rules file");
    let mut system = rules_machine();
    readings_at(&system, &[10]);
    let log = daemon_with_rules(&mut system, &config, &rules, 1);
    assert!(log.contains(&format!("{}:1:1: ", rules.display())), "{log}");
    assert!(log.contains("the rules in force stay"), "{log}");
    assert!(log.contains("stopped after 1 samples"), "{log}");
    assert!(system.machine().rules.is_empty());
}

#[test]
fn a_reset_while_the_daemon_runs_is_followed_by_the_new_counters() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = config(dir.path());
    let mut system = machine();
    readings_at(&system, &[10, 20]);
    // samples at 0, 1 and 2 s; the datapath is reset and counts again from zero at 1.5 s
    let resetter = {
        let system = system.clone();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(1500));
            readings_at(&system, &[3]);
            system.machine().accounting_epoch += 1;
        })
    };
    let log = daemon(&mut system, &config, 3);
    resetter.join().expect("the reset happened");
    assert_eq!(log.matches("the datapath was reset").count(), 1, "{log}");
    assert_eq!(
        log.matches("the datapath is installed again (").count(),
        1,
        "{log}"
    );
    // 20 s of counters before the reset, 3 s after it
    assert_eq!(
        downloads(&mut system, &config, "app"),
        [
            ("/usr/bin/curl".to_owned(), 20_001 + 3001),
            ("/usr/bin/wget".to_owned(), 2001 + 301)
        ]
    );
}

#[test]
fn the_metrics_endpoint_starts_with_the_daemon_and_a_busy_address_refuses_the_start() {
    let dir = tempfile::tempdir().expect("a directory");
    let config = config(dir.path());
    let mut system = machine();
    readings_at(&system, &[1, 2]);
    let log = daemon(&mut system, &config, 2);
    assert!(
        log.contains("metrics on http://127.0.0.1:") && log.contains("/metrics\n"),
        "{log}"
    );
    // the address is taken: nothing starts, no database is made
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let busy = dir.path().join("busy.toml");
    let database = dir.path().join("busy.db");
    std::fs::write(
        &busy,
        format!(
            "database = \"{}\"\n[metrics]\nlisten = \"{}\"\n",
            database.display(),
            taken.local_addr().expect("its address")
        ),
    )
    .expect("write the configuration");
    let error = refused(
        &mut system,
        &[
            "daemon",
            "--config",
            &busy.display().to_string(),
            "--count",
            "1",
        ],
    );
    assert!(
        error.contains("cannot listen for metrics on 127.0.0.1:"),
        "{error}"
    );
    assert!(!database.exists(), "nothing was written");
}

#[test]
fn each_sample_follows_the_limits_onto_new_interfaces_and_a_failure_is_logged_once() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = config(dir.path());
    let mut system = machine();
    readings_at(&system, &[10, 20, 30]);
    // no datapath installed: nothing to follow
    daemon(&mut system, &config, 1);
    assert_eq!(system.machine().follows, 0);
    ok(
        &mut system,
        &["limit", "--pid", &CURL.to_string(), "--down", "1M"],
    );
    system.machine().follow_error = Some("interface wg0 has a root qdisc (cake)".into());
    readings_at(&system, &[10, 20, 30]);
    let log = daemon(&mut system, &config, 2);
    assert_eq!(system.machine().follows, 2, "once a sample: {log}");
    assert_eq!(
        log.matches(
            "cannot put the limits on new interfaces: interface wg0 has a root qdisc (cake); \
             the policer holds them there"
        )
        .count(),
        1,
        "logged once: {log}"
    );
    system.machine().follow_error = None;
    readings_at(&system, &[10, 20, 30]);
    let log = daemon(&mut system, &config, 1);
    assert_eq!(system.machine().follows, 3);
    assert!(!log.contains("cannot put the limits"), "{log}");
}

#[test]
fn a_rule_set_before_its_program_ran_gets_ifb_for_its_download_once_a_member_runs() {
    use chadthrottle_core::download_default::{Ingress, InterfaceIngress};
    use chadthrottle_core::fake::FakeProcess;
    use chadthrottle_core::status::Enforcement;
    const ARIA: u32 = 6000;
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = config(dir.path());
    let mut system = rules_machine();
    system.machine().download_ingress = Ok(vec![InterfaceIngress {
        name: "eth0".into(),
        ingress: Ingress::Free,
    }]);
    // as a rules file applied at boot sets it: aria2c does not run yet
    ok(
        &mut system,
        &["limit", "--exe", "/usr/bin/aria2c", "--down", "1M"],
    );
    let down = |system: &FakeSystem| {
        let machine = system.machine();
        let rule = machine.rules.iter().find(|rule| {
            rule.request
                .limits
                .down
                .is_some_and(|limit| limit.rate == 1 << 20)
        });
        rule.and_then(|rule| rule.request.limits.down)
            .map(|limit| (limit.enforcement, limit.by_default))
    };
    assert_eq!(down(&system), Some((Enforcement::Shaping, true)));
    readings_at(&system, &[10, 20, 30]);
    let log = daemon(&mut system, &config, 1);
    assert_eq!(
        down(&system),
        Some((Enforcement::Shaping, true)),
        "no member: no interface to look at yet: {log}"
    );
    assert!(!log.contains("download backend"), "{log}");

    system.machine().spawn(FakeProcess::new(ARIA, 40, "aria2c"));
    readings_at(&system, &[10, 20, 30]);
    let log = daemon(&mut system, &config, 1);
    assert_eq!(down(&system), Some((Enforcement::Ifb, true)), "{log}");
    assert_eq!(
        log.matches("download backend ifb: default: the ingress of eth0 is free")
            .count(),
        1,
        "{log}"
    );
    assert_eq!(
        system.machine().rules.len(),
        1,
        "set again in its place, not added"
    );

    let requests = system.machine().requests;
    readings_at(&system, &[10, 20, 30]);
    let log = daemon(&mut system, &config, 1);
    assert_eq!(
        system.machine().requests,
        requests,
        "nothing left to do: {log}"
    );
    assert!(!log.contains("download backend"), "{log}");
}
