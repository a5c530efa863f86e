// SPDX-License-Identifier: MIT
/*
 * ChadThrottle's datapath: per-process upload and download limits.
 *
 *   ct_sock_create   cgroup/sock_create        records the creating process in socket storage
 *   ct_egress        cgroup_skb/egress         polices what the owner sends (drop + congestion
 *                                              notification: never EPERM to the application)
 *   ct_ingress       cgroup_skb/ingress        polices what the owner receives (drop)
 *   ct_process_exit  tp_btf/sched_process_exit removes a process's limits when it exits
 *
 * Attribution is by socket owner, not by cgroup: a packet belongs to the process recorded
 * in its socket's storage, whatever cgroup that process is in now. Map layouts are in
 * include/chadthrottle.h; the bucket arithmetic in include/bucket.h.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include "chadthrottle.h"
#include "bucket.h"

/* cgroup_skb verdicts. Egress: bit 0 = pass, bit 1 = congestion notification; 2 drops
 * and makes TCP back off (CWR) while UDP sees a silent drop. 0 would hand EPERM to the
 * sender, so egress never returns it. */
#define CT_PASS 1
#define CT_EGRESS_DROP 2
#define CT_INGRESS_DROP 0

/* Load-time setting: nanoseconds per clock tick (10^9 / sysconf(_SC_CLK_TCK)), so that
 * start times compare with /proc/PID/stat. */
const volatile __u64 ct_ns_per_tick = 10000000;

/* The few kernel fields read, relocated against the running kernel's BTF (CO-RE). */
typedef struct {
	int counter;
} ct_atomic_t;

struct signal_struct {
	ct_atomic_t live;
} __attribute__((preserve_access_index));

struct task_struct {
	int tgid;
	__u64 start_boottime;
	struct task_struct *group_leader;
	struct signal_struct *signal;
} __attribute__((preserve_access_index));

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC | BPF_F_CLONE);
	__type(key, int);
	__type(value, struct ct_owner);
} ct_owner SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 2 * 65536); /* set at load time */
	__type(key, struct ct_limit_key);
	__type(value, struct ct_limit);
} ct_limits SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 2 * 65536); /* set at load time */
	__type(key, struct ct_limit_key);
	__type(value, struct ct_stats);
} ct_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ct_meta);
} ct_meta SEC(".maps");

static __always_inline __u64 ct_start_time(struct task_struct *task)
{
	return task->group_leader->start_boottime / ct_ns_per_tick;
}

SEC("cgroup/sock_create")
int ct_sock_create(struct bpf_sock *sk)
{
	struct ct_owner *owner;
	struct task_struct *task;

	owner = bpf_sk_storage_get(&ct_owner, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (owner) {
		task = bpf_get_current_task_btf();
		owner->tgid = bpf_get_current_pid_tgid() >> 32;
		owner->start_time = ct_start_time(task);
	}
	return 1; /* never refuse a socket */
}

static __always_inline void ct_count(struct ct_limit_key *key, struct __sk_buff *skb, int passed)
{
	struct ct_stats *stats = bpf_map_lookup_elem(&ct_stats, key);
	__u64 packets = skb->gso_segs ? skb->gso_segs : 1;

	if (!stats)
		return;
	/* per-CPU, but a preempted program can share its CPU: add atomically */
	if (passed) {
		__sync_fetch_and_add(&stats->bytes, skb->len);
		__sync_fetch_and_add(&stats->packets, packets);
	} else {
		__sync_fetch_and_add(&stats->dropped_bytes, skb->len);
		__sync_fetch_and_add(&stats->dropped_packets, packets);
	}
}

/* Whether skb is a TCP segment without payload (ACK, SYN, FIN, RST). Such segments are
 * counted but never charged or dropped: they carry no data, and charging the ACKs of a
 * download to the upload bucket (or an upload's ACKs to the download bucket) would let a
 * busy direction starve the other one. */
static __always_inline int ct_is_tcp_control(struct __sk_buff *skb, struct bpf_sock *sk)
{
	__u32 ip_len, tcp_len;
	__u8 byte;

	/* largest header-only segment: 60 bytes of IPv4 header, 60 of TCP header */
	if (sk->protocol != IPPROTO_TCP || skb->len > 120)
		return 0;
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		if (bpf_skb_load_bytes(skb, 0, &byte, 1))
			return 0;
		ip_len = (byte & 0x0f) * 4;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		if (bpf_skb_load_bytes(skb, 6, &byte, 1) || byte != IPPROTO_TCP)
			return 0; /* extension headers: police it */
		ip_len = 40;
	} else {
		return 0;
	}
	if (bpf_skb_load_bytes(skb, ip_len + 12, &byte, 1))
		return 0;
	tcp_len = (byte >> 4) * 4;
	return skb->len <= ip_len + tcp_len;
}

/* Returns 1 if the packet may pass, 0 if it is over its owner's limit. */
static __always_inline int ct_police(struct __sk_buff *skb, __u32 dir)
{
	struct ct_limit_key key = { .dir = dir };
	struct bpf_sock *sk = skb->sk;
	struct ct_owner *owner;
	struct ct_limit *limit;
	__u64 now;
	int passed;

	if (!sk)
		return 1;
	sk = bpf_sk_fullsock(sk);
	if (!sk)
		return 1; /* request and timewait sockets carry no owner */
	owner = bpf_sk_storage_get(&ct_owner, sk, 0, 0);
	if (!owner)
		return 1;
	key.tgid = owner->tgid;
	limit = bpf_map_lookup_elem(&ct_limits, &key);
	if (!limit || limit->start_time != owner->start_time)
		return 1;
	if (limit->expires_at_ns && bpf_ktime_get_boot_ns() >= limit->expires_at_ns) {
		bpf_map_delete_elem(&ct_limits, &key);
		bpf_map_delete_elem(&ct_stats, &key);
		return 1;
	}
	if (ct_is_tcp_control(skb, sk)) {
		ct_count(&key, skb, 1);
		return 1;
	}
	now = bpf_ktime_get_ns();
	bpf_spin_lock(&limit->lock);
	passed = ct_bucket_admit(&limit->bucket, now, skb->len);
	bpf_spin_unlock(&limit->lock);
	ct_count(&key, skb, passed);
	return passed;
}

SEC("cgroup_skb/egress")
int ct_egress(struct __sk_buff *skb)
{
	return ct_police(skb, CT_DIR_UP) ? CT_PASS : CT_EGRESS_DROP;
}

SEC("cgroup_skb/ingress")
int ct_ingress(struct __sk_buff *skb)
{
	return ct_police(skb, CT_DIR_DOWN) ? CT_PASS : CT_INGRESS_DROP;
}

/* A process's limits end with it: when the last thread exits, delete its entries (if
 * they are really its own, not a newer process's with the same PID). */
SEC("tp_btf/sched_process_exit")
int ct_process_exit(__u64 *ctx)
{
	struct task_struct *task = (struct task_struct *)ctx[0];
	struct ct_limit_key key = { .tgid = task->tgid };
	__u64 start_time;
	struct ct_limit *limit;
	__u32 dir;

	if (task->signal->live.counter != 0)
		return 0; /* other threads still run */
	start_time = ct_start_time(task);
	for (dir = CT_DIR_UP; dir <= CT_DIR_DOWN; dir++) {
		key.dir = dir;
		limit = bpf_map_lookup_elem(&ct_limits, &key);
		if (limit && limit->start_time == start_time) {
			bpf_map_delete_elem(&ct_limits, &key);
			bpf_map_delete_elem(&ct_stats, &key);
		}
	}
	return 0;
}

char _license[] SEC("license") = "Dual MIT/GPL";
