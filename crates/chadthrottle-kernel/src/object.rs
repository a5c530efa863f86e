//! The compiled datapath, embedded so that `cargo build` needs no clang.
//!
//! Regenerate with `crates/chadthrottle-kernel/bpf/build.sh`; CI runs it with `--check`.

/// `bpf/chadthrottle.bpf.o`, 4-byte aligned as the ELF parser needs.
pub static OBJECT: &[u8] = aya::include_bytes_aligned!("../bpf/chadthrottle.bpf.o");

/// FNV-1a of the object: stored in the pinned `ct_meta` so that programs from one build
/// are never attached next to maps made by another.
pub fn object_id() -> u64 {
    OBJECT.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
