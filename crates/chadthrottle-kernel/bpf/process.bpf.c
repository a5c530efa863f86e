// SPDX-License-Identifier: MIT
/*
 * The programs that follow processes, and the rule resolver they share:
 *
 *   ct_sock_create   cgroup/sock_create          records the creating process in socket
 *                                                storage (and its name and command line,
 *                                                once); re-resolves its rule
 *   ct_sock_owner    cgroup/sock_create          the same record without the rule, for
 *                                                Linux 5.10 (no bpf_get_current_task_btf)
 *   ct_process_exec  tp_btf/sched_process_exec   resolves a process's rule with its new
 *                                                executable and name
 *   ct_process_fork  tp_btf/sched_process_fork   a child joins its parent's tree rule, then
 *                                                is resolved (unless it cannot match
 *                                                anything its parent did not)
 *   ct_process_exit  tp_btf/sched_process_exit   removes a process's limits, membership and
 *                                                tree entry when it exits
 *   ct_iter_task     iter/task, run on demand    resolves every process: after a rule
 *                                                change, so processes that existed before
 *                                                are covered (or released)
 *
 * Attribution is by socket owner, not by cgroup: a packet belongs to the process recorded
 * here in its socket's storage, whatever cgroup that process is in now. Which budget it
 * is charged to is ct_limit_of's answer (include/budget.h): the process's own entry, else
 * its rule's, from ct_members, which only the resolver below writes.
 *
 * The hooks run for every process on the machine, so they first read which kinds of rule
 * exist (ct_meta.rule_ranks, one map lookup): with no rule they stop there, and the
 * resolver looks up only the kinds some rule has. A hook that finds a rule but cannot
 * record the membership (a full table) counts it in ct_counters; the task iterator
 * reports its own to userspace instead.
 */
#include <linux/bpf.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include "chadthrottle.h"
#include "maps.h"
#include "match.h"

/* The few kernel fields read, relocated against the running kernel's BTF (CO-RE). */
typedef struct {
	int counter;
} ct_atomic_t;

typedef struct {
	__u32 val;
} ct_kuid_t;

struct signal_struct {
	ct_atomic_t live;
} __attribute__((preserve_access_index));

/* As the kernel declares it (little-endian): the length is read as its own 4-byte member,
 * as 6.1's verifier refuses an 8-byte read of hash_len ("access beyond the end of member
 * hash") where 6.12's accepts it. */
struct qstr {
	union {
		struct {
			__u32 hash;
			__u32 len;
		};
		__u64 hash_len;
	};
	const unsigned char *name;
} __attribute__((preserve_access_index));

struct super_block {
	__u32 s_dev;
} __attribute__((preserve_access_index));

struct inode {
	unsigned long i_ino;
} __attribute__((preserve_access_index));

struct dentry {
	struct dentry *d_parent;
	struct qstr d_name;
	struct inode *d_inode;
	struct super_block *d_sb;
} __attribute__((preserve_access_index));

struct path {
	struct dentry *dentry;
} __attribute__((preserve_access_index));

struct file {
	struct path f_path;
} __attribute__((preserve_access_index));

struct mm_struct {
	unsigned long arg_start;
	unsigned long arg_end;
	struct file *exe_file;
} __attribute__((preserve_access_index));

struct cred {
	ct_kuid_t uid;
} __attribute__((preserve_access_index));

struct kernfs_node {
	__u64 id;
} __attribute__((preserve_access_index));

struct cgroup;

struct cgroup_subsys_state {
	struct cgroup *cgroup;
	struct cgroup_subsys_state *parent;
} __attribute__((preserve_access_index));

struct cgroup {
	struct cgroup_subsys_state self;
	struct kernfs_node *kn;
} __attribute__((preserve_access_index));

struct css_set {
	struct cgroup *dfl_cgrp;
} __attribute__((preserve_access_index));

struct task_struct {
	int pid;
	int tgid;
	__u64 start_boottime;
	struct task_struct *group_leader;
	struct signal_struct *signal;
	struct mm_struct *mm;
	const struct cred *cred;
	struct css_set *cgroups;
	char comm[16];
} __attribute__((preserve_access_index));

struct bpf_iter_meta {
	void *seq;
} __attribute__((preserve_access_index));

struct bpf_iter__task {
	struct bpf_iter_meta *meta;
	struct task_struct *task;
} __attribute__((preserve_access_index));

/* Whether a rule of rank `rank` exists, by ct_meta.rule_ranks. */
#define CT_HAS_RANK(ranks, rank) ((ranks) & (1U << (rank)))

/* How far up the cgroup tree the resolver looks for the datapath's cgroup and for cgroup
 * rules. */
#define CT_CGROUP_DEPTH 32

static __always_inline __u64 ct_start_time(struct task_struct *task)
{
	return task->group_leader->start_boottime / ct_ns_per_tick;
}

/* The byte of ct_marks for `tgid`, or NULL for a tgid past the map's end (pid_max raised
 * after the load): such a process may be anything. */
static __always_inline __u8 *ct_mark_of(__u32 tgid)
{
	__u32 word = tgid / 8;
	__u8 *marks = bpf_map_lookup_elem(&ct_marks, &word);

	return marks ? marks + (tgid & 7) : NULL;
}

/* Whether `tgid` may have a ct_members entry, or a ct_tree entry a hook has seen: false
 * only where its mark is clear. */
static __always_inline int ct_may_be_held(__u32 tgid)
{
	__u8 *mark = ct_mark_of(tgid);

	return !mark || *mark;
}

/* Marks `tgid`: before a ct_members or ct_tree entry of it is written. */
static __always_inline void ct_mark(__u32 tgid)
{
	__u8 *mark = ct_mark_of(tgid);

	if (mark && !*mark)
		*mark = 1;
}

/* Name and command line of the process creating a socket, read once per process (the
 * first socket it creates), so that they outlive it in ct_proc_info. Every field is read
 * with bpf_probe_read_kernel (CO-RE), so `task` may be a BTF pointer or, on 5.10, the
 * plain address bpf_get_current_task gives. */
static __always_inline void ct_record_process(struct ct_owner *owner, struct task_struct *task)
{
	static const struct ct_proc_info empty;
	struct ct_proc_info *info;
	struct task_struct *leader;
	struct mm_struct *mm;
	unsigned long arg_start, arg_end;
	__u64 len;

	if (bpf_map_lookup_elem(&ct_proc_info, owner))
		return;
	if (bpf_map_update_elem(&ct_proc_info, owner, &empty, BPF_NOEXIST))
		return;
	info = bpf_map_lookup_elem(&ct_proc_info, owner);
	if (!info)
		return;
	leader = BPF_CORE_READ(task, group_leader);
	bpf_core_read_str(info->comm, sizeof(info->comm), &leader->comm);
	mm = BPF_CORE_READ(task, mm);
	if (!mm)
		return;
	arg_start = BPF_CORE_READ(mm, arg_start);
	arg_end = BPF_CORE_READ(mm, arg_end);
	len = arg_end - arg_start;
	if (len > CT_CMDLINE_LEN)
		len = CT_CMDLINE_LEN;
	if (len && !bpf_probe_read_user(info->cmdline, len, (void *)arg_start))
		info->cmdline_len = len;
}

/* The best rule so far: lowest (rank, order). */
struct ct_pick {
	__u64 rank; /* rank << 32 | order; ~0: none */
	__u32 rule;
	__u32 _pad;
};

/* A lapsed rule governs nobody; its entries go at the next rule change. */
static __always_inline int ct_lapsed(const struct ct_rule *rule)
{
	return rule->expires_at_ns && bpf_ktime_get_boot_ns() >= rule->expires_at_ns;
}

static __always_inline void ct_consider(struct ct_pick *pick, __u32 rule_id)
{
	struct ct_rule *rule = bpf_map_lookup_elem(&ct_rules, &rule_id);
	__u64 rank;

	if (!rule || ct_lapsed(rule))
		return;
	rank = ((__u64)rule->rank << 32) | rule->order;
	if (rank < pick->rank) {
		pick->rank = rank;
		pick->rule = rule_id;
	}
}

static __always_inline void ct_consider_match(struct ct_pick *pick, struct ct_match_key *key)
{
	__u32 *rule = bpf_map_lookup_elem(&ct_match, key);

	if (rule)
		ct_consider(pick, *rule);
}

/* `best`, or the cgroup rule of cgroup `id` if it is in force and comes first (a lower
 * order), each as (order << 32 | rule id); ~0 is none. A global function, which the
 * verifier checks once on its own: the resolver's walk up the cgroup tree then carries one
 * number it knows nothing of from level to level. With the lookups and the comparison
 * inlined, the walk's states multiplied on the verifiers of 5.10 and 6.1 (630 000 to
 * 760 000 instructions processed per resolving program, of the 1 000 000 they allow). */
__noinline __u64 ct_cgroup_better(__u64 id, __u64 best)
{
	struct ct_match_key key = { .kind = CT_MATCH_CGROUP, .a = id };
	struct ct_rule *rule;
	__u32 *rule_id, found;
	__u64 order;

	rule_id = bpf_map_lookup_elem(&ct_match, &key);
	if (!rule_id)
		return best;
	found = *rule_id;
	rule = bpf_map_lookup_elem(&ct_rules, &found);
	if (!rule || rule->rank != CT_RANK_CGROUP || ct_lapsed(rule))
		return best;
	order = ((__u64)rule->order << 32) | found;
	return order < best ? order : best;
}

/* The exe rule key of the task's executable: its directory's device (the kernel's s_dev)
 * and inode, and the hash of its name. Returns 0 if it has none (a kernel thread, an
 * exiting process). */
static __noinline int ct_exe_key(struct task_struct *task, struct ct_match_key *key)
{
	unsigned char chunk[CT_NAME_CHUNK];
	const unsigned char *name;
	struct dentry *dentry, *dir;
	struct mm_struct *mm;
	struct file *exe;
	__u64 hash = CT_FNV_OFFSET;
	__u32 len, i, n;

	mm = task->mm;
	if (!mm)
		return 0;
	exe = mm->exe_file;
	if (!exe)
		return 0;
	dentry = exe->f_path.dentry;
	if (!dentry)
		return 0;
	dir = dentry->d_parent;
	if (!dir)
		return 0;
	name = dentry->d_name.name;
	len = dentry->d_name.len;
	for (i = 0; i < CT_NAME_CHUNKS; i++) {
		if (i * CT_NAME_CHUNK >= len)
			break;
		n = len - i * CT_NAME_CHUNK;
		if (n > CT_NAME_CHUNK)
			n = CT_NAME_CHUNK;
		if (bpf_probe_read_kernel(chunk, sizeof(chunk), name + i * CT_NAME_CHUNK))
			return 0;
		hash = ct_fnv1a(hash, chunk, n);
	}
	key->kind = CT_MATCH_EXE;
	key->dev = dir->d_sb->s_dev;
	key->a = dir->d_inode->i_ino;
	key->b = hash;
	return 1;
}

/* ct_govern's `how` (one argument: a BPF call takes five at most). */
#define CT_GOVERN_SETTLE 1 /* settle the budgets of a membership that did not change */
#define CT_GOVERN_MARKED 2 /* the ct_marks byte is set: there may be an entry to look up */

/* Makes `task`'s process a member of rule `rule_id` (0: of none): its ct_members entry,
 * the budget entries of an each-mode rule made from its template (never over a PID limit),
 * and deletes the budget entries another rule had made for it. Without CT_GOVERN_MARKED
 * its ct_marks byte is clear, so it has no ct_members entry to look up. Returns 0, or the
 * error of a table that is full. (The rule is looked up here, not handed over by the
 * caller: a map value pointer as an argument multiplied the verifier's states by four.) */
static __noinline int ct_govern(struct task_struct *task, __u32 rule_id, int how)
{
	static const struct ct_stats zero_stats;
	struct task_struct *leader = task->group_leader;
	__u32 tgid = leader->tgid;
	__u64 start = ct_start_time(task);
	struct ct_limit_key key = { .id = tgid, .scope = CT_SCOPE_PROCESS };
	struct ct_member member = { .start_time = start, .rule = rule_id };
	struct ct_rule *rule = NULL;
	struct ct_rule_dir *template;
	struct ct_member *old;
	struct ct_limit *limit;
	struct ct_limit fresh;
	__u32 each = 0, dir;
	__u64 now;
	int err;

	if (rule_id) {
		rule = bpf_map_lookup_elem(&ct_rules, &rule_id);
		if (!rule)
			rule_id = 0;
		else if (rule->flags & CT_RULE_EACH)
			each = rule_id;
	}
	old = how & CT_GOVERN_MARKED ? bpf_map_lookup_elem(&ct_members, &tgid) : NULL;
	/* a membership of a shared rule that did not change has no budgets to settle: they
	 * went when it was written, or with the task iterator's `settle` after a rule change */
	if (!(how & CT_GOVERN_SETTLE) && !each && old && old->rule == rule_id && old->start_time == start)
		return 0;
	/* a rule makes budgets only for a member, after its ct_members entry, and they go
	 * with it: a process that was no member has none to delete */
	if (!rule_id && !old)
		return 0;
	/* budgets a rule made for this process that are not its each-mode rule's now */
	for (dir = CT_DIR_UP; old && dir <= CT_DIR_DOWN; dir++) {
		key.dir = dir;
		limit = bpf_map_lookup_elem(&ct_limits, &key);
		if (limit && limit->rule && (limit->rule != each || limit->start_time != start)) {
			bpf_map_delete_elem(&ct_limits, &key);
			bpf_map_delete_elem(&ct_stats, &key);
		}
	}
	if (!rule_id || !rule) {
		if (old)
			bpf_map_delete_elem(&ct_members, &tgid);
		return 0;
	}
	if (!old || old->start_time != start || old->rule != rule_id) {
		ct_mark(tgid);
		err = bpf_map_update_elem(&ct_members, &tgid, &member, BPF_ANY);
		if (err)
			return err;
	}
	if (!each)
		return 0;
	now = bpf_ktime_get_ns();
	for (dir = CT_DIR_UP; dir <= CT_DIR_DOWN; dir++) {
		key.dir = dir;
		limit = bpf_map_lookup_elem(&ct_limits, &key);
		/* a PID limit beats the rule; a budget of this rule is kept as it is */
		if (limit && limit->start_time == start)
			continue;
		template = &rule->dir[dir & 1];
		__builtin_memset(&fresh, 0, sizeof(fresh));
		fresh.flags = template->flags;
		fresh.start_time = start;
		fresh.bucket = template->bucket;
		fresh.bucket.tat_ns = now + template->bucket.tau_ns;
		fresh.bucket.last_ns = now;
		fresh.burst = template->burst;
		fresh.expires_at_ns = rule->expires_at_ns;
		/* an each-mode budget carries the member's name */
		bpf_probe_read_kernel(fresh.comm, sizeof(fresh.comm), leader->comm);
		fresh.rule = rule_id;
		bpf_map_delete_elem(&ct_stats, &key);
		err = bpf_map_update_elem(&ct_limits, &key, &fresh, BPF_ANY);
		if (err)
			return err;
		err = bpf_map_update_elem(&ct_stats, &key, &zero_stats, BPF_NOEXIST);
		if (err)
			return err;
	}
	return 0;
}

/* The install's meta, or NULL before it is written. */
static __always_inline struct ct_meta *ct_get_meta(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&ct_meta, &zero);
}

/* Counts a hook's failure to make a process a member (`err` from ct_resolve). */
static __always_inline void ct_count_ungoverned(int err)
{
	__u32 key = CT_COUNTER_UNGOVERNED;
	__u64 *count;

	if (!err)
		return;
	count = bpf_map_lookup_elem(&ct_counters, &key);
	if (count)
		__sync_fetch_and_add(count, 1);
}

/* The one rule resolver: finds the rules `task`'s process matches (its tree, executable,
 * name, uid, cgroup or a cgroup above), picks the lowest (rank, order) and makes the
 * process its member (ct_govern). Only processes inside the datapath's cgroup are
 * touched, and only the kinds of rule that exist are looked up (with none, a member is
 * released). `settle` (the task iterator, after a rule change) also settles the budgets of
 * a membership that did not change, and looks up the tree and the membership of a process
 * whose ct_marks byte is clear: a tree entry userspace wrote is marked here, so a hook
 * skips them until then (set_rule returns after the iterator). Returns 0, or the error of
 * a full table. */
static __noinline int ct_resolve_as(struct task_struct *task, struct ct_meta *meta, int settle)
{
	struct ct_pick pick = { .rank = ~0ULL };
	struct ct_match_key key = {};
	struct task_struct *leader;
	struct ct_member *tree, *member;
	struct cgroup_subsys_state *parent;
	struct cgroup *cgroup;
	struct ct_rule *rule;
	char comm[CT_COMM_LEN];
	__u32 tgid, i, ranks, member_rule;
	__u64 start, id, scope, cgroup_rule = ~0ULL;
	int in_scope = 0, marked, trees;

	scope = meta->cgroup_id;
	ranks = meta->rule_ranks;
	if (!scope)
		return 0;
	cgroup = task->cgroups->dfl_cgrp;
	for (i = 0; i < CT_CGROUP_DEPTH; i++) {
		if (!cgroup)
			break;
		id = cgroup->kn->id;
		if (id == scope) {
			in_scope = 1;
			/* with no cgroup rule, the cgroups above it would be looked at for nothing */
			if (!CT_HAS_RANK(ranks, CT_RANK_CGROUP))
				break;
		}
		if (CT_HAS_RANK(ranks, CT_RANK_CGROUP))
			cgroup_rule = ct_cgroup_better(id, cgroup_rule);
		parent = cgroup->self.parent;
		if (!parent)
			break;
		cgroup = parent->cgroup;
	}
	if (!in_scope)
		return 0;
	if (cgroup_rule != ~0ULL) {
		pick.rank = ((__u64)CT_RANK_CGROUP << 32) | (cgroup_rule >> 32);
		pick.rule = (__u32)cgroup_rule;
	}

	leader = task->group_leader;
	tgid = leader->tgid;
	start = ct_start_time(task);
	marked = settle || ct_may_be_held(tgid);
	trees = CT_HAS_RANK(ranks, CT_RANK_TREE) && marked;
	/* A hook's shortcut by the membership: a member of a tree rule stays one (no rank is
	 * better, and its tree entry goes only with the rule or the process), and a member of
	 * another rule is in no tree — but for a tree entry that userspace wrote and the task
	 * iterator has not reached yet, which the iterator settles (set_rule returns after it). */
	if (trees && !settle) {
		member = bpf_map_lookup_elem(&ct_members, &tgid);
		if (member && member->start_time == start) {
			member_rule = member->rule;
			rule = bpf_map_lookup_elem(&ct_rules, &member_rule);
			if (rule && !ct_lapsed(rule)) {
				if (rule->rank == CT_RANK_TREE)
					return ct_govern(task, member_rule, CT_GOVERN_MARKED);
				trees = 0;
			}
		}
	}
	if (trees) {
		tree = bpf_map_lookup_elem(&ct_tree, &tgid);
		if (tree && tree->start_time == start) {
			ct_mark(tgid);
			ct_consider(&pick, tree->rule);
		}
	}
	if (CT_HAS_RANK(ranks, CT_RANK_EXE) && ct_exe_key(task, &key))
		ct_consider_match(&pick, &key);
	__builtin_memset(comm, 0, sizeof(comm));
	if (CT_HAS_RANK(ranks, CT_RANK_NAME)) {
		bpf_probe_read_kernel(comm, sizeof(comm), leader->comm);
		key.kind = CT_MATCH_NAME;
		key.dev = 0;
		__builtin_memcpy(&key.a, comm, 8);
		__builtin_memcpy(&key.b, comm + 8, 8);
		ct_consider_match(&pick, &key);
	}
	if (CT_HAS_RANK(ranks, CT_RANK_USER)) {
		key.kind = CT_MATCH_UID;
		key.dev = 0;
		key.a = task->cred->uid.val;
		key.b = 0;
		ct_consider_match(&pick, &key);
	}
	return ct_govern(task, pick.rule,
			 (settle ? CT_GOVERN_SETTLE : 0) | (marked ? CT_GOVERN_MARKED : 0));
}

/* The hooks' resolve: a membership that did not change is left as it is. */
static __always_inline int ct_resolve(struct task_struct *task, struct ct_meta *meta)
{
	return ct_resolve_as(task, meta, 0);
}

/* Whether a child can match no rule its parent does not: the same cgroup, and (where
 * rules of those kinds exist) the same uid and name. Its executable is its parent's
 * (fork copies or shares the mm). A child of another name, uid or cgroup (a thread of
 * another name forking, CLONE_INTO_CGROUP) is resolved. */
static __always_inline int ct_like_parent(struct task_struct *parent, struct task_struct *child,
					  __u32 ranks)
{
	struct task_struct *leader = parent->group_leader;
	char parent_comm[CT_COMM_LEN], child_comm[CT_COMM_LEN];
	__u64 a, b, c, d;

	if (child->cgroups->dfl_cgrp->kn->id != parent->cgroups->dfl_cgrp->kn->id)
		return 0;
	if (CT_HAS_RANK(ranks, CT_RANK_USER) && child->cred->uid.val != leader->cred->uid.val)
		return 0;
	if (CT_HAS_RANK(ranks, CT_RANK_NAME)) {
		if (bpf_probe_read_kernel(parent_comm, sizeof(parent_comm), leader->comm) ||
		    bpf_probe_read_kernel(child_comm, sizeof(child_comm), child->comm))
			return 0;
		__builtin_memcpy(&a, parent_comm, 8);
		__builtin_memcpy(&b, parent_comm + 8, 8);
		__builtin_memcpy(&c, child_comm, 8);
		__builtin_memcpy(&d, child_comm + 8, 8);
		if (a != c || b != d)
			return 0;
	}
	return 1;
}

SEC("cgroup/sock_create")
int ct_sock_create(struct bpf_sock *sk)
{
	struct ct_owner *owner;
	struct task_struct *task;
	struct ct_meta *meta;

	task = bpf_get_current_task_btf();
	owner = bpf_sk_storage_get(&ct_owner, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (owner) {
		owner->tgid = bpf_get_current_pid_tgid() >> 32;
		owner->start_time = ct_start_time(task);
		if (ct_accounting)
			ct_record_process(owner, task);
	}
	/* a process that changed its name or uid follows its rule from its next socket */
	meta = ct_get_meta();
	if (meta && meta->rule_ranks)
		ct_count_ungoverned(ct_resolve(task, meta));
	return 1; /* never refuse a socket */
}

/* ct_sock_create for Linux 5.10, loaded in its place where bpf_get_current_task_btf (5.11)
 * is missing: bpf_get_current_task gives the task as a plain address, read only through
 * bpf_probe_read_kernel, so the owner and its start time are recorded but the rule is not
 * re-resolved (the resolver walks the task with BTF pointers). A process that changed its
 * name or uid follows its rule from its next exec or the next rule change instead. */
SEC("cgroup/sock_create")
int ct_sock_owner(struct bpf_sock *sk)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct ct_owner *owner;
	__u64 start;

	owner = bpf_sk_storage_get(&ct_owner, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!owner)
		return 1;
	start = BPF_CORE_READ(task, group_leader, start_boottime);
	owner->tgid = bpf_get_current_pid_tgid() >> 32;
	owner->start_time = start / ct_ns_per_tick;
	if (ct_accounting)
		ct_record_process(owner, task);
	return 1; /* never refuse a socket */
}

/* After exec the task has its new executable and name. */
SEC("tp_btf/sched_process_exec")
int ct_process_exec(__u64 *ctx)
{
	struct ct_meta *meta = ct_get_meta();

	if (meta && meta->rule_ranks)
		ct_count_ungoverned(ct_resolve((struct task_struct *)ctx[0], meta));
	return 0;
}

/* A new process (not a thread) joins its parent's tree rule, then is resolved like any:
 * a rule it matches better, or a PID limit, still wins. A child like its parent
 * (ct_like_parent) matches what its parent matched: if no rule governs the parent it is
 * left alone, which is what makes a fork cheap on a machine with rules, and if one does
 * the child is made a member of the same rule without looking the others up (ct_govern
 * still makes an each-mode rule's budgets and defers to a PID limit). The parent's tree
 * entry is looked up whatever its mark (one userspace wrote is marked only when the task
 * iterator reaches it), its membership only if marked. (A parent that changed its name,
 * uid or cgroup since it was last resolved is resolved again at its next socket, and so is
 * such a child, which has its parent's membership or none until then: a socket's owner is
 * resolved when it is created.) */
SEC("tp_btf/sched_process_fork")
int ct_process_fork(__u64 *ctx)
{
	struct task_struct *parent = (struct task_struct *)ctx[0];
	struct task_struct *child = (struct task_struct *)ctx[1];
	struct ct_member *tree, *member, joined;
	struct ct_rule *rule;
	struct ct_meta *meta;
	__u32 ptgid, tgid, ranks, rule_id;
	__u64 parent_start;

	if (child->pid != child->tgid)
		return 0;
	meta = ct_get_meta();
	if (!meta || !meta->rule_ranks)
		return 0;
	ranks = meta->rule_ranks;
	ptgid = parent->tgid;
	parent_start = ct_start_time(parent);
	tree = NULL;
	if (CT_HAS_RANK(ranks, CT_RANK_TREE))
		tree = bpf_map_lookup_elem(&ct_tree, &ptgid);
	if (tree && tree->start_time == parent_start) {
		tgid = child->tgid;
		joined.start_time = ct_start_time(child);
		joined.rule = tree->rule;
		joined._pad = 0;
		ct_mark(tgid);
		bpf_map_update_elem(&ct_tree, &tgid, &joined, BPF_ANY);
		/* the tree rule governs the child as it governs the parent (a member of it, so in
		 * the datapath's cgroup), unless the child went to another cgroup: no rank is
		 * better, so nothing else is looked up */
		rule_id = joined.rule;
		member = bpf_map_lookup_elem(&ct_members, &ptgid);
		if (member && member->start_time == parent_start && member->rule == rule_id &&
		    child->cgroups->dfl_cgrp->kn->id == parent->cgroups->dfl_cgrp->kn->id) {
			rule = bpf_map_lookup_elem(&ct_rules, &rule_id);
			if (rule && !ct_lapsed(rule)) {
				ct_count_ungoverned(ct_govern(child, rule_id, CT_GOVERN_MARKED));
				return 0;
			}
		}
	} else {
		member = ct_may_be_held(ptgid) ? bpf_map_lookup_elem(&ct_members, &ptgid) : NULL;
		if (member && member->start_time != parent_start)
			member = NULL;
		if (ct_like_parent(parent, child, ranks)) {
			if (!member)
				return 0;
			/* what its resolve would pick: the parent's rule, if still one it can
			 * pick (not lapsed; a tree rule's member is resolved, as it should have
			 * a tree entry) */
			rule_id = member->rule;
			rule = bpf_map_lookup_elem(&ct_rules, &rule_id);
			if (rule && rule->rank != CT_RANK_TREE && !ct_lapsed(rule)) {
				tgid = child->tgid;
				ct_count_ungoverned(ct_govern(child, rule_id,
							      ct_may_be_held(tgid) ? CT_GOVERN_MARKED : 0));
				return 0;
			}
		}
	}
	ct_count_ungoverned(ct_resolve(child, meta));
	return 0;
}

/* A process's limits end with it: when the last thread exits, delete its entries (if
 * they are really its own, not a newer process's with the same PID) — its budgets, its
 * membership and its place in a tree — and note the exit time beside its accounting,
 * which stays for the monitor. Its ct_marks byte is cleared when it has neither entry left
 * (an entry of an older process with its tgid keeps it).
 *
 * It runs for every process exit on the machine, so it looks up only what may exist: a
 * process whose mark is clear has no entry a hook wrote, so its budgets are looked up only
 * while a PID limit may exist (ct_meta.pid_limits) and its tree entry only while a tree rule
 * does (userspace writes tree entries unmarked; the task iterator marks them), and a member
 * of a shared rule's budgets only while a PID limit may exist. Without a meta (before the
 * install writes it) everything is looked up. (A rule changed from each-mode to shared
 * settles its members' budgets in the task iterator that follows: a member exiting between
 * the two leaves its old budget entries, which are its own by start time and match no
 * other process.) */
SEC("tp_btf/sched_process_exit")
int ct_process_exit(__u64 *ctx)
{
	struct task_struct *task = (struct task_struct *)ctx[0];
	struct ct_limit_key key = { .id = task->tgid, .scope = CT_SCOPE_PROCESS };
	struct ct_owner owner = {};
	struct ct_proc_info *info;
	struct ct_member *member;
	struct ct_meta *meta;
	__u64 start_time;
	struct ct_limit *limit;
	struct ct_rule *rule;
	__u32 dir, tgid, rule_id;
	__u8 *mark;
	int held = 0, marked, budgets, trees;

	if (task->signal->live.counter != 0)
		return 0; /* other threads still run */
	start_time = ct_start_time(task);
	owner.tgid = task->tgid;
	owner.start_time = start_time;
	info = bpf_map_lookup_elem(&ct_proc_info, &owner);
	if (info)
		info->exit_ns = bpf_ktime_get_ns();
	tgid = task->tgid;
	mark = ct_mark_of(tgid);
	marked = !mark || *mark;
	meta = ct_get_meta();
	budgets = marked || !meta || meta->pid_limits;
	trees = marked || !meta || CT_HAS_RANK(meta->rule_ranks, CT_RANK_TREE);
	member = marked ? bpf_map_lookup_elem(&ct_members, &tgid) : NULL;
	/* a member of a shared rule has no budget a rule made (writing its membership took
	 * out an each-mode rule's), so without a PID limit it has none */
	if (member && member->start_time == start_time && meta && !meta->pid_limits) {
		rule_id = member->rule;
		rule = bpf_map_lookup_elem(&ct_rules, &rule_id);
		if (rule && !(rule->flags & CT_RULE_EACH))
			budgets = 0;
	}
	for (dir = CT_DIR_UP; budgets && dir <= CT_DIR_DOWN; dir++) {
		key.dir = dir;
		limit = bpf_map_lookup_elem(&ct_limits, &key);
		if (limit && limit->start_time == start_time) {
			bpf_map_delete_elem(&ct_limits, &key);
			bpf_map_delete_elem(&ct_stats, &key);
		}
	}
	if (member && member->start_time == start_time)
		bpf_map_delete_elem(&ct_members, &tgid);
	else if (member)
		held = 1;
	member = trees ? bpf_map_lookup_elem(&ct_tree, &tgid) : NULL;
	if (member && member->start_time == start_time)
		bpf_map_delete_elem(&ct_tree, &tgid);
	else if (member)
		held = 1;
	if (mark && *mark && !held)
		*mark = 0;
	return 0;
}

/* Resolves every process (thread group leaders only): userspace reads it after every
 * rule change. Writes one record, {tgid, -errno}, per process it could not make a member
 * of its rule because a table was full; nothing else. */
SEC("iter/task")
int ct_iter_task(struct bpf_iter__task *ctx)
{
	struct task_struct *task = ctx->task;
	struct ct_meta *meta;
	__s32 record[2];
	int err;

	if (!task || task->pid != task->tgid)
		return 0;
	meta = ct_get_meta();
	if (!meta)
		return 0;
	err = ct_resolve_as(task, meta, 1);
	if (err) {
		record[0] = task->tgid;
		record[1] = err;
		bpf_seq_write(ctx->meta->seq, record, sizeof(record));
	}
	return 0;
}
