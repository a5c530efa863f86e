//! The compiled datapath, embedded so that `cargo build` needs no clang.
//!
//! Regenerate with `crates/chadthrottle-kernel/bpf/build.sh`; CI runs it with `--check`.

/// `bpf/chadthrottle.bpf.o`, 4-byte aligned as the ELF parser needs.
pub static OBJECT: &[u8] = aya::include_bytes_aligned!("../bpf/chadthrottle.bpf.o");

/// FNV-1a of the object: stored in the pinned `ct_meta` so that programs from one build
/// are never attached next to maps made by another.
pub fn object_id() -> u64 {
    chadthrottle_core::fnv::fnv1a(OBJECT)
}
