/* SPDX-License-Identifier: MIT */
/*
 * Dividing one process's budget among its TCP sockets (the shaping backend). Pure
 * arithmetic, no helpers: compiled for BPF and, in the kernel crate's tests, for the host,
 * where simulated sockets check that the division converges, holds the aggregate and is
 * max-min fair.
 *
 * Time is cut into epochs of CT_SHARE_EPOCH_NS per process and direction. In each epoch
 * an active socket reports at most once, under the limit's lock: the rate it moved since
 * its last report, and whether that used (nearly) all of its cap. A socket that did is
 * busy; one that did not is light and needs only what it used. When an epoch ends, what
 * the light sockets used is taken off the budget and the rest is divided equally among
 * the busy ones and those counted but not heard from this epoch, but never less than the
 * budget divided among all counted sockets: the cap of every socket for the next epoch
 * (the share). A light socket that speeds up is held to the share for one epoch and
 * counts as busy from the next; the policer behind the shapers absorbs what the
 * re-division takes to settle. A socket counts for CT_SHARE_WINDOW epochs after its last
 * report: slow sockets report only every few epochs, and silent ones drop out by
 * themselves.
 */
#ifndef CHADTHROTTLE_SHARE_H
#define CHADTHROTTLE_SHARE_H

#include "chadthrottle.h"

/* BPF calls take at most five arguments: these are always inlined */
#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

/* The budget is divided anew this often. */
#define CT_SHARE_EPOCH_NS 100000000ULL
/* A socket is busy when it moved at least 3/4 of its cap (a paced socket's measured rate
 * wobbles by a few segments per epoch; light means clearly held back by itself). */
#define CT_SHARE_BUSY_NUM 3
#define CT_SHARE_BUSY_DEN 4
/* No cap goes below 1/64 of the budget, nor below the budget divided among the sockets
 * counted when there are more: a socket never starves while others hold it, and many
 * sockets' floors cannot add up to more than the budget. */
#define CT_SHARE_FLOOR_DIV 64

static __always_inline __u64 ct_share_floor(__u64 budget, __u32 sockets)
{
	__u64 floor = budget / (sockets > CT_SHARE_FLOOR_DIV ? sockets : CT_SHARE_FLOOR_DIV);

	return floor ? floor : 1;
}

/* How many sockets share the budget: those that reported (or joined) in the last
 * CT_SHARE_WINDOW epochs. A slow socket gets a callback, and so a chance to report, only
 * every few epochs (its ACKs are sparse); counting only this epoch's reporters would hand
 * each of them several sockets' worth. */
static __always_inline __u32 ct_share_sockets(const struct ct_share *s)
{
	__u32 sockets = 0;

	for (int i = 0; i < CT_SHARE_WINDOW; i++) /* a bounded loop: clang unrolls it */
		sockets += s->seen[i];
	return sockets;
}

/* Ends the current epoch if it is over. The share for the next one is what light sockets
 * left of the budget divided among the busy ones and those that did not report this epoch
 * (taken to use their share), and never less than the fair share, the budget divided
 * among every socket counted: light sockets that over-report (held back by drops rather
 * than by themselves) cannot starve busy ones. With none busy or absent, the cap is the
 * fair share: a light socket does not need more, and one that speeds up to 3/4 of it
 * counts as busy in the next epoch and gets what the others leave. A socket alone gets
 * the whole budget. */
static __always_inline void ct_share_roll(struct ct_share *s, __u64 budget, __u64 now_ns)
{
	__u64 left, fair, share;
	__u32 active, sockets, pressing;

	if (s->epoch_ns && now_ns - s->epoch_ns < CT_SHARE_EPOCH_NS)
		return;
	active = s->busy + s->lights;
	sockets = ct_share_sockets(s);
	if (sockets < active)
		sockets = active;
	pressing = s->busy + (sockets - active);
	left = s->light < budget ? budget - s->light : 0;
	fair = sockets ? budget / sockets : budget;
	share = pressing ? left / pressing : fair;
	if (share < fair)
		share = fair;
	if (share < ct_share_floor(budget, sockets))
		share = ct_share_floor(budget, sockets);
	s->share = share;
	s->busy = 0;
	s->lights = 0;
	s->light = 0;
	s->epoch++;
	/* sockets last seen CT_SHARE_WINDOW epochs ago leave the division */
	s->seen[s->epoch % CT_SHARE_WINDOW] = 0;
	s->epoch_ns = now_ns;
}

/* The cap of a socket that starts being shaped now; it counts as busy in this epoch. */
static __always_inline __u64 ct_share_join(struct ct_share *s, __u64 budget, __u64 now_ns,
					   __u32 *sock_epoch)
{
	__u64 left, cap;
	__u32 sockets;

	ct_share_roll(s, budget, now_ns);
	s->busy++;
	s->seen[s->epoch % CT_SHARE_WINDOW]++;
	*sock_epoch = s->epoch;
	left = s->light < budget ? budget - s->light : 0;
	sockets = ct_share_sockets(s);
	cap = left / sockets;
	return cap < ct_share_floor(budget, sockets) ? ct_share_floor(budget, sockets) : cap;
}

/* A socket's report: it moved sock_rate (bytes per second) since its last report, under
 * sock_cap. Counts it in the current epoch (once per epoch) and returns its next cap. */
static __always_inline __u64 ct_share_report(struct ct_share *s, __u64 budget, __u64 now_ns,
					     __u32 *sock_epoch, __u64 sock_rate, __u64 sock_cap)
{
	int busy = sock_cap && sock_rate * CT_SHARE_BUSY_DEN >= sock_cap * CT_SHARE_BUSY_NUM;
	__u64 cap, floor;
	__u32 last;

	ct_share_roll(s, budget, now_ns);
	if (*sock_epoch != s->epoch) {
		/* the socket is counted in the epoch of its latest report: move it here */
		last = *sock_epoch % CT_SHARE_WINDOW;
		if (s->epoch - *sock_epoch < CT_SHARE_WINDOW && s->seen[last])
			s->seen[last]--;
		s->seen[s->epoch % CT_SHARE_WINDOW]++;
		*sock_epoch = s->epoch;
		if (busy) {
			s->busy++;
		} else {
			s->lights++;
			s->light += sock_rate;
		}
	}
	/* light or busy, the same cap: a light socket does not use it, and one that speeds up
	 * counts as busy from the next epoch */
	cap = s->share;
	if (cap > budget)
		cap = budget;
	floor = ct_share_floor(budget, ct_share_sockets(s));
	return cap < floor ? floor : cap;
}

/* Bytes per second moved between two readings of a socket's byte counter. */
static __always_inline __u64 ct_share_rate(__u64 bytes, __u64 ns)
{
	__u64 us = ns / 1000;

	return us ? bytes * 1000000 / us : 0;
}

/* An upload's bursts. Under a millisecond of minimum round trip the kernel sizes a TSO
 * packet up to 64 KB whatever the pacing rate (tcp_tso_autosize adds gso_max_size >>
 * (min_rtt >> tcp_tso_rtt_log), 9 by default), and paces only between packets: a socket
 * capped at 128 KB/s sends one 64 KB packet every half second, and a few such sockets
 * leave whole 100 ms bins empty. Clamping the congestion window bounds the packet (a
 * TSO packet is at most the window's free segments) without limiting the rate: a clamp of
 * cap x CT_SHARE_BURST_US lets the cap through at any round trip up to CT_SHARE_BURST_US,
 * four times the largest one it is applied at. */
#define CT_SHARE_BURST_RTT_US 1000
#define CT_SHARE_BURST_US 4000
/* A burst of at least four segments: a receiver acknowledges every second full segment at
 * once, so the window never waits for a delayed ACK. */
#define CT_SHARE_BURST_MIN_SEGS 4
/* The largest TSO packet: a clamp that allows it changes nothing. */
#define CT_SHARE_BURST_MAX_BYTES 65536

/* The congestion window clamp, in segments, that bounds the bursts of an upload capped at
 * `cap` on a path of smoothed round trip `srtt_us`; 0: none (a longer path, whose TSO
 * packets the pacing rate already sizes, or a clamp that would allow 64 KB anyway). */
static __always_inline __u32 ct_share_burst_segs(__u64 cap, __u32 srtt_us, __u32 mss)
{
	__u64 segs;

	if (!mss || !srtt_us || srtt_us >= CT_SHARE_BURST_RTT_US)
		return 0;
	segs = cap * CT_SHARE_BURST_US / 1000000 / mss;
	if (segs < CT_SHARE_BURST_MIN_SEGS)
		segs = CT_SHARE_BURST_MIN_SEGS;
	if (segs * mss >= CT_SHARE_BURST_MAX_BYTES)
		return 0;
	return (__u32)segs;
}

/* Round trips below this are left to the policer (see ct_share_window). */
#define CT_SHARE_MIN_RTT_US 1000

/* The receive window that lets `rate` through at round trip `rtt_us`; 0 where a window
 * cannot express the rate — under a 1 ms round trip, or under one segment — and the
 * policer alone holds it. */
static __always_inline __u32 ct_share_window(__u64 rate, __u32 rtt_us, __u32 mss)
{
	__u64 window = rate * rtt_us / 1000000;

	/* at LAN round trips the round trip under load swings by multiples of itself, and a
	 * window of a few segments lets through far more than its rate x RTT */
	if (rtt_us < CT_SHARE_MIN_RTT_US || window < mss)
		return 0;
	return window > 0x7fffffff ? 0x7fffffff : (__u32)window;
}

/* The round trip a download's window is sized for, from the receiver's own estimate
 * (`rcv_rtt_us`: from the data that arrives after each window update, 0 before it has
 * one) and the smoothed RTT (`srtt_us`: from the socket's own data being acknowledged).
 * A socket that only receives has no data of its own acknowledged after the handshake,
 * so its smoothed RTT is the handshake's one sample, which never moves and carries
 * whatever delayed the first packet (on the lab's delay line, resolving the neighbour
 * made it twice the path's round trip); the correction below, held within half and twice
 * cap x RTT, could then not bring the window down to the rate. The receiver's estimate
 * is the round trip a window takes; the smoothed one is the fallback before it has a
 * sample. A path under CT_SHARE_MIN_RTT_US by either is a LAN: the smaller is returned,
 * and the policer holds the rate. */
static __always_inline __u32 ct_share_down_rtt(__u32 rcv_rtt_us, __u32 srtt_us)
{
	__u32 low = rcv_rtt_us < srtt_us ? rcv_rtt_us : srtt_us;

	if (!rcv_rtt_us)
		return srtt_us;
	return low < CT_SHARE_MIN_RTT_US ? low : rcv_rtt_us;
}

/* The next receive window of a download shaped to `cap`, from the window it had and the
 * rate it `measured` over the last epoch: cap x RTT to begin with, then corrected halfway
 * toward what would have made the measured rate the cap, each epoch. A window moves whole
 * segments per round trip and the round trip under load is not the handshake's, so the
 * open-loop window alone sits a few percent off; the correction makes the window dither
 * across the segment boundary so the average lands on the cap. It stays within half and
 * twice cap x RTT; a socket moving under half its cap is held back by something else (the
 * sender, the application) and keeps its window. 0: a window cannot express the rate. */
static __always_inline __u32 ct_share_next_window(__u32 window, __u64 cap, __u64 measured,
						  __u32 rtt_us, __u32 mss)
{
	__u64 base = ct_share_window(cap, rtt_us, mss), want, next;

	if (!base)
		return 0;
	if (!window || !measured)
		return (__u32)base;
	if (measured * 2 < cap)
		next = window;
	else {
		want = (__u64)window * cap / measured;
		next = want >= window ? window + (want - window) / 2 : window - (window - want) / 2;
	}
	if (next < base / 2)
		next = base / 2;
	if (next > base * 2)
		next = base * 2;
	if (next < mss)
		next = mss;
	return next > 0x7fffffff ? 0x7fffffff : (__u32)next;
}


/* A download an HTB class holds (the ifb backend). HTB holds the rate; what grows without
 * a bound is the queue in front of the class: receive autotuning follows the round trip,
 * which the queue itself lengthens, so the windows and the queue grow together until the
 * class's leaf is full and drops (8 downloads at 100 KB/s filled its 1 MiB in 17-25 s,
 * BENCHMARKS.md). The window is clamped to what the socket's share moves in its least
 * round trip plus CT_QUEUE_TARGET_US, and a few segments: the sum of the windows keeps
 * the queue near the target, and while the queue is shorter no window limits the rate.
 * The least round trip, not the smoothed one: that includes the queue, and a window sized
 * on it would hold the queue where it is. */
#define CT_QUEUE_TARGET_US 150000
/* A window never under four segments: the receiver acknowledges every second one at once,
 * so the sender never waits for a delayed ACK. */
#define CT_QUEUE_SEGS 4

/* The least round trip of an ifb-held download so far (`min_rtt_us`, 0: none yet), given
 * its receiver's estimate and smoothed RTT now (as ct_share_down_rtt takes them). */
static __always_inline __u32 ct_share_min_rtt(__u32 min_rtt_us, __u32 rcv_rtt_us, __u32 srtt_us)
{
	__u32 now = ct_share_down_rtt(rcv_rtt_us, srtt_us);

	if (!now)
		return min_rtt_us;
	return min_rtt_us && min_rtt_us < now ? min_rtt_us : now;
}

/* The receive window clamp of an ifb-held download whose share of the budget is `cap`:
 * cap x (least round trip + queue target) + CT_QUEUE_SEGS segments. */
static __always_inline __u32 ct_share_queue_window(__u64 cap, __u32 min_rtt_us, __u32 mss)
{
	__u64 window = cap * ((__u64)min_rtt_us + CT_QUEUE_TARGET_US) / 1000000 +
		       (__u64)CT_QUEUE_SEGS * mss;

	return window > 0x7fffffff ? 0x7fffffff : (__u32)window;
}

#endif
