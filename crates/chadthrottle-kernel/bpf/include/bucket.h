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
 *
 * The burst is there to absorb stalls inside a transfer (a policed TCP flow at LAN round
 * trips waits out 200 ms retransmission timeouts). Credit saved up across real silence
 * would only make the next transfer overshoot, so after CT_IDLE_NS without a packet the
 * credit is cut to idle_tau_ns.
 */
#ifndef CHADTHROTTLE_BUCKET_H
#define CHADTHROTTLE_BUCKET_H

#include "chadthrottle.h"

/* Shared with the Rust model (NSEC_PER_SEC, IDLE_NS): enums, so that they reach the
 * object's BTF (see chadthrottle.h). */
enum ct_bucket_time {
	CT_NSEC_PER_SEC = 1000000000,
	CT_IDLE_NS = 1000000000,
};

/* Returns 1 and charges the packet if it conforms, 0 if it must be dropped. `slack_ns`
 * lets this packet run that much further ahead than the burst allows others: packets of
 * a TCP socket whose shaper holds the rate get it, so the first window of a shaped
 * download is not cut while UDP sharing the bucket keeps the plain burst. */
static inline int ct_bucket_admit(struct ct_bucket *b, __u64 now_ns, __u64 len, __u64 slack_ns)
{
	__u64 tat, cost, floor;

	if (b->rate == 0)
		return 0;
	if (b->rate == CT_RATE_UNLIMITED)
		return 1;
	if (now_ns > b->last_ns + CT_IDLE_NS) {
		floor = now_ns + b->tau_ns - b->idle_tau_ns;
		if (b->tat_ns < floor)
			b->tat_ns = floor;
	}
	b->last_ns = now_ns;
	tat = b->tat_ns > now_ns ? b->tat_ns : now_ns;
	if (tat - now_ns > b->tau_ns + slack_ns)
		return 0;
	cost = len * CT_NSEC_PER_SEC + b->rem;
	b->tat_ns = tat + cost / b->rate;
	b->rem = cost % b->rate;
	return 1;
}

#endif
