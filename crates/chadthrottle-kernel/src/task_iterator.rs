//! The rules' one userspace step in the kernel: running the task iterator
//! (`ct_iter_task`), which resolves every process's rule with the same function the exec,
//! fork and socket hooks run (bpf/process.bpf.c). After a rule is set it covers the
//! processes that existed before; after one goes it releases them. Userspace never
//! decides which rule governs a process.

use crate::error::Error;
use crate::loader;
use crate::names::PROG_ITER_TASK;
use aya::programs::Iter;
use aya::programs::links::LinkError;
use std::io::Read;
use std::path::Path;

/// A process the resolver could not make a member of its rule: a table was full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unresolved {
    pub pid: u32,
    /// The negative errno of the map update that failed (`-E2BIG`: full).
    pub error: i32,
}

/// Resolves every process on the machine (only those inside the datapath's cgroup are
/// changed); returns those that could not be made members.
pub fn resolve_all(pin_dir: &Path) -> Result<Vec<Unresolved>, Error> {
    let mut ebpf = loader::load_with_pins(pin_dir, PROG_ITER_TASK)?;
    let iter = loader::program::<Iter>(&mut ebpf, PROG_ITER_TASK)?;
    let link = iter
        .attach()
        .and_then(|id| iter.take_link(id))
        .map_err(Error::program("attach", PROG_ITER_TASK))?;
    let mut file = link.into_file().map_err(|error| {
        let source = match error {
            LinkError::SyscallError(call) => call.io_error,
            other => std::io::Error::other(other),
        };
        Error::io("open", "the task iterator")(source)
    })?;
    let mut records = Vec::new();
    file.read_to_end(&mut records)
        .map_err(Error::io("read", "the task iterator"))?;
    Ok(parse(&records))
}

/// The iterator's records: `{tgid: u32, error: i32}`, native order.
fn parse(records: &[u8]) -> Vec<Unresolved> {
    records
        .chunks_exact(8)
        .map(|record| {
            let word = |at: usize| [record[at], record[at + 1], record[at + 2], record[at + 3]];
            Unresolved {
                pid: u32::from_ne_bytes(word(0)),
                error: i32::from_ne_bytes(word(4)),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_a_pid_and_an_errno() {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&4242u32.to_ne_bytes());
        bytes.extend_from_slice(&(-libc::E2BIG).to_ne_bytes());
        bytes.extend_from_slice(&[1, 2, 3]); // a torn record is not one
        assert_eq!(
            parse(&bytes),
            [Unresolved {
                pid: 4242,
                error: -libc::E2BIG
            }]
        );
    }
}
