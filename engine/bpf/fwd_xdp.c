// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
/*
 * fwd's XDP program: sends fwd's data-plane frames to its AF_XDP sockets and every other
 * frame to the kernel, on every interface fwd drives.
 *
 * One loaded program serves all interfaces; `ifaces` (key: ifindex) says what each is.
 * An interface without an entry passes everything.
 *
 *   LAN: unicast IPv4 goes to fwd, unless its destination is in `kernel_dst` (the router's
 *        addresses, LAN and extra subnets, multicast, broadcast: what the kernel routes or
 *        delivers itself). To a WAN's address (`wan_ports`), only TCP or UDP to a port of
 *        its NAT range or to a forwarded port (`fwd_ports`), and later fragments, go to fwd
 *        (hairpin through a mapping or a port forward); the rest is the router's own.
 *   WAN: IPv4 to a LAN's subnets closed to the WANs (`kernel_dst` entries marked
 *        DST_CLOSED_LAN; the router's own addresses in them are host entries, the longer
 *        prefix) is dropped and counted: nothing reaches such a LAN from a WAN but what fwd
 *        translates.
 *        IPv4 to the WAN's address goes to fwd only when fwd owns it: TCP or UDP to a port
 *        in the WAN's NAT range or forwarded to a LAN server (`fwd_ports`); an ICMP echo
 *        reply whose identifier is in that range; an ICMP error quoting a packet that left
 *        from such a port (or an identifier in the range);
 *        a later fragment (it carries no port: fwd gives back the ones it does not own).
 *        Everything else passes: the router's own connections, pings to the router, the
 *        prober's replies, DHCP.
 *   ARP, IPv6, VLAN tags, frames to a multicast or broadcast MAC, anything malformed or too
 *        short to judge: the kernel.
 *
 * A socket slot is `xsk_base + rx_queue_index`; bpf_redirect_map(.., XDP_PASS) makes an
 * empty slot pass to the kernel rather than drop.
 *
 * Built by engine/build.rs with clang -target bpf; needs only the kernel's UAPI headers
 * (linux-libc-dev), not libbpf: the few definitions it takes from libbpf are below.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name
#define INLINE static inline __attribute__((always_inline))

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)BPF_FUNC_map_lookup_elem;
static long (*bpf_redirect_map)(void *map, __u64 key, __u64 flags) = (void *)BPF_FUNC_redirect_map;

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define htons(x) __builtin_bswap16(x)
#define ntohs(x) __builtin_bswap16(x)
#else
#define htons(x) (x)
#define ntohs(x) (x)
#endif

#define ROLE_LAN 1
#define ROLE_WAN 2

/* What a `kernel_dst` entry is. Mirrored by `DstKind` in program.rs. */
#define DST_KERNEL 1     /* the router's addresses, multicast, broadcast, open LAN subnets */
#define DST_CLOSED_LAN 2 /* a LAN's subnet or extra subnet closed to the WANs */

#define MAX_SOCKETS 1024
#define MAX_FORWARDED_PORTS 65536

#define ICMP_ECHOREPLY 0
#define ICMP_DEST_UNREACH 3
#define ICMP_SOURCE_QUENCH 4
#define ICMP_TIME_EXCEEDED 11
#define ICMP_PARAMETERPROB 12

/* Mirrored by `IfaceConfig` in engine/src/device/afxdp/program.rs. */
struct iface_config {
	__u32 role;     /* ROLE_LAN or ROLE_WAN */
	__u32 address;  /* WAN: its address, network byte order */
	__u16 port_lo;  /* WAN: NAT ports, host byte order, inclusive */
	__u16 port_hi;
	__u32 xsk_base; /* socket slot of RX queue 0 */
};

/* A WAN's NAT ports, host byte order, inclusive. Mirrored by `NatPorts` in program.rs. */
struct nat_ports {
	__u16 lo;
	__u16 hi;
};

/* A forwarded port of a WAN address. Mirrored by `ForwardKey` in program.rs. */
struct forward_key {
	__u32 addr;  /* the WAN's address, network byte order */
	__u16 port;  /* host byte order */
	__u8 proto;  /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 pad;
};

struct lpm_v4 {
	__u32 prefixlen;
	__u32 addr; /* network byte order */
};

/* Mirrored by `Stat` in program.rs. */
enum stat {
	STAT_TO_FWD,
	STAT_NO_SOCKET,
	STAT_KERNEL_NOT_IPV4,
	STAT_KERNEL_NOT_UNICAST,
	STAT_KERNEL_MALFORMED,
	STAT_KERNEL_LOCAL,
	STAT_KERNEL_NOT_OURS,
	STAT_DROP_INBOUND_TO_LAN,
	STAT_COUNT,
};

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, MAX_SOCKETS);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, struct iface_config);
} ifaces SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u32); /* a WAN's address, network byte order */
	__type(value, struct nat_ports);
} wan_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_FORWARDED_PORTS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct forward_key);
	__type(value, __u8);
} fwd_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 4096);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm_v4);
	__type(value, __u8);
} kernel_dst SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STAT_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

INLINE int count(__u32 stat, int action)
{
	__u64 *c = bpf_map_lookup_elem(&stats, &stat);
	if (c)
		*c += 1;
	return action;
}

INLINE int to_fwd(struct xdp_md *ctx, const struct iface_config *cfg)
{
	__u32 slot = cfg->xsk_base + ctx->rx_queue_index;
	long action = bpf_redirect_map(&xsks, slot, XDP_PASS);
	return count(action == XDP_REDIRECT ? STAT_TO_FWD : STAT_NO_SOCKET, action);
}

INLINE int in_range(__u16 lo, __u16 hi, __u16 port_be)
{
	__u16 port = ntohs(port_be);
	return port >= lo && port <= hi;
}

INLINE int owned(const struct iface_config *cfg, __u16 port_be)
{
	return in_range(cfg->port_lo, cfg->port_hi, port_be);
}

/* Whether TCP or UDP (`proto`) to port `port_be` of WAN address `addr` is forwarded. */
INLINE int forwarded(__u32 addr, __u8 proto, __u16 port_be)
{
	struct forward_key key = {
		.addr = addr, .port = ntohs(port_be), .proto = proto, .pad = 0
	};
	return bpf_map_lookup_elem(&fwd_ports, &key) != 0;
}

/* A WAN port fwd owns: one of its NAT ports, or a forwarded one. */
INLINE int fwds_port(const struct iface_config *cfg, __u8 proto, __u16 port_be)
{
	return owned(cfg, port_be) || forwarded(cfg->address, proto, port_be);
}

/* An ICMP error to the WAN's address: fwd's when the packet it quotes left from one of
 * fwd's ports (TCP, UDP) or identifiers (echo request). */
INLINE int quoted_is_ours(const struct iface_config *cfg, void *icmp, void *end)
{
	struct iphdr *inner = icmp + 8;
	if ((void *)(inner + 1) > end)
		return 0;
	if (inner->saddr != cfg->address || inner->ihl < 5)
		return 0;
	__u8 *l4 = (void *)inner + inner->ihl * 4;
	if ((void *)(l4 + 8) > end)
		return 0;
	__u16 *words = (void *)l4;
	switch (inner->protocol) {
	case IPPROTO_TCP:
	case IPPROTO_UDP:
		return fwds_port(cfg, inner->protocol, words[0]); /* source port */
	case IPPROTO_ICMP:
		return l4[0] == 8 && owned(cfg, words[2]); /* echo request, its identifier */
	}
	return 0;
}

SEC("xdp")
int fwd_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > end)
		return count(STAT_KERNEL_MALFORMED, XDP_PASS);
	if (eth->h_proto != htons(ETH_P_IP))
		return count(STAT_KERNEL_NOT_IPV4, XDP_PASS);
	if (eth->h_dest[0] & 1)
		return count(STAT_KERNEL_NOT_UNICAST, XDP_PASS);

	__u32 ifindex = ctx->ingress_ifindex;
	const struct iface_config *cfg = bpf_map_lookup_elem(&ifaces, &ifindex);
	if (!cfg)
		return count(STAT_KERNEL_NOT_OURS, XDP_PASS);

	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end || ip->version != 4 || ip->ihl < 5)
		return count(STAT_KERNEL_MALFORMED, XDP_PASS);

	if (cfg->role == ROLE_LAN) {
		__u32 daddr = ip->daddr;
		const struct nat_ports *wan = bpf_map_lookup_elem(&wan_ports, &daddr);
		if (wan) {
			if (ip->frag_off & htons(0x1fff))
				return to_fwd(ctx, cfg);
			__u16 *ports = (void *)ip + ip->ihl * 4;
			if ((void *)(ports + 2) > end)
				return count(STAT_KERNEL_MALFORMED, XDP_PASS);
			if ((ip->protocol == IPPROTO_TCP || ip->protocol == IPPROTO_UDP) &&
			    (in_range(wan->lo, wan->hi, ports[1]) ||
			     forwarded(daddr, ip->protocol, ports[1])))
				return to_fwd(ctx, cfg);
			return count(STAT_KERNEL_LOCAL, XDP_PASS);
		}
		struct lpm_v4 key = { .prefixlen = 32, .addr = daddr };
		if (bpf_map_lookup_elem(&kernel_dst, &key))
			return count(STAT_KERNEL_LOCAL, XDP_PASS);
		return to_fwd(ctx, cfg);
	}
	if (cfg->role != ROLE_WAN)
		return count(STAT_KERNEL_NOT_OURS, XDP_PASS);
	if (ip->daddr != cfg->address) {
		struct lpm_v4 key = { .prefixlen = 32, .addr = ip->daddr };
		__u8 *kind = bpf_map_lookup_elem(&kernel_dst, &key);
		if (kind && *kind == DST_CLOSED_LAN)
			return count(STAT_DROP_INBOUND_TO_LAN, XDP_DROP);
		return count(STAT_KERNEL_NOT_OURS, XDP_PASS);
	}

	if (ip->frag_off & htons(0x1fff))
		return to_fwd(ctx, cfg);

	__u8 *l4 = (void *)ip + ip->ihl * 4;
	if ((void *)(l4 + 8) > end)
		return count(STAT_KERNEL_MALFORMED, XDP_PASS);
	__u16 *words = (void *)l4;
	switch (ip->protocol) {
	case IPPROTO_TCP:
	case IPPROTO_UDP:
		if (fwds_port(cfg, ip->protocol, words[1])) /* destination port */
			return to_fwd(ctx, cfg);
		break;
	case IPPROTO_ICMP:
		switch (l4[0]) {
		case ICMP_ECHOREPLY:
			if (owned(cfg, words[2])) /* identifier */
				return to_fwd(ctx, cfg);
			break;
		case ICMP_DEST_UNREACH:
		case ICMP_SOURCE_QUENCH:
		case ICMP_TIME_EXCEEDED:
		case ICMP_PARAMETERPROB:
			if (quoted_is_ours(cfg, l4, end))
				return to_fwd(ctx, cfg);
			break;
		}
		break;
	}
	return count(STAT_KERNEL_NOT_OURS, XDP_PASS);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
