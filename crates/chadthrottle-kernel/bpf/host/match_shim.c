// SPDX-License-Identifier: MIT
/* The exe rules' name hash (include/match.h), compiled for the host so that the kernel
 * crate's tests compare it with the Rust one: chunk by chunk, as the resolver runs it. */
#include "match.h"

__u64 ct_host_name_hash(const unsigned char *name, __u32 len)
{
	__u64 hash = CT_FNV_OFFSET;
	__u32 chunk, n;

	for (chunk = 0; chunk < CT_NAME_CHUNKS && chunk * CT_NAME_CHUNK < len; chunk++) {
		n = len - chunk * CT_NAME_CHUNK;
		hash = ct_fnv1a(hash, name + chunk * CT_NAME_CHUNK, n);
	}
	return hash;
}
