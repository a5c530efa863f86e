/* SPDX-License-Identifier: MIT */
/*
 * The socket options the shaper reads and sets with bpf_getsockopt/bpf_setsockopt, by
 * number: the BPF build has no <sys/socket.h>, and this machine's kernel headers predate
 * TCP_BPF_SOCK_OPS_CB_FLAGS. An enum, so that the numbers reach the object's BTF and the
 * kernel crate's test checks them against libc (see chadthrottle.h).
 */
#ifndef CHADTHROTTLE_SOCKOPT_H
#define CHADTHROTTLE_SOCKOPT_H

enum ct_sockopt {
	CT_SOL_SOCKET = 1,
	CT_SOL_TCP = 6,
	CT_SO_MAX_PACING_RATE = 47,         /* level CT_SOL_SOCKET */
	CT_TCP_WINDOW_CLAMP = 10,           /* level CT_SOL_TCP */
	CT_TCP_BPF_SNDCWND_CLAMP = 1002,     /* level CT_SOL_TCP, BPF only */
	CT_TCP_BPF_SOCK_OPS_CB_FLAGS = 1008, /* level CT_SOL_TCP, BPF only */
};

#endif
