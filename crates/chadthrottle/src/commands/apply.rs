//! `chadthrottle apply [FILE] [--dry-run]`: makes the rules the kernel holds from the rules
//! file what the file says. The whole file is read, its targets resolved and their backends
//! chosen before anything changes, so a broken file changes nothing. The file owns only the
//! rules named as a file names them (no space): rules set with `limit` stay.

use super::rule_change::{chosen_limits, default_download, held_by_ifb};
use crate::cli::Global;
use anyhow::Context as _;
use chadthrottle_core::PerDirection;
use chadthrottle_core::access;
use chadthrottle_core::backend::RuleBackend;
use chadthrottle_core::download_default::DefaultDownload;
use chadthrottle_core::rule_plan::{RuleChange, plan};
use chadthrottle_core::rule_request::{RuleRequest, RuleStatus};
use chadthrottle_core::rule_target::{Mode, RuleSpec};
use chadthrottle_core::rules_file::{RulesFileError, parse_rules, rule_error};
use chadthrottle_core::status::Enforcement;
use chadthrottle_core::system::System;
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

/// Whether the rules file owns the held rule `name`: command-line rules are named by their
/// target, with a space, and unnamed kernel rules have one too.
pub fn from_a_file(name: &str) -> bool {
    !name.contains(' ')
}

pub fn run<S: System>(
    system: &mut S,
    global: &Global,
    file: &Path,
    dry_run: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    access::root_only(system.caller(), || "applying a rules file".to_owned())?;
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            anyhow::bail!(
                "rules file {} does not exist (`chadthrottle limit … --save` writes one)",
                file.display()
            )
        }
        Err(error) => {
            return Err(error).with_context(|| format!("cannot read {}", file.display()));
        }
    };
    let wanted = parse_rules(file, &text)?;
    let requests = requests(system, global, file, &text, &wanted)?;
    let mut backend = system.open(&global.datapath())?;
    let held: Vec<RuleStatus> = match backend.as_mut() {
        Some(backend) => backend.rules()?,
        None => Vec::new(),
    };
    not_held_by_the_command_line(file, &text, &wanted, &requests, &held)?;
    let owned: Vec<RuleSpec> = held
        .iter()
        .filter(|rule| from_a_file(&rule.spec.name))
        .map(|rule| rule.spec.clone())
        .collect();
    let plan = plan(&wanted, &owned);
    let mut counts = [0_usize; 4];
    for change in &plan.changes {
        counts[kind(change)] += 1;
    }
    let changes: Vec<&RuleChange> = plan.in_apply_order().collect();
    let mut defaults = Vec::new();
    if !dry_run && !changes.is_empty() {
        let installing = changes
            .iter()
            .any(|change| !matches!(change, RuleChange::Remove(_)));
        let mut backend = match backend {
            Some(backend) => backend,
            // only additions and changes need the datapath installed
            None if installing => {
                super::access::datapath(system, global)?;
                system.install(&global.datapath())?
            }
            None => anyhow::bail!("no datapath is installed to remove rules from"),
        };
        // removals one by one, then the changes and additions in one change: the kernel
        // resolves every process once for all of them, not once a rule; a failure on the
        // way puts back what was done (`undo`), so the kernel holds the rules it held
        let (setting, removing): (Vec<&RuleChange>, Vec<&RuleChange>) = changes
            .iter()
            .copied()
            .partition(|change| matches!(change, RuleChange::Add(_) | RuleChange::Change(..)));
        let mut removed: Vec<&str> = Vec::new();
        for change in removing {
            let name = change.rule().name.as_str();
            if let Err(error) = backend.remove_rule(name) {
                let undone = undo(&mut backend, &removed, &[], &held);
                return Err(stopped(
                    &format!("removing rule \"{name}\""),
                    &error,
                    &undone,
                ));
            }
            removed.push(name);
        }
        if !setting.is_empty() {
            let batch = setting
                .iter()
                .map(|change| {
                    let name = &change.rule().name;
                    requests
                        .get(name.as_str())
                        .cloned()
                        .with_context(|| format!("rule \"{name}\" has no request (a bug in apply)"))
                })
                .collect::<anyhow::Result<Vec<RuleRequest>>>()?;
            if let Err(error) = backend.set_rules(&batch) {
                let undone = undo(&mut backend, &removed, &setting, &held);
                return Err(stopped(
                    &format!("setting the {} rules to add or change", batch.len()),
                    &error,
                    &undone,
                ));
            }
            match downloads_by_default(system, global, &mut backend, &batch) {
                Ok(chosen) => defaults = chosen,
                Err(error) => {
                    let undone = undo(&mut backend, &removed, &setting, &held);
                    return Err(stopped(
                        "choosing the default download backends",
                        &format!("{error:#}"),
                        &undone,
                    ));
                }
            }
        }
        for change in &changes {
            writeln!(out, "{change}")?;
            // under the rule it was chosen for, as `limit` prints it under its own
            let name = change.rule().name.as_str();
            if let Some((_, chosen)) = defaults.iter().find(|(rule, _)| rule == name) {
                write!(out, "  ")?;
                super::limit::print_default(chosen, out)?;
            }
        }
    } else {
        for change in &changes {
            writeln!(out, "{change}")?;
        }
    }
    let [added, changed, removed, unchanged] = counts;
    let dry = if dry_run {
        " (dry run: nothing changed)"
    } else {
        ""
    };
    writeln!(
        out,
        "{added} added, {changed} changed, {removed} removed, {unchanged} unchanged{dry}"
    )?;
    Ok(())
}

/// The rules of `batch` (just set) whose download is left to the default, each with the
/// backend it gets: those whose members' ingress is free are set again with ifb, in one
/// change. A rule with no member yet keeps the fallback until it is set again, as with
/// `limit`.
fn downloads_by_default<S: System>(
    system: &S,
    global: &Global,
    backend: &mut S::Backend,
    batch: &[RuleRequest],
) -> anyhow::Result<Vec<(String, DefaultDownload)>> {
    let defaulted: Vec<&RuleRequest> = batch
        .iter()
        .filter(|request| request.limits.down.is_some_and(|limit| limit.by_default))
        .collect();
    if defaulted.is_empty() {
        return Ok(Vec::new());
    }
    let held = backend.rules()?;
    let mut chosen = Vec::new();
    let mut by_ifb = Vec::new();
    for request in defaulted {
        let name = &request.spec.name;
        let now = held
            .iter()
            .find(|rule| rule.spec.name == *name)
            .with_context(|| format!("rule \"{name}\" is not held after it was set"))?;
        let download = default_download(system, global, now)?;
        if download.backend == Enforcement::Ifb {
            by_ifb.push(held_by_ifb(request));
        }
        chosen.push((name.clone(), download));
    }
    if !by_ifb.is_empty() {
        backend
            .set_rules(&by_ifb)
            .context("holding the rules' downloads with ifb")?;
    }
    Ok(chosen)
}

/// Puts the file's rules back as `held` had them after `apply` failed part-way: the rules
/// `setting` added are removed, and those it changed and those `removed` are set again as
/// they were (same order, limits and backends). Err: what could not be put back.
fn undo<B: RuleBackend>(
    backend: &mut B,
    removed: &[&str],
    setting: &[&RuleChange],
    held: &[RuleStatus],
) -> Result<(), String> {
    let mut failures = Vec::new();
    for change in setting {
        if let RuleChange::Add(rule) = change
            && let Err(error) = backend.remove_rule(&rule.name)
        {
            failures.push(format!(
                "removing the added rule \"{}\": {error}",
                rule.name
            ));
        }
    }
    let again: Vec<RuleRequest> = held
        .iter()
        .filter(|rule| {
            removed.contains(&rule.spec.name.as_str())
                || setting.iter().any(|change| {
                    matches!(change, RuleChange::Change(..)) && change.rule().name == rule.spec.name
                })
        })
        .map(|rule| RuleRequest {
            spec: rule.spec.clone(),
            resolved: rule.resolved.clone(),
            limits: rule.limits,
            lasts: None,
        })
        .collect();
    if !again.is_empty()
        && let Err(error) = backend.set_rules(&again)
    {
        let names: Vec<&str> = again.iter().map(|rule| rule.spec.name.as_str()).collect();
        failures.push(format!(
            "setting rules {} again as they were: {error}",
            names.join(", ")
        ));
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("; "))
    }
}

/// The error of an apply that failed at `step` with `error`, saying whether what it had
/// done was put back.
fn stopped(
    step: &str,
    error: &dyn std::fmt::Display,
    undone: &Result<(), String>,
) -> anyhow::Error {
    match undone {
        Ok(()) => anyhow::anyhow!(
            "apply failed {step}: {error}; what it had changed was put back, the rules held are as before"
        ),
        Err(left) => anyhow::anyhow!(
            "apply failed {step}: {error}; putting back what it had changed failed too ({left}): \
             `chadthrottle rules` lists what is held"
        ),
    }
}

/// Index into the summary's counts: added, changed, removed, unchanged.
const fn kind(change: &RuleChange) -> usize {
    match change {
        RuleChange::Add(_) => 0,
        RuleChange::Change(..) => 1,
        RuleChange::Remove(_) => 2,
        RuleChange::Unchanged(_) => 3,
    }
}

/// The request of each enabled rule of the file, by name: its target resolved on the
/// machine and its backends chosen. A target that does not resolve is an error at the
/// rule's line.
fn requests<S: System>(
    system: &S,
    global: &Global,
    file: &Path,
    text: &str,
    wanted: &[RuleSpec],
) -> anyhow::Result<HashMap<String, RuleRequest>> {
    let named = PerDirection {
        up: global.upload_backend.as_deref(),
        down: global.download_backend.as_deref(),
    };
    let mut requests = HashMap::new();
    for (index, rule) in wanted.iter().enumerate() {
        if !rule.enabled {
            continue;
        }
        let at = |message: String| rule_error(file, text, index, &message);
        let resolved = system
            .resolve(&rule.target)
            .map_err(|error| at(format!("rule \"{}\": {error}", rule.name)))?;
        // the file refuses two rules on one target as written; the kernel, on one as resolved
        if let Some(other) = requests
            .values()
            .find(|other: &&RuleRequest| other.resolved == resolved)
        {
            return Err(at(format!(
                "rule \"{}\" targets {resolved}, as rule \"{}\" does: one rule per target",
                rule.name, other.spec.name
            ))
            .into());
        }
        let mut limits = chosen_limits(system, &rule.limits, named, rule.mode)
            .map_err(|error| at(format!("rule \"{}\": {error:#}", rule.name)))?;
        // a shared download the rule and the command line leave to the default: the
        // fallback first, then ifb where the members' ingress is free, as `limit` does
        let to_default = rule.mode == Mode::Shared
            && named.down.is_none()
            && rule
                .limits
                .down
                .is_some_and(|limit| limit.backend.is_none());
        if let Some(down) = limits.down.as_mut().filter(|_| to_default) {
            down.by_default = true;
        }
        let request = RuleRequest {
            spec: rule.clone(),
            resolved,
            limits,
            lasts: None,
        };
        requests.insert(rule.name.clone(), request);
    }
    Ok(requests)
}

/// Refuses a file rule on what a rule set with `limit` already matches: the two would
/// compete, and apply does not remove command-line rules.
fn not_held_by_the_command_line(
    file: &Path,
    text: &str,
    wanted: &[RuleSpec],
    requests: &HashMap<String, RuleRequest>,
    held: &[RuleStatus],
) -> Result<(), RulesFileError> {
    for (index, rule) in wanted.iter().enumerate() {
        let Some(request) = requests.get(&rule.name) else {
            continue;
        };
        let same = held.iter().find(|other| {
            !from_a_file(&other.spec.name)
                && other.resolved == request.resolved
                && other.spec.target.rank() == rule.target.rank()
        });
        if let Some(other) = same {
            let message = format!(
                "rule \"{}\" targets {}, which rule \"{}\" set with `limit` holds: \
                 remove it with `chadthrottle unlimit` first",
                rule.name, rule.target, other.spec.name
            );
            return Err(rule_error(file, text, index, &message));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{ok, refused, rules_machine};
    use chadthrottle_core::fake::FakeSystem;
    use chadthrottle_core::process::Uids;
    use std::path::PathBuf;

    /// A directory of one test's own, removed with everything in it when dropped.
    struct Scratch(PathBuf);

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A rules file in a directory of this test's own (`test` names it), holding `text`.
    fn rules_file(test: &str, text: &str) -> (Scratch, PathBuf) {
        let directory =
            std::env::temp_dir().join(format!("chadthrottle-apply-{}-{test}", std::process::id()));
        std::fs::create_dir_all(&directory).expect("temporary directory");
        let file = directory.join("rules.toml");
        std::fs::write(&file, text).expect("rules file written");
        (Scratch(directory), file)
    }

    const THREE: &str = r#"# three rules
[[rule]]
name = "steam"
exe = "/usr/bin/steam"
down = "5M"

[[rule]]
name = "sync"
unit = "syncthing.service"
up = "1M"

[[rule]]
name = "alice"
user = "alice"
down = "20M"
mode = "each"
"#;

    /// Name, target and order of each rule held, by order.
    fn held(system: &FakeSystem) -> Vec<(String, String, u32)> {
        system
            .machine()
            .rules
            .iter()
            .map(|rule| {
                let spec = &rule.request.spec;
                (spec.name.clone(), spec.target.to_string(), spec.order)
            })
            .collect()
    }

    fn apply(system: &mut FakeSystem, file: &std::path::Path, extra: &[&str]) -> String {
        let file = file.to_str().expect("UTF-8 path");
        let mut args = vec!["apply", file];
        args.extend_from_slice(extra);
        ok(system, &args)
    }

    #[test]
    fn an_apply_that_fails_part_way_puts_back_what_it_changed() {
        let mut system = rules_machine();
        let (_scratch, file) = rules_file("undo", THREE);
        apply(&mut system, &file, &[]);
        let before = held(&system);
        let limits = |system: &FakeSystem| -> std::collections::BTreeMap<String, _> {
            system
                .machine()
                .rules
                .iter()
                .map(|rule| (rule.request.spec.name.clone(), rule.request.limits))
                .collect()
        };
        let limits_before = limits(&system);
        // removes "sync", changes "steam", adds two: one more rule than the table holds
        system.machine().rule_capacity = 3;
        std::fs::write(
            &file,
            r#"[[rule]]
name = "steam"
exe = "/usr/bin/steam"
down = "7M"

[[rule]]
name = "alice"
user = "alice"
down = "20M"
mode = "each"

[[rule]]
name = "web"
process_name = "firefox"
down = "2M"

[[rule]]
name = "wget"
exe = "/usr/bin/wget"
up = "1M"
"#,
        )
        .expect("rules file written");
        let (out, result) =
            super::super::testing::run(&mut system, &["apply", file.to_str().expect("UTF-8")]);
        let error = result.expect_err("the table is too small for the file");
        assert!(
            error.contains("the rule table is full (3 rules)")
                && error.contains("what it had changed was put back"),
            "{error}"
        );
        assert!(!error.contains('\n'), "one line: {error}");
        assert_eq!(out, "", "nothing is reported as changed");
        let mut after = held(&system);
        let mut expected = before.clone();
        after.sort();
        expected.sort();
        assert_eq!(after, expected, "the same rules, with their order");
        assert_eq!(limits(&system), limits_before, "with their old limits");
        // with room, the same file goes through
        system.machine().rule_capacity = 4;
        apply(&mut system, &file, &[]);
        assert_eq!(held(&system).len(), 4);
    }

    #[test]
    fn apply_adds_changes_and_removes_and_twice_changes_nothing() {
        let mut system = rules_machine();
        ok(&mut system, &["limit", "--name", "wget", "--up", "1M"]);
        let (_scratch, file) = rules_file("adds", THREE);
        assert_eq!(
            apply(&mut system, &file, &[]),
            "+ steam: exe /usr/bin/steam ↓5MB/s (shared)\n  \
             download backend shaping: default: no interface but loopback receives its downloads\n\
             + sync: unit syncthing.service ↑1MB/s (shared)\n\
             + alice: user alice ↓20MB/s (each)\n\
             3 added, 0 changed, 0 removed, 0 unchanged\n"
        );
        let expected = [
            ("name wget", "name wget", 0),
            ("steam", "exe /usr/bin/steam", 0),
            ("sync", "unit syncthing.service", 1),
            ("alice", "user alice", 2),
        ];
        let expected: Vec<(String, String, u32)> = expected
            .iter()
            .map(|(name, target, order)| ((*name).into(), (*target).into(), *order))
            .collect();
        assert_eq!(held(&system), expected);
        let requests = system.machine().requests;
        assert_eq!(
            apply(&mut system, &file, &[]),
            "0 added, 0 changed, 0 removed, 3 unchanged\n"
        );
        assert_eq!(
            system.machine().requests,
            requests,
            "nothing asked of the kernel"
        );

        // one rule changed, one removed, one disabled, one added
        let edited = THREE
            .replace(
                "down = \"5M\"",
                "down = \"2M\"\nupload_backend = \"policer\"\nup = \"1M\"",
            )
            .replace(
                "name = \"sync\"\nunit = \"syncthing.service\"\nup = \"1M\"\n",
                "name = \"sync\"\nunit = \"syncthing.service\"\nup = \"1M\"\nenabled = false\n",
            )
            + "\n[[rule]]\nname = \"web\"\ncontainer = \"web\"\ndown = \"3M\"\n";
        std::fs::write(&file, edited).expect("rules file written");
        assert_eq!(
            apply(&mut system, &file, &[]),
            "- sync\n\
             ~ steam: ↓5MB/s → ↓2MB/s, ↑unlimited → ↑1MB/s policer\n  \
             download backend shaping: default: no interface but loopback receives its downloads\n\
             + web: container web ↓3MB/s (shared)\n  \
             download backend shaping: default: no interface but loopback receives its downloads\n\
             1 added, 1 changed, 1 removed, 1 unchanged\n"
        );
        let names: Vec<String> = held(&system).into_iter().map(|(name, ..)| name).collect();
        assert_eq!(names, ["name wget", "steam", "alice", "web"]);
        let machine = system.machine();
        let steam = &machine.rules[1].request;
        assert_eq!(
            steam.limits.up.map(|l| (l.rate, l.enforcement.name())),
            Some((1 << 20, "policer"))
        );
        drop(machine);
        assert_eq!(
            apply(&mut system, &file, &[]),
            "0 added, 0 changed, 0 removed, 3 unchanged\n"
        );

        // an empty file removes the file's rules, and only those
        std::fs::write(&file, "# nothing\n").expect("rules file written");
        assert_eq!(
            apply(&mut system, &file, &[]),
            "- steam\n- alice\n- web\n0 added, 0 changed, 3 removed, 0 unchanged\n"
        );
        let names: Vec<String> = held(&system).into_iter().map(|(name, ..)| name).collect();
        assert_eq!(names, ["name wget"]);
    }

    #[test]
    fn a_file_rules_download_left_to_the_default_gets_ifb_where_its_members_ingress_is_free() {
        use chadthrottle_core::download_default::{Ingress, InterfaceIngress};
        use chadthrottle_core::status::Enforcement;
        let mut system = rules_machine();
        system.machine().download_ingress = Ok(vec![InterfaceIngress {
            name: "eth0".into(),
            ingress: Ingress::Free,
        }]);
        let text = THREE.to_owned()
            + "\n[[rule]]\nname = \"named\"\ncontainer = \"web\"\ndown = \"1M\"\n\
               download_backend = \"shaping\"\n\
               \n[[rule]]\nname = \"absent\"\nexe = \"/usr/bin/aria2c\"\ndown = \"1M\"\n";
        let (_scratch, file) = rules_file("ifb", &text);
        let out = apply(&mut system, &file, &[]);
        let down = |system: &FakeSystem, name: &str| {
            let machine = system.machine();
            let rule = machine.rules.iter().find(|r| r.request.spec.name == name);
            rule.and_then(|r| r.request.limits.down)
                .map(|l| (l.enforcement, l.by_default))
        };
        // steam's two processes arrive on a free ingress: ifb, as `limit --exe` gives it
        assert_eq!(
            down(&system, "steam"),
            Some((Enforcement::Ifb, true)),
            "{out}"
        );
        assert!(
            out.contains(
                "+ steam: exe /usr/bin/steam ↓5MB/s (shared)\n  download backend ifb: default: \
                 the ingress of eth0 is free"
            ),
            "{out}"
        );
        // no process runs aria2c yet: no interface is known, so the fallback, and why
        assert_eq!(down(&system, "absent"), Some((Enforcement::Shaping, true)));
        assert!(out.contains("the rule governs no process now"), "{out}");
        // a backend the file names, and an each-mode rule: no default, no line
        assert_eq!(down(&system, "named"), Some((Enforcement::Shaping, false)));
        assert_eq!(
            down(&system, "alice").map(|(_, by_default)| by_default),
            Some(false)
        );
        assert_eq!(out.matches("download backend").count(), 2, "{out}");
        // twice: nothing changes, and the download stays with ifb
        let requests = system.machine().requests;
        assert_eq!(
            apply(&mut system, &file, &[]),
            "0 added, 0 changed, 0 removed, 5 unchanged\n"
        );
        assert_eq!(system.machine().requests, requests);
        assert_eq!(down(&system, "steam"), Some((Enforcement::Ifb, true)));
    }

    #[test]
    fn a_dry_run_prints_the_changes_and_makes_none() {
        let mut system = rules_machine();
        let (_scratch, file) = rules_file("dry", THREE);
        let out = apply(&mut system, &file, &["--dry-run"]);
        assert_eq!(
            out,
            "+ steam: exe /usr/bin/steam ↓5MB/s (shared)\n\
             + sync: unit syncthing.service ↑1MB/s (shared)\n\
             + alice: user alice ↓20MB/s (each)\n\
             3 added, 0 changed, 0 removed, 0 unchanged (dry run: nothing changed)\n"
        );
        let machine = system.machine();
        assert!(machine.rules.is_empty());
        assert_eq!(machine.requests, 0, "not even installed");
        assert!(machine.installs.is_empty());
        drop(machine);
        apply(&mut system, &file, &[]);
        std::fs::write(&file, "").expect("rules file written");
        let before = system.machine().rules.clone();
        assert_eq!(
            apply(&mut system, &file, &["--dry-run"]),
            "- steam\n- sync\n- alice\n0 added, 0 changed, 3 removed, 0 unchanged (dry run: nothing changed)\n"
        );
        assert_eq!(system.machine().rules, before);
    }

    #[test]
    fn a_broken_file_changes_nothing_and_says_where() {
        let mut system = rules_machine();
        ok(
            &mut system,
            &["limit", "--exe", "/usr/bin/curl", "--up", "1M"],
        );
        let (_scratch, file) = rules_file("broken", THREE);
        apply(&mut system, &file, &[]);
        let before = {
            let machine = system.machine();
            (machine.rules.clone(), machine.requests)
        };
        let shown = file.display().to_string();
        let cases = [
            (
                THREE.replace("down = \"20M\"", "down = \"fast\""),
                "15:8: invalid rate \"fast\"",
            ),
            (
                THREE.replace("mode = \"each\"", "speed = 3"),
                "16:1: unknown field `speed`",
            ),
            (
                THREE.replace("user = \"alice\"", "user = \"bob\""),
                "14:8: rule \"alice\": user \"bob\" is not in the user database",
            ),
            (
                THREE.replace("syncthing.service", "nope.service"),
                "9:8: rule \"sync\": unit \"nope.service\" is not running",
            ),
            (
                THREE.replace("/usr/bin/steam", "/opt/nowhere/steam"),
                "4:7: rule \"steam\": executable \"/opt/nowhere/steam\": its directory",
            ),
            (
                THREE.replace("/usr/bin/steam", "/usr/bin/curl"),
                "4:7: rule \"steam\" targets exe /usr/bin/curl, which rule \"exe /usr/bin/curl\" set with `limit` holds",
            ),
            (
                THREE.replace("unit = \"syncthing.service\"", "pid = 5000"),
                "9:7: rule \"sync\" has a pid",
            ),
            (
                THREE.replace("user = \"alice\"", "user = 1000")
                    + "\n[[rule]]\nname = \"a\"\nuser = \"alice\"\nup = \"1M\"\n",
                "20:8: rule \"a\" targets uid 1000, as rule \"alice\" does: one rule per target",
            ),
        ];
        for (text, expected) in cases {
            std::fs::write(&file, &text).expect("rules file written");
            let error = refused(&mut system, &["apply", &shown]);
            assert!(
                error.starts_with(&format!("{shown}:{expected}")),
                "{expected}: {error}"
            );
            assert!(!error.contains('\n'), "one line: {error}");
            let machine = system.machine();
            assert_eq!(
                (machine.rules.clone(), machine.requests),
                before,
                "{expected}"
            );
        }
        // a disabled rule is not resolved: it is not set
        let disabled = THREE.replace("user = \"alice\"", "user = \"bob\"\nenabled = false");
        std::fs::write(&file, disabled).expect("rules file written");
        assert_eq!(
            ok(&mut system, &["apply", &shown]),
            "- alice\n0 added, 0 changed, 1 removed, 2 unchanged\n"
        );
    }

    #[test]
    fn the_packaged_example_applies() {
        let example = include_str!("../../../../packaging/rules.toml.example");
        let mut system = rules_machine();
        let (_scratch, file) = rules_file("example", example);
        assert_eq!(
            apply(&mut system, &file, &[]),
            "+ steam: exe /usr/bin/steam ↓5MB/s (shared)\n  \
             download backend shaping: default: no interface but loopback receives its downloads\n\
             + wget: name wget ↓1MB/s ↑1MB/s (each)\n\
             + sync: unit syncthing.service ↑500KB/s burst 1MB policer (shared)\n\
             + web: container web ↑10MB/s (shared)\n\
             4 added, 0 changed, 0 removed, 0 unchanged\n"
        );
        assert_eq!(
            apply(&mut system, &file, &[]),
            "0 added, 0 changed, 0 removed, 4 unchanged\n"
        );
    }

    #[test]
    fn the_boot_unit_applies_the_default_file_once() {
        let unit = include_str!("../../../../packaging/chadthrottle-rules.service");
        let lines: Vec<&str> = unit.lines().map(str::trim).collect();
        let exec = format!(
            "ExecStart=/usr/bin/chadthrottle apply {}",
            crate::cli::RULES_FILE
        );
        for expected in [
            exec.as_str(),
            "Type=oneshot",
            "RemainAfterExit=yes",
            "After=network.target local-fs.target",
            "WantedBy=multi-user.target",
        ] {
            assert!(
                lines.contains(&expected),
                "{expected} is not in the unit:\n{unit}"
            );
        }
    }

    #[test]
    fn apply_and_save_take_the_default_file_when_given_none() {
        use crate::cli::{Cli, Command, RULES_FILE};
        use clap::Parser as _;
        let parse = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("chadthrottle").chain(args.iter().copied()))
                .unwrap_or_else(|error| panic!("{args:?}: {error}"))
                .command
        };
        let files = [
            (vec!["apply"], RULES_FILE),
            (vec!["apply", "--dry-run", "/tmp/r.toml"], "/tmp/r.toml"),
            (
                vec!["limit", "--exe", "/bin/a", "--up", "1M", "--save"],
                RULES_FILE,
            ),
            (
                vec!["limit", "--save", "--exe", "/bin/a", "--up", "1M"],
                RULES_FILE,
            ),
            (
                vec!["limit", "--exe", "/bin/a", "--up", "1M", "--save", "r.toml"],
                "r.toml",
            ),
        ];
        for (args, expected) in files {
            let file = match parse(&args) {
                Some(Command::Apply(apply)) => apply.file,
                Some(Command::Limit(limit)) => limit.save.unwrap_or_default(),
                other => panic!("{args:?} parsed as {other:?}"),
            };
            assert_eq!(file, PathBuf::from(expected), "{args:?}");
        }
        match parse(&["limit", "--exe", "/bin/a", "--up", "1M"]) {
            Some(Command::Limit(limit)) => assert_eq!(limit.save, None),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn a_missing_file_and_a_caller_without_root_are_refused() {
        let mut system = rules_machine();
        let missing = std::env::temp_dir().join("chadthrottle-apply-no-such-dir/rules.toml");
        let error = refused(&mut system, &["apply", missing.to_str().expect("UTF-8")]);
        assert_eq!(
            error,
            format!(
                "rules file {} does not exist (`chadthrottle limit … --save` writes one)",
                missing.display()
            )
        );
        let (_scratch, file) = rules_file("root", THREE);
        system.machine().caller = Uids::of(1000);
        let error = refused(&mut system, &["apply", file.to_str().expect("UTF-8")]);
        assert_eq!(
            error,
            "applying a rules file affects every user of this machine: only root may do it (run it with sudo)"
        );
        assert!(system.machine().rules.is_empty());
    }

    #[test]
    fn a_saved_rule_is_one_apply_finds_held() {
        let mut system = rules_machine();
        let (_scratch, file) = rules_file("save", "# saved by limit --save\n");
        let file = file.with_file_name("etc/chadthrottle/rules.toml");
        let shown = file.to_str().expect("UTF-8").to_owned();
        let out = ok(
            &mut system,
            &[
                "limit",
                "--exe",
                "/usr/bin/steam",
                "--down",
                "5M",
                "--save",
                &shown,
            ],
        );
        assert!(
            out.starts_with(
                "rule \"exe-steam\": exe /usr/bin/steam ↓5MB/s (shared), until removed \
                 [shaping (default)]; "
            ),
            "{out}"
        );
        assert!(
            out.ends_with(&format!("saved as rule \"exe-steam\" in {shown}\n")),
            "{out}"
        );
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&file).expect("saved").permissions(),
        );
        assert_eq!(mode & 0o777, 0o644);
        // a CLI rule on a target moves into the file; saving a target again replaces it
        ok(&mut system, &["limit", "--user", "alice", "--up", "1M"]);
        ok(
            &mut system,
            &[
                "limit", "--user", "alice", "--up", "2M", "--each", "--save", &shown,
            ],
        );
        ok(
            &mut system,
            &[
                "--download-backend",
                "policer",
                "limit",
                "--exe",
                "/usr/bin/steam",
                "--down",
                "4M",
                "--save",
                &shown,
            ],
        );
        let text = std::fs::read_to_string(&file).expect("saved");
        assert_eq!(
            text,
            "[[rule]]\nname = \"exe-steam\"\nexe = \"/usr/bin/steam\"\ndown = \"4MB\"\ndownload_backend = \"policer\"\n\n\
             [[rule]]\nname = \"user-alice\"\nuser = \"alice\"\nup = \"2MB\"\nmode = \"each\"\n"
        );
        let names: Vec<(String, String, u32)> = held(&system);
        assert_eq!(
            names,
            [
                ("exe-steam".to_owned(), "exe /usr/bin/steam".to_owned(), 0),
                ("user-alice".to_owned(), "user alice".to_owned(), 1)
            ]
        );
        assert_eq!(
            ok(&mut system, &["apply", &shown]),
            "0 added, 0 changed, 0 removed, 2 unchanged\n"
        );
    }

    #[test]
    fn save_reads_the_file_first_and_says_when_it_cannot_write() {
        let mut system = rules_machine();
        let (_scratch, file) = rules_file("unsaved", "[[rule]\n");
        let shown = file.to_str().expect("UTF-8").to_owned();
        let args = [
            "limit",
            "--exe",
            "/usr/bin/steam",
            "--down",
            "5M",
            "--save",
            &shown,
        ];
        let error = refused(&mut system, &args);
        assert!(error.starts_with(&format!("{shown}:1:")), "{error}");
        assert!(system.machine().rules.is_empty(), "nothing set");
        // a directory where the file should be: the rule is set, the file not written
        std::fs::remove_file(&file).expect("removed");
        std::fs::create_dir(&file).expect("a directory in its place");
        let error = refused(&mut system, &args);
        assert!(
            error.starts_with(&format!("cannot read {shown}")),
            "{error}"
        );
        std::fs::remove_dir(&file).expect("removed");
        // where no directory can be made, not even by root: the rule is set, not saved
        let below = "/proc/chadthrottle-no-such-directory/rules.toml";
        let args = [
            "limit",
            "--exe",
            "/usr/bin/steam",
            "--down",
            "5M",
            "--save",
            below,
        ];
        let error = refused(&mut system, &args);
        assert!(
            error.starts_with(&format!(
                "rule \"exe-steam\" is set but not saved in {below}: cannot "
            )),
            "{error}"
        );
        assert!(
            error.ends_with("; it lasts until unlimit, reset or reboot"),
            "{error}"
        );
        assert_eq!(held(&system).len(), 1, "the rule stays set");
    }
}
