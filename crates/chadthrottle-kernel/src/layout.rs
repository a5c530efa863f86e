//! Rust mirrors of `bpf/include/chadthrottle.h`, field for field.
//!
//! Guarded three ways: the C `_Static_assert`s, the const asserts below, and
//! [`check_map`], which compares a loaded or pinned map's key and value sizes with these
//! types before anything reads or writes it.

use crate::error::Error;
use aya::Pod;
use aya::maps::{Map, MapData, MapError};
use std::mem::size_of;

/// Bump together with `CT_LAYOUT_VERSION` in the C header.
pub const LAYOUT_VERSION: u32 = 2;

pub const DIR_UP: u32 = 0;
pub const DIR_DOWN: u32 = 1;
pub const RATE_UNLIMITED: u64 = u64::MAX;
pub const COMM_LEN: usize = 16;

/// `struct ct_owner`: the process a socket belongs to.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Owner {
    pub tgid: u32,
    pub _pad: u32,
    pub start_time: u64,
}

/// `struct ct_limit_key`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct LimitKey {
    pub tgid: u32,
    pub dir: u32,
}

/// `struct ct_bucket` is the core's model itself: `bucket::Bucket` is `#[repr(C)]` with the
/// C struct's fields in its order, so the datapath's state and the model cannot drift.
pub use chadthrottle_core::bucket::Bucket as BucketState;

/// `struct ct_limit`: one direction's bucket and whose it is.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limit {
    /// `struct bpf_spin_lock`; the kernel skips it when copying with `BPF_F_LOCK`.
    pub lock: u32,
    pub _pad: u32,
    pub start_time: u64,
    pub bucket: BucketState,
    pub burst: u64,
    pub expires_at_ns: u64,
    pub comm: [u8; COMM_LEN],
}

/// `struct ct_stats`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub bytes: u64,
    pub packets: u64,
    pub dropped_bytes: u64,
    pub dropped_packets: u64,
}

/// `struct ct_meta`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Meta {
    pub layout_version: u32,
    pub max_limits: u32,
    pub cgroup_id: u64,
    pub object_id: u64,
}

const _: () = assert!(size_of::<Owner>() == 16);
const _: () = assert!(size_of::<LimitKey>() == 8);
const _: () = assert!(size_of::<BucketState>() == 48);
const _: () = assert!(size_of::<Limit>() == 96);
const _: () = assert!(size_of::<Stats>() == 32);
const _: () = assert!(size_of::<Meta>() == 24);

// SAFETY: each type is #[repr(C)], made only of integers and integer arrays, with every
// padding byte an explicit field, so any bit pattern is a valid value.
unsafe impl Pod for Owner {}
// SAFETY: as above.
unsafe impl Pod for LimitKey {}
// SAFETY: as above.
unsafe impl Pod for Limit {}
// SAFETY: as above.
unsafe impl Pod for Stats {}
// SAFETY: as above.
unsafe impl Pod for Meta {}

impl Limit {
    /// The process name as set, without the NUL padding.
    pub fn comm(&self) -> String {
        let end = self.comm.iter().position(|&b| b == 0).unwrap_or(COMM_LEN);
        String::from_utf8_lossy(&self.comm[..end]).into_owned()
    }
}

/// `comm` as the datapath stores it: at most 15 bytes and a NUL.
pub fn comm_bytes(name: &str) -> [u8; COMM_LEN] {
    let mut comm = [0; COMM_LEN];
    let bytes = name.as_bytes();
    let len = bytes.len().min(COMM_LEN - 1);
    comm[..len].copy_from_slice(&bytes[..len]);
    comm
}

/// Refuses a map whose key or value size differs from the Rust mirror: reading it would
/// misinterpret every field.
pub fn check_map<K, V>(name: &'static str, map: &MapData) -> Result<(), Error> {
    let info = map.info().map_err(|source| Error::Map {
        op: "inspect",
        map: name,
        source,
    })?;
    let expected = (size_of::<K>(), size_of::<V>());
    let found = (info.key_size() as usize, info.value_size() as usize);
    if expected == found {
        Ok(())
    } else {
        Err(Error::LayoutMismatch {
            map: name,
            expected,
            found,
        })
    }
}

/// Opens `data` as the typed map `T` (after [`check_map`]).
pub fn typed<T: TryFrom<Map, Error = MapError>>(
    name: &'static str,
    data: MapData,
) -> Result<T, Error> {
    Map::from_map_data(data)
        .and_then(T::try_from)
        .map_err(Error::map("open", name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comm_is_truncated_and_round_trips() {
        let limit = Limit {
            comm: comm_bytes("a-very-long-process-name"),
            ..Limit::default()
        };
        assert_eq!(limit.comm(), "a-very-long-pro");
        let short = Limit {
            comm: comm_bytes("curl"),
            ..Limit::default()
        };
        assert_eq!(short.comm(), "curl");
    }
}
