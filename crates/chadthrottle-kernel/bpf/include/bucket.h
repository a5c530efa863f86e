/* SPDX-License-Identifier: MIT */
/*
 * The token bucket, as a theoretical arrival time (GCRA). Pure arithmetic, no helpers:
 * the same function is compiled for BPF and, in the kernel crate's tests, for the host,
 * where it is checked against the Rust model (chadthrottle-core/src/bucket.rs).
 *
 * A packet conforms when the bucket's time is at most tau ahead of now; it then moves
 * the time by len / rate seconds. The division's remainder is kept, so no rounding ever
 * accumulates: over a busy interval exactly rate x interval bytes pass, plus the burst.
 * len * 1e9 + rem < 2^64 for len < 2^32 and rate <= 2^40, so nothing overflows.
 */
#ifndef CHADTHROTTLE_BUCKET_H
#define CHADTHROTTLE_BUCKET_H

#include "chadthrottle.h"

#define CT_NSEC_PER_SEC 1000000000ULL

/* Returns 1 and charges the packet if it conforms, 0 if it must be dropped. */
static inline int ct_bucket_admit(__u64 *tat_ns, __u64 *rem, __u64 rate, __u64 tau_ns,
				  __u64 now_ns, __u64 len)
{
	__u64 tat = *tat_ns;
	__u64 cost;

	if (rate == 0)
		return 0;
	if (rate == CT_RATE_UNLIMITED)
		return 1;
	if (tat < now_ns)
		tat = now_ns; /* idle: the saved-up credit is capped at tau */
	if (tat - now_ns > tau_ns)
		return 0;
	cost = len * CT_NSEC_PER_SEC + *rem;
	*tat_ns = tat + cost / rate;
	*rem = cost % rate;
	return 1;
}

#endif
