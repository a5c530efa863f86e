/* SPDX-License-Identifier: MIT */
/*
 * How an exe rule names a file: FNV-1a 64 of its name (the last path component), hashed
 * in chunks as the resolver (process.bpf.c) reads the name from the kernel. Pure
 * arithmetic: compiled for BPF and, in the kernel crate's tests, for the host, where it is
 * checked against the Rust implementation (src/rule_keys.rs).
 */
#ifndef CHADTHROTTLE_MATCH_H
#define CHADTHROTTLE_MATCH_H

#include <linux/types.h>

#define CT_FNV_OFFSET 0xcbf29ce484222325ULL
#define CT_FNV_PRIME 0x100000001b3ULL
/* Bytes of a name hashed per step: the resolver copies one chunk at a time. */
#define CT_NAME_CHUNK 32
/* A file name is at most NAME_MAX (255) bytes: 8 chunks. */
#define CT_NAME_CHUNKS 8

/* Continues the FNV-1a 64 `hash` over the first `len` bytes of `bytes` (at most one
 * chunk). Start with CT_FNV_OFFSET. */
static inline __u64 ct_fnv1a(__u64 hash, const unsigned char *bytes, __u32 len)
{
	__u32 i;

	for (i = 0; i < CT_NAME_CHUNK && i < len; i++) {
		hash ^= bytes[i];
		hash *= CT_FNV_PRIME;
	}
	return hash;
}

#endif
