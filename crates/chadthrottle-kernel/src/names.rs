//! Every name the datapath is known by: maps, programs, pin files. One place, so the
//! loader, `reset` and the tests cannot disagree.

/// Socket storage: the process each socket belongs to.
pub const MAP_OWNER: &str = "ct_owner";
/// Token buckets, one per limited process and direction.
pub const MAP_LIMITS: &str = "ct_limits";
/// Per-CPU counters, keyed like [`MAP_LIMITS`].
pub const MAP_STATS: &str = "ct_stats";
/// Which install the pinned maps belong to.
pub const MAP_META: &str = "ct_meta";
/// Per-CPU accounting of every process that owns a socket (LRU).
pub const MAP_PROC_ACCT: &str = "ct_proc_acct";
/// Name and command line of every process that created a socket (LRU).
pub const MAP_PROC_INFO: &str = "ct_proc_info";
/// Accounting of every connection, by socket cookie (LRU).
pub const MAP_CONNS: &str = "ct_conns";
/// Rules by id: rank, order, mode, each member's template.
pub const MAP_RULES: &str = "ct_rules";
/// What exe, name, uid and cgroup rules match → rule id.
pub const MAP_MATCH: &str = "ct_match";
/// The processes in a tree rule's tree, by tgid.
pub const MAP_TREE: &str = "ct_tree";
/// The rule governing each process, by tgid (written only by the datapath's resolver).
pub const MAP_MEMBERS: &str = "ct_members";
/// One byte per tgid, nonzero where the process may have a [`MAP_MEMBERS`] or
/// [`MAP_TREE`] entry: an exec of a process with a clear byte skips those lookups. Only the
/// datapath reads and writes it; pinned so that every load of the object shares it.
pub const MAP_MARKS: &str = "ct_marks";
/// Per-CPU counters of events userspace reports (`COUNTER_*` in `layout`).
pub const MAP_COUNTERS: &str = "ct_counters";

/// Every map, in the order `reset` removes them.
pub const MAPS: [&str; 13] = [
    MAP_RULES,
    MAP_MATCH,
    MAP_TREE,
    MAP_MEMBERS,
    MAP_MARKS,
    MAP_LIMITS,
    MAP_STATS,
    MAP_PROC_ACCT,
    MAP_PROC_INFO,
    MAP_CONNS,
    MAP_OWNER,
    MAP_COUNTERS,
    MAP_META,
];

/// Records each new socket's owner and re-resolves its rule; attached under its own link
/// pin name whichever of it and [`PROG_SOCK_OWNER`] this kernel takes.
pub const PROG_SOCK_CREATE: &str = "ct_sock_create";
/// [`PROG_SOCK_CREATE`] for kernels without `bpf_get_current_task_btf` (5.10): the owner
/// only (`helper_probe::in_place_of` chooses).
pub const PROG_SOCK_OWNER: &str = "ct_sock_owner";
pub const PROG_EGRESS: &str = "ct_egress";
pub const PROG_INGRESS: &str = "ct_ingress";
pub const PROG_PROCESS_EXIT: &str = "ct_process_exit";
/// Resolves a process's rule after exec.
pub const PROG_PROCESS_EXEC: &str = "ct_process_exec";
/// Puts a child in its parent's tree rule and resolves it.
pub const PROG_PROCESS_FORK: &str = "ct_process_fork";
pub const PROG_SOCK_OPS: &str = "ct_sock_ops";
/// The iterator over a network namespace's TCP sockets that shapes or restores the open
/// ones; run on demand, never attached for good.
pub const PROG_ITER_TCP: &str = "ct_iter_tcp";
/// The iterator over every task that resolves each process's rule; run on demand after
/// every rule change, never attached for good.
pub const PROG_ITER_TASK: &str = "ct_iter_task";
/// The ifb backend's tc classifier; loaded when a filter is added, held by the filter.
pub const PROG_TC_INGRESS: &str = "ct_tc_ingress";
/// The tc_police backend's classifier; loaded once per filter (each with its own
/// [`GLOBAL_POLICE_SLOT`]), held by the filter.
pub const PROG_TC_POLICE: &str = "ct_tc_police";
/// Name prefix of the IFB devices the ifb backend creates (one per interface).
pub const IFB_PREFIX: &str = "ct-ifb";
/// The kernel iterator [`PROG_ITER_TCP`] is for.
pub const ITER_TCP: &str = "tcp";
/// The kernel iterator [`PROG_ITER_TASK`] is for.
pub const ITER_TASK: &str = "task";

/// The kernel tracepoint [`PROG_PROCESS_EXIT`] attaches to.
pub const TRACEPOINT_PROCESS_EXIT: &str = "sched_process_exit";
/// The kernel tracepoint [`PROG_PROCESS_EXEC`] attaches to.
pub const TRACEPOINT_PROCESS_EXEC: &str = "sched_process_exec";
/// The kernel tracepoint [`PROG_PROCESS_FORK`] attaches to.
pub const TRACEPOINT_PROCESS_FORK: &str = "sched_process_fork";

/// Load-time setting in `.rodata`: nanoseconds per clock tick.
pub const GLOBAL_NS_PER_TICK: &str = "ct_ns_per_tick";
/// Load-time setting in `.rodata`: 1 accounts every process and connection, 0 does not.
pub const GLOBAL_ACCOUNTING: &str = "ct_accounting";
/// Load-time setting in `.rodata`: 1 reads `bpf_ktime_get_coarse_ns`, 0 `bpf_ktime_get_ns`.
pub const GLOBAL_COARSE_CLOCK: &str = "ct_coarse_clock";
/// Load-time setting in `.rodata`, of [`PROG_TC_POLICE`]: the slot its filter matches.
pub const GLOBAL_POLICE_SLOT: &str = "ct_police_slot";

/// The hook of `program` as its ELF section names it (`iter/tcp`), for naming what a
/// kernel refuses it; "" for a name that is no program.
pub fn hook_of(program: &str) -> &'static str {
    match program {
        PROG_SOCK_CREATE | PROG_SOCK_OWNER => "cgroup/sock_create",
        PROG_EGRESS => "cgroup_skb/egress",
        PROG_INGRESS => "cgroup_skb/ingress",
        PROG_PROCESS_EXIT => "tp_btf/sched_process_exit",
        PROG_PROCESS_EXEC => "tp_btf/sched_process_exec",
        PROG_PROCESS_FORK => "tp_btf/sched_process_fork",
        PROG_SOCK_OPS => "sockops",
        PROG_ITER_TCP => "iter/tcp",
        PROG_ITER_TASK => "iter/task",
        PROG_TC_INGRESS | PROG_TC_POLICE => "tc",
        _ => "",
    }
}

/// Pin file of the link that keeps `program` attached.
pub fn link_pin(program: &str) -> String {
    format!("link_{program}")
}

/// Every program that stays attached, in the order they are attached; `reset` detaches
/// in reverse.
pub const PROGRAMS: [&str; 7] = [
    PROG_SOCK_CREATE,
    PROG_PROCESS_EXIT,
    PROG_PROCESS_EXEC,
    PROG_PROCESS_FORK,
    PROG_EGRESS,
    PROG_INGRESS,
    PROG_SOCK_OPS,
];

/// The source name given to a bpffs that ChadThrottle mounted itself; `reset` unmounts
/// only a bpffs with this source, and only when it is empty.
pub const BPFFS_SOURCE: &str = "chadthrottle";

/// Where ChadThrottle keeps the record of the qdiscs it installed (one file per install).
pub const RUN_DIR: &str = "/run/chadthrottle";

/// Serialises every command that changes pinned state.
pub const LOCK_FILE: &str = "/run/chadthrottle/lock";
