"""The eBPF ECN marker's maps as Python sees them: constants, value layouts and the encoding of
one class's config. Must match ebpf/ecn_marker.bpf.c (MarkerHandle checks each map's value
size against it)."""

from __future__ import annotations

import math
import struct

MAX_CLASSES = 8
HIST_BUCKETS = 16
CFG_ENABLED = 1 << 0
CFG_ECN = 1 << 1
CFG_SET_PRIORITY = 1 << 2
CFG_PAUSED = 1 << 3
CFG_TIMELINE = 1 << 4
TL_BIN_NS = 100_000
TL_SLOTS = 4096
FP_ONE = 1 << 32
CLASS_CFG = struct.Struct("=8QII")      # struct class_cfg
#: struct vq_state: spin lock, pad, bytes, last_ns, adj_applied
VQ_STATE = struct.Struct("=IIqQq")
ADJ = struct.Struct("=q")
COUNTERS = struct.Struct(f"={7 + 3 * HIST_BUCKETS}Q")  # struct class_counters
TL_SLOT = struct.Struct("=4Q4I")  # struct tl_slot
TL_DTYPE = [("bin", "<u8"), ("max_depth", "<u8"), ("last_depth", "<u8"), ("bytes", "<u8"),
            ("packets", "<u4"), ("marks", "<u4"), ("drops", "<u4"), ("ect", "<u4")]
MAP_NAMES = ("kvf_dscp", "kvf_cfg", "kvf_vq", "kvf_adj", "kvf_cnt", "kvf_tl")
VALUE_SIZES = {"kvf_dscp": 4, "kvf_cfg": CLASS_CFG.size, "kvf_vq": VQ_STATE.size,
               "kvf_adj": ADJ.size, "kvf_cnt": COUNTERS.size, "kvf_tl": TL_SLOT.size}
# Largest buffer for which elapsed * rate_fp cannot overflow 64 bits in the program.
MAX_LIMIT_BYTES = 1 << 31


def pack_class_cfg(cls, rate_bps: int, burst_bytes: int, hist_bucket_bytes: int | None,
                   skb_priority: int | None, *, timeline: bool = False,
                   ecn: bool = True) -> bytes:
    """The kvf_cfg value of traffic class `cls` draining at `rate_bps`."""
    if rate_bps <= 0:
        raise ValueError(f"class {cls.name}: drain rate must be positive, got {rate_bps}")
    if cls.buffer_bytes >= MAX_LIMIT_BYTES or not 0 <= burst_bytes < MAX_LIMIT_BYTES:
        raise ValueError(f"class {cls.name}: buffer {cls.buffer_bytes} B and burst "
                         f"{burst_bytes} B must each be in 0..2 GiB")
    rate_bytes_per_ns = rate_bps / 8 / 1e9
    rate_fp = max(1, round(rate_bytes_per_ns * FP_ONE))
    drain_all_ns = math.ceil((cls.buffer_bytes + burst_bytes) / rate_bytes_per_ns) + 1
    bucket = hist_bucket_bytes or max(1, math.ceil(cls.buffer_bytes / HIST_BUCKETS))
    flags = CFG_ENABLED
    kmin = kmax = pmax_fp = 0
    if timeline:
        flags |= CFG_TIMELINE
    if cls.ecn is not None and ecn:
        flags |= CFG_ECN
        kmin, kmax = cls.ecn.kmin_bytes, cls.ecn.kmax_bytes
        pmax_fp = round(cls.ecn.pmax * FP_ONE)
    if skb_priority is not None:
        flags |= CFG_SET_PRIORITY
    return CLASS_CFG.pack(rate_fp, drain_all_ns, cls.buffer_bytes, burst_bytes, kmin, kmax,
                          pmax_fp, bucket, flags, skb_priority or 0)


def sum_counters(slots: list[bytes]) -> list[int]:
    """One class's kvf_cnt fields summed over the per-CPU values."""
    totals = [0] * (COUNTERS.size // 8)
    for slot in slots:
        for i, v in enumerate(COUNTERS.unpack(slot)):
            totals[i] += v
    return totals
