// SPDX-License-Identifier: Apache-2.0
/*
 * ECN marker for clsact egress, for kernels without the `red` qdisc.
 *
 * The packet has not reached the HTB class queue yet when this runs, so the program keeps a
 * virtual copy of each class queue: bytes added per packet (tail-dropped like a bfifo when
 * over the class buffer) and drained at the class rate since the last update. The count may
 * go down to -burst: that is the shaper's unused token credit, so a virtual queue fed after
 * an idle spell lets `burst` bytes straight through, as HTB does. A shaper on a busy host runs
 * a little under its rate, so userspace may fold in corrections from the real qdisc backlog
 * through kvf_adj. ECT packets are marked CE on the RED ramp of the depth they find; Not-ECT
 * packets are never marked.
 * Userspace (topologies/queues/marker_handle.py) fills the DSCP and class maps and reads the
 * counters; struct layouts here must match the structures of topologies/queues/marker_layout.py.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <stddef.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define MAX_CLASSES 8
#define NUM_DSCP 64
#define HIST_BUCKETS 16

#define ECN_MASK 0x3
#define ECN_CE 0x3

#define CFG_ENABLED (1u << 0)
#define CFG_ECN (1u << 1)
#define CFG_SET_PRIORITY (1u << 2)
#define CFG_PAUSED (1u << 3)	/* PFC has paused this class: the virtual queue does not drain */
#define CFG_TIMELINE (1u << 4)	/* record per-bin telemetry in kvf_tl */

/* Telemetry: per class, a ring of TL_SLOTS bins of TL_BIN_NS each (4096 x 100 us = 410 ms of
 * history); userspace maps the array (BPF_F_MMAPABLE) and copies finished bins out. */
#define TL_BIN_NS 100000ULL
#define TL_SLOTS 4096

/* Fixed point: rate_fp is bytes per nanosecond << 32; pmax_fp is probability << 32. */
#define FP_SHIFT 32

struct class_cfg {
	__u64 rate_fp;
	__u64 drain_all_ns;	/* any idle gap this long empties a full buffer and the credit */
	__u64 limit_bytes;	/* class buffer; 0 = unbounded */
	__u64 burst_bytes;	/* the shaper's token bucket (HTB burst); 0 = a pure rate */
	__u64 kmin_bytes;
	__u64 kmax_bytes;
	__u64 pmax_fp;
	__u64 hist_bucket_bytes;
	__u32 flags;
	__u32 skb_priority;	/* written to skb->priority with CFG_SET_PRIORITY (HTB classid) */
};

struct vq_state {
	struct bpf_spin_lock lock;
	__u32 pad;
	__s64 bytes;	/* backlog if > 0; unused shaper credit if < 0 */
	__u64 last_ns;	/* bpf_ktime_get_ns (CLOCK_MONOTONIC) of the last update */
	__s64 adj_applied;	/* the part of kvf_adj already added to bytes */
};

struct class_counters {
	__u64 packets;
	__u64 bytes;
	__u64 ect_packets;
	__u64 marks;
	__u64 ce_in;		/* arrived already CE */
	__u64 vq_drops;		/* would not fit the class buffer: the real bfifo drops them */
	__u64 depth_sum_bytes;	/* sum of the depth each packet found; / packets = mean */
	__u64 hist_packets[HIST_BUCKETS];	/* depth samples, all packets */
	__u64 hist_ect[HIST_BUCKETS];
	__u64 hist_marks[HIST_BUCKETS];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NUM_DSCP);
	__type(key, __u32);
	__type(value, __u32);
} kvf_dscp SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_CLASSES);
	__type(key, __u32);
	__type(value, struct class_cfg);
} kvf_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_CLASSES);
	__type(key, __u32);
	__type(value, struct vq_state);
} kvf_vq SEC(".maps");

/* Cumulative byte corrections per class, written only by userspace; the program adds the
 * part it has not applied yet, so a correction is never lost to a concurrent update. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_CLASSES);
	__type(key, __u32);
	__type(value, __s64);
} kvf_adj SEC(".maps");

struct tl_slot {
	__u64 bin;		/* bpf_ktime_get_ns() / TL_BIN_NS of the packets counted here */
	__u64 max_depth;	/* deepest virtual queue a packet found in this bin */
	__u64 last_depth;
	__u64 bytes;
	__u32 packets;
	__u32 marks;
	__u32 drops;
	__u32 ect;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_CLASSES * TL_SLOTS);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct tl_slot);
} kvf_tl SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_CLASSES);
	__type(key, __u32);
	__type(value, struct class_counters);
} kvf_cnt SEC(".maps");

struct l3_info {
	__u32 off;	/* offset of the IP header */
	__u8 version;	/* 4, 6, or 0 when not IP */
	__u8 dscp;
	__u8 ecn;
};

/* Ethernet + one VLAN tag + an IPv6 header. */
#define PULL_BYTES 62

static __always_inline void parse_l3(struct __sk_buff *skb, struct l3_info *l3)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	__u32 off = sizeof(*eth);
	__u16 proto;

	l3->version = 0;
	l3->dscp = 0;
	l3->ecn = 0;
	if ((void *)(eth + 1) > data_end)
		return;
	proto = eth->h_proto;
	/* One in-band 802.1Q/802.1ad tag; offloaded tags live in skb->vlan_tci instead. */
	if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD)) {
		__u16 *inner = data + off + 2;

		if ((void *)(inner + 1) > data_end)
			return;
		proto = *inner;
		off += 4;
	}
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *iph = data + off;

		if ((void *)(iph + 1) > data_end)
			return;
		l3->version = 4;
		l3->dscp = iph->tos >> 2;
		l3->ecn = iph->tos & ECN_MASK;
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		__u8 *b = data + off;

		if ((void *)(b + sizeof(struct ipv6hdr)) > data_end)
			return;
		/* Traffic class = low nibble of byte 0 and high nibble of byte 1. */
		l3->version = 6;
		l3->dscp = ((b[0] & 0x0f) << 2) | (b[1] >> 6);
		l3->ecn = (b[1] >> 4) & ECN_MASK;
	}
	l3->off = off;
}

static __always_inline int set_ce(struct __sk_buff *skb, const struct l3_info *l3)
{
	if (l3->version == 4) {
		/* TOS is the low byte of the header's first 16-bit word; the checksum is patched
		 * incrementally with the old and new word (RFC 1624). */
		__u16 old_word, new_word;

		if (bpf_skb_load_bytes(skb, l3->off, &old_word, sizeof(old_word)))
			return -1;
		new_word = old_word | bpf_htons(ECN_CE);
		if (bpf_l3_csum_replace(skb, l3->off + offsetof(struct iphdr, check),
					old_word, new_word, sizeof(new_word)))
			return -1;
		return bpf_skb_store_bytes(skb, l3->off, &new_word, sizeof(new_word), 0);
	}
	if (l3->version == 6) {
		/* No IPv6 header checksum; ECN bits are 0x30 of byte 1. */
		__u8 b1;

		if (bpf_skb_load_bytes(skb, l3->off + 1, &b1, 1))
			return -1;
		b1 |= ECN_CE << 4;
		return bpf_skb_store_bytes(skb, l3->off + 1, &b1, 1, 0);
	}
	return -1;
}

static __always_inline int ramp_marks(const struct class_cfg *cfg, __u64 depth, __u32 rnd)
{
	__u64 threshold;

	if (depth <= cfg->kmin_bytes)
		return 0;
	if (depth > cfg->kmax_bytes)
		return 1;
	/* kmin < depth <= kmax implies kmax > kmin, so the division is safe. */
	threshold = cfg->pmax_fp * (depth - cfg->kmin_bytes) / (cfg->kmax_bytes - cfg->kmin_bytes);
	return (__u64)rnd < threshold;
}

SEC("tc")
int kvf_ecn_mark(struct __sk_buff *skb)
{
	struct l3_info l3 = {};
	struct class_cfg *cfg;
	struct vq_state *vq;
	struct class_counters *cnt;
	__u32 *cls_ptr, cls, dscp_key, bucket;
	__u64 now, depth, len = skb->len;
	__s64 credit_floor, *adj;
	__u32 rnd;
	int dropped = 0, ect, mark = 0;

	/* A frame sent from an AF_PACKET TX ring (the RoCE endpoints) carries only its Ethernet
	 * header in the skb's linear part, the rest stays in the ring's pages: pull the
	 * headers in, or the DSCP is unreadable and RoCE data falls into the lossy class. */
	if ((void *)(long)skb->data + PULL_BYTES > (void *)(long)skb->data_end)
		bpf_skb_pull_data(skb, skb->len < PULL_BYTES ? skb->len : PULL_BYTES);
	parse_l3(skb, &l3);
	dscp_key = l3.dscp;
	cls_ptr = bpf_map_lookup_elem(&kvf_dscp, &dscp_key);
	if (!cls_ptr)
		return TC_ACT_UNSPEC;
	cls = *cls_ptr;
	cfg = bpf_map_lookup_elem(&kvf_cfg, &cls);
	vq = bpf_map_lookup_elem(&kvf_vq, &cls);
	cnt = bpf_map_lookup_elem(&kvf_cnt, &cls);
	adj = bpf_map_lookup_elem(&kvf_adj, &cls);
	if (!cfg || !vq || !cnt || !adj || !(cfg->flags & CFG_ENABLED))
		return TC_ACT_UNSPEC;

	/* Helpers may not be called under the spin lock, so read clock and dice first. */
	now = bpf_ktime_get_ns();
	rnd = bpf_get_prandom_u32();

	credit_floor = -(__s64)cfg->burst_bytes;
	bpf_spin_lock(&vq->lock);
	/* Another CPU may have stamped a later `now`; then we simply do not drain. */
	if (now > vq->last_ns) {
		__u64 elapsed = now - vq->last_ns;

		if (cfg->flags & CFG_PAUSED) {
			/* paused by PFC: nothing leaves the queue */
		} else if (elapsed >= cfg->drain_all_ns) {
			vq->bytes = credit_floor;
		} else {
			/* elapsed < drain_all_ns bounds elapsed * rate_fp by (limit + burst) << 32. */
			__s64 left = vq->bytes - (__s64)((elapsed * cfg->rate_fp) >> FP_SHIFT);

			vq->bytes = left > credit_floor ? left : credit_floor;
		}
		vq->last_ns = now;
	}
	if (*adj != vq->adj_applied) {
		vq->bytes += *adj - vq->adj_applied;
		vq->adj_applied = *adj;
		if (vq->bytes < credit_floor)
			vq->bytes = credit_floor;
	}
	depth = vq->bytes > 0 ? vq->bytes : 0;
	if (cfg->limit_bytes && depth + len > cfg->limit_bytes)
		dropped = 1;	/* bfifo rule: backlog + len > limit is dropped */
	else
		vq->bytes += len;
	bpf_spin_unlock(&vq->lock);

	ect = l3.version && (l3.ecn == 0x1 || l3.ecn == 0x2);
	if (ect && !dropped && (cfg->flags & CFG_ECN) && ramp_marks(cfg, depth, rnd))
		mark = set_ce(skb, &l3) == 0;

	bucket = cfg->hist_bucket_bytes ? depth / cfg->hist_bucket_bytes : 0;
	if (bucket >= HIST_BUCKETS)
		bucket = HIST_BUCKETS - 1;
	cnt->packets++;
	cnt->bytes += len;
	cnt->depth_sum_bytes += depth;
	cnt->hist_packets[bucket]++;
	if (l3.version && l3.ecn == ECN_CE)
		cnt->ce_in++;
	if (dropped)
		cnt->vq_drops++;
	if (ect) {
		cnt->ect_packets++;
		cnt->hist_ect[bucket]++;
	}
	if (mark) {
		cnt->marks++;
		cnt->hist_marks[bucket]++;
	}
	if (cfg->flags & CFG_TIMELINE) {
		__u64 bin = now / TL_BIN_NS;
		__u32 key = cls * TL_SLOTS + (__u32)(bin % TL_SLOTS);
		struct tl_slot *tl = bpf_map_lookup_elem(&kvf_tl, &key);

		if (tl) {
			/* Two CPUs may start the same bin at once; telemetry tolerates the race. */
			if (tl->bin != bin) {
				tl->max_depth = 0;
				tl->bytes = 0;
				tl->packets = 0;
				tl->marks = 0;
				tl->drops = 0;
				tl->ect = 0;
				tl->bin = bin;
			}
			if (depth > tl->max_depth)
				tl->max_depth = depth;
			tl->last_depth = depth;
			__sync_fetch_and_add(&tl->bytes, len);
			__sync_fetch_and_add(&tl->packets, 1);
			if (mark)
				__sync_fetch_and_add(&tl->marks, 1);
			if (dropped)
				__sync_fetch_and_add(&tl->drops, 1);
			if (ect)
				__sync_fetch_and_add(&tl->ect, 1);
		}
	}
	if (cfg->flags & CFG_SET_PRIORITY)
		skb->priority = cfg->skb_priority;
	/* UNSPEC, not OK: let later filters on this hook still run. Attach this one last. */
	return TC_ACT_UNSPEC;
}

char LICENSE[] SEC("license") = "Apache-2.0";
