//! The rules as their users named them: the datapath holds a rule by number, with its
//! match key and budgets; this book keeps, per install, each number's name, target as
//! given and as resolved, and expiry (`/run/chadthrottle/rules-<hash>.json`, see
//! `record`), and is the core's `RuleBackend` for the real datapath: a rule set, removed or
//! listed by name, the book and the maps changed under one state lock.
//!
//! The maps are the truth: a rule the book has but the kernel does not (a `reset` ran) is
//! dropped at the next change; a rule the kernel has but the book does not (the file was
//! deleted) is listed by what the kernel knows of it.

use crate::datapath::Datapath;
use crate::error::Error;
use crate::lock::StateLock;
use crate::rule_keys;
use crate::rules::{self, RuleEntry, RuleTarget as KernelTarget};
use chadthrottle_core::Rate;
use chadthrottle_core::backend::RuleBackend;
use chadthrottle_core::rule_request::{ResolvedTarget, RuleApplied, RuleRequest, RuleStatus};
use chadthrottle_core::rule_target::{Mode, RuleLimit, RuleSpec, RuleTarget, UserSpec};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// What the book keeps of one rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Named {
    /// The datapath's number of the rule.
    id: u32,
    spec: RuleSpec,
    resolved: ResolvedTarget,
    /// Unix time (seconds) the rule lapses at; `None`: until removed.
    #[serde(default)]
    expires_at: Option<u64>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Book {
    rules: Vec<Named>,
}

fn book_path(pin_dir: &Path) -> PathBuf {
    crate::record::path("rules", pin_dir)
}

/// The book of the install at `pin_dir`, without the rules the kernel no longer holds.
fn read_book(pin_dir: &Path, held: &BTreeSet<u32>) -> Result<Book, Error> {
    let mut book: Book = crate::record::read(&book_path(pin_dir))?;
    book.rules.retain(|named| held.contains(&named.id));
    Ok(book)
}

fn write_book(pin_dir: &Path, book: &Book) -> Result<(), Error> {
    crate::record::write(&book_path(pin_dir), book, book.rules.is_empty())
}

/// Takes the book of the install at `pin_dir` away (`reset`).
pub fn forget(_held: &StateLock, pin_dir: &Path) -> Result<(), Error> {
    crate::record::remove(&book_path(pin_dir))
}

/// The lowest rule number neither the kernel nor the book uses (0 means "no rule").
/// The ids the kernel holds or the book names (a name keeps its id while its rule is
/// replaced).
fn used_ids(held: &BTreeSet<u32>, book: &Book) -> BTreeSet<u32> {
    let mut used = held.clone();
    used.extend(book.rules.iter().map(|named| named.id));
    used
}

fn free_id(used: &BTreeSet<u32>) -> u32 {
    (1..).find(|id| !used.contains(id)).unwrap_or(u32::MAX)
}

/// What the datapath matches for `resolved`; cgroups must lie in the datapath's `scope`.
fn kernel_target(resolved: &ResolvedTarget, scope: &Path) -> Result<KernelTarget, Error> {
    Ok(match resolved {
        ResolvedTarget::Tree { root } => {
            if !crate::procs::is_alive(root.pid, root.start_time) {
                return Err(Error::RuleTarget(format!(
                    "process {} exited: a tree rule needs its first process running",
                    root.pid
                )));
            }
            KernelTarget::Tree(root.pid)
        }
        ResolvedTarget::Exe { path } => KernelTarget::Match(rule_keys::exe_key(path)?),
        ResolvedTarget::Name(name) => KernelTarget::Match(rule_keys::name_key(name)),
        ResolvedTarget::Cgroup { path } => {
            let on_mount = crate::mounts::cgroup2_root()?.join(path.trim_start_matches('/'));
            KernelTarget::Match(rule_keys::cgroup_key(&on_mount, scope)?)
        }
        ResolvedTarget::Uid(uid) => KernelTarget::Match(rule_keys::uid_key(*uid)),
    })
}

/// A rule the kernel holds but the book lost, as far as the kernel tells: its match key
/// (found by a scan of `ct_match`) or, for a tree, its lowest member.
fn unnamed(rule: &rules::RuleStatus, target: Option<KernelTarget>) -> (RuleSpec, ResolvedTarget) {
    let unknown = |what: String| {
        (
            RuleTarget::CgroupPath(what.clone()),
            ResolvedTarget::Cgroup { path: what },
        )
    };
    let (target, resolved) = match target {
        Some(KernelTarget::Tree(pid)) => (
            RuleTarget::Tree(pid),
            ResolvedTarget::Tree {
                root: chadthrottle_core::ProcessRef {
                    pid,
                    start_time: crate::procs::start_time(pid).unwrap_or(0),
                },
            },
        ),
        Some(KernelTarget::Match(key)) if key.kind == crate::layout::MATCH_UID => {
            let uid = u32::try_from(key.a).unwrap_or(u32::MAX);
            (
                RuleTarget::User(UserSpec::Uid(uid)),
                ResolvedTarget::Uid(uid),
            )
        }
        Some(KernelTarget::Match(key)) => unknown(format!(
            "(kernel key {}:{:x}:{:x}:{:x})",
            key.kind, key.dev, key.a, key.b
        )),
        None => unknown("(no target)".to_owned()),
    };
    let spec = RuleSpec {
        name: format!("rule #{} (unnamed)", rule.id),
        target,
        limits: rule.limits.map(|_, limit| {
            limit.and_then(|limit| {
                Some(RuleLimit {
                    rate: Rate::new(limit.rate)?,
                    burst: None,
                    backend: Some(limit.enforcement),
                })
            })
        }),
        mode: if rule.each { Mode::Each } else { Mode::Shared },
        order: rule.order,
        enabled: true,
    };
    (spec, resolved)
}

impl Datapath {
    /// Sets `request` as one rule, replacing the rule of the same name, and records its
    /// name beside it, under one state lock.
    fn set_named(&mut self, request: &RuleRequest) -> Result<RuleApplied, Error> {
        self.set_named_all(std::slice::from_ref(request))
    }

    /// Sets the named rules `requests` in one change: one state lock, one read and write
    /// of the book, one resolution of every process (`set_rules_locked`, all or none). A
    /// name the book holds keeps its id; a new one gets the lowest id nobody uses.
    fn set_named_all(&mut self, requests: &[RuleRequest]) -> Result<RuleApplied, Error> {
        let lock = crate::lock::lock()?;
        self.remove_lapsed(&lock)?;
        let held = self.held_ids();
        let mut book = read_book(&self.pin_dir, &held)?;
        let scope = self.scope_or_root()?;
        let mut used = used_ids(&held, &book);
        let mut entries = Vec::with_capacity(requests.len());
        let mut named = Vec::with_capacity(requests.len());
        for request in requests {
            let kept = book
                .rules
                .iter()
                .find(|named| named.spec.name == request.spec.name)
                .map(|named| named.id);
            let id = kept.unwrap_or_else(|| free_id(&used));
            used.insert(id);
            let entry = RuleEntry {
                id,
                order: request.spec.order,
                rank: request.spec.target.rank() as u8,
                each: request.spec.mode == Mode::Each,
                target: kernel_target(&request.resolved, &scope)?,
                limits: request.limits,
                expires_at_ns: request.lasts.map_or(0, |lasts| {
                    let ns = u64::try_from(lasts.as_nanos()).unwrap_or(u64::MAX);
                    crate::clock::boottime_ns().saturating_add(ns)
                }),
            };
            named.push(Named {
                id,
                spec: request.spec.clone(),
                resolved: request.resolved.clone(),
                expires_at: (entry.expires_at_ns != 0)
                    .then(|| crate::clock::boottime_to_unix_secs(entry.expires_at_ns)),
            });
            entries.push(entry);
        }
        let applied = self.set_rules_locked(&lock, &entries)?;
        let ids: BTreeSet<u32> = entries.iter().map(|entry| entry.id).collect();
        book.rules.retain(|named| !ids.contains(&named.id));
        book.rules.extend(named);
        write_book(&self.pin_dir, &book)?;
        Ok(RuleApplied {
            members: applied.members,
            backfilled_sockets: applied.backfilled_sockets,
            shaped_sockets: applied.shaped_sockets,
        })
    }

    /// Removes the rule named `name`; `false` if there is none.
    fn remove_named(&mut self, name: &str) -> Result<bool, Error> {
        let lock = crate::lock::lock()?;
        self.remove_lapsed(&lock)?;
        let held = self.held_ids();
        let mut book = read_book(&self.pin_dir, &held)?;
        let Some(at) = book.rules.iter().position(|named| named.spec.name == name) else {
            return Ok(false);
        };
        let named = book.rules.remove(at);
        self.remove_rules_locked(&lock, &[named.id])?;
        write_book(&self.pin_dir, &book)?;
        Ok(true)
    }

    fn scope_or_root(&self) -> Result<PathBuf, Error> {
        match &self.scope {
            Some(scope) => Ok(scope.clone()),
            None => crate::mounts::cgroup2_root(),
        }
    }

    /// What the kernel matches for rule `id`: its key in `ct_match`, or for a tree rule
    /// its lowest member (the tree's first process, unless that one exited).
    fn target_of(&self, id: u32) -> Option<KernelTarget> {
        let key = self
            .matches
            .iter()
            .filter_map(Result::ok)
            .find(|(_, rule)| *rule == id)
            .map(|(key, _)| KernelTarget::Match(key));
        key.or_else(|| {
            self.tree
                .iter()
                .filter_map(Result::ok)
                .filter(|(_, member)| member.rule == id)
                .map(|(pid, _)| pid)
                .min()
                .map(KernelTarget::Tree)
        })
    }

    /// The numbers of the rules the kernel holds: a change needs no more of them (the
    /// listing's members and counters are for `rules`).
    fn held_ids(&self) -> BTreeSet<u32> {
        self.rules.keys().filter_map(Result::ok).collect()
    }

    /// Takes out the rules whose time is up: the kernel already matches them no more and
    /// their budgets have lapsed; this releases their members' sockets and entries.
    fn remove_lapsed(&mut self, lock: &StateLock) -> Result<(), Error> {
        let lapsed = self.lapsed();
        if lapsed.is_empty() {
            return Ok(());
        }
        self.remove_rules_locked(lock, &lapsed)
    }

    /// Every rule the kernel holds and still applies, named as the book names it.
    fn named_rules(&self) -> Result<Vec<RuleStatus>, Error> {
        let held = Datapath::rules(self)?;
        let book: Book = crate::record::read(&book_path(&self.pin_dir))?;
        let now = crate::clock::boottime_ns();
        Ok(held
            .iter()
            .filter(|rule| rule.expires_at_ns == 0 || rule.expires_at_ns > now)
            .map(|rule| {
                let named = book.rules.iter().find(|named| named.id == rule.id);
                let (spec, resolved, expires_at) = match named {
                    Some(named) => (named.spec.clone(), named.resolved.clone(), named.expires_at),
                    None => {
                        let (spec, resolved) = unnamed(rule, self.target_of(rule.id));
                        let expires_at = (rule.expires_at_ns != 0)
                            .then(|| crate::clock::boottime_to_unix_secs(rule.expires_at_ns));
                        (spec, resolved, expires_at)
                    }
                };
                RuleStatus {
                    spec,
                    resolved,
                    limits: rule.limits,
                    members: rule.members.clone(),
                    stats: rule.stats,
                    expires_at,
                }
            })
            .collect())
    }
}

impl RuleBackend for Datapath {
    fn set_rule(&mut self, request: &RuleRequest) -> Result<RuleApplied, Error> {
        self.set_named(request)
    }

    fn set_rules(&mut self, requests: &[RuleRequest]) -> Result<RuleApplied, Error> {
        self.set_named_all(requests)
    }

    fn remove_rule(&mut self, name: &str) -> Result<bool, Error> {
        self.remove_named(name)
    }

    fn rules(&mut self) -> Result<Vec<RuleStatus>, Error> {
        self.named_rules()
    }

    fn ungoverned(&self) -> Result<u64, Error> {
        Datapath::ungoverned(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chadthrottle_core::PerDirection;

    fn status(id: u32) -> rules::RuleStatus {
        rules::RuleStatus {
            id,
            order: 0,
            rank: 5,
            each: false,
            limits: PerDirection::default(),
            members: Vec::new(),
            stats: PerDirection::default(),
            expires_at_ns: 0,
        }
    }

    #[test]
    fn a_new_rule_takes_the_lowest_number_nobody_uses() {
        let held = BTreeSet::from([status(1).id, status(3).id]);
        assert_eq!(free_id(&used_ids(&held, &Book::default())), 2);
        let book = Book {
            rules: vec![Named {
                id: 2,
                spec: unnamed(&status(2), None).0,
                resolved: ResolvedTarget::Uid(1000),
                expires_at: None,
            }],
        };
        assert_eq!(free_id(&used_ids(&held, &book)), 4);
    }

    #[test]
    fn a_rule_without_its_name_is_listed_by_what_the_kernel_knows() {
        let target = Some(KernelTarget::Match(rule_keys::uid_key(1000)));
        let (spec, resolved) = unnamed(&status(7), target);
        assert_eq!(spec.name, "rule #7 (unnamed)");
        assert_eq!(resolved, ResolvedTarget::Uid(1000));
        assert_eq!(spec.target, RuleTarget::User(UserSpec::Uid(1000)));
    }
}
