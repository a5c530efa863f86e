// SPDX-License-Identifier: MIT
/*
 * The programs that follow processes:
 *
 *   ct_sock_create   cgroup/sock_create        records the creating process in socket storage
 *                                              (and its name and command line, once)
 *   ct_process_exit  tp_btf/sched_process_exit removes a process's limits when it exits
 *
 * Attribution is by socket owner, not by cgroup: a packet belongs to the process recorded
 * here in its socket's storage, whatever cgroup that process is in now.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "chadthrottle.h"
#include "maps.h"

/* The few kernel fields read, relocated against the running kernel's BTF (CO-RE). */
typedef struct {
	int counter;
} ct_atomic_t;

struct signal_struct {
	ct_atomic_t live;
} __attribute__((preserve_access_index));

struct mm_struct {
	unsigned long arg_start;
	unsigned long arg_end;
} __attribute__((preserve_access_index));

struct task_struct {
	int tgid;
	__u64 start_boottime;
	struct task_struct *group_leader;
	struct signal_struct *signal;
	struct mm_struct *mm;
	char comm[16];
} __attribute__((preserve_access_index));

static __always_inline __u64 ct_start_time(struct task_struct *task)
{
	return task->group_leader->start_boottime / ct_ns_per_tick;
}

/* Name and command line of the process creating a socket, read once per process (the
 * first socket it creates), so that they outlive it in ct_proc_info. */
static __always_inline void ct_record_process(struct ct_owner *owner, struct task_struct *task)
{
	static const struct ct_proc_info empty;
	struct ct_proc_info *info;
	struct mm_struct *mm;
	__u64 len;

	if (bpf_map_lookup_elem(&ct_proc_info, owner))
		return;
	if (bpf_map_update_elem(&ct_proc_info, owner, &empty, BPF_NOEXIST))
		return;
	info = bpf_map_lookup_elem(&ct_proc_info, owner);
	if (!info)
		return;
	bpf_probe_read_kernel_str(info->comm, sizeof(info->comm), task->group_leader->comm);
	mm = task->mm;
	if (!mm)
		return;
	len = mm->arg_end - mm->arg_start;
	if (len > CT_CMDLINE_LEN)
		len = CT_CMDLINE_LEN;
	if (len && !bpf_probe_read_user(info->cmdline, len, (void *)mm->arg_start))
		info->cmdline_len = len;
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
		if (ct_accounting)
			ct_record_process(owner, task);
	}
	return 1; /* never refuse a socket */
}

/* A process's limits end with it: when the last thread exits, delete its entries (if
 * they are really its own, not a newer process's with the same PID), and note the exit
 * time beside its accounting, which stays for the monitor. */
SEC("tp_btf/sched_process_exit")
int ct_process_exit(__u64 *ctx)
{
	struct task_struct *task = (struct task_struct *)ctx[0];
	struct ct_limit_key key = { .tgid = task->tgid };
	struct ct_owner owner = {};
	struct ct_proc_info *info;
	__u64 start_time;
	struct ct_limit *limit;
	__u32 dir;

	if (task->signal->live.counter != 0)
		return 0; /* other threads still run */
	start_time = ct_start_time(task);
	owner.tgid = task->tgid;
	owner.start_time = start_time;
	info = bpf_map_lookup_elem(&ct_proc_info, &owner);
	if (info)
		info->exit_ns = bpf_ktime_get_ns();
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
