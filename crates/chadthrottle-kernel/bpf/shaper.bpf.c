// SPDX-License-Identifier: MIT
/*
 * The shaping backend: limits held by TCP itself instead of by drops.
 *
 *   ct_sock_ops   sockops    at connection setup, shapes the sockets of limited processes;
 *                            then, on the socket's own events, re-divides the budget (share.h)
 *                            and updates its cap:
 *                              upload:   SO_MAX_PACING_RATE, on every RTT sample (RTT_CB),
 *                                        and on a LAN a congestion window clamp that
 *                                        bounds its bursts (share.h)
 *                              download: TCP_WINDOW_CLAMP = cap x RTT (the receiver's
 *                                        own estimate), on every segment the socket
 *                                        sends (HDR_OPT_LEN_CB: its ACKs)
 *                            and bounds the queue of downloads an HTB class holds (ifb):
 *                            TCP_WINDOW_CLAMP = cap x (least RTT + a queue target), the
 *                            same way; HTB holds the rate (share.h)
 *   ct_iter_tcp   iter/tcp   run by `limit`, `unlimit` and `reset` over the TCP sockets of a
 *                            network namespace: shapes the already open sockets of limited
 *                            processes, restores those whose limit went
 *
 * Nothing resident in userspace: the division runs in the sockets' own callbacks, and a
 * socket that outlives its limit puts its own settings back at its next callback (or at
 * once, by the iterator that `unlimit` runs). The policer (policer.bpf.c) stays behind the
 * shapers as the backstop for UDP, for what a window cannot express, and for the moments a
 * re-division takes to settle.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "budget.h"
#include "chadthrottle.h"
#include "maps.h"
#include "share.h"
#include "sockopt.h"

/* How often a socket looks at its limit (its share report is once per epoch). */
#define CT_SHAPE_CHECK_NS (CT_SHARE_EPOCH_NS / 4)
/* A cap is rewritten only when it moves by more than 1/16. */
#define CT_SHAPE_HYSTERESIS 16

/* The kernel's TCP socket, for the iterator (relocated against the running kernel). */
struct sock_common {
	unsigned char skc_state;
} __attribute__((preserve_access_index));

struct sock {
	struct sock_common __sk_common;
} __attribute__((preserve_access_index));

struct inet_sock {
	struct sock sk;
} __attribute__((preserve_access_index));

struct inet_connection_sock {
	struct inet_sock icsk_inet;
} __attribute__((preserve_access_index));

struct tcp_sock {
	struct inet_connection_sock inet_conn;
	__u32 mss_cache;
	__u32 srtt_us;
	__u64 bytes_received;
	__u64 bytes_acked;
	__u32 window_clamp;
	__u32 snd_cwnd_clamp;
	__u8 bpf_sock_ops_cb_flags;
	struct {
		__u32 rtt_us; /* the receiver's round trip estimate, x 8; 0: none yet */
	} rcv_rtt_est;
} __attribute__((preserve_access_index));

struct bpf_iter_meta {
	void *seq;
} __attribute__((preserve_access_index));

struct bpf_iter__tcp {
	struct bpf_iter_meta *meta;
	struct sock_common *sk_common;
} __attribute__((preserve_access_index));

/* What the shaper reads of a TCP socket, from a sock_ops context or from the iterator. */
struct ct_tcp_view {
	__u64 acked;    /* bytes sent and acknowledged */
	__u64 received; /* bytes received */
	__u32 srtt_us;  /* smoothed round trip, in microseconds */
	__u32 rcv_rtt_us; /* the receiver's round trip estimate, in microseconds; 0: none */
	__u32 mss;
	__u32 cb_flags; /* sock_ops callbacks the socket asks for now */
	__u32 cwnd_clamp; /* its congestion window clamp now, in segments; 0: unknown */
};

/* Whether `limit` is a download an HTB class holds (ifb), whose sockets' windows only
 * bound the queue in front of the class (share.h), rather than a shaped one. */
static __always_inline int ct_queue_bound(struct ct_limit *limit, __u32 dir)
{
	return dir == CT_DIR_DOWN && !(limit->flags & CT_LIMIT_SHAPE) &&
	       (limit->flags & CT_LIMIT_QDISC);
}

/* The budget of `owner` in `dir` if it asks for shaping, or is a download an HTB class
 * holds, and is in force, else NULL. A shared rule's budget is divided among the sockets
 * of all its members. */
static __always_inline struct ct_limit *ct_shaping_limit(struct ct_owner *owner, __u32 dir)
{
	struct ct_limit_key key;
	struct ct_limit *limit = ct_limit_of(owner, dir, &key);

	if (!limit || !((limit->flags & CT_LIMIT_SHAPE) || ct_queue_bound(limit, dir)))
		return NULL;
	if (limit->bucket.rate == 0 || limit->bucket.rate == CT_RATE_UNLIMITED)
		return NULL; /* blocking and counting are the policer's */
	if (limit->expires_at_ns && bpf_ktime_get_boot_ns() >= limit->expires_at_ns)
		return NULL;
	return limit;
}

static __always_inline __u32 ct_cap_u32(__u64 cap)
{
	/* bpf_setsockopt takes an int; ~0U would mean "no cap" */
	return cap >= 0xfffffffeULL ? 0xfffffffeU : (__u32)cap;
}

/* Gives the socket its own congestion window clamp back. (The kernel sets the slow start
 * threshold to any clamp set, so the socket leaves with the threshold at its own clamp:
 * unbounded, for a socket no route metric clamped.) */
static __always_inline void ct_restore_burst(void *ctx, struct ct_sock *sock)
{
	int value = sock->orig_cwnd_clamp > 0x7fffffff ? 0x7fffffff : sock->orig_cwnd_clamp;

	sock->cwnd_clamp = 0;
	if (!(sock->shaped & CT_SHAPED_CWND))
		return;
	bpf_setsockopt(ctx, CT_SOL_TCP, CT_TCP_BPF_SNDCWND_CLAMP, &value, sizeof(value));
	sock->shaped &= ~CT_SHAPED_CWND;
}

/* Bounds an upload's bursts at `cap` on a LAN (ct_share_burst_segs), or lifts the bound
 * where none is needed. A socket whose own clamp is already as tight is left as it is. */
static __always_inline void ct_set_burst(void *ctx, struct ct_sock *sock, struct ct_tcp_view *view,
					 __u64 cap)
{
	__u32 segs = ct_share_burst_segs(cap, view->srtt_us, view->mss);
	__u32 own = sock->shaped & CT_SHAPED_CWND ? sock->orig_cwnd_clamp : view->cwnd_clamp;
	int value;

	if (!own || segs >= own)
		segs = 0;
	if (segs == sock->cwnd_clamp)
		return;
	if (!segs) {
		ct_restore_burst(ctx, sock);
		return;
	}
	if (!(sock->shaped & CT_SHAPED_CWND)) {
		sock->orig_cwnd_clamp = own;
		sock->shaped |= CT_SHAPED_CWND;
	}
	value = segs;
	if (!bpf_setsockopt(ctx, CT_SOL_TCP, CT_TCP_BPF_SNDCWND_CLAMP, &value, sizeof(value)))
		sock->cwnd_clamp = segs;
}

/* Gives the socket its own pacing cap back, and its bursts. */
static __always_inline void ct_restore_pacing(void *ctx, struct ct_sock *sock)
{
	int value = sock->orig_pacing;

	ct_restore_burst(ctx, sock);
	if (!(sock->shaped & CT_SHAPED_PACING))
		return;
	bpf_setsockopt(ctx, CT_SOL_SOCKET, CT_SO_MAX_PACING_RATE, &value, sizeof(value));
	sock->shaped &= ~(CT_SHAPED_PACING | CT_SHAPED_UP_ACTIVE);
}

/* Gives the socket its own receive window clamp back. */
static __always_inline void ct_restore_clamp(void *ctx, struct ct_sock *sock)
{
	int value = sock->orig_clamp;

	sock->shape[1].window = 0;
	if (!(sock->shaped & CT_SHAPED_CLAMP))
		return;
	bpf_setsockopt(ctx, CT_SOL_TCP, CT_TCP_WINDOW_CLAMP, &value, sizeof(value));
	sock->shaped &= ~(CT_SHAPED_CLAMP | CT_SHAPED_DOWN_ACTIVE);
}

/* Sets the socket's pacing cap, remembering its own value the first time. */
static __always_inline void ct_set_pacing(void *ctx, struct ct_sock *sock, __u32 cap)
{
	int value;

	if (!(sock->shaped & CT_SHAPED_PACING)) {
		if (bpf_getsockopt(ctx, CT_SOL_SOCKET, CT_SO_MAX_PACING_RATE, &value, sizeof(value)))
			return;
		sock->orig_pacing = value;
		sock->shaped |= CT_SHAPED_PACING;
	}
	value = cap;
	if (!bpf_setsockopt(ctx, CT_SOL_SOCKET, CT_SO_MAX_PACING_RATE, &value, sizeof(value)))
		sock->shaped |= CT_SHAPED_UP_ACTIVE;
}

/* Sets the socket's receive window clamp (0: the rate is below what a window can express
 * at this round trip: the socket's own clamp goes back and the policer holds the rate). */
static __always_inline void ct_set_clamp(void *ctx, struct ct_sock *sock, __u32 window)
{
	int value;

	if (!window) {
		ct_restore_clamp(ctx, sock);
		return;
	}
	if (!(sock->shaped & CT_SHAPED_CLAMP)) {
		if (bpf_getsockopt(ctx, CT_SOL_TCP, CT_TCP_WINDOW_CLAMP, &value, sizeof(value)))
			return;
		sock->orig_clamp = value;
		sock->shaped |= CT_SHAPED_CLAMP;
	}
	value = window;
	if (!bpf_setsockopt(ctx, CT_SOL_TCP, CT_TCP_WINDOW_CLAMP, &value, sizeof(value))) {
		sock->shaped |= CT_SHAPED_DOWN_ACTIVE;
		sock->shape[1].window = window;
	}
}

/* Applies a direction's cap: the pacing rate (upload) or the window for it (download),
 * given the rate the socket `measured` since its last report (0: none yet); a download
 * an HTB class holds (`queue`) gets the window that bounds its queue. */
static __always_inline void ct_apply_cap(void *ctx, struct ct_sock *sock, struct ct_tcp_view *view,
					 __u32 dir, __u64 cap, __u64 measured, int queue)
{
	if (dir == CT_DIR_UP) {
		ct_set_pacing(ctx, sock, ct_cap_u32(cap));
	} else if (queue) {
		sock->shape[1].min_rtt_us =
			ct_share_min_rtt(sock->shape[1].min_rtt_us, view->rcv_rtt_us, view->srtt_us);
		ct_set_clamp(ctx, sock,
			     ct_share_queue_window(cap, sock->shape[1].min_rtt_us, view->mss));
	} else
		ct_set_clamp(ctx, sock,
			     ct_share_next_window(sock->shape[1].window, cap, measured,
						  ct_share_down_rtt(view->rcv_rtt_us, view->srtt_us),
						  view->mss));
}

/* Puts a direction's setting back as it was before ChadThrottle. */
static __always_inline void ct_restore_dir(void *ctx, struct ct_sock *sock, __u32 dir)
{
	if (dir == CT_DIR_UP) {
		ct_restore_pacing(ctx, sock);
		sock->shape[0].cap = 0;
	} else {
		ct_restore_clamp(ctx, sock);
		sock->shape[1].cap = 0;
	}
}

/* Starts shaping a direction of a socket: joins the division, applies the first cap. A
 * socket that gets no callbacks (`silent`) would never report, so the cap it joined with
 * would hold for good (the second socket of a process kept half the budget after the first
 * went idle): it stays out of the division and is capped at the whole budget, and the
 * policer behind it holds the process's sum. A silent download an HTB class holds is left
 * alone: receive autotuning would raise a clamp no callback puts back. */
static __always_inline void ct_join_dir(void *ctx, struct ct_sock *sock, struct ct_tcp_view *view,
					__u32 dir, struct ct_limit *limit, __u64 now, int silent)
{
	struct ct_shape *shape = dir == CT_DIR_UP ? &sock->shape[0] : &sock->shape[1];
	__u32 epoch = 0;
	__u64 cap = limit->bucket.rate;
	int queue = ct_queue_bound(limit, dir);

	if (silent && queue)
		return;
	if (!silent) {
		bpf_spin_lock(&limit->lock);
		cap = ct_share_join(&limit->share, limit->bucket.rate, now, &epoch);
		bpf_spin_unlock(&limit->lock);
	}
	shape->epoch = epoch;
	shape->cap = ct_cap_u32(cap);
	shape->mark_bytes = dir == CT_DIR_UP ? view->acked : view->received;
	shape->mark_ns = now;
	shape->check_ns = now;
	if (dir == CT_DIR_DOWN) {
		shape->window = 0;
		shape->min_rtt_us = 0;
	}
	ct_apply_cap(ctx, sock, view, dir, cap, 0, queue);
	/* a silent socket's clamp could never follow its round trip */
	if (dir == CT_DIR_UP && !silent)
		ct_set_burst(ctx, sock, view, cap);
}

/* Brings a socket in line with its owner's limits: shapes what should be, restores what
 * should not, and asks for the callbacks that keep the caps current. Returns 1 if it
 * changed anything. */
static __always_inline int ct_reconcile(void *ctx, struct ct_sock *sock, struct ct_tcp_view *view,
					__u64 now, int in_sock_ops)
{
	struct ct_limit *up = ct_shaping_limit(&sock->owner, CT_DIR_UP);
	struct ct_limit *down = ct_shaping_limit(&sock->owner, CT_DIR_DOWN);
	__u32 before = sock->shaped, flags, want, added, wanted = 0;
	int value, ok;

	/* kept as opaque bits: the compiler would otherwise test the two pointers by ORing
	 * them, which the verifier refuses */
	if (up)
		wanted |= 1 << CT_DIR_UP;
	if (down)
		wanted |= 1 << CT_DIR_DOWN;
	asm volatile("" : "+r"(wanted));

	/* Only the callback bits this install added are ever taken away again: another
	 * program (or another ChadThrottle install on the same cgroup) may want the same
	 * callbacks, and a bit that was set before is left as it was. */
	want = 0;
	if (wanted & (1 << CT_DIR_UP))
		want |= BPF_SOCK_OPS_RTT_CB_FLAG;
	if (wanted & (1 << CT_DIR_DOWN))
		want |= BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG;
	added = sock->added_cb_flags;
	flags = (view->cb_flags | want) & ~(added & ~want);
	if (flags != view->cb_flags) {
		value = flags;
		/* bpf_setsockopt takes TCP_BPF_SOCK_OPS_CB_FLAGS from Linux 6.12 only; in
		 * sock_ops the helper has done it since 4.16. Before 6.12 the iterator cannot ask
		 * for an open socket's callbacks: that socket is shaped silent (ct_join_dir). */
		if (in_sock_ops)
			ok = !bpf_sock_ops_cb_flags_set(ctx, value);
		else
			ok = !bpf_setsockopt(ctx, CT_SOL_TCP, CT_TCP_BPF_SOCK_OPS_CB_FLAGS, &value,
					     sizeof(value));
		if (ok) {
			sock->added_cb_flags = (added | (want & ~view->cb_flags)) & want;
			view->cb_flags = flags;
		}
	}
	if (sock->added_cb_flags)
		sock->shaped |= CT_SHAPED_CB_FLAGS;
	else
		sock->shaped &= ~CT_SHAPED_CB_FLAGS;

	if (up && !sock->shape[0].cap)
		ct_join_dir(ctx, sock, view, CT_DIR_UP, up, now,
			    !(view->cb_flags & BPF_SOCK_OPS_RTT_CB_FLAG));
	else if (!up && sock->shape[0].cap)
		ct_restore_dir(ctx, sock, CT_DIR_UP);
	if (down && !sock->shape[1].cap)
		ct_join_dir(ctx, sock, view, CT_DIR_DOWN, down, now,
			    !(view->cb_flags & BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG));
	else if (!down && sock->shape[1].cap)
		ct_restore_dir(ctx, sock, CT_DIR_DOWN);
	return sock->shaped != before;
}

/* A socket's periodic look at its limit, from its own callbacks: reports to the division
 * once per epoch and applies its new cap. */
static __always_inline void ct_shape_tick(void *ctx, struct ct_sock *sock, struct ct_tcp_view *view,
					  __u32 dir)
{
	struct ct_shape *shape = dir == CT_DIR_UP ? &sock->shape[0] : &sock->shape[1];
	__u64 now = bpf_ktime_get_ns(), bytes, rate, cap, old;
	struct ct_limit *limit;
	__u32 epoch;

	if (now - shape->check_ns < CT_SHAPE_CHECK_NS)
		return;
	shape->check_ns = now;
	limit = ct_shaping_limit(&sock->owner, dir);
	if (!limit || !shape->cap) {
		ct_reconcile(ctx, sock, view, now, 1);
		return;
	}
	bytes = dir == CT_DIR_UP ? view->acked : view->received;
	rate = ct_share_rate(bytes - shape->mark_bytes, now - shape->mark_ns);
	epoch = shape->epoch;
	bpf_spin_lock(&limit->lock);
	cap = ct_share_report(&limit->share, limit->bucket.rate, now, &shape->epoch, rate,
			      shape->cap);
	bpf_spin_unlock(&limit->lock);
	if (shape->epoch == epoch)
		return; /* reported already this epoch */
	shape->mark_bytes = bytes;
	shape->mark_ns = now;
	old = shape->cap;
	/* a download's window follows the round trip too, so it is recomputed every time */
	if (dir == CT_DIR_DOWN || cap > old + old / CT_SHAPE_HYSTERESIS ||
	    cap + old / CT_SHAPE_HYSTERESIS < old) {
		shape->cap = ct_cap_u32(cap);
		ct_apply_cap(ctx, sock, view, dir, cap, rate, ct_queue_bound(limit, dir));
	}
	/* the bursts' bound follows the round trip as well as the cap */
	if (dir == CT_DIR_UP)
		ct_set_burst(ctx, sock, view, shape->cap);
}

/* Receive-buffer autotuning raises a socket's window clamp as it grows the buffer; before
 * each segment the socket sends (whose header carries the window), the shaped clamp is put
 * back, so the raise is never advertised. */
static __always_inline void ct_hold_clamp(struct bpf_sock_ops *ops, struct tcp_sock *tp,
					  struct ct_sock *sock)
{
	int value;

	if (!(sock->shaped & CT_SHAPED_DOWN_ACTIVE) || !sock->shape[1].window)
		return;
	if (!tp || tp->window_clamp == sock->shape[1].window)
		return;
	value = sock->shape[1].window;
	bpf_setsockopt(ops, CT_SOL_TCP, CT_TCP_WINDOW_CLAMP, &value, sizeof(value));
}

SEC("sockops")
int ct_sock_ops(struct bpf_sock_ops *ops)
{
	struct bpf_sock *sk = ops->sk;
	struct ct_tcp_view view;
	struct tcp_sock *tp;
	struct ct_sock *sock;
	__u32 op = ops->op;

	if (op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB && op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB &&
	    op != BPF_SOCK_OPS_RTT_CB && op != BPF_SOCK_OPS_HDR_OPT_LEN_CB)
		return 1;
	if (!sk)
		return 1;
	sock = bpf_sk_storage_get(&ct_owner, sk, 0, 0);
	if (!sock)
		return 1;
	view.acked = ops->bytes_acked;
	view.received = ops->bytes_received;
	view.srtt_us = ops->srtt_us >> 3;
	/* not in the sock_ops context: read from the socket itself */
	tp = bpf_skc_to_tcp_sock(sk);
	view.rcv_rtt_us = tp ? tp->rcv_rtt_est.rtt_us >> 3 : 0;
	view.cwnd_clamp = tp ? tp->snd_cwnd_clamp : 0;
	view.mss = ops->mss_cache;
	view.cb_flags = ops->bpf_sock_ops_cb_flags;
	if (op == BPF_SOCK_OPS_RTT_CB) {
		ct_shape_tick(ops, sock, &view, CT_DIR_UP);
	} else if (op == BPF_SOCK_OPS_HDR_OPT_LEN_CB) {
		ct_hold_clamp(ops, tp, sock);
		ct_shape_tick(ops, sock, &view, CT_DIR_DOWN);
	} else {
		ct_reconcile(ops, sock, &view, bpf_ktime_get_ns(), 1);
	}
	return 1;
}

SEC("iter/tcp")
int ct_iter_tcp(struct bpf_iter__tcp *ctx)
{
	struct sock_common *skc = ctx->sk_common;
	struct ct_tcp_view view;
	struct tcp_sock *tp;
	struct ct_sock *sock;
	__u32 changed, state;

	if (!skc)
		return 0;
	tp = bpf_skc_to_tcp_sock(skc);
	if (!tp)
		return 0;
	state = tp->inet_conn.icsk_inet.sk.__sk_common.skc_state;
	/* listeners' storage is cloned into the sockets they accept: never shaped themselves */
	if (state != BPF_TCP_ESTABLISHED && state != BPF_TCP_CLOSE_WAIT)
		return 0;
	sock = bpf_sk_storage_get(&ct_owner, tp, 0, 0);
	if (!sock)
		return 0;
	view.acked = tp->bytes_acked;
	view.received = tp->bytes_received;
	view.srtt_us = tp->srtt_us >> 3;
	view.rcv_rtt_us = tp->rcv_rtt_est.rtt_us >> 3;
	view.cwnd_clamp = tp->snd_cwnd_clamp;
	view.mss = tp->mss_cache;
	view.cb_flags = tp->bpf_sock_ops_cb_flags;
	if (ct_reconcile(tp, sock, &view, bpf_ktime_get_ns(), 0)) {
		/* one record per socket changed: userspace counts them */
		changed = sock->shaped;
		bpf_seq_write(ctx->meta->seq, &changed, sizeof(changed));
	}
	return 0;
}
