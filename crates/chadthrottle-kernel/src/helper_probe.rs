//! The BPF helpers the datapath calls that Linux 5.10 (the oldest kernel the matrix boots)
//! lacks, and whether this kernel has them: asked of the kernel one at a time before the
//! object is loaded, so that a kernel without one is told which helper and which release,
//! not shown a verifier log.

use crate::error::Error;
use aya::programs::ProgramType;
use aya::sys::{BpfHelper, is_helper_supported};

/// A helper newer than 5.10, the release that brought it, and the program type the
/// datapath calls it from (a kernel allows each helper to some program types only, so the
/// probe asks for the one that matters).
pub(crate) struct NewerHelper {
    pub(crate) helper: BpfHelper,
    pub(crate) name: &'static str,
    pub(crate) since: &'static str,
    pub(crate) called_from: ProgramType,
}

/// Every helper the object calls that 5.10 lacks. The tests below read the object's calls
/// and fail on one that is missing here.
pub(crate) const NEWER_HELPERS: [NewerHelper; 2] = [
    // ct_sock_create: the socket's owner and its start time
    NewerHelper {
        helper: BpfHelper::BPF_FUNC_get_current_task_btf,
        name: "bpf_get_current_task_btf",
        since: "5.11",
        called_from: ProgramType::CgroupSock,
    },
    // the policer's clock
    NewerHelper {
        helper: BpfHelper::BPF_FUNC_ktime_get_coarse_ns,
        name: "bpf_ktime_get_coarse_ns",
        since: "5.11",
        called_from: ProgramType::CgroupSkb,
    },
];

/// The helpers of `NEWER_HELPERS` this kernel lacks. A probe that cannot tell (an
/// unexpected error) counts as present: loading the object will then say what is wrong.
fn missing() -> Vec<&'static NewerHelper> {
    NEWER_HELPERS
        .iter()
        .filter(|needed| {
            matches!(
                is_helper_supported(needed.called_from, needed.helper),
                Ok(false)
            )
        })
        .collect()
}

/// Refuses, naming each missing helper and the release it needs, when this kernel lacks
/// one the datapath calls.
pub(crate) fn check() -> Result<(), Error> {
    let missing = missing();
    if missing.is_empty() {
        return Ok(());
    }
    let helpers = missing
        .iter()
        .map(|needed| format!("{} (Linux {})", needed.name, needed.since))
        .collect::<Vec<_>>()
        .join(", ");
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "unknown".to_owned(), |text| text.trim().to_owned());
    Err(Error::MissingHelpers { helpers, release })
}

#[cfg(test)]
mod tests {
    use super::NEWER_HELPERS;
    use crate::object::OBJECT;
    use aya::sys::BpfHelper;
    use aya_obj::Object;
    use std::collections::BTreeSet;

    /// The last helper Linux 5.10 has: helpers are numbered in the order they are merged.
    const LAST_HELPER_OF_5_10: u32 = BpfHelper::BPF_FUNC_redirect_peer as u32;

    /// The helper numbers the object calls (a call with source register 0; 1 is a call of a
    /// function of the object, 2 of a kernel function).
    fn called_helpers() -> BTreeSet<u32> {
        const CALL: u8 = 0x85; // BPF_JMP | BPF_CALL
        let object = Object::parse(OBJECT).unwrap_or_else(|e| panic!("the committed object: {e}"));
        object
            .functions
            .values()
            .flat_map(|function| function.instructions.iter())
            .filter(|insn| insn.code == CALL && insn.src_reg() == 0)
            .map(|insn| u32::try_from(insn.imm).expect("a helper number is positive"))
            .collect()
    }

    #[test]
    fn every_helper_newer_than_5_10_the_object_calls_is_probed() {
        let called = called_helpers();
        assert!(
            called.contains(&1),
            "bpf_map_lookup_elem not seen: {called:?}"
        );
        let probed: BTreeSet<u32> = NEWER_HELPERS.iter().map(|h| h.helper as u32).collect();
        let newer: BTreeSet<u32> = called
            .into_iter()
            .filter(|&id| id > LAST_HELPER_OF_5_10)
            .collect();
        assert_eq!(
            newer, probed,
            "helpers the object calls that 5.10 lacks, against NEWER_HELPERS"
        );
    }
}
