// SPDX-License-Identifier: MIT
/*
 * The datapath's maps and load-time settings, defined once for every program file (their
 * types and what each holds: include/maps.h), and the object's license.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "maps.h"

struct ct_owner_map ct_owner SEC(".maps");
struct ct_limits_map ct_limits SEC(".maps");
struct ct_stats_map ct_stats SEC(".maps");
struct ct_proc_acct_map ct_proc_acct SEC(".maps");
struct ct_proc_info_map ct_proc_info SEC(".maps");
struct ct_conns_map ct_conns SEC(".maps");
struct ct_rules_map ct_rules SEC(".maps");
struct ct_match_map ct_match SEC(".maps");
struct ct_tree_map ct_tree SEC(".maps");
struct ct_members_map ct_members SEC(".maps");
struct ct_marks_map ct_marks SEC(".maps");
struct ct_meta_map ct_meta SEC(".maps");
struct ct_counters_map ct_counters SEC(".maps");

/* Defaults; the loader sets them before the programs load (.rodata). */
const volatile __u64 ct_ns_per_tick = 10000000;
const volatile __u32 ct_accounting = 1;
const volatile __u32 ct_coarse_clock = 1;
/* The slot ct_tc_police matches (CT_LIMIT_POLICE): set per filter, one load each. */
const volatile __u32 ct_police_slot = 0;

char _license[] SEC("license") = "Dual MIT/GPL";
