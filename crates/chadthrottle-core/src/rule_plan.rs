//! The declarative `apply`: from the rules wanted (the file's enabled rules) and the rules
//! the kernel holds, what to add, change and remove, and how `apply --dry-run` prints it.
//!
//! Rules are matched by name. A limit whose burst or backend was left to the default is
//! compared with what the kernel chose for it ([`RuleLimit::held_as`]), so that applying
//! a file twice changes nothing the second time. Every held rule not wanted is removed:
//! the caller passes only the held rules the file governs (a process-tree rule, which a
//! file cannot hold, should not be among them unless `apply` is to remove it).

use crate::direction::Direction;
use crate::rule_target::{Mode, RuleLimit, RuleSpec, RuleTarget};
use std::collections::{HashMap, HashSet};
use std::fmt;

/// One way a held rule differs from the wanted one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    Target(RuleTarget, RuleTarget),
    Limit(Direction, Option<RuleLimit>, Option<RuleLimit>),
    Mode(Mode, Mode),
    /// The rule's position, which breaks ties between rules of equal rank.
    Order(u32, u32),
}

impl fmt::Display for Difference {
    /// `before → after`: `↑1MB/s → ↑500KB/s`, `shared → each`, `order 3 → 2`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Difference::Target(before, after) => write!(f, "{before} → {after}"),
            Difference::Limit(direction, before, after) => write!(
                f,
                "{} → {}",
                RuleLimit::show(before.as_ref(), *direction),
                RuleLimit::show(after.as_ref(), *direction)
            ),
            Difference::Mode(before, after) => write!(f, "{before} → {after}"),
            Difference::Order(before, after) => write!(f, "order {before} → {after}"),
        }
    }
}

/// What `apply` does to one rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleChange {
    Add(RuleSpec),
    /// The rule as wanted, and how the held one differs from it.
    Change(RuleSpec, Vec<Difference>),
    Remove(RuleSpec),
    Unchanged(RuleSpec),
}

impl RuleChange {
    /// The rule as it will be held (`Remove`: as it was).
    pub const fn rule(&self) -> &RuleSpec {
        match self {
            RuleChange::Add(rule)
            | RuleChange::Change(rule, _)
            | RuleChange::Remove(rule)
            | RuleChange::Unchanged(rule) => rule,
        }
    }
}

impl fmt::Display for RuleChange {
    /// One line of `apply --dry-run`: `+ steam: exe /usr/bin/steam ↓5MB/s (shared)`,
    /// `~ backup: ↑1MB/s → ↑500KB/s`, `- old-rule`, `= steam`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleChange::Add(rule) => write!(f, "+ {}: {}", rule.name, rule.summary()),
            RuleChange::Change(rule, differences) => {
                write!(f, "~ {}: ", rule.name)?;
                for (index, difference) in differences.iter().enumerate() {
                    let separator = if index == 0 { "" } else { ", " };
                    write!(f, "{separator}{difference}")?;
                }
                Ok(())
            }
            RuleChange::Remove(rule) => write!(f, "- {}", rule.name),
            RuleChange::Unchanged(rule) => write!(f, "= {}", rule.name),
        }
    }
}

/// The changes from the held rules to the wanted ones: additions, then changes, in the
/// wanted rules' order; removals in the held rules' order; the unchanged rules last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub changes: Vec<RuleChange>,
}

impl Plan {
    /// Whether applying it would leave the kernel as it is.
    pub fn changes_nothing(&self) -> bool {
        self.changes
            .iter()
            .all(|change| matches!(change, RuleChange::Unchanged(_)))
    }

    /// The changes in the order to apply them: removals, changes, additions, so that a
    /// target moving from a removed rule to an added one is free before it is taken.
    pub fn in_apply_order(&self) -> impl Iterator<Item = &RuleChange> {
        let removals = self
            .changes
            .iter()
            .filter(|c| matches!(c, RuleChange::Remove(_)));
        let changes = self
            .changes
            .iter()
            .filter(|c| matches!(c, RuleChange::Change(..)));
        let additions = self
            .changes
            .iter()
            .filter(|c| matches!(c, RuleChange::Add(_)));
        removals.chain(changes).chain(additions)
    }
}

/// What turns `held` into the enabled rules of `wanted`, rules matched by name.
pub fn plan(wanted: &[RuleSpec], held: &[RuleSpec]) -> Plan {
    let wanted: Vec<&RuleSpec> = wanted.iter().filter(|rule| rule.enabled).collect();
    let held_by_name: HashMap<&str, &RuleSpec> =
        held.iter().map(|rule| (rule.name.as_str(), rule)).collect();
    let mut additions = Vec::new();
    let mut changes = Vec::new();
    let mut unchanged = Vec::new();
    for rule in &wanted {
        let Some(held) = held_by_name.get(rule.name.as_str()) else {
            additions.push(RuleChange::Add((*rule).clone()));
            continue;
        };
        let differences = differences(held, rule);
        if differences.is_empty() {
            unchanged.push(RuleChange::Unchanged((*rule).clone()));
        } else {
            changes.push(RuleChange::Change((*rule).clone(), differences));
        }
    }
    let wanted_names: HashSet<&str> = wanted.iter().map(|rule| rule.name.as_str()).collect();
    let removals = held
        .iter()
        .filter(|rule| !wanted_names.contains(rule.name.as_str()))
        .map(|rule| RuleChange::Remove(rule.clone()));
    let mut all = additions;
    all.append(&mut changes);
    all.extend(removals);
    all.append(&mut unchanged);
    Plan { changes: all }
}

/// How `held` differs from `wanted`, in the order a change line shows it.
fn differences(held: &RuleSpec, wanted: &RuleSpec) -> Vec<Difference> {
    let mut found = Vec::new();
    if held.target != wanted.target {
        found.push(Difference::Target(
            held.target.clone(),
            wanted.target.clone(),
        ));
    }
    for direction in [Direction::Down, Direction::Up] {
        let (before, after) = (*held.limits.get(direction), *wanted.limits.get(direction));
        let same = match (&before, &after) {
            (Some(before), Some(after)) => after.held_as(before),
            (before, after) => before.is_none() && after.is_none(),
        };
        if !same {
            found.push(Difference::Limit(direction, before, after));
        }
    }
    if held.mode != wanted.mode {
        found.push(Difference::Mode(held.mode, wanted.mode));
    }
    if held.order != wanted.order {
        found.push(Difference::Order(held.order, wanted.order));
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bucket::default_burst;
    use crate::direction::PerDirection;
    use crate::rate::{Rate, Size};
    use crate::rule_target::UserSpec;
    use crate::status::Enforcement;

    fn limit(text: &str) -> Option<RuleLimit> {
        Some(RuleLimit {
            rate: text.parse().unwrap_or_else(|error| panic!("{error}")),
            burst: None,
            backend: None,
        })
    }

    fn rule(name: &str, target: RuleTarget, up: &str, down: &str, order: u32) -> RuleSpec {
        RuleSpec {
            name: name.into(),
            target,
            limits: PerDirection {
                up: if up.is_empty() { None } else { limit(up) },
                down: if down.is_empty() { None } else { limit(down) },
            },
            mode: Mode::Shared,
            order,
            enabled: true,
        }
    }

    fn exe(path: &str) -> RuleTarget {
        RuleTarget::Exe(path.into())
    }

    /// What a kernel holds after `plan`, with defaults chosen as the kernel chooses them:
    /// the default burst, the shaping backend.
    fn applied(held: &[RuleSpec], plan: &Plan) -> Vec<RuleSpec> {
        let mut now: Vec<RuleSpec> = held.to_vec();
        for change in plan.in_apply_order() {
            now.retain(|rule| rule.name != change.rule().name);
            if let RuleChange::Add(rule) | RuleChange::Change(rule, _) = change {
                let mut chosen = rule.clone();
                for limit in [&mut chosen.limits.up, &mut chosen.limits.down]
                    .into_iter()
                    .flatten()
                {
                    limit.burst = Some(limit.effective_burst());
                    limit.backend = limit.backend.or(Some(Enforcement::Shaping));
                }
                now.push(chosen);
            }
        }
        now.sort_by_key(|rule| rule.order);
        now
    }

    fn lines(plan: &Plan) -> Vec<String> {
        plan.changes.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn changes_read_as_the_dry_run_prints_them() {
        let held = [
            rule(
                "backup",
                RuleTarget::Unit("backup.service".into()),
                "1M",
                "",
                0,
            ),
            rule("old-rule", RuleTarget::Name("old".into()), "1M", "", 1),
            rule("same", RuleTarget::User(UserSpec::Uid(1000)), "", "2M", 2),
        ];
        let wanted = [
            rule(
                "backup",
                RuleTarget::Unit("backup.service".into()),
                "500K",
                "",
                0,
            ),
            rule("same", RuleTarget::User(UserSpec::Uid(1000)), "", "2M", 2),
            rule("steam", exe("/usr/bin/steam"), "", "5M", 3),
        ];
        let plan = plan(&wanted, &held);
        assert_eq!(
            lines(&plan),
            [
                "+ steam: exe /usr/bin/steam ↓5MB/s (shared)",
                "~ backup: ↑1MB/s → ↑500KB/s",
                "- old-rule",
                "= same",
            ]
        );
        assert!(!plan.changes_nothing());
    }

    #[test]
    fn every_difference_is_named() {
        let held = rule("r", exe("/bin/a"), "1M", "2M", 4);
        let mut wanted = rule("r", RuleTarget::Name("a".into()), "", "2M", 1);
        wanted.mode = Mode::Each;
        wanted.limits.down = Some(RuleLimit {
            burst: Size::new(1 << 20),
            backend: Some(Enforcement::Policer),
            ..wanted.limits.down.unwrap_or_else(|| panic!("set above"))
        });
        assert_eq!(
            lines(&plan(&[wanted], &[held])),
            [
                "~ r: exe /bin/a → name a, ↓2MB/s → ↓2MB/s burst 1MB policer, ↑1MB/s → ↑unlimited, shared → each, order 4 → 1"
            ]
        );
    }

    #[test]
    fn defaults_match_what_the_kernel_chose() {
        let wanted = rule("r", exe("/bin/a"), "1M", "", 0);
        let mut held = wanted.clone();
        let rate: Rate = "1M".parse().unwrap_or_else(|error| panic!("{error}"));
        held.limits.up = Some(RuleLimit {
            rate,
            burst: Some(default_burst(rate)),
            backend: Some(Enforcement::Policer),
        });
        assert!(plan(std::slice::from_ref(&wanted), std::slice::from_ref(&held)).changes_nothing());
        // A backend asked for is compared.
        let mut asked = wanted;
        if let Some(up) = asked.limits.up.as_mut() {
            up.backend = Some(Enforcement::Shaping);
        }
        assert_eq!(
            lines(&plan(&[asked], &[held])),
            ["~ r: ↑1MB/s policer → ↑1MB/s shaping"]
        );
    }

    #[test]
    fn disabled_rules_are_removed_or_not_added() {
        let mut off = rule("off", exe("/bin/off"), "1M", "", 0);
        off.enabled = false;
        let mut never = rule("never", exe("/bin/never"), "1M", "", 1);
        never.enabled = false;
        let held = [rule("off", exe("/bin/off"), "1M", "", 0)];
        assert_eq!(lines(&plan(&[off, never], &held)), ["- off"]);
    }

    #[test]
    fn applying_twice_changes_nothing_the_second_time() {
        let held = vec![
            rule("a", exe("/bin/a"), "1M", "", 0),
            rule("b", RuleTarget::Container("web".into()), "2M", "3M", 1),
            rule("c", RuleTarget::CgroupPath("/x".into()), "", "1M", 2),
        ];
        let mut wanted = vec![
            rule("b", RuleTarget::Container("web".into()), "2M", "4M", 0),
            // Takes the target of "a", which goes.
            rule("d", exe("/bin/a"), "500K", "", 1),
            rule(
                "e",
                RuleTarget::User(UserSpec::Name("bob".into())),
                "",
                "0",
                2,
            ),
        ];
        wanted[0].mode = Mode::Each;
        let first = plan(&wanted, &held);
        assert!(!first.changes_nothing());
        let kinds: Vec<String> = first
            .in_apply_order()
            .map(|c| c.to_string().chars().take(3).collect())
            .collect();
        assert_eq!(kinds, ["- a", "- c", "~ b", "+ d", "+ e"]);
        let now = applied(&held, &first);
        let names: Vec<&str> = now.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["b", "d", "e"]);
        let second = plan(&wanted, &now);
        assert!(second.changes_nothing(), "{:?}", lines(&second));
        assert_eq!(lines(&second), ["= b", "= d", "= e"]);
        assert_eq!(applied(&now, &second), now);
    }

    #[test]
    fn nothing_wanted_removes_everything_held_in_its_order() {
        let held = [
            rule("z", exe("/bin/z"), "1M", "", 0),
            rule("a", exe("/bin/a"), "1M", "", 1),
        ];
        assert_eq!(lines(&plan(&[], &held)), ["- z", "- a"]);
        assert!(plan(&[], &[]).changes_nothing());
    }
}
