// SPDX-License-Identifier: MIT
/*
 * The policer and the accounting, on every packet of the cgroup's sockets:
 *
 *   ct_egress   cgroup_skb/egress   accounts what every owner sends, polices what limited
 *                                   owners send (drop + congestion notification: never
 *                                   EPERM to the application)
 *   ct_ingress  cgroup_skb/ingress  accounts and polices what owners receive (drop)
 *
 * A packet belongs to the process in its socket's storage (process.bpf.c). The bucket
 * arithmetic is in include/bucket.h. Behind a shaper (shaper.bpf.c) or an HTB class
 * (uploads: put in it here, through skb->priority; downloads: tc_classifier.bpf.c) the
 * policer is the backstop.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include "bucket.h"
#include "budget.h"
#include "chadthrottle.h"
#include "maps.h"

/* cgroup_skb verdicts. Egress: bit 0 = pass, bit 1 = congestion notification; 2 drops
 * and makes TCP back off (CWR) while UDP sees a silent drop. 0 would hand EPERM to the
 * sender, so egress never returns it. */
#define CT_PASS 1
#define CT_EGRESS_DROP 2
#define CT_INGRESS_DROP 0

/* What an HTB-held upload may have queued in the qdisc beyond the policer's sight: two
 * 64 KB offloaded packets for each of several sockets. */
#define CT_QDISC_QUEUE_BYTES (1ULL << 20)

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

/* Transport payload of skb: its length less the IP and TCP/UDP headers (an offloaded
 * packet carries one set of headers for all its segments). Headers are read in place
 * when they are in the linear part (almost always), else copied; packets whose headers
 * cannot be read count whole. */
static __always_inline __u32 ct_payload_len(struct __sk_buff *skb, struct bpf_sock *sk)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	__u32 ip_len, l4_len;
	__u8 byte;

	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		if (data + 1 <= data_end)
			byte = *(__u8 *)data;
		else if (bpf_skb_load_bytes(skb, 0, &byte, 1))
			return skb->len;
		ip_len = (byte & 0x0f) * 4;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		if (data + 7 <= data_end)
			byte = *(__u8 *)(data + 6);
		else if (bpf_skb_load_bytes(skb, 6, &byte, 1))
			return skb->len;
		if (byte != sk->protocol)
			return skb->len; /* extension headers: count it whole */
		ip_len = 40;
	} else {
		return skb->len;
	}
	if (sk->protocol == IPPROTO_TCP) {
		ip_len &= 0x3c; /* at most 60: keeps the offset below provably bounded */
		if (data + ip_len + 13 <= data_end)
			byte = *(__u8 *)(data + ip_len + 12);
		else if (bpf_skb_load_bytes(skb, ip_len + 12, &byte, 1))
			return skb->len;
		l4_len = (byte >> 4) * 4;
	} else if (sk->protocol == IPPROTO_UDP) {
		l4_len = 8;
	} else {
		return skb->len;
	}
	return skb->len > ip_len + l4_len ? skb->len - (ip_len + l4_len) : 0;
}

/* The process's per-CPU counters, created when missing. */
static __always_inline struct ct_acct *ct_proc_acct_of(struct ct_owner *owner)
{
	static const struct ct_acct zero;
	struct ct_acct *acct = bpf_map_lookup_elem(&ct_proc_acct, owner);

	if (!acct) {
		bpf_map_update_elem(&ct_proc_acct, owner, &zero, BPF_NOEXIST);
		acct = bpf_map_lookup_elem(&ct_proc_acct, owner);
	}
	return acct;
}

/* Copies a socket's counters to its ct_conns entry (created on the first copy), and adds
 * the packets without payload it counted since the last copy to its process. */
static __always_inline void ct_flush(struct __sk_buff *skb, struct bpf_sock *sk,
				     struct ct_sock *sock, __u64 now)
{
	__u64 cookie = bpf_get_socket_cookie(skb);
	struct ct_conn *conn;
	struct ct_acct *acct;
	__u64 tx, rx;

	if (sock->unreported_tx_packets || sock->unreported_rx_packets) {
		acct = ct_proc_acct_of(&sock->owner);
		if (acct) {
			/* take what was read, not an exchange: a packet counted meanwhile stays
			 * for the next copy, and an atomic add is all Linux 5.10 has (atomic
			 * exchange is from 5.12: "BPF_STX uses reserved fields") */
			tx = sock->unreported_tx_packets;
			rx = sock->unreported_rx_packets;
			__sync_fetch_and_add(&sock->unreported_tx_packets, -tx);
			__sync_fetch_and_add(&sock->unreported_rx_packets, -rx);
			/* per-CPU, but a preempted program can share its CPU: add atomically */
			__sync_fetch_and_add(&acct->tx_packets, tx);
			__sync_fetch_and_add(&acct->rx_packets, rx);
		}
	}
	conn = bpf_map_lookup_elem(&ct_conns, &cookie);
	if (!conn) {
		struct ct_conn fresh = {
			.family = sk->family,
			.protocol = sk->protocol,
			.local_port = sk->src_port,
			.remote_port = bpf_ntohs(sk->dst_port),
		};
		if (sk->family == CT_AF_INET6) {
			__builtin_memcpy(fresh.local_addr, sk->src_ip6, 16);
			__builtin_memcpy(fresh.remote_addr, sk->dst_ip6, 16);
		} else {
			fresh.local_addr[0] = sk->src_ip4;
			fresh.remote_addr[0] = sk->dst_ip4;
		}
		bpf_map_update_elem(&ct_conns, &cookie, &fresh, BPF_NOEXIST);
		conn = bpf_map_lookup_elem(&ct_conns, &cookie);
		if (!conn)
			return;
	}
	conn->owner = sock->owner;
	conn->acct = sock->acct;
	conn->state = sk->state;
	conn->last_ns = now;
	sock->flushed_ns = now;
}

/* Adds a packet to its socket's counters (in the socket storage already at hand) and to
 * its process's (per-CPU map): at once if it carries data, at the next copy if not. The
 * socket's counters reach ct_conns by ct_flush, every CT_CONN_FLUSH_NS and at every
 * packet of a closing TCP connection. */
static __always_inline void ct_account(struct __sk_buff *skb, struct bpf_sock *sk,
				       struct ct_sock *sock, __u32 dir, __u32 payload)
{
	__u64 packets = skb->gso_segs ? skb->gso_segs : 1;
	int up = dir == CT_DIR_UP;
	struct ct_acct *acct;
	__u64 now;

	/* a listener's storage is cloned into every socket it accepts: it must stay zero, so
	 * its SYNs go to the process directly */
	if (payload || sk->state == BPF_TCP_LISTEN) {
		acct = ct_proc_acct_of(&sock->owner);
		/* per-CPU, but a preempted program can share its CPU: add atomically */
		if (acct) {
			__sync_fetch_and_add(up ? &acct->tx_bytes : &acct->rx_bytes, payload);
			__sync_fetch_and_add(up ? &acct->tx_packets : &acct->rx_packets, packets);
		}
		if (sk->state == BPF_TCP_LISTEN)
			return;
	} else {
		__sync_fetch_and_add(up ? &sock->unreported_tx_packets : &sock->unreported_rx_packets,
				     packets);
	}
	/* the socket's counters are shared by the CPUs sending and receiving on it */
	__sync_fetch_and_add(up ? &sock->acct.tx_bytes : &sock->acct.rx_bytes, payload);
	__sync_fetch_and_add(up ? &sock->acct.tx_packets : &sock->acct.rx_packets, packets);
	now = ct_coarse_clock ? bpf_ktime_get_coarse_ns() : bpf_ktime_get_ns();
	if (now - sock->flushed_ns > CT_CONN_FLUSH_NS ||
	    (sk->protocol == IPPROTO_TCP && sk->state != BPF_TCP_ESTABLISHED))
		ct_flush(skb, sk, sock, now);
}

/* Whether this direction of a TCP socket is held by its shaper (the policer is then only
 * the backstop). */
static __always_inline int ct_shaped(struct bpf_sock *sk, struct ct_sock *sock, __u32 dir)
{
	__u32 active = dir == CT_DIR_UP ? CT_SHAPED_UP_ACTIVE : CT_SHAPED_DOWN_ACTIVE;

	return sk->protocol == IPPROTO_TCP && (sock->shaped & active);
}

/* The owner's budget (a PID limit, its own as a rule member, or its rule's shared one)
 * on this packet: 1 if it may pass, 0 if it is over the limit. */
static __always_inline int ct_verdict(struct __sk_buff *skb, struct bpf_sock *sk,
				      struct ct_sock *sock, __u32 dir, __u32 payload)
{
	struct ct_limit_key key;
	struct ct_limit *limit;
	__u64 now, charge, slack;
	int passed, shaped;

	limit = ct_limit_of(&sock->owner, dir, &key);
	if (!limit)
		return 1;
	if (limit->expires_at_ns && bpf_ktime_get_boot_ns() >= limit->expires_at_ns) {
		bpf_map_delete_elem(&ct_limits, &key);
		bpf_map_delete_elem(&ct_stats, &key);
		return 1;
	}
	/* TCP segments without payload (ACK, SYN, FIN, RST) are counted but never charged or
	 * dropped: charging a download's ACKs to the upload bucket (or an upload's to the
	 * download bucket) would let a busy direction starve the other one. */
	if (sk->protocol == IPPROTO_TCP && payload == 0) {
		ct_count(&key, skb, 1);
		return 1;
	}
	/* An HTB class holds this direction: an upload packet goes to its class (what enters
	 * the qdisc at the class's pace meets the backstop below at that pace too). */
	if (limit->flags & CT_LIMIT_QDISC && dir == CT_DIR_UP)
		skb->priority = limit->class_id;
	/* The charge is the transport payload, the bytes the application sees (the limit is a
	 * goodput). Behind a shaper, an HTB class, an nftables rule or a tc police action, a packet pays 15/16 of
	 * it and may use a second burst: the backstop sits 1/15 above the limit, out of reach
	 * of the shaper's own small overshoots, and lets the first window of a shaped
	 * download through. */
	shaped = ct_shaped(sk, sock, dir) || (limit->flags & (CT_LIMIT_QDISC | CT_LIMIT_NFT | CT_LIMIT_POLICE));
	charge = shaped ? payload - payload / 16 : payload;
	slack = shaped ? limit->bucket.tau_ns : 0;
	/* An upload that HTB holds reaches this hook before the qdisc: each socket may keep
	 * two offloaded packets of up to 64 KB queued there (TCP small queues; at LAN round
	 * trips TCP builds them full size at any rate), so the backstop lets that much more
	 * run ahead. The average stays held 1/15 above the limit. */
	if (limit->flags & CT_LIMIT_QDISC && dir == CT_DIR_UP && limit->bucket.rate)
		slack += CT_QDISC_QUEUE_BYTES * 1000000000ULL / limit->bucket.rate;
	now = bpf_ktime_get_ns();
	bpf_spin_lock(&limit->lock);
	passed = ct_bucket_admit(&limit->bucket, now, charge, slack);
	bpf_spin_unlock(&limit->lock);
	ct_count(&key, skb, passed);
	return passed;
}

/* Returns 1 if the packet may pass. What passes is accounted to its owner (what is
 * dropped never reached, or never left, the process). */
static __always_inline int ct_police(struct __sk_buff *skb, __u32 dir)
{
	struct bpf_sock *sk = skb->sk;
	struct ct_sock *sock;
	__u32 payload;

	if (!sk)
		return 1;
	sk = bpf_sk_fullsock(sk);
	if (!sk)
		return 1; /* request and timewait sockets carry no owner */
	sock = bpf_sk_storage_get(&ct_owner, sk, 0, 0);
	if (!sock)
		return 1;
	payload = ct_payload_len(skb, sk);
	if (!ct_verdict(skb, sk, sock, dir, payload))
		return 0;
	if (ct_accounting)
		ct_account(skb, sk, sock, dir, payload);
	return 1;
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
