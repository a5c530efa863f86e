//! `limit` and `unlimit` with a rule's target (`--exe`, `--name`, `--unit`, `--cgroup-path`,
//! `--container`, `--user`, `--pid --tree`): set, replace or remove one rule, root only.

use super::limit::choose_backend;
use crate::cli::{Global, LimitArgs};
use crate::render;
use anyhow::Context as _;
use chadthrottle_core::backend::{Availability, BackendDescriptor, RuleBackend as _};
use chadthrottle_core::download_default::DefaultDownload;
use chadthrottle_core::rule_request::{
    ResolvedTarget, RuleApplied, RuleRequest, RuleStatus, command_line_rule_name,
};
use chadthrottle_core::rule_target::{Mode, RuleLimit, RuleSpec, RuleTarget};
use chadthrottle_core::status::{DirectionLimit, Enforcement};
use chadthrottle_core::system::System;
use chadthrottle_core::{Direction, PerDirection};
use std::io::Write;

/// Refuses the backends that cannot hold a rule's `direction` (`each`: a budget per
/// member), for the reason `Enforcement::refused_for_rule` gives; and ifb unless it is
/// `named` (a rule's download gets it only when asked for).
fn not_for_rules(
    direction: Direction,
    each: bool,
    named: bool,
) -> impl Fn(&BackendDescriptor) -> Option<Availability> {
    move |backend| {
        let enforcement = Enforcement::from_name(backend.name)?;
        if let Some(why) = enforcement.refused_for_rule(direction, each) {
            return Some(Availability::Unavailable(why.to_owned()));
        }
        (enforcement == Enforcement::Ifb && !named).then(|| {
            Availability::Unavailable(
                "a rule's download gets it when named (--download-backend ifb)".to_owned(),
            )
        })
    }
}

/// The held rule `target` names: the one set with that target, else the one whose target
/// resolves to the same thing now (`--user alice` for a rule set as `--user 1000`);
/// `resolved` is asked for only then.
fn held<'a>(
    rules: &'a [RuleStatus],
    target: &RuleTarget,
    resolved: impl FnOnce() -> Option<ResolvedTarget>,
) -> Option<&'a RuleStatus> {
    rules
        .iter()
        .find(|rule| rule.spec.target == *target)
        .or_else(|| {
            let resolved = resolved()?;
            rules
                .iter()
                .find(|rule| rule.resolved == resolved && rule.spec.target.rank() == target.rank())
        })
}

/// Each set direction of `limits` with its backend chosen — the one the limit names, else
/// `named` (`--upload-backend`, `--download-backend`), else the best available for rules —
/// and its burst in effect. Checked before anything in the kernel changes.
pub fn chosen_limits<S: System>(
    system: &S,
    limits: &PerDirection<Option<RuleLimit>>,
    named: PerDirection<Option<&str>>,
    mode: Mode,
) -> anyhow::Result<PerDirection<Option<DirectionLimit>>> {
    let mut chosen = PerDirection::default();
    for direction in Direction::ALL {
        if let Some(limit) = limits.get(direction) {
            let requested = limit
                .backend
                .map(Enforcement::name)
                .or(*named.get(direction));
            let enforcement = choose_backend(
                system,
                direction,
                requested,
                not_for_rules(direction, mode == Mode::Each, requested.is_some()),
            )?;
            *chosen.get_mut(direction) = Some(DirectionLimit {
                rate: limit.rate.bytes_per_sec(),
                burst: limit.effective_burst().bytes(),
                enforcement,
                by_default: false,
            });
        }
    }
    Ok(chosen)
}

/// A name a rule is set under instead of the one after its target: the rules file's
/// (`limit --save` writes it there, with its place in the file, so that `apply` finds the
/// file's rule already held), or `run`'s (named after the command).
pub struct GivenName {
    pub name: String,
    /// Its place among the rules; `None`: the replaced rule's, or after every rule.
    pub order: Option<u32>,
}

/// Sets the rule for `target` as `args` say, replacing the one held for the same target
/// (it keeps its name, its place among the rules, and the direction `args` do not name;
/// `given` renames it). Everything is checked — who asks, the target on the machine,
/// the backends — before the datapath is installed. Returns the rule as set.
pub fn set<S: System>(
    system: &mut S,
    global: &Global,
    target: &RuleTarget,
    args: &LimitArgs,
    given: Option<GivenName>,
    out: &mut dyn Write,
) -> anyhow::Result<RuleSpec> {
    super::access::rule(system, target)?;
    let resolved = system.resolve(target).map_err(anyhow::Error::msg)?;
    let named = PerDirection {
        up: global.upload_backend.as_deref(),
        down: global.download_backend.as_deref(),
    };
    let bursts = PerDirection {
        up: args.rates.burst_up.or(args.rates.burst),
        down: args.rates.burst_down.or(args.rates.burst),
    };
    let rates = PerDirection {
        up: args.rates.up,
        down: args.rates.down,
    };
    let asked_spec = rates.map(|direction, rate| {
        rate.map(|rate| RuleLimit {
            rate,
            burst: *bursts.get(direction),
            backend: named.get(direction).and_then(Enforcement::from_name),
        })
    });
    let mode = if args.each { Mode::Each } else { Mode::Shared };
    let mut asked = chosen_limits(system, &asked_spec, named, mode)?;
    // a shared rule's download left to the default: the fallback first, then ifb if its
    // members' interfaces are free (they are known once the rule is set)
    let to_default = rates.down.is_some() && named.down.is_none() && mode == Mode::Shared;
    if let Some(down) = asked.down.as_mut().filter(|_| to_default) {
        down.by_default = true;
    }

    super::access::datapath(system, global)?;
    let mut backend = system.install(&global.datapath())?;
    let rules = backend.rules()?;
    let replaced = held(&rules, target, || Some(resolved.clone()));
    let last = || {
        rules
            .iter()
            .map(|r| r.spec.order.saturating_add(1))
            .max()
            .unwrap_or(0)
    };
    let (name, order) = match (given, replaced) {
        (Some(given), replaced) => {
            let order = given
                .order
                .or_else(|| replaced.map(|r| r.spec.order))
                .unwrap_or_else(last);
            (given.name, order)
        }
        (None, Some(replaced)) => (replaced.spec.name.clone(), replaced.spec.order),
        (None, None) => (command_line_rule_name(target), last()),
    };
    let request = RuleRequest {
        spec: RuleSpec {
            name: name.clone(),
            target: target.clone(),
            // a direction not named keeps what the replaced rule held, as `limit --pid` does
            limits: PerDirection::from_fn(|direction| {
                asked_spec
                    .get(direction)
                    .or_else(|| replaced.and_then(|r| *r.spec.limits.get(direction)))
            }),
            mode,
            order,
            enabled: true,
        },
        resolved,
        limits: PerDirection::from_fn(|direction| {
            asked
                .get(direction)
                .or_else(|| replaced.and_then(|r| *r.limits.get(direction)))
        }),
        lasts: args.rates.lasts,
    };
    // renamed for the rules file: the kernel holds one rule per target, so the rule under
    // its old name goes first, and comes back if the new one is refused
    let renamed = replaced.filter(|old| old.spec.name != name);
    if let Some(old) = renamed {
        backend.remove_rule(&old.spec.name)?;
    }
    let applied = match backend.set_rule(&request) {
        Ok(applied) => applied,
        Err(error) => {
            let error = anyhow::Error::from(error).context(format!("cannot set rule \"{name}\""));
            return match renamed {
                Some(old) => match backend.set_rule(&as_requested(old, system.now_unix())) {
                    Ok(_) => Err(error),
                    Err(lost) => Err(error.context(format!(
                        "rule \"{}\" was removed and cannot be set again: {lost}",
                        old.spec.name
                    ))),
                },
                None => Err(error),
            };
        }
    };
    // a rule set `--for` a time shorter than the setting took (a busy machine, the first
    // install) has lapsed by the time it is read back: said, and not an error — `run`
    // still starts its command
    let held_now = |backend: &mut S::Backend| -> anyhow::Result<Option<RuleStatus>> {
        let now = backend
            .rules()?
            .into_iter()
            .find(|rule| rule.spec.name == name);
        match (now, request.lasts) {
            (Some(now), _) => Ok(Some(now)),
            (None, Some(_)) => Ok(None),
            (None, None) => anyhow::bail!("rule \"{name}\" is not held after it was set"),
        }
    };
    let Some(mut now) = held_now(&mut backend)? else {
        print_lapsed(&request, &applied, out)?;
        return Ok(request.spec);
    };
    let mut applied = applied;
    let download_default =
        if to_default {
            let chosen = default_download(system, global, &now)?;
            if chosen.backend == Enforcement::Ifb {
                match backend.set_rule(&held_by_ifb(&request)) {
                    Ok(by_ifb) => applied = by_ifb,
                    Err(error) => {
                        // the rule stays as first set, and the error says why ifb did not
                        let error = anyhow::Error::from(error)
                            .context(format!("cannot hold rule \"{name}\"'s download with ifb"));
                        return match backend.set_rule(&request) {
                            Ok(_) => Err(error),
                            Err(lost) => Err(error
                                .context(format!("rule \"{name}\" cannot be set again: {lost}"))),
                        };
                    }
                }
                let Some(by_ifb) = held_now(&mut backend)? else {
                    print_lapsed(&request, &applied, out)?;
                    return Ok(request.spec);
                };
                now = by_ifb;
            }
            Some(chosen)
        } else {
            None
        };
    let plural = |n: usize| if n == 1 { "" } else { "es" };
    let sockets = |n: usize| if n == 1 { "" } else { "s" };
    writeln!(
        out,
        "{}; {} process{} now, {} open socket{} attributed, {} TCP socket{} shaped",
        render::rule_summary(&now, system.now_unix()),
        applied.members,
        plural(applied.members),
        applied.backfilled_sockets,
        sockets(applied.backfilled_sockets),
        applied.shaped_sockets,
        sockets(applied.shaped_sockets),
    )?;
    if let Some(chosen) = &download_default {
        super::limit::print_default(chosen, out)?;
    }
    Ok(request.spec)
}

/// The line for a rule set `--for` less time than setting it took: it lapsed before it
/// could be read back.
fn print_lapsed(
    request: &RuleRequest,
    applied: &RuleApplied,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let plural = |n: usize| if n == 1 { "" } else { "es" };
    writeln!(
        out,
        "{}, set for {}, lapsed already: setting it took longer than that; it governed {} \
         process{} as it was set",
        render::rule_heading(&request.spec),
        render::lasting(request.lasts.unwrap_or_default()),
        applied.members,
        plural(applied.members),
    )?;
    Ok(())
}

/// The download backend a shared rule left to the default gets, from its members now:
/// ifb where their ingress is free, else the best one for rules, with the reason.
pub fn default_download<S: System>(
    system: &S,
    global: &Global,
    held: &RuleStatus,
) -> anyhow::Result<DefaultDownload> {
    let members: Vec<u32> = held.members.iter().map(|member| member.pid).collect();
    super::limit::default_download(
        system,
        &global.datapath(),
        &members,
        not_for_rules(Direction::Down, false, false),
    )
}

/// `request` with its download held by ifb, the rest as it is.
pub fn held_by_ifb(request: &RuleRequest) -> RuleRequest {
    RuleRequest {
        limits: PerDirection {
            down: request.limits.down.map(|limit| DirectionLimit {
                enforcement: Enforcement::Ifb,
                ..limit
            }),
            ..request.limits
        },
        ..request.clone()
    }
}

/// The held rules whose download was left to the default and got the fallback when they
/// were set — no member yet (a rules file applied at boot, before its program runs), or
/// an ingress that was not free then — set again with ifb where their members' ingress is
/// free now, in one change. Returns each rule switched with the choice's reason; rules
/// that keep the fallback are left as they are and not listed.
pub fn default_downloads_again<S: System>(
    system: &S,
    global: &Global,
    backend: &mut S::Backend,
) -> anyhow::Result<Vec<(String, DefaultDownload)>> {
    let now_unix = system.now_unix();
    let mut switched = Vec::new();
    let mut again = Vec::new();
    for held in backend.rules()? {
        let waiting = held
            .limits
            .down
            .is_some_and(|limit| limit.by_default && limit.enforcement != Enforcement::Ifb);
        if !waiting || held.members.is_empty() {
            continue;
        }
        let download = default_download(system, global, &held)?;
        if download.backend == Enforcement::Ifb {
            again.push(held_by_ifb(&as_requested(&held, now_unix)));
            switched.push((held.spec.name.clone(), download));
        }
    }
    if !again.is_empty() {
        backend
            .set_rules(&again)
            .context("holding the rules' downloads with ifb")?;
    }
    Ok(switched)
}

/// The request that sets `held` again as it is, for the time it has left.
fn as_requested(held: &RuleStatus, now_unix: u64) -> RuleRequest {
    RuleRequest {
        spec: held.spec.clone(),
        resolved: held.resolved.clone(),
        limits: held.limits,
        lasts: held
            .expires_at
            .map(|at| std::time::Duration::from_secs(at.saturating_sub(now_unix))),
    }
}

/// Removes the rule held for `target`; none held is an error and changes nothing.
pub fn remove<S: System>(
    system: &mut S,
    global: &Global,
    target: &RuleTarget,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    super::access::rule(system, target)?;
    let none = || {
        anyhow::anyhow!("no rule for \"{target}\" (`chadthrottle rules` lists the rules in force)")
    };
    let mut backend = system.open(&global.datapath())?.ok_or_else(none)?;
    let rules = backend.rules()?;
    let found = held(&rules, target, || system.resolve(target).ok()).ok_or_else(none)?;
    if !backend.remove_rule(&found.spec.name)? {
        return Err(none());
    }
    let count = found.members.len();
    writeln!(
        out,
        "rule \"{}\" removed; it governed {count} process{}",
        found.spec.name,
        if count == 1 { "" } else { "es" }
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{
        CURL, HELPER, NGINX, STEAM, SYNCTHING, WEB_ID, ok, refused, rules_json, rules_machine,
    };
    use chadthrottle_core::fake::{FakeRule, FakeSystem};
    use chadthrottle_core::process::Uids;
    use chadthrottle_core::rule_request::ResolvedTarget;
    use chadthrottle_core::rule_target::Mode;
    use chadthrottle_core::status::Enforcement;

    /// The rules as `rules --json` lists them: name, resolved target, member PIDs.
    fn listed(system: &mut FakeSystem) -> Vec<(String, String, Vec<u64>)> {
        rules_json(system)
            .iter()
            .map(|rule| {
                let pids = rule["members"]
                    .as_array()
                    .expect("members")
                    .iter()
                    .map(|m| m["pid"].as_u64().expect("pid"))
                    .collect();
                (
                    rule["name"].as_str().expect("name").to_owned(),
                    rule["resolved"].as_str().expect("resolved").to_owned(),
                    pids,
                )
            })
            .collect()
    }

    #[test]
    fn every_target_kind_is_set_listed_and_removed() {
        let mut system = rules_machine();
        let web_scope = format!("cgroup /system.slice/docker-{WEB_ID}.scope");
        let kinds: [(&[&str], &str, &str, Vec<u64>); 7] = [
            (
                &["--exe", "/usr/bin/curl"],
                "exe /usr/bin/curl",
                "exe /usr/bin/curl",
                vec![CURL.into()],
            ),
            (&["--name", "wget"], "name wget", "name wget", vec![4343]),
            (
                &["--pid", "5000", "--tree"],
                "tree 5000",
                "tree PID 5000",
                vec![STEAM.into(), HELPER.into()],
            ),
            (
                &["--unit", "syncthing.service"],
                "unit syncthing.service",
                "cgroup /system.slice/syncthing.service",
                vec![SYNCTHING.into()],
            ),
            (
                &["--container", "web"],
                "container web",
                &web_scope,
                vec![NGINX.into()],
            ),
            (
                &["--cgroup-path", "/system.slice"],
                "cgroup-path /system.slice",
                "cgroup /system.slice",
                vec![],
            ),
            (&["--user", "alice"], "user alice", "uid 1000", vec![]),
        ];
        for (flags, name, _, _) in &kinds {
            let mut args = vec!["limit"];
            args.extend_from_slice(flags);
            args.extend_from_slice(&["--down", "2M"]);
            let out = ok(&mut system, &args);
            assert!(
                out.starts_with(&format!(
                    "rule {name} ↓2MB/s (shared), until removed [shaping (default)]; "
                )),
                "{out}"
            );
        }
        // the unit and the container are cgroups below /system.slice, and as specific:
        // set earlier, they govern; the tree outranks the user
        let expected: Vec<(String, String, Vec<u64>)> = kinds
            .iter()
            .map(|(_, name, resolved, members)| {
                ((*name).to_owned(), (*resolved).to_owned(), members.clone())
            })
            .collect();
        assert_eq!(listed(&mut system), expected);
        assert_eq!(system.machine().rules.len(), 7);
        let table = ok(&mut system, &["rules"]);
        assert!(table.starts_with("NAME"), "{table}");
        assert_eq!(table.lines().count(), 8, "{table}");
        assert!(
            table.lines().any(|line| line.starts_with("tree 5000 ")
                && line.contains(" tree PID 5000 ")
                && line.contains(
                    " shared  ⚡ ↓2MB/s ↑-  shaping (default)  2: 5000, 5001  ↓0B ↑0B  ↓0B ↑0B  never"
                )),
            "{table}"
        );

        // as each rule goes, the next matching rule governs its processes: the unit's and
        // the container's go to the cgroup path's, the tree's to the user's
        let governed_at_removal = [1, 1, 2, 1, 1, 2, 2];
        for ((flags, name, _, _), count) in kinds.iter().zip(governed_at_removal) {
            let mut args = vec!["unlimit"];
            args.extend_from_slice(flags);
            let out = ok(&mut system, &args);
            let plural = if count == 1 { "" } else { "es" };
            assert_eq!(
                out,
                format!("rule \"{name}\" removed; it governed {count} process{plural}\n")
            );
        }
        assert!(system.machine().rules.is_empty());
        assert_eq!(ok(&mut system, &["rules"]), "no rules\n");
    }

    #[test]
    fn a_rule_for_the_same_target_replaces_it_in_place() {
        let mut system = rules_machine();
        ok(&mut system, &["limit", "--name", "wget", "--up", "1M"]);
        let out = ok(
            &mut system,
            &[
                "limit",
                "--exe",
                "/usr/bin/steam",
                "--down",
                "5M",
                "--for",
                "10m",
            ],
        );
        assert_eq!(
            out,
            "rule exe /usr/bin/steam ↓5MB/s (shared), expires in 10m [shaping (default)]; 1 \
             process now, 2 open sockets attributed, 0 TCP sockets shaped\ndownload backend \
             shaping: default: no interface but loopback receives its downloads\n"
        );
        let out = ok(
            &mut system,
            &[
                "--upload-backend",
                "policer",
                "limit",
                "--exe",
                "/usr/bin/steam",
                "--up",
                "1M",
                "--each",
            ],
        );
        assert!(
            out.starts_with("rule exe /usr/bin/steam ↓5MB/s ↑1MB/s policer (each), until removed [up policer, down shaping (default)]"),
            "the direction not named is kept: {out}"
        );
        let machine = system.machine();
        let names: Vec<(&str, u32)> = machine
            .rules
            .iter()
            .map(|r| (r.request.spec.name.as_str(), r.request.spec.order))
            .collect();
        assert_eq!(names, [("name wget", 0), ("exe /usr/bin/steam", 1)]);
        let steam: &FakeRule = &machine.rules[1];
        assert_eq!(steam.request.spec.mode, Mode::Each);
        assert_eq!(steam.request.limits.down.map(|l| l.rate), Some(5 << 20));
        assert_eq!(
            steam.request.limits.up.map(|l| (l.rate, l.enforcement)),
            Some((1 << 20, Enforcement::Policer))
        );
    }

    #[test]
    fn a_rule_that_lapses_as_it_is_set_is_said_and_no_error() {
        let mut system = rules_machine();
        system.machine().setting_takes = 2;
        let args = |lasts| {
            [
                "limit",
                "--exe",
                "/usr/bin/steam",
                "--down",
                "5M",
                "--for",
                lasts,
            ]
        };
        assert_eq!(
            ok(&mut system, &args("1s")),
            "rule exe /usr/bin/steam ↓5MB/s (shared), set for 1s, lapsed already: setting it \
             took longer than that; it governed 1 process as it was set\n"
        );
        assert_eq!(ok(&mut system, &["rules"]), "no rules\n");
        let out = ok(&mut system, &args("1m"));
        assert!(
            out.starts_with("rule exe /usr/bin/steam ↓5MB/s (shared), expires in 58s"),
            "{out}"
        );
    }

    #[test]
    fn precedence_shows_in_the_members() {
        let mut system = rules_machine();
        ok(&mut system, &["limit", "--user", "1000", "--down", "20M"]);
        ok(
            &mut system,
            &["limit", "--exe", "/usr/bin/steam", "--down", "5M"],
        );
        ok(
            &mut system,
            &["limit", "--exe", "/opt/steam/helper", "--down", "1M"],
        );
        ok(
            &mut system,
            &["limit", "--name", "steamwebhelper", "--down", "1M"],
        );
        let members = |system: &mut FakeSystem| -> Vec<Vec<u64>> {
            listed(system)
                .into_iter()
                .map(|(_, _, pids)| pids)
                .collect()
        };
        assert_eq!(
            members(&mut system),
            [
                vec![],
                vec![u64::from(STEAM)],
                vec![u64::from(HELPER)],
                vec![]
            ],
            "exe outranks name and user; the earlier exe rule governs among equals"
        );
        ok(&mut system, &["limit", "--pid", "5000", "--up", "1M"]);
        assert_eq!(
            members(&mut system),
            [vec![], vec![], vec![u64::from(HELPER)], vec![]],
            "a PID limit beats every rule"
        );
        ok(&mut system, &["unlimit", "--exe", "/opt/steam/helper"]);
        assert_eq!(
            members(&mut system),
            [vec![], vec![], vec![u64::from(HELPER)]],
            "the name rule next"
        );
        // a uid given as a name finds the rule set by number
        ok(&mut system, &["unlimit", "--user", "alice"]);
        assert_eq!(listed(&mut system).len(), 2);
    }

    #[test]
    fn refusals_leave_the_machine_as_it_was() {
        let mut system = rules_machine();
        ok(&mut system, &["limit", "--name", "wget", "--up", "1M"]);
        let before = {
            let machine = system.machine();
            (machine.rules.clone(), machine.requests)
        };
        let cases: [(&[&str], &str); 10] = [
            (
                &[
                    "--upload-backend",
                    "htb",
                    "limit",
                    "--exe",
                    "/usr/bin/steam",
                    "--up",
                    "1M",
                ],
                "backend \"htb\" is unavailable: it holds one HTB class per process, so it cannot hold a rule: use shaping or policer",
            ),
            (
                &[
                    "--download-backend",
                    "ifb",
                    "limit",
                    "--name",
                    "wget",
                    "--down",
                    "1M",
                    "--each",
                ],
                "backend \"ifb\" is unavailable: it holds a rule's download in one HTB class, and an each-mode rule",
            ),
            (
                &["unlimit", "--exe", "/usr/bin/steam"],
                "no rule for \"exe /usr/bin/steam\" (`chadthrottle rules` lists the rules in force)",
            ),
            (
                &["unlimit", "--pid", "4242", "--tree"],
                "no rule for \"tree 4242\"",
            ),
            (
                &["limit", "--user", "bob", "--down", "1M"],
                "user \"bob\" is not in the user database",
            ),
            (
                &["limit", "--unit", "nope.service", "--down", "1M"],
                "unit \"nope.service\" is not running: no cgroup named so",
            ),
            (
                &["limit", "--container", "cache", "--down", "1M"],
                "container \"cache\" is not running",
            ),
            (
                &["limit", "--exe", "/opt/nowhere/steam", "--down", "1M"],
                "executable \"/opt/nowhere/steam\": its directory \"/opt/nowhere\" does not exist",
            ),
            (
                &["limit", "--pid", "9999", "--tree", "--down", "1M"],
                "tree PID 9999: no process with PID 9999",
            ),
            (
                &["limit", "--cgroup-path", "/nope", "--down", "1M"],
                "cgroup path \"/nope\" does not exist",
            ),
        ];
        for (args, expected) in cases {
            let error = refused(&mut system, args);
            assert!(error.starts_with(expected), "{args:?}: {error}");
        }
        // without root: every rule, a tree too; a PID of one's own still goes
        system.machine().caller = Uids::of(1000);
        for (args, target) in [
            (
                ["limit", "--exe", "/usr/bin/steam", "--down", "1M"].as_slice(),
                "exe /usr/bin/steam",
            ),
            (
                &["limit", "--pid", "5000", "--tree", "--down", "1M"],
                "tree 5000",
            ),
            (&["unlimit", "--name", "wget"], "name wget"),
        ] {
            let error = refused(&mut system, args);
            assert!(
                error.starts_with(&format!(
                    "rule \"{target}\": rules match processes of every user, present and future: only root may set or remove them"
                )),
                "{error}"
            );
        }
        let machine = system.machine();
        assert_eq!(
            (machine.rules.clone(), machine.requests),
            before,
            "nothing changed"
        );
        drop(machine);
        ok(&mut system, &["limit", "--pid", "5000", "--down", "1M"]);
        assert!(system.machine().limits.contains_key(&STEAM));
    }

    #[test]
    fn a_shared_rules_download_left_to_the_default_gets_ifb_where_its_members_ingress_is_free() {
        use chadthrottle_core::download_default::{Ingress, InterfaceIngress};
        let mut system = rules_machine();
        let held = |system: &mut FakeSystem, name: &str| {
            let machine = system.machine();
            let rule = machine.rules.iter().find(|r| r.request.spec.name == name);
            rule.and_then(|r| r.request.limits.down)
                .map(|l| (l.enforcement, l.by_default))
        };
        // no member yet: no interface to look at, so the fallback, and why
        let out = ok(&mut system, &["limit", "--name", "ct-none", "--down", "1M"]);
        assert_eq!(
            held(&mut system, "name ct-none"),
            Some((Enforcement::Shaping, true))
        );
        assert!(
            out.ends_with(
                "download backend shaping: default: the rule governs no process now, so no \
                 interface is known to receive its downloads\n"
            ),
            "{out}"
        );
        let eth0 = |ingress| InterfaceIngress {
            name: "eth0".into(),
            ingress,
        };
        system.machine().download_ingress = Ok(vec![eth0(Ingress::Free)]);
        let steam = ["limit", "--exe", "/usr/bin/steam", "--down", "1M"];
        let out = ok(&mut system, &steam);
        assert_eq!(
            held(&mut system, "exe /usr/bin/steam"),
            Some((Enforcement::Ifb, true)),
            "{out}"
        );
        assert!(
            out.contains("[ifb (default)]")
                && out.contains("download backend ifb: default: the ingress of eth0 is free"),
            "{out}"
        );
        // someone's clsact: the fallback, named
        system.machine().download_ingress = Ok(vec![eth0(Ingress::Foreign("clsact".into()))]);
        let out = ok(&mut system, &steam);
        assert_eq!(
            held(&mut system, "exe /usr/bin/steam"),
            Some((Enforcement::Shaping, true))
        );
        assert!(out.contains("eth0 has an ingress qdisc ChadThrottle did not add"));
        // each-mode never gets ifb, and no default line: there is no choice to explain
        system.machine().download_ingress = Ok(vec![eth0(Ingress::Free)]);
        let mut each = steam.to_vec();
        each.push("--each");
        let out = ok(&mut system, &each);
        assert_eq!(
            held(&mut system, "exe /usr/bin/steam").map(|(backend, _)| backend),
            Some(Enforcement::Shaping)
        );
        assert!(!out.contains("download backend"), "{out}");
    }

    #[test]
    fn a_rule_passes_the_qdisc_backends_by() {
        let mut system = rules_machine();
        system
            .machine()
            .unavailable
            .insert("shaping", "no iter/tcp".into());
        ok(
            &mut system,
            &[
                "limit",
                "--exe",
                "/usr/bin/steam",
                "--up",
                "1M",
                "--down",
                "1M",
            ],
        );
        let machine = system.machine();
        let limits = machine.rules[0].request.limits;
        assert_eq!(
            limits.up.map(|l| l.enforcement),
            Some(Enforcement::Policer),
            "not htb, which ranks above"
        );
        assert_eq!(
            limits.down.map(|l| l.enforcement),
            Some(Enforcement::Policer),
            "not ifb"
        );
        assert_eq!(
            machine.rules[0].request.resolved,
            ResolvedTarget::Exe {
                path: "/usr/bin/steam".into()
            }
        );
        drop(machine);
        // named, ifb holds a shared rule's download
        let out = ok(
            &mut system,
            &[
                "--download-backend",
                "ifb",
                "limit",
                "--exe",
                "/usr/bin/steam",
                "--down",
                "1M",
            ],
        );
        let machine = system.machine();
        assert_eq!(
            machine.rules[0].request.limits.down.map(|l| l.enforcement),
            Some(Enforcement::Ifb)
        );
        assert!(out.contains("down ifb]"), "{out}");
    }
}
