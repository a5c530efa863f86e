//! The BPF helpers the datapath calls that Linux 5.10 (the oldest kernel the matrix boots)
//! lacks, whether this kernel has them, and what is loaded without them: each is asked of
//! the kernel before the object is loaded, and where one is missing the datapath does
//! without it (another program in its place, another clock) instead of showing the
//! verifier's refusal.

use crate::names::{PROG_SOCK_CREATE, PROG_SOCK_OWNER};
use aya::programs::ProgramType;
use aya::sys::{BpfHelper, is_helper_supported};
use chadthrottle_core::kernel_floor::{DoneWithout, WITHOUT_COARSE_CLOCK, WITHOUT_TASK_BTF};

/// A helper newer than 5.10 and the program type the datapath calls it from (a kernel
/// allows each helper to some program types only, so the probe asks for the one that
/// matters).
pub(crate) struct NewerHelper {
    pub(crate) helper: BpfHelper,
    pub(crate) called_from: ProgramType,
    /// What the datapath does without it, as `backends` names it.
    pub(crate) without: DoneWithout,
}

/// `bpf_get_current_task_btf` (Linux 5.11), `ct_sock_create`'s: the task the resolver
/// walks. Without it `ct_sock_owner` is attached in its place: a new socket's owner is
/// recorded, and its process's rule is re-resolved at its next exec or rule change, not
/// at the socket.
const TASK_BTF: NewerHelper = NewerHelper {
    helper: BpfHelper::BPF_FUNC_get_current_task_btf,
    called_from: ProgramType::CgroupSock,
    without: WITHOUT_TASK_BTF,
};

/// `bpf_ktime_get_coarse_ns` (Linux 5.11), the accounting's clock, read on every packet.
/// Without it the accounting reads `bpf_ktime_get_ns` (`ct_coarse_clock` = 0).
const COARSE_CLOCK: NewerHelper = NewerHelper {
    helper: BpfHelper::BPF_FUNC_ktime_get_coarse_ns,
    called_from: ProgramType::CgroupSkb,
    without: WITHOUT_COARSE_CLOCK,
};

/// Every helper the object calls that 5.10 lacks (`backends` names the missing ones). The
/// tests below read the object's calls and fail on one that is missing here.
const NEWER_HELPERS: [NewerHelper; 2] = [TASK_BTF, COARSE_CLOCK];

/// Whether this kernel has `needed`. A probe that cannot tell (an unexpected error) counts
/// as present: loading the program will then say what is wrong.
fn present(needed: &NewerHelper) -> bool {
    !matches!(
        is_helper_supported(needed.called_from, needed.helper),
        Ok(false)
    )
}

/// The program loaded and attached as `program` here: `ct_sock_owner` for
/// `ct_sock_create` on a kernel without `bpf_get_current_task_btf`, else `program` itself.
pub(crate) fn in_place_of(program: &'static str) -> &'static str {
    if program == PROG_SOCK_CREATE && !present(&TASK_BTF) {
        PROG_SOCK_OWNER
    } else {
        program
    }
}

/// What the datapath does without on this kernel, for `backends`.
pub(crate) fn done_without() -> Vec<DoneWithout> {
    NEWER_HELPERS
        .iter()
        .filter(|needed| !present(needed))
        .map(|needed| needed.without)
        .collect()
}

/// Whether the accounting may read the coarse clock (the load-time `ct_coarse_clock`).
pub(crate) fn coarse_clock() -> bool {
    present(&COARSE_CLOCK)
}

#[cfg(test)]
mod tests {
    use super::NEWER_HELPERS;
    use crate::names::PROG_SOCK_OWNER;
    use crate::object::OBJECT;
    use aya::sys::BpfHelper;
    use aya_obj::Object;
    use std::collections::BTreeSet;

    /// The last helper Linux 5.10 has: helpers are numbered in the order they are merged.
    const LAST_HELPER_OF_5_10: u32 = BpfHelper::BPF_FUNC_redirect_peer as u32;

    /// The helper numbers the object's functions whose name `select` takes call (a call
    /// with source register 0; 1 is a call of a function of the object, 2 of a kernel
    /// function).
    fn helpers_called_by(select: impl Fn(&str) -> bool) -> BTreeSet<u32> {
        const CALL: u8 = 0x85; // BPF_JMP | BPF_CALL
        let object = Object::parse(OBJECT).unwrap_or_else(|e| panic!("the committed object: {e}"));
        object
            .functions
            .values()
            .filter(|function| select(&function.name))
            .flat_map(|function| function.instructions.iter())
            .filter(|insn| insn.code == CALL && insn.src_reg() == 0)
            .map(|insn| u32::try_from(insn.imm).expect("a helper number is positive"))
            .collect()
    }

    fn called_helpers() -> BTreeSet<u32> {
        helpers_called_by(|_| true)
    }

    /// Linux 5.10 has one atomic instruction: an add whose result is not fetched (`imm`
    /// 0). Exchange, compare-and-exchange, fetch-and-add and the bitwise ones are from
    /// 5.12, and 5.10's verifier refuses the whole program ("BPF_STX uses reserved
    /// fields").
    #[test]
    fn the_object_uses_no_atomic_instruction_newer_than_5_10() {
        const STX_ATOMIC: u8 = 0x03 | 0xc0; // BPF_STX | BPF_ATOMIC, any size
        let object = Object::parse(OBJECT).unwrap_or_else(|e| panic!("the committed object: {e}"));
        let mut adds = 0;
        let mut newer = Vec::new();
        for function in object.functions.values() {
            for insn in &function.instructions {
                if insn.code & 0xe7 == STX_ATOMIC {
                    if insn.imm == 0 {
                        adds += 1;
                    } else {
                        newer.push(format!("{}: atomic op {:#x}", function.name, insn.imm));
                    }
                }
            }
        }
        assert!(adds > 0, "no atomic add found: the decoding is wrong");
        assert!(newer.is_empty(), "atomics 5.10 refuses: {newer:?}");
    }

    /// The program loaded in `ct_sock_create`'s place on 5.10 must itself load there.
    #[test]
    fn the_socket_hook_for_5_10_calls_no_newer_helper() {
        let called = helpers_called_by(|name| name == PROG_SOCK_OWNER);
        assert!(
            called.contains(&(BpfHelper::BPF_FUNC_sk_storage_get as u32)),
            "{PROG_SOCK_OWNER} not found or not calling bpf_sk_storage_get: {called:?}"
        );
        let newer: Vec<u32> = called
            .into_iter()
            .filter(|&id| id > LAST_HELPER_OF_5_10)
            .collect();
        assert!(
            newer.is_empty(),
            "{PROG_SOCK_OWNER} calls helpers newer than 5.10: {newer:?}"
        );
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
