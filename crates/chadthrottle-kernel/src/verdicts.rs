//! The kernel's verdicts on the programs a backend loads on demand (the TCP iterator, the
//! tc classifier), remembered for the rest of the boot so that `limit` does not have the
//! verifier go through them again in every command: a verdict depends on the kernel and
//! the object alone, so one is kept under this boot's id and the object's hash, in a file
//! beside the lock (`/run/chadthrottle/verdicts.json`, root's alone, gone with a reboot).
//! Only acceptances are kept: a refusal is asked again, so that its message is the
//! kernel's of now. Best effort both ways: a record that cannot be read is no record,
//! one that cannot be written is not kept.

use crate::names::RUN_DIR;
use std::path::{Path, PathBuf};

const FILE: &str = "verdicts.json";

/// What the file holds: the programs this boot's kernel took from this object.
#[derive(Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Verdicts {
    boot: String,
    object: u64,
    accepted: Vec<String>,
}

impl Verdicts {
    /// Whether this record says `program` was accepted by the kernel of `boot` from the
    /// object of hash `object`.
    fn accepts(&self, boot: &str, object: u64, program: &str) -> bool {
        self.boot == boot && self.object == object && self.accepted.iter().any(|p| p == program)
    }

    /// This record with `program` accepted by the kernel of `boot` from `object`; the
    /// verdicts of another boot or object are dropped.
    fn with(mut self, boot: &str, object: u64, program: &str) -> Self {
        if self.boot != boot || self.object != object {
            self = Verdicts {
                boot: boot.to_owned(),
                object,
                accepted: Vec::new(),
            };
        }
        if !self.accepted.iter().any(|p| p == program) {
            self.accepted.push(program.to_owned());
        }
        self
    }
}

fn path() -> PathBuf {
    Path::new(RUN_DIR).join(FILE)
}

fn boot() -> Option<String> {
    crate::clock::boot_id().ok().filter(|id| !id.is_empty())
}

fn object() -> u64 {
    static OBJECT_ID: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *OBJECT_ID.get_or_init(crate::object::object_id)
}

/// Whether the kernel took `program` from this object earlier in this boot.
pub(crate) fn accepted(program: &str) -> bool {
    let Some(boot) = boot() else {
        return false;
    };
    crate::record::read::<Verdicts>(&path())
        .is_ok_and(|verdicts| verdicts.accepts(&boot, object(), program))
}

/// Records that the kernel took `program` from this object. Without the state lock (a
/// caller may hold it): two commands writing at once can lose one's acceptance, which
/// only means that program is verified once more.
pub(crate) fn remember(program: &str) {
    let Some(boot) = boot() else {
        return;
    };
    let known = crate::record::read::<Verdicts>(&path()).unwrap_or_default();
    let _not_kept = crate::record::write(&path(), &known.with(&boot, object(), program), false);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_acceptance_holds_for_its_boot_object_and_program_only() {
        let verdicts = Verdicts::default().with("boot-a", 7, "ct_iter_tcp");
        assert!(verdicts.accepts("boot-a", 7, "ct_iter_tcp"));
        assert!(
            !verdicts.accepts("boot-b", 7, "ct_iter_tcp"),
            "another boot"
        );
        assert!(
            !verdicts.accepts("boot-a", 8, "ct_iter_tcp"),
            "another object"
        );
        assert!(
            !verdicts.accepts("boot-a", 7, "ct_tc_ingress"),
            "another program"
        );
        assert!(!Verdicts::default().accepts("", 0, "ct_iter_tcp"));
    }

    #[test]
    fn a_new_boot_or_object_drops_the_old_verdicts() {
        let old = Verdicts::default()
            .with("boot-a", 7, "ct_iter_tcp")
            .with("boot-a", 7, "ct_tc_ingress")
            .with("boot-a", 7, "ct_iter_tcp");
        assert_eq!(old.accepted.len(), 2);
        let rebooted = old.with("boot-b", 7, "ct_tc_ingress");
        assert_eq!(rebooted.accepted, ["ct_tc_ingress"]);
        let rebuilt = rebooted.with("boot-b", 9, "ct_iter_tcp");
        assert_eq!((rebuilt.object, rebuilt.accepted.len()), (9, 1));
    }
}
