//! How much the kernel's verifier had to do for each program the datapath keeps attached
//! and for the task iterator: the instructions it processed (`verified_insns`, which
//! kernels report from 5.16). Programs that walk a task and loop up the cgroup tree come
//! close to the verifier's limit of 1 000 000 when their states multiply, on the older
//! kernels first; the datapath test reads these counts to keep them far below it.

use std::path::Path;

use aya::programs::Program;

use crate::error::Error;
use crate::helper_probe;
use crate::loader;
use crate::names::{PROG_ITER_TASK, PROGRAMS};

/// One program's count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierWork {
    /// The program this kernel loads (5.10's socket hook in place of the newer one).
    pub program: &'static str,
    /// Instructions the verifier processed; `None` where the kernel does not say.
    pub instructions: Option<u32>,
}

/// Loads each program again, against the maps pinned at `pin_dir` (the datapath is
/// installed there), and reads what the verifier did for it. Nothing is attached; each
/// program is unloaded when its object is dropped.
pub fn verifier_work(pin_dir: &Path) -> Result<Vec<VerifierWork>, Error> {
    PROGRAMS
        .iter()
        .chain([&PROG_ITER_TASK])
        .map(|&name| {
            let program = helper_probe::in_place_of(name);
            let ebpf = loader::load_with_pins(pin_dir, program)?;
            let info = ebpf
                .program(program)
                .map(Program::info)
                .ok_or_else(|| {
                    Error::program("find", program)(aya::programs::ProgramError::NotLoaded)
                })?
                .map_err(Error::program("read the information of", program))?;
            Ok(VerifierWork {
                program,
                instructions: info.verified_instruction_count(),
            })
        })
        .collect()
}
