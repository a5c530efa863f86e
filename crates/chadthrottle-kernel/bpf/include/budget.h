/* SPDX-License-Identifier: MIT */
/*
 * The budget a packet of a process is charged to: the one lookup the policer, the
 * shaper and the tc classifier share.
 *
 * A process's own entry (a PID limit, or an each-mode rule's member budget) comes first,
 * if it is really this process's (same start time: PIDs are reused); else the rule that
 * governs the process (ct_members, written by the resolver in process.bpf.c) and that
 * rule's shared entry. A process under no limit costs a miss in each map.
 */
#ifndef CHADTHROTTLE_BUDGET_H
#define CHADTHROTTLE_BUDGET_H

#include "chadthrottle.h"
#include "maps.h"

/* The budget of `owner` in `dir`, its key written to `key`; NULL if there is none. */
static __always_inline struct ct_limit *ct_limit_of(const struct ct_owner *owner, __u32 dir,
						    struct ct_limit_key *key)
{
	struct ct_member *member;
	struct ct_limit *limit;
	__u32 tgid = owner->tgid;

	key->id = tgid;
	key->dir = dir;
	key->scope = CT_SCOPE_PROCESS;
	limit = bpf_map_lookup_elem(&ct_limits, key);
	if (limit && limit->start_time == owner->start_time)
		return limit;
	member = bpf_map_lookup_elem(&ct_members, &tgid);
	if (!member || member->start_time != owner->start_time || !member->rule)
		return NULL;
	key->id = member->rule;
	key->scope = CT_SCOPE_RULE;
	return bpf_map_lookup_elem(&ct_limits, key);
}

#endif
