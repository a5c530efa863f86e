// SPDX-License-Identifier: MIT
/* The datapath's division of a budget among sockets (include/share.h), compiled for the
 * host so that the kernel crate's tests can run simulated sockets through it. */
#include "share.h"

__u64 ct_host_share_join(struct ct_share *s, __u64 budget, __u64 now_ns, __u32 *sock_epoch)
{
	return ct_share_join(s, budget, now_ns, sock_epoch);
}

__u64 ct_host_share_report(struct ct_share *s, __u64 budget, __u64 now_ns, __u32 *sock_epoch,
			   __u64 sock_rate, __u64 sock_cap)
{
	return ct_share_report(s, budget, now_ns, sock_epoch, sock_rate, sock_cap);
}

__u32 ct_host_share_window(__u64 rate, __u32 rtt_us, __u32 mss)
{
	return ct_share_window(rate, rtt_us, mss);
}

__u32 ct_host_share_down_rtt(__u32 rcv_rtt_us, __u32 srtt_us)
{
	return ct_share_down_rtt(rcv_rtt_us, srtt_us);
}

__u32 ct_host_share_next_window(__u32 window, __u64 cap, __u64 measured, __u32 rtt_us, __u32 mss)
{
	return ct_share_next_window(window, cap, measured, rtt_us, mss);
}

__u32 ct_host_share_burst_segs(__u64 cap, __u32 srtt_us, __u32 mss)
{
	return ct_share_burst_segs(cap, srtt_us, mss);
}

__u32 ct_host_share_min_rtt(__u32 min_rtt_us, __u32 rcv_rtt_us, __u32 srtt_us)
{
	return ct_share_min_rtt(min_rtt_us, rcv_rtt_us, srtt_us);
}

__u32 ct_host_share_queue_window(__u64 cap, __u32 min_rtt_us, __u32 mss)
{
	return ct_share_queue_window(cap, min_rtt_us, mss);
}
