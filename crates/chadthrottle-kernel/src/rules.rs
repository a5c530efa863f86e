//! Rules: limits by application. A rule has a target — an executable, a process name, a
//! user, a cgroup ([`MatchKey`], see `rule_keys`) or a process tree — and a budget per
//! direction that its member processes share, or that each member gets for itself.
//!
//! Which processes are members is decided only in the kernel, by one resolver
//! (bpf/process.bpf.c) that runs at exec, at fork, at every socket a process creates and,
//! after every change here, over every process (the task iterator): a PID limit beats
//! every rule, then the lowest rank, then the lowest order. This module writes the rules,
//! their targets and shared budgets, runs the iterator, and brings the members' open
//! sockets in (back-fill, TCP iterator), all under one state lock like `Datapath::apply`.

use crate::backfill::{Stamp, backfill};
use crate::clock;
use crate::datapath::{BPF_F_LOCK, Datapath, dir_code};
use crate::error::Error;
use crate::layout::{
    LIMIT_BY_DEFAULT, LIMIT_QDISC, LIMIT_SHAPE, Limit, LimitKey, MATCH_CGROUP, MATCH_EXE,
    MATCH_NAME, MATCH_UID, MatchKey, Member, Owner, RANK_CGROUP, RANK_EXE, RANK_NAME, RANK_TREE,
    RANK_USER, RATE_UNLIMITED, RULE_EACH, Rule, RuleDir, SCOPE_RULE, rank_bit,
};
use crate::lock::{self, StateLock};
use crate::names::{MAP_LIMITS, MAP_MATCH, MAP_RULES, MAP_TREE};
use crate::procs;
use crate::qdisc_sync::{ClassLimit, Reach};
use crate::task_iterator::{self, Unresolved};
use crate::tcp_iterator;
use aya::maps::MapError;
use chadthrottle_core::bucket::Bucket;
use chadthrottle_core::status::{DirStats, DirectionLimit, Enforcement};
use chadthrottle_core::{Direction, PerDirection, ProcessRef};
use std::collections::BTreeSet;

/// What a rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleTarget {
    /// An executable, a process name, a user or a cgroup (`rule_keys` makes the key).
    Match(MatchKey),
    /// The process with this PID and every process it forks, now and later.
    Tree(u32),
}

/// A rule as the datapath holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleEntry {
    /// Never 0.
    pub id: u32,
    /// The caller's position of the rule: within a rank, the lower wins.
    pub order: u32,
    /// tree 1, exe 2, name 3, cgroup 4, user 5: must be the target's.
    pub rank: u8,
    /// A budget per member process instead of one shared by all.
    pub each: bool,
    pub target: RuleTarget,
    /// `None`: counted, not limited. Shaping or the policer (the qdisc backends hold
    /// single processes).
    pub limits: PerDirection<Option<DirectionLimit>>,
    /// CLOCK_BOOTTIME when the rule lapses (the kernel stops matching it and its budgets
    /// lapse with it); 0: never.
    pub expires_at_ns: u64,
}

/// A rule, its members and what its budgets passed and dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleStatus {
    pub id: u32,
    pub order: u32,
    pub rank: u8,
    pub each: bool,
    pub limits: PerDirection<Option<DirectionLimit>>,
    /// The live processes it governs now.
    pub members: Vec<ProcessRef>,
    /// The shared budget's counters; with `each`, the members' budgets summed.
    pub stats: PerDirection<DirStats>,
    /// CLOCK_BOOTTIME when it lapses; 0: never.
    pub expires_at_ns: u64,
}

/// What setting a rule did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RuleApplied {
    pub members: usize,
    pub backfilled_sockets: usize,
    pub shaped_sockets: usize,
}

const fn rank_of(kind: u32) -> u32 {
    match kind {
        MATCH_EXE => RANK_EXE,
        MATCH_NAME => RANK_NAME,
        MATCH_CGROUP => RANK_CGROUP,
        MATCH_UID => RANK_USER,
        _ => 0,
    }
}

/// The template of one direction: a member's budget as it starts (its bucket's times are
/// set when the resolver makes it).
fn template(limit: Option<DirectionLimit>) -> RuleDir {
    let (rate, burst) = limit.map_or((RATE_UNLIMITED, 0), |l| (l.rate, l.burst));
    RuleDir {
        bucket: Bucket::new(rate, burst, 0),
        burst,
        flags: match limit.map(|l| l.enforcement) {
            Some(Enforcement::Shaping) => LIMIT_SHAPE,
            Some(Enforcement::Ifb | Enforcement::Htb) => LIMIT_QDISC,
            _ => 0,
        } | if limit.is_some_and(|l| l.by_default) {
            LIMIT_BY_DEFAULT
        } else {
            0
        },
        _pad: 0,
    }
}

fn limit_of(dir: &RuleDir, direction: Direction) -> Option<DirectionLimit> {
    (dir.bucket.rate != RATE_UNLIMITED).then_some(DirectionLimit {
        rate: dir.bucket.rate,
        burst: dir.burst,
        enforcement: match (dir.flags, direction) {
            (flags, _) if flags & LIMIT_SHAPE != 0 => Enforcement::Shaping,
            (flags, Direction::Down) if flags & LIMIT_QDISC != 0 => Enforcement::Ifb,
            (flags, Direction::Up) if flags & LIMIT_QDISC != 0 => Enforcement::Htb,
            _ => Enforcement::Policer,
        },
        by_default: dir.flags & LIMIT_BY_DEFAULT != 0,
    })
}

/// Whether `rule`'s shared budget in some direction is held by an HTB class.
const fn held_by_class(rule: &Rule) -> bool {
    rule.flags & RULE_EACH == 0
        && (rule.dir[0].flags & LIMIT_QDISC != 0 || rule.dir[1].flags & LIMIT_QDISC != 0)
}

const fn rule_key(id: u32, direction: Direction) -> LimitKey {
    LimitKey {
        id,
        dir: dir_code(direction),
        scope: SCOPE_RULE,
    }
}

/// The error of a full `map`, with its size as created.
fn full(pin_dir: &std::path::Path, what: &'static str, map: &str) -> Error {
    let capacity = crate::query::pinned_maps(pin_dir)
        .into_iter()
        .find(|pinned| pinned.name == map)
        .map_or(0, |pinned| pinned.max_entries);
    Error::RulesFull { what, capacity }
}

fn is_full(error: &MapError) -> bool {
    matches!(error, MapError::SyscallError(call) if call.io_error.raw_os_error() == Some(libc::E2BIG))
}

impl Datapath {
    /// Sets (or replaces) a rule and brings every process it governs, and their open
    /// sockets, under it before returning.
    pub fn set_rule(&mut self, rule: &RuleEntry) -> Result<RuleApplied, Error> {
        self.set_rules(std::slice::from_ref(rule))
    }

    /// Sets (or replaces) several rules at once: one state lock, one resolution of every
    /// process, one back-fill and reconcile of the members' sockets. All or none: on an
    /// error the rules of the batch are taken out again.
    pub fn set_rules(&mut self, rules: &[RuleEntry]) -> Result<RuleApplied, Error> {
        let mut ids = BTreeSet::new();
        for rule in rules {
            check(rule)?;
            if !ids.insert(rule.id) {
                return Err(Error::RuleTarget(format!(
                    "rule {} is given twice in one change",
                    rule.id
                )));
            }
        }
        let held = lock::lock()?;
        self.set_checked_rules_locked(&held, rules, &ids)
    }

    /// `set_rules` under a state lock the caller holds (the rule book writes its record
    /// of names under the same lock).
    pub(crate) fn set_rules_locked(
        &mut self,
        held: &StateLock,
        rules: &[RuleEntry],
    ) -> Result<RuleApplied, Error> {
        let mut ids = BTreeSet::new();
        for rule in rules {
            check(rule)?;
            ids.insert(rule.id);
        }
        self.set_checked_rules_locked(held, rules, &ids)
    }

    fn set_checked_rules_locked(
        &mut self,
        held: &StateLock,
        rules: &[RuleEntry],
        ids: &BTreeSet<u32>,
    ) -> Result<RuleApplied, Error> {
        let replaced: Vec<u32> = ids
            .iter()
            .copied()
            .filter(|id| self.rules.get(id, 0).is_ok())
            .collect();
        if !replaced.is_empty() {
            self.remove_rules_locked(held, &replaced)?;
        }
        // the kinds first, so that a hook that sees a new target also looks it up
        let adding = rules
            .iter()
            .fold(0, |ranks, rule| ranks | rank_bit(u32::from(rule.rank)));
        self.publish_ranks(adding)?;
        let classes = rules.iter().any(|rule| {
            !rule.each
                && rule
                    .limits
                    .iter()
                    .any(|(_, limit)| limit.is_some_and(|l| l.enforcement.is_qdisc()))
        });
        let result = rules
            .iter()
            .try_for_each(|rule| self.write_rule(held, rule))
            .and_then(|()| self.bring_in(held, ids))
            .and_then(|applied| {
                // the classes go on the interfaces of the members' namespaces known now
                if classes {
                    self.sync_qdiscs(
                        held,
                        Reach::Grow {
                            force: self.force_qdisc,
                        },
                    )?;
                }
                Ok(applied)
            });
        if result.is_err() {
            // nothing half-set stays: the rules, their targets and budgets go again (and
            // with them the classes, which the removal syncs away)
            let ids: Vec<u32> = ids.iter().copied().collect();
            let _best_effort = self.remove_rules_locked(held, &ids);
        }
        result
    }

    /// Removes rule `id`: its members are released (or pass to the next rule they match)
    /// and their shaped sockets get their own settings back. `false` if there was none.
    pub fn remove_rule(&mut self, id: u32) -> Result<bool, Error> {
        let held = lock::lock()?;
        let existed = self.rules.get(&id, 0).is_ok();
        self.remove_rules_locked(&held, &[id])?;
        Ok(existed)
    }

    /// The rules whose time is up (`expires_at_ns` passed): the kernel matches them no
    /// more, and the next change takes them out (`remove_rules_locked`).
    pub fn lapsed(&self) -> Vec<u32> {
        let now = clock::boottime_ns();
        self.rules
            .iter()
            .filter_map(Result::ok)
            .filter(|(_, rule)| rule.expires_at_ns != 0 && rule.expires_at_ns <= now)
            .map(|(id, _)| id)
            .collect()
    }

    /// How many times a hook (exec, fork, socket) found the rule of a process but could
    /// not make the process its member because a table was full: such a process stays
    /// ungoverned until the next rule change. Counted since the datapath was installed.
    pub fn ungoverned(&self) -> Result<u64, Error> {
        let counted = self
            .counters
            .get(&crate::layout::COUNTER_UNGOVERNED, 0)
            .map_err(Error::map("read", crate::names::MAP_COUNTERS))?;
        Ok(counted.iter().sum())
    }

    /// Records in the meta which ranks of rule exist: those held and `adding`'s. The
    /// hooks do nothing while no rule exists, and look up only the kinds that do.
    fn publish_ranks(&self, adding: u32) -> Result<(), Error> {
        let ranks = self
            .rules
            .iter()
            .filter_map(Result::ok)
            .fold(adding, |ranks, (_, rule)| ranks | rank_bit(rule.rank));
        crate::pins::write_rule_ranks(&self.pin_dir, ranks)
    }

    /// Every rule with its live members and counters.
    pub fn rules(&self) -> Result<Vec<RuleStatus>, Error> {
        let members: Vec<(u32, Member)> = self.members.iter().filter_map(Result::ok).collect();
        let mut rules = Vec::new();
        for id in self.rules.keys().filter_map(Result::ok) {
            let Ok(rule) = self.rules.get(&id, 0) else {
                continue;
            };
            let each = rule.flags & RULE_EACH != 0;
            let members: Vec<ProcessRef> = members
                .iter()
                .filter(|(pid, member)| {
                    member.rule == id && procs::is_alive(*pid, member.start_time)
                })
                .map(|(pid, member)| ProcessRef {
                    pid: *pid,
                    start_time: member.start_time,
                })
                .collect();
            let mut stats = PerDirection::<DirStats>::default();
            for direction in Direction::ALL {
                let total = if each {
                    let mut sum = Vec::new();
                    for member in &members {
                        let key = LimitKey {
                            id: member.pid,
                            dir: dir_code(direction),
                            scope: crate::layout::SCOPE_PROCESS,
                        };
                        if matches!(self.limits.get(&key, BPF_F_LOCK), Ok(limit) if limit.rule == id)
                        {
                            sum.push(self.read_budget_stats(&key)?);
                        }
                    }
                    DirStats::sum(sum)
                } else {
                    self.read_budget_stats(&rule_key(id, direction))?
                };
                *stats.get_mut(direction) = total;
            }
            rules.push(RuleStatus {
                id,
                order: rule.order,
                rank: u8::try_from(rule.rank).unwrap_or(u8::MAX),
                each,
                limits: PerDirection {
                    up: limit_of(&rule.dir[0], Direction::Up),
                    down: limit_of(&rule.dir[1], Direction::Down),
                },
                members,
                stats,
                expires_at_ns: rule.expires_at_ns,
            });
        }
        rules.sort_by_key(|rule| (rule.rank, rule.order, rule.id));
        Ok(rules)
    }

    /// The HTB classes of the shared rules whose budget a class holds, one entry per live
    /// member (the sync installs a class where a member's downloads arrive; several
    /// members of a rule name the same class). A lapsed rule holds nothing.
    pub(crate) fn rule_class_limits(&self) -> Vec<ClassLimit> {
        let now = clock::boottime_ns();
        let rules: Vec<(u32, Rule)> = self
            .rules
            .iter()
            .filter_map(Result::ok)
            .filter(|(_, rule)| held_by_class(rule))
            .filter(|(_, rule)| rule.expires_at_ns == 0 || rule.expires_at_ns > now)
            .collect();
        if rules.is_empty() {
            return Vec::new();
        }
        // each member's liveness read once, whatever directions its rule's class holds
        let live: Vec<(u32, u32)> = self
            .members
            .iter()
            .filter_map(Result::ok)
            .filter(|(pid, member)| procs::is_alive(*pid, member.start_time))
            .map(|(pid, member)| (pid, member.rule))
            .collect();
        let mut classes = Vec::new();
        for (id, rule) in rules {
            for direction in Direction::ALL {
                let template = rule.dir[usize::from(dir_code(direction))];
                if template.flags & LIMIT_QDISC == 0 || template.bucket.rate == RATE_UNLIMITED {
                    continue;
                }
                let Ok(budget) = self.limits.get(&rule_key(id, direction), 0) else {
                    continue;
                };
                classes.extend(live.iter().filter(|(_, rule)| *rule == id).map(|(pid, _)| {
                    ClassLimit {
                        pid: *pid,
                        direction,
                        class_id: budget.class_id,
                        rate: template.bucket.rate,
                    }
                }));
            }
        }
        classes
    }

    /// The rule, its shared budgets and its target, in that order: the target last, so
    /// that the resolver never finds a rule without its budget.
    fn write_rule(&mut self, held: &StateLock, rule: &RuleEntry) -> Result<(), Error> {
        let value = Rule {
            rank: u32::from(rule.rank),
            order: rule.order,
            flags: if rule.each { RULE_EACH } else { 0 },
            _pad: 0,
            expires_at_ns: rule.expires_at_ns,
            dir: [template(rule.limits.up), template(rule.limits.down)],
        };
        self.rules.insert(rule.id, value, 0).map_err(|error| {
            if is_full(&error) {
                full(&self.pin_dir, "rules", MAP_RULES)
            } else {
                Error::map("write", MAP_RULES)(error)
            }
        })?;
        if !rule.each {
            let now = clock::monotonic_ns();
            // one class for the rule, whose budget the classifier finds for every member
            let class_id = if held_by_class(&value) {
                self.unused_class(held)?
            } else {
                0
            };
            for direction in Direction::ALL {
                let template = value.dir[usize::from(dir_code(direction))];
                let budget = Limit {
                    flags: template.flags,
                    class_id: if template.flags & LIMIT_QDISC != 0 {
                        class_id
                    } else {
                        0
                    },
                    bucket: Bucket::new(template.bucket.rate, template.burst, now),
                    burst: template.burst,
                    expires_at_ns: rule.expires_at_ns,
                    ..Limit::default()
                };
                let key = rule_key(rule.id, direction);
                self.limits
                    .insert(key, budget, BPF_F_LOCK)
                    .map_err(|error| self.table_error(error, MAP_LIMITS))?;
                self.zero_budget_stats(key, 0)?;
            }
        }
        match rule.target {
            RuleTarget::Match(key) => {
                if let Ok(other) = self.matches.get(&key, 0)
                    && other != rule.id
                {
                    return Err(Error::RuleTarget(format!(
                        "rule {other} has the same target already: change or remove it first"
                    )));
                }
                self.matches.insert(key, rule.id, 0).map_err(|error| {
                    if is_full(&error) {
                        full(&self.pin_dir, "rule targets", MAP_MATCH)
                    } else {
                        Error::map("write", MAP_MATCH)(error)
                    }
                })
            }
            RuleTarget::Tree(root) => self.write_tree(rule.id, root),
        }
    }

    /// The tree of `root`: the root first, then its descendants, each written before its
    /// children are looked for, so a process forked meanwhile is either seen here or
    /// added by the fork hook (its parent being in the tree already). /proc is read
    /// again until a reading adds nobody.
    fn write_tree(&mut self, id: u32, root: u32) -> Result<(), Error> {
        let start = procs::start_time(root).ok_or(Error::ProcessExited { pid: root })?;
        let mut tree = BTreeSet::from([root]);
        self.tree_insert(root, start, id)?;
        loop {
            let mut added = false;
            for (pid, parent, start_time) in procs::parents() {
                if tree.contains(&parent) && !tree.contains(&pid) {
                    self.tree_insert(pid, start_time, id)?;
                    tree.insert(pid);
                    added = true;
                }
            }
            if !added {
                return Ok(());
            }
        }
    }

    fn tree_insert(&mut self, pid: u32, start_time: u64, rule: u32) -> Result<(), Error> {
        let member = Member {
            start_time,
            rule,
            _pad: 0,
        };
        self.tree.insert(pid, member, 0).map_err(|error| {
            if is_full(&error) {
                full(&self.pin_dir, "processes in tree rules", MAP_TREE)
            } else {
                Error::map("write", MAP_TREE)(error)
            }
        })
    }

    /// Resolves every process, then attributes the open sockets of the members of the
    /// rules `ids` to them and shapes those that the rules shape.
    fn bring_in(&mut self, _held: &StateLock, ids: &BTreeSet<u32>) -> Result<RuleApplied, Error> {
        let unresolved = task_iterator::resolve_all(&self.pin_dir)?;
        if let Some(Unresolved { error, .. }) = unresolved.first() {
            return Err(if *error == -libc::E2BIG {
                full(&self.pin_dir, "rule members", crate::names::MAP_MEMBERS)
            } else {
                Error::io("make members of", "a rule")(std::io::Error::from_raw_os_error(-error))
            });
        }
        let members = self.members_of(ids);
        let mut applied = RuleApplied {
            members: members.len(),
            ..RuleApplied::default()
        };
        for member in &members {
            let owner = Owner {
                tgid: member.pid,
                _pad: 0,
                start_time: member.start_time,
            };
            match backfill(owner, &mut self.owner, Stamp::All) {
                Ok(stamped) => applied.backfilled_sockets += stamped,
                // it exited meanwhile: the exit hook took its entries
                Err(Error::ProcessExited { .. }) => {}
                Err(error) => return Err(error),
            }
        }
        let pids: Vec<u32> = members.iter().map(|member| member.pid).collect();
        applied.shaped_sockets = tcp_iterator::reconcile(&self.pin_dir, &pids)?;
        Ok(applied)
    }

    /// The processes the rules `ids` govern now.
    fn members_of(&self, ids: &BTreeSet<u32>) -> Vec<ProcessRef> {
        self.members
            .iter()
            .filter_map(Result::ok)
            .filter(|(_, member)| ids.contains(&member.rule))
            .map(|(pid, member)| ProcessRef {
                pid,
                start_time: member.start_time,
            })
            .collect()
    }

    /// Takes the rules `ids` out: targets, tree entries and the rules, then one
    /// resolution of every process (the resolver releases their members, or hands them
    /// to the next rule they match), then the shared budgets and the members' sockets.
    pub(crate) fn remove_rules_locked(
        &mut self,
        held: &StateLock,
        ids: &[u32],
    ) -> Result<(), Error> {
        let ids: BTreeSet<u32> = ids.iter().copied().collect();
        let classes = ids
            .iter()
            .any(|id| self.rules.get(id, 0).is_ok_and(|rule| held_by_class(&rule)));
        let matches: Vec<MatchKey> = self
            .matches
            .iter()
            .filter_map(Result::ok)
            .filter(|(_, rule)| ids.contains(rule))
            .map(|(key, _)| key)
            .collect();
        for key in &matches {
            let _absent = self.matches.remove(key);
        }
        let tree: Vec<u32> = self
            .tree
            .iter()
            .filter_map(Result::ok)
            .filter(|(_, member)| ids.contains(&member.rule))
            .map(|(pid, _)| pid)
            .collect();
        for pid in &tree {
            let _absent = self.tree.remove(pid);
        }
        for id in &ids {
            let _absent = self.rules.remove(id);
        }
        // before the resolution, which then looks up no kind that has gone
        self.publish_ranks(0)?;
        let members = self.members_of(&ids);
        let unresolved = task_iterator::resolve_all(&self.pin_dir)?;
        for &id in &ids {
            for direction in Direction::ALL {
                let _absent = self.limits.remove(&rule_key(id, direction));
                let _absent = self.stats.remove(&rule_key(id, direction));
            }
        }
        let pids: Vec<u32> = members.iter().map(|member| member.pid).collect();
        tcp_iterator::reconcile(&self.pin_dir, &pids)?;
        if classes {
            // their classes go, and the filters and IFB devices no other limit needs
            self.sync_qdiscs(held, Reach::Shrink)?;
        }
        if let Some(Unresolved { pid, error }) = unresolved.first() {
            return Err(Error::io("resolve the rule of", format!("PID {pid}"))(
                std::io::Error::from_raw_os_error(-error),
            ));
        }
        Ok(())
    }
}

/// Refuses a rule the datapath cannot hold, before anything is touched.
fn check(rule: &RuleEntry) -> Result<(), Error> {
    if rule.id == 0 {
        return Err(Error::RuleTarget("a rule's id cannot be 0".into()));
    }
    let rank = match rule.target {
        RuleTarget::Match(key) => rank_of(key.kind),
        RuleTarget::Tree(_) => RANK_TREE,
    };
    if rank == 0 || u32::from(rule.rank) != rank {
        return Err(Error::RuleTarget(format!(
            "rule {}: rank {} does not go with its target (tree 1, exe 2, name 3, cgroup 4, \
             user 5)",
            rule.id, rule.rank
        )));
    }
    for (direction, limit) in rule.limits.iter() {
        if let Some(limit) = limit
            && let Some(why) = limit.enforcement.refused_for_rule(direction, rule.each)
        {
            return Err(Error::RuleTarget(format!(
                "rule {}: backend \"{}\" {direction}: {why}",
                rule.id,
                limit.enforcement.name()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(target: RuleTarget, rank: u8, enforcement: Enforcement) -> RuleEntry {
        RuleEntry {
            id: 7,
            order: 0,
            rank,
            each: false,
            target,
            limits: PerDirection {
                up: Some(DirectionLimit {
                    rate: 1 << 20,
                    burst: 1 << 20,
                    enforcement,
                    by_default: false,
                }),
                down: None,
            },
            expires_at_ns: 0,
        }
    }

    #[test]
    fn a_rule_is_refused_before_anything_is_touched() {
        let name = RuleTarget::Match(crate::rule_keys::name_key("curl"));
        assert!(check(&rule(name, 3, Enforcement::Shaping)).is_ok());
        assert!(check(&rule(RuleTarget::Tree(1), 1, Enforcement::Policer)).is_ok());
        let wrong_rank = check(&rule(name, 2, Enforcement::Shaping)).expect_err("rank");
        assert!(wrong_rank.to_string().contains("rank 2"), "{wrong_rank}");
        for single in [Enforcement::Htb, Enforcement::Nftables] {
            let refused = check(&rule(name, 3, single)).expect_err("single");
            assert!(
                refused
                    .to_string()
                    .ends_with("so it cannot hold a rule: use shaping or policer"),
                "{refused}"
            );
        }
        let ifb_down = |each| RuleEntry {
            each,
            limits: PerDirection {
                up: None,
                down: Some(DirectionLimit {
                    rate: 1 << 20,
                    burst: 1 << 20,
                    enforcement: Enforcement::Ifb,
                    by_default: false,
                }),
            },
            ..rule(name, 3, Enforcement::Shaping)
        };
        assert!(check(&ifb_down(false)).is_ok(), "a shared rule's download");
        let each = check(&ifb_down(true)).expect_err("each");
        assert!(each.to_string().contains("each-mode"), "{each}");
        let zero = RuleEntry {
            id: 0,
            ..rule(name, 3, Enforcement::Shaping)
        };
        assert!(check(&zero).is_err());
    }

    #[test]
    fn a_template_reads_back_as_the_limit_it_was_made_from() {
        let shaped = DirectionLimit {
            rate: 1 << 20,
            burst: 512 << 10,
            enforcement: Enforcement::Shaping,
            by_default: false,
        };
        assert_eq!(
            limit_of(&template(Some(shaped)), Direction::Up),
            Some(shaped)
        );
        let policed = DirectionLimit {
            enforcement: Enforcement::Policer,
            ..shaped
        };
        assert_eq!(
            limit_of(&template(Some(policed)), Direction::Up),
            Some(policed)
        );
        let ifb = DirectionLimit {
            enforcement: Enforcement::Ifb,
            by_default: true,
            ..shaped
        };
        assert_eq!(limit_of(&template(Some(ifb)), Direction::Down), Some(ifb));
        assert_eq!(limit_of(&template(None), Direction::Down), None);
    }
}
