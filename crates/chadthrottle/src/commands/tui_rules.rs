//! The TUI's rule effects on the machine: which rule targets a process falls under (the
//! throttle dialog's offers), setting and removing the rule on one the way `limit` and
//! `unlimit` with that target do — an executable's rule saved in the rules file as
//! `limit --exe PATH --save` saves it — and the rules in force, for the rules view.

use super::{rule_change, rules, save};
use crate::cli::{Global, LimitArgs, RateArgs};
use anyhow::Context as _;
use chadthrottle_core::process_targets::process_targets;
use chadthrottle_core::rule_target::{Mode, RuleTarget};
use chadthrottle_core::rules_file::{forget_rule, parse_rules};
use chadthrottle_core::system::System;
use chadthrottle_core::usage::LimitRates;
use chadthrottle_core::{ProcessRef, Rate};
use chadthrottle_tui::target_choice::TargetOffer;
use std::path::Path;

/// Only a rule on an executable is saved: its path names the same application after a
/// reboot, where a tree's PID does not, and a desktop app's scope or a container's id is
/// made anew each run.
fn saved(target: &RuleTarget) -> bool {
    matches!(target, RuleTarget::Exe(_))
}

/// The rule targets `process` falls under that the caller may set (rules are root's), each
/// with the rates of the rule held on it now; none if the process is gone.
pub fn offers<S: System>(system: &mut S, global: &Global, process: ProcessRef) -> Vec<TargetOffer> {
    if !system.is_alive(process) {
        return Vec::new();
    }
    let exe = system.exe(process.pid);
    let cgroup = system.inspect(process.pid).and_then(|info| info.cgroup);
    let targets: Vec<RuleTarget> = process_targets(process.pid, exe.as_deref(), cgroup.as_deref())
        .into_iter()
        .filter(|target| super::access::rule(system, target).is_ok())
        .collect();
    if targets.is_empty() {
        return Vec::new();
    }
    // a listing that fails offers the targets with nothing held; setting one says why
    let held = rules::held(system, global).unwrap_or_default();
    targets
        .into_iter()
        .map(|target| {
            let rule = held.iter().find(|rule| rule.spec.target == target);
            TargetOffer {
                held: rule.map(|rule| LimitRates::of(&rule.limits)),
                each: rule.is_some_and(|rule| rule.spec.mode == Mode::Each),
                saved: saved(&target),
                target,
            }
        })
        .collect()
}

/// What a command printed, as one status-bar line.
fn one_line(out: &[u8]) -> String {
    String::from_utf8_lossy(out)
        .lines()
        .collect::<Vec<_>>()
        .join("; ")
}

/// Sets the rule on `target` as the dialog says — through `limit`'s own path (`each`:
/// `--each`), and with `save` through `limit --save`'s into `rules_file` — or removes it
/// when both directions are empty. Returns what `limit` would have printed, on one line.
pub fn set_rule<S: System>(
    system: &mut S,
    global: &Global,
    rules_file: &Path,
    target: &RuleTarget,
    rates: (Option<u64>, Option<u64>),
    each: bool,
    save: bool,
) -> anyhow::Result<String> {
    let (up, down) = rates;
    if up.is_none() && down.is_none() {
        return lift(system, global, save.then_some(rules_file), target);
    }
    let held = rules::held(system, global)?
        .into_iter()
        .find(|rule| rule.spec.target == *target);
    // `limit` keeps a direction it is not given from the rule it replaces, but the
    // dialog's emptied field lifts it: such a rule goes first, and is set anew
    let lifts_one = held.as_ref().is_some_and(|rule| {
        (up.is_none() && rule.limits.up.is_some()) || (down.is_none() && rule.limits.down.is_some())
    });
    if lifts_one {
        rule_change::remove(system, global, target, &mut Vec::new())?;
    }
    let rate = |bytes: Option<u64>| {
        bytes
            .map(|bytes| Rate::new(bytes).with_context(|| format!("rate {bytes} B/s is too high")))
            .transpose()
    };
    let args = LimitArgs {
        each,
        rates: RateArgs {
            up: rate(up)?,
            down: rate(down)?,
            ..RateArgs::default()
        },
        ..LimitArgs::default()
    };
    let mut out = Vec::new();
    if save {
        save::run(system, global, target, &args, rules_file, &mut out)?;
    } else {
        rule_change::set(system, global, target, &args, None, &mut out)?;
    }
    Ok(one_line(&out))
}

/// Removes the rule on `target` from the kernel, as `unlimit` does, and with `rules_file`
/// from that file too. Without it, a rule the file still holds is named as coming back.
pub fn lift<S: System>(
    system: &mut S,
    global: &Global,
    rules_file: Option<&Path>,
    target: &RuleTarget,
) -> anyhow::Result<String> {
    let mut out = Vec::new();
    let removed = rule_change::remove(system, global, target, &mut out);
    let forgotten = match rules_file {
        Some(file) => forget(file, target)?,
        None => false,
    };
    match (removed, rules_file) {
        (Ok(()), Some(file)) if forgotten => {
            Ok(format!("{}; and from {}", one_line(&out), file.display()))
        }
        (Err(_), Some(file)) if forgotten => Ok(format!(
            "rule on \"{target}\" removed from {} (it was not in force)",
            file.display()
        )),
        (Ok(()), _) => Ok(one_line(&out)),
        (Err(error), _) => Err(error),
    }
}

/// Like [`lift`] without a file, the rules file named if it holds the rule still (`apply`
/// at boot sets it again).
pub fn lift_held<S: System>(
    system: &mut S,
    global: &Global,
    rules_file: &Path,
    target: &RuleTarget,
) -> anyhow::Result<String> {
    let text = lift(system, global, None, target)?;
    let in_file = std::fs::read_to_string(rules_file)
        .ok()
        .and_then(|text| parse_rules(rules_file, &text).ok())
        .is_some_and(|rules| rules.iter().any(|rule| rule.target == *target));
    Ok(match in_file {
        true => format!(
            "{text}; {} still holds it: set again at boot",
            rules_file.display()
        ),
        false => text,
    })
}

/// Takes the rule on `target` out of `file`; `false` if the file has none (or no file).
fn forget(file: &Path, target: &RuleTarget) -> anyhow::Result<bool> {
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(error) => {
            return Err(error).with_context(|| format!("cannot read {}", file.display()));
        }
    };
    match forget_rule(file, &text, target)? {
        Some(rest) => save::write(file, &rest).map(|()| true),
        None => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use crate::commands::testing::{NGINX, STEAM, SYNCTHING, ok, rules_json, rules_machine};
    use chadthrottle_core::fake::FakeSystem;
    use chadthrottle_core::process::Uids;
    use clap::Parser as _;
    use std::path::PathBuf;

    /// A directory of the test's own, removed when the guard drops, and the rules file in it.
    fn rules_file(test: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::Builder::new()
            .prefix(&format!("chadthrottle-tui-rules-{test}-"))
            .tempdir()
            .expect("a test directory");
        let file = dir.path().join("rules.toml");
        (dir, file)
    }

    fn global() -> Global {
        Cli::try_parse_from(["chadthrottle"])
            .expect("parses")
            .global
    }

    fn process(system: &FakeSystem, pid: u32) -> ProcessRef {
        system.machine().processes[&pid].process()
    }

    fn targets(offers: &[TargetOffer]) -> Vec<String> {
        offers.iter().map(|o| o.target.to_string()).collect()
    }

    /// The rules as `rules --json` lists them: (name, target, down rate, members).
    fn listed(system: &mut FakeSystem) -> Vec<(String, String, Option<u64>, usize)> {
        rules_json(system)
            .iter()
            .map(|rule| {
                (
                    rule["name"].as_str().expect("name").to_owned(),
                    rule["target"].as_str().expect("target").to_owned(),
                    rule["down"].as_u64(),
                    rule["members"].as_array().expect("members").len(),
                )
            })
            .collect()
    }

    #[test]
    fn a_process_is_offered_the_targets_it_falls_under_to_root_only() {
        let mut system = rules_machine();
        let global = global();
        let offers_of = |system: &mut FakeSystem, pid| {
            let process = process(system, pid);
            offers(system, &global, process)
        };
        assert_eq!(
            targets(&offers_of(&mut system, STEAM)),
            ["tree 5000", "exe /usr/bin/steam"]
        );
        assert_eq!(
            targets(&offers_of(&mut system, SYNCTHING)),
            [
                "tree 5100",
                "exe /usr/bin/syncthing",
                "unit syncthing.service"
            ]
        );
        let nginx = offers_of(&mut system, NGINX);
        assert_eq!(
            targets(&nginx),
            ["tree 5200", "exe /usr/bin/nginx", "container 3f4e8a1b2c3d"]
        );
        assert_eq!(
            nginx.iter().map(|o| o.saved).collect::<Vec<_>>(),
            [false, true, false],
            "only the executable's rule is saved"
        );
        // what is offered is what `limit` takes: the short id finds the container
        ok(
            &mut system,
            &["limit", "--container", "3f4e8a1b2c3d", "--down", "1M"],
        );
        let held = offers_of(&mut system, NGINX);
        assert_eq!(
            held[2].held,
            Some(LimitRates {
                up: None,
                down: Some(1 << 20)
            })
        );
        assert_eq!(held[1].held, None);
        system.machine().caller = Uids::of(1000);
        assert!(
            offers_of(&mut system, STEAM).is_empty(),
            "rules are root's: alice is offered her process alone"
        );
    }

    #[test]
    fn a_saved_executable_rule_is_what_limit_exe_save_writes() {
        let global = global();
        let (dir, file) = rules_file("same");
        let mut system = rules_machine();
        let steam = RuleTarget::Exe("/usr/bin/steam".into());
        let text = set_rule(
            &mut system,
            &global,
            &file,
            &steam,
            (None, Some(2 << 20)),
            false,
            true,
        )
        .expect("set");
        assert!(
            text.starts_with(
                "rule \"exe-steam\": exe /usr/bin/steam ↓2MB/s (shared), until removed \
                 [shaping (default)]; 1 process now"
            ) && text.ends_with(&format!(
                "; saved as rule \"exe-steam\" in {}",
                file.display()
            )),
            "{text}"
        );
        let from_tui = std::fs::read_to_string(&file).expect("written");
        let mut cli = rules_machine();
        let by_cli = dir.path().join("by-cli.toml");
        ok(
            &mut cli,
            &[
                "limit",
                "--exe",
                "/usr/bin/steam",
                "--down",
                "2M",
                "--save",
                by_cli.to_str().expect("UTF-8"),
            ],
        );
        assert_eq!(from_tui, std::fs::read_to_string(&by_cli).expect("written"));
        assert_eq!(listed(&mut system), listed(&mut cli));
        assert_eq!(
            listed(&mut system),
            [(
                "exe-steam".into(),
                "exe /usr/bin/steam".into(),
                Some(2 << 20),
                1
            )]
        );
    }

    #[test]
    fn an_emptied_field_lifts_that_direction_and_the_mode_is_the_dialogs() {
        let global = global();
        let mut system = rules_machine();
        ok(
            &mut system,
            &[
                "limit", "--pid", "5000", "--tree", "--up", "1M", "--down", "3M", "--each",
            ],
        );
        let steam = process(&system, STEAM);
        let offered = offers(&mut system, &global, steam);
        assert!(offered[0].each, "the dialog opens on the held rule's mode");
        let tree = RuleTarget::Tree(STEAM);
        let set = |system: &mut FakeSystem, each| {
            let nowhere = Path::new("/nonexistent/rules.toml");
            set_rule(
                system,
                &global,
                nowhere,
                &tree,
                (None, Some(2 << 20)),
                each,
                false,
            )
            .expect("set");
            let machine = system.machine();
            let rule = &machine.rules[0].request;
            assert_eq!(rule.limits.up, None, "the emptied upload is lifted");
            assert_eq!(rule.limits.down.map(|l| l.rate), Some(2 << 20));
            rule.spec.mode
        };
        assert_eq!(set(&mut system, true), Mode::Each);
        assert_eq!(set(&mut system, false), Mode::Shared, "switched with Space");
    }

    #[test]
    fn emptying_a_saved_rule_removes_it_from_the_kernel_and_the_file() {
        let global = global();
        let (_dir, file) = rules_file("forget");
        let mut system = rules_machine();
        let steam = RuleTarget::Exe("/usr/bin/steam".into());
        let both = |system: &mut FakeSystem, rates, save| {
            set_rule(system, &global, &file, &steam, rates, false, save)
        };
        both(&mut system, (Some(1 << 20), None), true).expect("set");
        // the rules view's removal: the kernel's rule only, the file named
        let text = lift_held(&mut system, &global, &file, &steam).expect("lifted");
        assert_eq!(
            text,
            format!(
                "rule \"exe-steam\" removed; it governed 1 process; {} still holds it: set again \
                 at boot",
                file.display()
            )
        );
        assert!(listed(&mut system).is_empty());
        // the dialog's, on the saved target: out of the file too, in force or not
        let text = both(&mut system, (None, None), true).expect("lifted");
        assert_eq!(
            text,
            format!(
                "rule on \"exe /usr/bin/steam\" removed from {} (it was not in force)",
                file.display()
            )
        );
        let left = std::fs::read_to_string(&file).expect("still there");
        assert!(
            parse_rules(&file, &left).expect("reads").is_empty(),
            "{left}"
        );
        both(&mut system, (Some(1 << 20), None), true).expect("set again");
        let text = both(&mut system, (None, None), true).expect("lifted");
        assert!(
            text.ends_with(&format!("; and from {}", file.display())),
            "{text}"
        );
        let error = both(&mut system, (None, None), true).expect_err("nothing left");
        assert!(
            error
                .to_string()
                .starts_with("no rule for \"exe /usr/bin/steam\""),
            "{error}"
        );
    }
}
