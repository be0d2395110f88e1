// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * bwmon's eBPF socket probe: who uses which socket, and the payload bytes of non-TCP sockets.
 *
 * Attached to the raw tracepoints sock_send_length / sock_recv_length (tp_btf: no tracefs, no
 * kprobes), in every network namespace. Two outputs:
 *  - `sightings` (ring buffer): one record at the first sight of an IPv4/IPv6 socket, and again
 *    when its tuple or the process using it changes: the owner of even a 1 ms connection;
 *  - `sockets` (LRU hash, socket cookie -> struct sock_bytes): payload bytes each way summed in
 *    the kernel for UDP and the other non-TCP sockets (TCP's own counters come from tcp_info),
 *    read by bwmon once per tick. UDP has no close tracepoint (and kprobes/fentry are not always
 *    there): bwmon reads and deletes an entry that stayed idle; a socket that speaks again
 *    afterwards gets a new entry counting from zero.
 * The record layouts are mirrored in bpf/records.py; rebuild with bpf/build.sh (see there).
 * Types are declared here, minimal and relocatable (CO-RE), instead of a generated vmlinux.h.
 */
#include <linux/bpf.h>  /* uapi: __u8.., map types, flags */
typedef _Bool bool;
#define true 1
#define false 0

#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define MSG_PEEK 2
#define TASK_COMM_LEN 16
#define SOCKETS_MAX 16384
#define SEEN_MAX 65536
#define RING_BYTES (256 * 1024)

struct ns_common { unsigned int inum; } __attribute__((preserve_access_index));
struct net { struct ns_common ns; } __attribute__((preserve_access_index));
typedef struct { struct net *net; } possible_net_t;
struct in6_addr { union { __u8 u6_addr8[16]; } in6_u; } __attribute__((preserve_access_index));
typedef struct { __u32 val; } kuid_t;
struct sock_common {
	__be32 skc_daddr;
	__be32 skc_rcv_saddr;
	__be16 skc_dport;
	__u16 skc_num;
	unsigned short skc_family;
	possible_net_t skc_net;
	struct in6_addr skc_v6_daddr;
	struct in6_addr skc_v6_rcv_saddr;
} __attribute__((preserve_access_index));
struct sock {
	struct sock_common __sk_common;
	__u16 sk_protocol;
	kuid_t sk_uid;
} __attribute__((preserve_access_index));
struct task_struct {
	struct task_struct *group_leader;
	__u64 start_boottime;
} __attribute__((preserve_access_index));

/* 96 bytes; mirrored by records.SIGHTING */
struct sighting {
	__u64 cookie;
	__u64 start_ns;     /* the process's start, ns since boot (as /proc/PID/stat, in ns) */
	__u64 nsecs;        /* CLOCK_MONOTONIC when seen */
	__u32 pid;          /* tgid */
	__u32 netns;        /* inode of the socket's network namespace */
	__u32 uid;          /* the socket's owner uid (sk_uid) */
	__u16 family;
	__u16 proto;
	__u16 lport;        /* host byte order */
	__u16 rport;        /* host byte order */
	__u8 laddr[16];     /* IPv4: the first 4 bytes */
	__u8 raddr[16];
	char comm[TASK_COMM_LEN];
	__u32 pad;
};

/* 112 bytes; mirrored by records.SOCK_BYTES */
struct sock_bytes {
	__u64 bytes_in;
	__u64 bytes_out;
	struct sighting first;
};

struct seen {
	__u32 pid;
	__u32 pad;
	__u64 tuple;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, RING_BYTES);
} sightings SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SOCKETS_MAX);
	__type(key, __u64);
	__type(value, struct sock_bytes);
} sockets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SEEN_MAX);
	__type(key, __u64);
	__type(value, struct seen);
} seen SEC(".maps");

/* sightings not written because the ring was full (index 0; each is retried at the socket's
 * next send); read by bwmon for its status */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} lost SEC(".maps");

static __always_inline __u64 tuple_of(struct sock *sk, __u16 family)
{
	__u64 t = ((__u64)sk->__sk_common.skc_num << 48) | ((__u64)sk->__sk_common.skc_dport << 32);
	if (family == AF_INET)
		return t | sk->__sk_common.skc_daddr;
	__u32 a[4];
	bpf_core_read(&a, sizeof(a), &sk->__sk_common.skc_v6_daddr);
	return t | (a[0] ^ a[1] ^ a[2] ^ a[3]);
}

static __always_inline void describe(struct sighting *s, struct sock *sk, __u64 cookie,
				     __u16 family, __u16 proto)
{
	struct task_struct *task = bpf_get_current_task_btf();
	__u16 dport = sk->__sk_common.skc_dport;

	s->cookie = cookie;
	s->start_ns = BPF_CORE_READ(task, group_leader, start_boottime);
	s->nsecs = bpf_ktime_get_ns();
	s->pid = bpf_get_current_pid_tgid() >> 32;
	s->netns = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
	s->uid = BPF_CORE_READ(sk, sk_uid.val);
	s->family = family;
	s->proto = proto;
	s->lport = sk->__sk_common.skc_num;
	s->rport = (dport >> 8) | ((dport & 0xff) << 8);
	if (family == AF_INET) {
		bpf_core_read(&s->laddr, 4, &sk->__sk_common.skc_rcv_saddr);
		bpf_core_read(&s->raddr, 4, &sk->__sk_common.skc_daddr);
	} else {
		bpf_core_read(&s->laddr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
		bpf_core_read(&s->raddr, 16, &sk->__sk_common.skc_v6_daddr);
	}
	bpf_get_current_comm(&s->comm, sizeof(s->comm));
}

static __always_inline int on_bytes(struct sock *sk, int ret, bool out)
{
	__u16 family = sk->__sk_common.skc_family;
	if (family != AF_INET && family != AF_INET6)
		return 0;
	__u16 proto = BPF_CORE_READ(sk, sk_protocol);
	__u64 cookie = bpf_get_socket_cookie(sk);
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	__u64 tuple = tuple_of(sk, family);
	bool changed = false;

	struct seen *was = bpf_map_lookup_elem(&seen, &cookie);
	if (!was || was->pid != pid || was->tuple != tuple) {
		changed = true;
		struct sighting *s = bpf_ringbuf_reserve(&sightings, sizeof(*s), 0);
		if (s) {
			describe(s, sk, cookie, family, proto);
			bpf_ringbuf_submit(s, 0);
			/* remembered only once reported: a full ring is retried at the next send */
			struct seen now = { .pid = pid, .tuple = tuple };
			bpf_map_update_elem(&seen, &cookie, &now, BPF_ANY);
		} else {
			__u32 zero = 0;
			__u64 *n = bpf_map_lookup_elem(&lost, &zero);
			if (n)
				__sync_fetch_and_add(n, 1);
		}
	}
	if (proto == IPPROTO_TCP || ret <= 0)
		return 0;
	struct sock_bytes *v = bpf_map_lookup_elem(&sockets, &cookie);
	if (!v) {
		struct sock_bytes init = {};
		describe(&init.first, sk, cookie, family, proto);
		bpf_map_update_elem(&sockets, &cookie, &init, BPF_NOEXIST);
		v = bpf_map_lookup_elem(&sockets, &cookie);
		if (!v)
			return 0;
	} else if (changed) {
		/* bound or connected since the first sight: keep the tuple current (not the owner) */
		__u16 dport = sk->__sk_common.skc_dport;
		v->first.lport = sk->__sk_common.skc_num;
		v->first.rport = (dport >> 8) | ((dport & 0xff) << 8);
		if (family == AF_INET) {
			bpf_core_read(&v->first.laddr, 4, &sk->__sk_common.skc_rcv_saddr);
			bpf_core_read(&v->first.raddr, 4, &sk->__sk_common.skc_daddr);
		} else {
			bpf_core_read(&v->first.laddr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
			bpf_core_read(&v->first.raddr, 16, &sk->__sk_common.skc_v6_daddr);
		}
	}
	if (out)
		__sync_fetch_and_add(&v->bytes_out, ret);
	else
		__sync_fetch_and_add(&v->bytes_in, ret);
	return 0;
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(send_length, struct sock *sk, int ret, int flags)
{
	return on_bytes(sk, ret, true);
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(recv_length, struct sock *sk, int ret, int flags)
{
	if (flags & MSG_PEEK)  /* the same bytes are read again without the flag */
		return 0;
	return on_bytes(sk, ret, false);
}

char LICENSE[] SEC("license") = "GPL";
