// SPDX-License-Identifier: MIT
/*
 * The download classifiers of the backends that work at an interface's ingress:
 *
 *   ct_tc_ingress  tc classifier (cls_bpf)  puts the downloads an HTB class holds in their
 *                                           class and hands them to the IFB device (ifb)
 *   ct_tc_police   tc classifier (cls_bpf)  matches the downloads of the one process whose
 *                                           slot it was loaded with (tc_police)
 *
 * At tc ingress there is no socket on the packet yet. ct_tc_ingress sits on the ingress of
 * each interface in use (cls_bpf, NOT direct-action: its filter carries a mirred action),
 * finds the socket the packet is for with a socket lookup, reads the owner from the
 * socket's storage, and if that process's download is held by an HTB class (backend ifb)
 * puts the packet in the class (skb->priority) and returns non-zero: the filter's mirred
 * action then redirects it to the interface's IFB device, whose HTB queues it. Everything
 * else returns 0 and goes on untouched, unqueued. Only Ethernet framing is parsed (the
 * installer puts the filter on Ethernet interfaces only); IP options are skipped by
 * their length, IPv6 extension headers are not (such packets go on, and the policer
 * holds them).
 *
 * ct_tc_police finds the owner the same way; its filter (one per limited process and
 * interface, also not direct-action) carries a police action, so a match is policed and
 * everything else goes on to the next filter.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include "budget.h"
#include "chadthrottle.h"
#include "maps.h"

#define CT_ETH_HLEN 14
#define CT_IP_MF 0x2000
#define CT_IP_OFFSET 0x1fff

/* The socket `tuple` names, if it has an owner whose download is held by a backend of
 * `flag` (CT_LIMIT_QDISC: an HTB class; CT_LIMIT_POLICE: a police filter): the limit's
 * class_id; else 0. Releases the socket it looked up. */
static __always_inline __u32 ct_download_class(struct __sk_buff *skb, struct bpf_sock_tuple *tuple,
					       __u32 tuple_len, int tcp, __u32 flag)
{
	struct ct_limit_key key;
	struct ct_limit *limit;
	struct ct_owner owner;
	struct ct_sock *sock;
	struct bpf_sock *sk;

	if (tcp)
		sk = bpf_sk_lookup_tcp(skb, tuple, tuple_len, BPF_F_CURRENT_NETNS, 0);
	else
		sk = bpf_sk_lookup_udp(skb, tuple, tuple_len, BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return 0;
	sock = bpf_sk_storage_get(&ct_owner, sk, 0, 0);
	if (!sock) {
		bpf_sk_release(sk);
		return 0;
	}
	owner = sock->owner;
	bpf_sk_release(sk);
	limit = ct_limit_of(&owner, CT_DIR_DOWN, &key);
	if (!limit || !(limit->flags & flag))
		return 0;
	return limit->class_id;
}

/* The class_id of the limit of `flag` that holds the download `skb` carries; 0 for
 * anything else. */
static __always_inline __u32 ct_ingress_class(struct __sk_buff *skb, __u32 flag)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct bpf_sock_tuple tuple = {};
	__u32 tuple_len, l3_len, l4_len, total;
	__u16 *ports;
	__u8 proto;
	int tcp;

	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = data + CT_ETH_HLEN;

		if ((void *)(ip + 1) > data_end)
			return 0;
		if (ip->frag_off & bpf_htons(CT_IP_MF | CT_IP_OFFSET))
			return 0; /* fragments carry no ports */
		proto = ip->protocol;
		l3_len = (ip->ihl & 0x0f) * 4;
		total = bpf_ntohs(ip->tot_len);
		tuple.ipv4.saddr = ip->saddr;
		tuple.ipv4.daddr = ip->daddr;
		tuple_len = sizeof(tuple.ipv4);
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = data + CT_ETH_HLEN;

		if ((void *)(ip6 + 1) > data_end)
			return 0;
		proto = ip6->nexthdr;
		l3_len = sizeof(*ip6);
		total = bpf_ntohs(ip6->payload_len) + l3_len;
		__builtin_memcpy(tuple.ipv6.saddr, &ip6->saddr, 16);
		__builtin_memcpy(tuple.ipv6.daddr, &ip6->daddr, 16);
		tuple_len = sizeof(tuple.ipv6);
	} else {
		return 0;
	}
	if (proto == IPPROTO_TCP)
		tcp = 1;
	else if (proto == IPPROTO_UDP)
		tcp = 0;
	else
		return 0;
	l3_len &= 0x3c; /* at most 60 (IPv6: 40): bounded for the verifier */
	ports = data + CT_ETH_HLEN + l3_len;
	if ((void *)(ports + 2) > data_end)
		return 0;
	if (tcp) {
		struct tcphdr *th = (struct tcphdr *)ports;

		if ((void *)(th + 1) > data_end)
			return 0;
		l4_len = th->doff * 4;
	} else {
		l4_len = sizeof(struct udphdr);
	}
	/* pure ACKs (and SYN, FIN, RST) of the process's uploads are not its download: they
	 * go on unqueued */
	if (total <= l3_len + l4_len)
		return 0;
	if (tuple_len == sizeof(tuple.ipv4)) {
		tuple.ipv4.sport = ports[0];
		tuple.ipv4.dport = ports[1];
	} else {
		tuple.ipv6.sport = ports[0];
		tuple.ipv6.dport = ports[1];
	}
	return ct_download_class(skb, &tuple, tuple_len, tcp, flag);
}

SEC("classifier")
int ct_tc_ingress(struct __sk_buff *skb)
{
	__u32 class_id = ct_ingress_class(skb, CT_LIMIT_QDISC);

	if (!class_id)
		return 0;
	skb->priority = class_id;
	return 1; /* a match: the filter's action redirects it to the IFB device */
}

SEC("classifier")
int ct_tc_police(struct __sk_buff *skb)
{
	__u32 slot = ct_ingress_class(skb, CT_LIMIT_POLICE);

	/* a match: the filter's police action decides; else the next filter looks */
	return slot && slot == ct_police_slot;
}
