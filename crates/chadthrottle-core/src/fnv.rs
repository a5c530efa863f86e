//! FNV-1a 64, the one hash ChadThrottle needs to be the same across builds, machines and
//! the kernel: an executable's name in an exe rule's key (`bpf/include/match.h` computes
//! the same), the object's id in the pinned meta, the file names of an install's records,
//! a long rule name's suffix. std's hasher is seeded per process, so it cannot serve.

const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a 64 of `bytes`.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(OFFSET, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    })
}

#[cfg(test)]
mod tests {
    use super::fnv1a;

    #[test]
    fn known_values() {
        // the published test vectors of FNV-1a 64
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }
}
