/* SPDX-License-Identifier: MIT */
/*
 * The datapath's maps and load-time settings, declared for every program file; maps.bpf.c
 * defines each once. Their keys and values are in chadthrottle.h; userspace finds them by
 * these names (crates/chadthrottle-kernel/src/names.rs).
 */
#ifndef CHADTHROTTLE_MAPS_H
#define CHADTHROTTLE_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "chadthrottle.h"

/* Socket storage: the process a socket belongs to, its counters, the shaper's state. */
struct ct_owner_map {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC | BPF_F_CLONE);
	__type(key, int);
	__type(value, struct ct_sock);
};
extern struct ct_owner_map ct_owner;

/* One token bucket per limited process and direction. */
struct ct_limits_map {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 2 * 65536); /* set at load time */
	__type(key, struct ct_limit_key);
	__type(value, struct ct_limit);
};
extern struct ct_limits_map ct_limits;

/* What each limit passed and dropped, per CPU, keyed like ct_limits. */
struct ct_stats_map {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 2 * 65536); /* set at load time */
	__type(key, struct ct_limit_key);
	__type(value, struct ct_stats);
};
extern struct ct_stats_map ct_stats;

/* Accounting of every process that owns a socket, per CPU. */
struct ct_proc_acct_map {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, 16384); /* set at load time */
	__type(key, struct ct_owner);
	__type(value, struct ct_acct);
};
extern struct ct_proc_acct_map ct_proc_acct;

/* Name and command line of every process that created a socket. */
struct ct_proc_info_map {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384); /* set at load time, like ct_proc_acct */
	__type(key, struct ct_owner);
	__type(value, struct ct_proc_info);
};
extern struct ct_proc_info_map ct_proc_info;

/* Accounting of every connection, by socket cookie. */
struct ct_conns_map {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536); /* set at load time */
	__type(key, __u64);         /* socket cookie */
	__type(value, struct ct_conn);
};
extern struct ct_conns_map ct_conns;

/* Rules by id (see chadthrottle.h): rank, order, mode and each member's template. */
struct ct_rules_map {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 4096); /* set at load time */
	__type(key, __u32);
	__type(value, struct ct_rule);
};
extern struct ct_rules_map ct_rules;

/* What exe, name, uid and cgroup rules match: one map for every kind, → rule id. */
struct ct_match_map {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 4096); /* set at load time, like ct_rules */
	__type(key, struct ct_match_key);
	__type(value, __u32);
};
extern struct ct_match_map ct_match;

/* The processes in a tree rule's tree, by tgid: userspace writes the root and those
 * present, the fork hook adds the children. */
struct ct_tree_map {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 65536); /* set at load time */
	__type(key, __u32);
	__type(value, struct ct_member);
};
extern struct ct_tree_map ct_tree;

/* The rule governing each process, by tgid: written only by the resolver
 * (process.bpf.c), read by the packet path (ct_limit_of). */
struct ct_members_map {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 65536); /* set at load time */
	__type(key, __u32);
	__type(value, struct ct_member);
};
extern struct ct_members_map ct_members;

/* One byte per tgid, eight to a value (an array's value takes 8 bytes at least): nonzero
 * where the process may have a ct_members entry, or a ct_tree entry a hook or the task
 * iterator has seen. Set before such an entry is written, cleared by the exit hook when
 * none is left; a clear byte lets an exec skip those lookups (process.bpf.c). Plain byte
 * stores: 5.10 has no atomic OR. */
struct ct_marks_map {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 524288); /* set at load time: the running pid_max / 8 */
	__type(key, __u32);
	__type(value, __u64);
};
extern struct ct_marks_map ct_marks;

/* Which install the pinned maps belong to. */
struct ct_meta_map {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ct_meta);
};
extern struct ct_meta_map ct_meta;

/* Events counted for userspace (enum ct_counter), per CPU. */
struct ct_counters_map {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, CT_COUNTERS);
	__type(key, __u32);
	__type(value, __u64);
};
extern struct ct_counters_map ct_counters;

/* Load-time setting: nanoseconds per clock tick (10^9 / sysconf(_SC_CLK_TCK)), so that
 * start times compare with /proc/PID/stat. */
extern const volatile __u64 ct_ns_per_tick;

/* Load-time setting: 0 turns off the accounting of every process and connection (the
 * benchmark measures what it costs); limits work either way. */
extern const volatile __u32 ct_accounting;

/* Load-time setting: 1 where the kernel has bpf_ktime_get_coarse_ns (Linux 5.11), which
 * the accounting reads on every packet; 0 reads bpf_ktime_get_ns instead. The branch on it
 * is decided by the verifier (.rodata is frozen), so an older kernel never sees the call. */
extern const volatile __u32 ct_coarse_clock;

/* Load-time setting of ct_tc_police only: the slot (ct_limit.class_id) of the process
 * whose downloads its filter polices; each filter loads the program with its own. */
extern const volatile __u32 ct_police_slot;

#endif
