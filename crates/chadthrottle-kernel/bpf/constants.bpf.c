// SPDX-License-Identifier: MIT
/*
 * Puts every constant the datapath shares with userspace into the object's BTF.
 *
 * A C constant leaves no trace in an object, but an enum that a variable's type reaches
 * is written to its BTF. The shared constants are enums (include/chadthrottle.h,
 * bucket.h, sockopt.h); the variable below reaches each of them, so the kernel crate's
 * unit test (src/object_check.rs) reads their values from the committed object and
 * compares each with the Rust side's. It costs 8 bytes of .rodata and is never read. A
 * new shared enum gets a member here.
 */
#include "bucket.h"
#include "chadthrottle.h"
#include "sockopt.h"

struct ct_shared_constants {
	enum ct_layout layout;
	enum ct_dir dir;
	enum ct_rate rate;
	enum ct_lengths lengths;
	enum ct_family family;
	enum ct_limit_flags limit_flags;
	enum ct_bucket_time bucket_time;
	enum ct_sockopt sockopt;
	enum ct_scope scope;
	enum ct_match_kind match_kind;
	enum ct_rank rank;
	enum ct_rule_flags rule_flags;
	enum ct_counter counter;
};

static const struct ct_shared_constants *const ct_shared_constants __attribute__((used));
