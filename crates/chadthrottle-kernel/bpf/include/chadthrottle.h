/* SPDX-License-Identifier: MIT */
/*
 * Every map key and value the datapath shares with userspace, in one place, and the
 * constants that go with them.
 *
 * The Rust mirrors live in crates/chadthrottle-kernel/src/layout.rs. The layout is guarded
 * four ways: the _Static_asserts below, const asserts on the Rust side, a check of each
 * map's key and value size when the loader opens it, and a unit test (src/object_check.rs)
 * that compares every field's name, offset and size and every shared constant with the
 * committed object's BTF. Change a struct here, change its mirror, and bump
 * CT_LAYOUT_VERSION (pinned state of another version is refused).
 *
 * A constant userspace shares is an enum, not a #define: an enum reaches the object's
 * BTF, where that test reads it, once constants.bpf.c lists it. Constants only the
 * datapath uses stay #defines.
 */
#ifndef CHADTHROTTLE_H
#define CHADTHROTTLE_H

#include <linux/bpf.h>
#include <linux/types.h>

enum ct_layout {
	CT_LAYOUT_VERSION = 14,
};

/* Directions, as seen from the limited process: ct_limit_key.dir, ct_sock.shape[]. */
enum ct_dir {
	CT_DIR_UP = 0,   /* egress: sent by the process */
	CT_DIR_DOWN = 1, /* ingress: received by the process */
};

/* ct_bucket.rate meaning "count, never drop"; a rate of 0 blocks. */
enum ct_rate {
	CT_RATE_UNLIMITED = 0xffffffffffffffffULL,
};

/* Lengths of the arrays in map values. */
enum ct_lengths {
	CT_COMM_LEN = 16,
	CT_CMDLINE_LEN = 128,
	/* epochs a socket counts in the division after its last report (see share.h) */
	CT_SHARE_WINDOW = 8,
};

/* ct_conn.family: the kernel's address families. */
enum ct_family {
	CT_AF_INET = 2,
	CT_AF_INET6 = 10,
};

/* A process, as the datapath identifies it: the key of the per-process maps. */
struct ct_owner {
	__u32 tgid;
	__u32 _pad;
	__u64 start_time; /* clock ticks after boot: /proc/PID/stat field 22 */
};
_Static_assert(sizeof(struct ct_owner) == 16, "ct_owner layout");

/* ct_limit_key.scope: whose budget an entry is. */
enum ct_scope {
	CT_SCOPE_PROCESS = 0, /* id is a tgid: a PID limit or an each-mode rule's member */
	CT_SCOPE_RULE = 1,    /* id is a rule id: the budget a shared rule's members share */
};

/* Key of ct_limits and ct_stats: one entry per budget and direction. */
struct ct_limit_key {
	__u32 id;    /* tgid (CT_SCOPE_PROCESS) or rule id (CT_SCOPE_RULE) */
	__u16 dir;   /* CT_DIR_UP or CT_DIR_DOWN */
	__u16 scope; /* CT_SCOPE_* */
};
_Static_assert(sizeof(struct ct_limit_key) == 8, "ct_limit_key layout");

/* One direction's token bucket (see bucket.h). */
struct ct_bucket {
	__u64 rate;        /* bytes per second; 0 blocks; CT_RATE_UNLIMITED counts only */
	__u64 tau_ns;      /* burst, as time at rate */
	__u64 idle_tau_ns; /* credit kept across a silence longer than CT_IDLE_NS */
	__u64 tat_ns;      /* theoretical arrival time, CLOCK_MONOTONIC */
	__u64 rem;         /* remainder of the last cost division */
	__u64 last_ns;     /* when a packet was last offered */
};
_Static_assert(sizeof(struct ct_bucket) == 48, "ct_bucket layout");

/* How a limited process's budget is divided among its TCP sockets (see share.h): the
 * current epoch's reports and the share decided at the end of the last one. */
struct ct_share {
	__u64 epoch_ns;  /* CLOCK_MONOTONIC when the current epoch began; 0: none yet */
	__u64 light;     /* bytes per second used by light sockets, this epoch */
	__u64 share;     /* cap of a busy socket, from the last epoch (bytes per second) */
	__u32 epoch;     /* number of the current epoch */
	__u32 busy;      /* busy sockets reported this epoch */
	__u32 lights;    /* light sockets reported this epoch */
	/* seen[e % CT_SHARE_WINDOW]: sockets whose latest report (or join) was in epoch e,
	 * for the last CT_SHARE_WINDOW epochs: their sum is how many sockets share */
	__u32 seen[CT_SHARE_WINDOW];
	__u32 _pad;
};
_Static_assert(sizeof(struct ct_share) == 72, "ct_share layout");

/* ct_limit.flags */
enum ct_limit_flags {
	CT_LIMIT_SHAPE = 1, /* TCP sockets are shaped (pacing caps, window clamps) */
	/* an HTB class holds the direction (backends htb and ifb): the datapath puts the
	 * process's packets in class_id through skb->priority, the policer is the backstop */
	CT_LIMIT_QDISC = 2,
	/* an nftables rule (backend nftables) drops the direction's packets over the limit
	 * before they reach the datapath; the policer is the backstop */
	CT_LIMIT_NFT = 4,
	/* a tc police action (backend tc_police) drops the direction's packets over the
	 * limit at the interface's ingress: class_id names the process's filter there; the
	 * policer is the backstop */
	CT_LIMIT_POLICE = 8,
	/* userspace's only: the download default chose the backend (no program reads it;
	 * kept here so that `status` can say so after the command) */
	CT_LIMIT_BY_DEFAULT = 16,
};

/* Value of ct_limits: a bucket and whose it is. Userspace writes it whole with
 * BPF_F_LOCK; the datapath changes only the bucket's and the share's state, under the
 * lock. */
struct ct_limit {
	struct bpf_spin_lock lock;
	__u32 flags; /* CT_LIMIT_* */
	__u64 start_time; /* must equal the socket owner's: PIDs are reused */
	struct ct_bucket bucket;
	__u64 burst;         /* burst in bytes, as set (tau_ns derives from it) */
	__u64 expires_at_ns; /* CLOCK_BOOTTIME; 0: never */
	char comm[CT_COMM_LEN];
	struct ct_share share;
	__u32 class_id; /* CT_LIMIT_QDISC: the HTB class, major:minor as skb->priority;
			  * CT_LIMIT_POLICE: the slot of the process's police filter */
	/* CT_SCOPE_PROCESS: 0 for a PID limit (never overwritten by a rule), else the
	 * each-mode rule that created this member's budget */
	__u32 rule;
};
_Static_assert(sizeof(struct ct_limit) == 176, "ct_limit layout");

/* Value of the per-CPU ct_stats map. Bytes are skb->len: IP bytes with the headers of an
 * offloaded (GSO/GRO) packet counted once; packets count wire packets (gso_segs). */
struct ct_stats {
	__u64 bytes;
	__u64 packets;
	__u64 dropped_bytes;
	__u64 dropped_packets;
};
_Static_assert(sizeof(struct ct_stats) == 32, "ct_stats layout");

/* Accounting of every process (map ct_proc_acct, per-CPU, keyed by struct ct_owner) and of
 * every connection (ct_conns). Bytes are transport payload: TCP or UDP data, headers not
 * counted, an offloaded (GSO/GRO) packet by its real size, retransmissions included.
 * Packets are wire packets (gso_segs), pure ACKs included. */
struct ct_acct {
	__u64 tx_bytes;
	__u64 tx_packets;
	__u64 rx_bytes;
	__u64 rx_packets;
};
_Static_assert(sizeof(struct ct_acct) == 32, "ct_acct layout");

/* One direction of a shaped TCP socket: its cap and where its last report left off. */
struct ct_shape {
	__u64 mark_bytes; /* the socket's byte counter (acked or received) at its last report */
	__u64 mark_ns;    /* CLOCK_MONOTONIC of the last report */
	__u64 check_ns;   /* CLOCK_MONOTONIC of the last look at the limit */
	__u32 epoch;      /* the share epoch it last reported in */
	__u32 cap;        /* bytes per second it may move; 0: not shaped */
	__u32 window;     /* download: the receive window clamp applied; 0: none */
	/* download an HTB class holds (ifb): the least round trip the receiver has seen, in
	 * microseconds, that its queue bound is sized on (share.h); 0: none yet */
	__u32 min_rtt_us;
};
_Static_assert(sizeof(struct ct_shape) == 40, "ct_shape layout");

/* ct_sock.shaped: which of the socket's own settings ChadThrottle changed (their values
 * before are in orig_*, and are put back when the limit goes) */
#define CT_SHAPED_PACING 1   /* SO_MAX_PACING_RATE */
#define CT_SHAPED_CLAMP 2    /* TCP_WINDOW_CLAMP */
#define CT_SHAPED_CB_FLAGS 4 /* sock_ops callbacks (added_cb_flags) */
/* the shaper holds the direction now (the policer behind it is a backstop) */
#define CT_SHAPED_UP_ACTIVE 8
#define CT_SHAPED_DOWN_ACTIVE 16
#define CT_SHAPED_CWND 32    /* TCP_BPF_SNDCWND_CLAMP (an upload's bursts, share.h) */

/* Socket storage (map ct_owner): the process a socket belongs to and the socket's own
 * counters. The owner is written by cgroup/sock_create for new sockets (cloned to
 * accepted ones) and back-filled by userspace for sockets that existed before the
 * datapath was attached. The counters are added to per packet, without a map lookup,
 * and copied to the socket's ct_conns entry at most every CT_CONN_FLUSH_NS (and at every
 * packet once a TCP connection is closing), so a connection entry lags by at most that. */
struct ct_sock {
	struct ct_owner owner;
	struct ct_acct acct;
	__u64 flushed_ns; /* CLOCK_MONOTONIC (coarse) of the last copy to ct_conns */
	/* packets without payload (ACKs) counted here but not yet in ct_proc_acct: they are
	 * added there at the next copy, which spares each ACK a map lookup */
	__u64 unreported_tx_packets;
	__u64 unreported_rx_packets;
	struct ct_shape shape[2]; /* by CT_DIR_*: the shaping backend's state */
	__u32 orig_pacing;        /* SO_MAX_PACING_RATE before ChadThrottle changed it */
	__u32 orig_clamp;         /* TCP_WINDOW_CLAMP before */
	__u32 added_cb_flags;     /* sock_ops callback flags ChadThrottle set (others stay) */
	__u32 shaped;             /* CT_SHAPED_* */
	__u32 orig_cwnd_clamp;    /* the congestion window clamp before (segments) */
	__u32 cwnd_clamp;         /* upload: the congestion window clamp applied; 0: none */
};
_Static_assert(sizeof(struct ct_sock) == 176, "ct_sock layout");

/* How often a socket's counters are copied to its ct_conns entry. */
#define CT_CONN_FLUSH_NS 100000000ULL

/* Value of ct_proc_info (keyed by struct ct_owner): who the process was, captured when it
 * created a socket, so that a process that exits before userspace looks keeps a name. */
struct ct_proc_info {
	char comm[CT_COMM_LEN];
	__u64 exit_ns;     /* CLOCK_MONOTONIC when the process exited; 0 while it runs */
	__u32 cmdline_len; /* bytes of cmdline that were read */
	__u32 _pad;
	char cmdline[CT_CMDLINE_LEN]; /* NUL-separated arguments, as /proc/PID/cmdline */
};
_Static_assert(sizeof(struct ct_proc_info) == 160, "ct_proc_info layout");

/* Value of ct_conns (LRU hash keyed by socket cookie): one connection (or UDP socket),
 * its counters as of the last flush from its socket storage. */
struct ct_conn {
	struct ct_owner owner;
	struct ct_acct acct;
	__u32 local_addr[4];  /* network order; IPv4 in [0] */
	__u32 remote_addr[4]; /* network order; IPv4 in [0] */
	__u16 family;         /* AF_INET or AF_INET6 */
	__u16 protocol;       /* IPPROTO_TCP or IPPROTO_UDP */
	__u16 local_port;     /* host order */
	__u16 remote_port;    /* host order */
	__u32 state;          /* TCP state (BPF_TCP_*) at the last packet */
	__u32 _pad;
	__u64 last_ns;        /* CLOCK_MONOTONIC (coarse) of the last flush */
};
_Static_assert(sizeof(struct ct_conn) == 104, "ct_conn layout");

/* Rules: limits by application. A rule has a target (one ct_match entry, or a process
 * tree's ct_tree entries) and a budget per direction, shared by its members (one
 * CT_SCOPE_RULE entry in ct_limits) or each member's own (CT_RULE_EACH: a
 * CT_SCOPE_PROCESS entry per member, made from the rule's template by the resolver). */

/* ct_match_key.kind: what a rule matches. */
enum ct_match_kind {
	CT_MATCH_EXE = 1,    /* dev, a: the directory's s_dev and inode; b: FNV-1a 64 of the name */
	CT_MATCH_NAME = 2,   /* a, b: the 16 bytes of comm (native order) */
	CT_MATCH_UID = 3,    /* a: the real uid */
	CT_MATCH_CGROUP = 4, /* a: the cgroup2 id (a process in it or below matches) */
};

/* ct_rule.rank: one rule governs a process; a PID limit beats every rule, then the
 * lowest rank, then the lowest order. */
enum ct_rank {
	CT_RANK_TREE = 1,
	CT_RANK_EXE = 2,
	CT_RANK_NAME = 3,
	CT_RANK_CGROUP = 4,
	CT_RANK_USER = 5,
};

/* ct_rule.flags */
enum ct_rule_flags {
	CT_RULE_EACH = 1, /* a budget per member process, not one shared by all */
};

/* Key of ct_match: one per exe, name, uid or cgroup rule. */
struct ct_match_key {
	__u32 kind; /* CT_MATCH_* */
	__u32 dev;
	__u64 a;
	__u64 b;
};
_Static_assert(sizeof(struct ct_match_key) == 24, "ct_match_key layout");

/* One direction of a rule: the budget a member starts with (each) or, for information,
 * the shared one's. bucket.rate CT_RATE_UNLIMITED: counted, not limited. The bucket's
 * tat_ns and last_ns are set when a budget is made from it. */
struct ct_rule_dir {
	struct ct_bucket bucket;
	__u64 burst;
	__u32 flags; /* CT_LIMIT_* */
	__u32 _pad;
};
_Static_assert(sizeof(struct ct_rule_dir) == 64, "ct_rule_dir layout");

/* Value of ct_rules (keyed by rule id, never 0). */
struct ct_rule {
	__u32 rank;  /* CT_RANK_* */
	__u32 order; /* the caller's position of the rule: lower wins within a rank */
	__u32 flags; /* CT_RULE_* */
	__u32 _pad;
	/* CLOCK_BOOTTIME when the rule lapses (`--for`); 0: never. A lapsed rule matches no
	 * process, and the budgets made from it carry the same expiry. */
	__u64 expires_at_ns;
	struct ct_rule_dir dir[2]; /* by CT_DIR_* */
};
_Static_assert(sizeof(struct ct_rule) == 152, "ct_rule layout");

/* Value of ct_members (the rule governing a process, written only by the resolver) and
 * of ct_tree (a process in a tree rule's tree), both keyed by tgid. */
struct ct_member {
	__u64 start_time; /* the process's, as ct_owner.start_time: PIDs are reused */
	__u32 rule;
	__u32 _pad;
};
_Static_assert(sizeof(struct ct_member) == 16, "ct_member layout");

/* The single entry of ct_meta: which install the pinned maps belong to, and which kinds
 * of rule exist. Only userspace writes it (under its state lock); the programs read it. */
struct ct_meta {
	__u32 layout_version;
	__u32 max_limits; /* processes; ct_limits holds two entries each */
	__u64 cgroup_id;  /* the cgroup the programs are attached to */
	__u64 object_id;  /* hash of the loaded object: refuses to mix builds */
	/* bit 1 << CT_RANK_* set while a rule of that rank exists (set before its target is
	 * written, cleared after the last one is taken out): the hooks skip the lookups of
	 * kinds no rule has, and do nothing at all while it is 0 */
	__u32 rule_ranks;
	/* nonzero while a PID limit (a ct_limits entry of a process that no rule made) may
	 * exist: set before userspace writes one, cleared when it finds none left. The exit
	 * hook looks up a process's budgets only then, or when its ct_marks byte is set (a
	 * rule's budgets are written for members only) */
	__u32 pid_limits;
};
_Static_assert(sizeof(struct ct_meta) == 32, "ct_meta layout");

/* Index of the per-CPU ct_counters map: events the datapath counts for userspace. */
enum ct_counter {
	/* a hook (exec, fork, socket) found a process's rule but could not make it a member:
	 * a table (ct_members, or an each-mode rule's budgets) was full. The process stays
	 * ungoverned until the next rule change resolves every process again. */
	CT_COUNTER_UNGOVERNED = 0,
	CT_COUNTERS = 1,
};

#endif
