"""Typed egress-queue specs for one fabric port: traffic classes, ECN ramps, PFC thresholds.

A port's egress is HTB at the link rate with one leaf class per traffic class, each leaf with
its own byte-limited FIFO and, optionally, an ECN ramp. These frozen dataclasses are what the
tc/eBPF backends and the pure models (`pfc_model`) read; they validate on construction so a
bad spec fails where it is written, not inside a tc command.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from wire.dscp import (
    DEFAULT_DSCP_MAP,
    NUM_DSCP,
    NUM_PRIORITIES,
    PRIORITY_DEFAULT,
    check_dscp,
)

#: The default map's named DSCPs and their priorities (`wire.dscp` owns the map).
DEFAULT_DSCP_TO_PRIORITY: Mapping[int, int] = DEFAULT_DSCP_MAP.dscp_to_priority

# HPCC ns-3 defaults at 25 Gbit/s (alibaba-edu/High-Precision-Congestion-Control,
# simulation/mix/config.txt KMIN_MAP/KMAX_MAP/PMAX_MAP; SwitchMmu::ConfigEcn multiplies the
# configured KB by 1000).
HPCC_REFERENCE_RATE_BPS = 25_000_000_000
HPCC_KMIN_BYTES = 100_000
HPCC_KMAX_BYTES = 400_000
HPCC_PMAX = 0.2
# HPCC resumes a paused queue this far below its XOFF threshold (switch-mmu.cc resume_offset).
HPCC_RESUME_OFFSET_BYTES = 3_000


def priority_for_dscp(dscp: int, mapping: Mapping[int, int] = DEFAULT_DSCP_TO_PRIORITY,
                      default: int = PRIORITY_DEFAULT) -> int:
    """The 802.1p priority a DSCP maps to; unlisted DSCPs take `default`."""
    check_dscp(dscp)
    return mapping.get(dscp, default)


def _check_bytes(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative int number of bytes, got {value!r}")


@dataclass(frozen=True)
class EcnRamp:
    """RED-style marking ramp on the instantaneous queue depth, in bytes.

    probability(d) = 0 for d <= kmin, pmax*(d-kmin)/(kmax-kmin) for kmin < d <= kmax, 1 above
    kmax, which is HPCC's SwitchMmu::ShouldSendCN. kmin == kmax is DCTCP step marking
    (mark every ECT packet once the queue exceeds K).
    """

    kmin_bytes: int
    kmax_bytes: int
    pmax: float

    def __post_init__(self) -> None:
        _check_bytes("kmin_bytes", self.kmin_bytes)
        _check_bytes("kmax_bytes", self.kmax_bytes)
        if self.kmin_bytes > self.kmax_bytes:
            raise ValueError(
                f"kmin_bytes ({self.kmin_bytes}) must not exceed kmax_bytes ({self.kmax_bytes})")
        if not isinstance(self.pmax, (int, float)) or not 0 < self.pmax <= 1:
            raise ValueError(f"pmax must be in (0, 1], got {self.pmax!r}")

    @classmethod
    def step(cls, k_bytes: int) -> EcnRamp:
        """DCTCP-style threshold marking at K bytes (Alizadeh et al., SIGCOMM 2010)."""
        return cls(k_bytes, k_bytes, 1.0)

    def probability(self, depth_bytes: float) -> float:
        if depth_bytes <= self.kmin_bytes:
            return 0.0
        if depth_bytes > self.kmax_bytes:
            return 1.0
        return self.pmax * (depth_bytes - self.kmin_bytes) / (self.kmax_bytes - self.kmin_bytes)


@dataclass(frozen=True)
class PfcThresholds:
    """Per-(port, priority) PFC thresholds: pause at `xoff_bytes`, resume at `xon_bytes`;
    `headroom_bytes` absorbs what is in flight between sending PAUSE and the peer stopping."""

    xoff_bytes: int
    xon_bytes: int
    headroom_bytes: int

    def __post_init__(self) -> None:
        for name in ("xoff_bytes", "xon_bytes", "headroom_bytes"):
            _check_bytes(name, getattr(self, name))
        if self.xon_bytes >= self.xoff_bytes:
            # Equal thresholds would pause and resume on alternate packets.
            raise ValueError(
                f"xon_bytes ({self.xon_bytes}) must be below xoff_bytes ({self.xoff_bytes})")

    @property
    def buffer_needed_bytes(self) -> int:
        """Smallest class buffer that holds XOFF plus the headroom without loss."""
        return self.xoff_bytes + self.headroom_bytes


def pfc_headroom_bytes(rate_bps: float, link_delay_s: float, mtu_bytes: int) -> int:
    """HPCC's headroom, 3 x rate x link delay (scratch/third.cc), floored at two MTUs.

    The floor matters in emulation: at Mbit/s rates and microsecond veth delays the HPCC
    product is a few bytes, yet a full frame can already be on the wire in each direction.
    """
    return max(math.ceil(3 * rate_bps * link_delay_s / 8), 2 * mtu_bytes)


@dataclass(frozen=True)
class TrafficClass:
    """One egress class: which DSCPs it takes, how it is scheduled and buffered.

    An empty `dscp` set makes this the port's default class (it takes every DSCP no other
    class claims). `weight` is the class's share of the link among non-strict classes;
    `strict` classes are served first. `pfc` is only meaningful for lossless classes.
    """

    name: str
    priority: int
    dscp: frozenset[int]
    buffer_bytes: int
    lossless: bool = False
    strict: bool = False
    weight: int = 1
    ecn: EcnRamp | None = None
    pfc: PfcThresholds | None = None

    def __post_init__(self) -> None:
        if not self.name or not self.name.isidentifier():
            raise ValueError(f"class name must be a short identifier, got {self.name!r}")
        if isinstance(self.priority, bool) or self.priority not in range(NUM_PRIORITIES):
            raise ValueError(f"priority must be 0..7, got {self.priority!r}")
        dscp = frozenset(check_dscp(d) for d in self.dscp)
        object.__setattr__(self, "dscp", dscp)
        _check_bytes("buffer_bytes", self.buffer_bytes)
        if self.buffer_bytes == 0:
            raise ValueError(f"class {self.name}: buffer_bytes must be positive")
        if isinstance(self.weight, bool) or not isinstance(self.weight, int) or self.weight < 1:
            raise ValueError(f"class {self.name}: weight must be an int >= 1, got {self.weight!r}")
        if self.pfc is not None:
            if not self.lossless:
                raise ValueError(f"class {self.name}: PFC thresholds on a lossy class")
            if self.pfc.buffer_needed_bytes > self.buffer_bytes:
                raise ValueError(
                    f"class {self.name}: xoff + headroom ({self.pfc.buffer_needed_bytes} B) "
                    f"exceeds the buffer ({self.buffer_bytes} B)")

    @property
    def is_default(self) -> bool:
        return not self.dscp


@dataclass(frozen=True)
class PortQueues:
    """All egress classes of one port at `rate_bps`. Class order is the class index used by
    the eBPF marker's maps."""

    rate_bps: int
    classes: tuple[TrafficClass, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        object.__setattr__(self, "classes", tuple(self.classes))
        if isinstance(self.rate_bps, bool) or not isinstance(self.rate_bps, int) \
                or self.rate_bps <= 0:
            raise ValueError(f"rate_bps must be a positive int, got {self.rate_bps!r}")
        if not 1 <= len(self.classes) <= NUM_PRIORITIES:
            raise ValueError(f"a port has 1..8 classes, got {len(self.classes)}")
        _unique("class name", [c.name for c in self.classes])
        _unique("priority", [c.priority for c in self.classes])
        claimed: dict[int, str] = {}
        for cls in self.classes:
            for d in cls.dscp:
                if d in claimed:
                    raise ValueError(f"DSCP {d} is claimed by both {claimed[d]} and {cls.name}")
                claimed[d] = cls.name
        defaults = [c.name for c in self.classes if c.is_default]
        if len(defaults) != 1:
            raise ValueError(f"exactly one class needs an empty dscp set (the default), got "
                             f"{defaults or 'none'}")

    def __getitem__(self, name: str) -> TrafficClass:
        for cls in self.classes:
            if cls.name == name:
                return cls
        raise KeyError(name)

    def index_of(self, name: str) -> int:
        return [c.name for c in self.classes].index(name)

    @property
    def default_class(self) -> TrafficClass:
        return next(c for c in self.classes if c.is_default)

    def class_for_dscp(self, dscp: int) -> TrafficClass:
        return self.classes[self.class_index_for_dscp(dscp)]

    def class_index_for_dscp(self, dscp: int) -> int:
        check_dscp(dscp)
        for i, cls in enumerate(self.classes):
            if dscp in cls.dscp:
                return i
        return self.classes.index(self.default_class)

    def dscp_class_indices(self) -> tuple[int, ...]:
        """Class index for each DSCP 0..63: the marker's DSCP map, written as is."""
        return tuple(self.class_index_for_dscp(d) for d in range(NUM_DSCP))

    def share_bps(self, name: str) -> int:
        """Rate guaranteed to a class: the link rate for a strict class, otherwise its
        weight's share of the link among the non-strict classes."""
        cls = self[name]
        if cls.strict:
            return self.rate_bps
        total = sum(c.weight for c in self.classes if not c.strict)
        return self.rate_bps * cls.weight // total


def _unique(what: str, values: Iterable[object]) -> None:
    seen: set[object] = set()
    for v in values:
        if v in seen:
            raise ValueError(f"duplicate {what} {v!r}")
        seen.add(v)


def hpcc_ecn_ramp(target_rate_bps: float, mtu_bytes: int) -> EcnRamp:
    """HPCC's ECN ramp for a port of the *target* fabric at `target_rate_bps`, floored so it
    still spans whole packets.

    Rule: Kmin = max(100 KB x rate/25G, 2 MTU); Kmax = max(400 KB x rate/25G, Kmin + 2 MTU);
    Pmax = 0.2. Source: alibaba-edu/High-Precision-Congestion-Control
    simulation/mix/config.txt (Kmin 100 KB, Kmax 400 KB, Pmax 0.2 at 25 Gbit/s) and run.py,
    which scales the thresholds by bw/25G between target rates (100G: 400 KB / 1.6 MB). The
    rate is the target's, never the emulated one: thresholds are bytes, which time dilation
    leaves unchanged (kvfabric/dilation.py). The floors matter only for slow targets.
    """
    scale = target_rate_bps / HPCC_REFERENCE_RATE_BPS
    kmin = max(round(HPCC_KMIN_BYTES * scale), 2 * mtu_bytes)
    kmax = max(round(HPCC_KMAX_BYTES * scale), kmin + 2 * mtu_bytes)
    return EcnRamp(kmin, kmax, HPCC_PMAX)


def default_port_queues(rate_bps: int, mtu_bytes: int = 1500,
                        link_delay_s: float = 1e-6) -> PortQueues:
    """The default three-class port of a target fabric at `rate_bps` (target units, no
    dilation): lossless RoCE, strict CNP, lossy everything else.

    - roce: DSCP 26, priority 3, lossless, weight 3, ECN ramp from `hpcc_ecn_ramp`
      (HPCC defaults scaled by rate/25G, floored at a few MTUs; see there). PFC XOFF at
      2 x Kmax so ECN acts before PFC, XON = XOFF - max(3 KB, 2 MTU) (HPCC resume offset),
      headroom from `pfc_headroom_bytes`; buffer = XOFF + headroom.
    - cnp: DSCP 48, priority 6, strict, 8 MTU of buffer (CNPs are tiny and rare).
    - lossy: every other DSCP, priority 0, weight 1, tail-drop buffer of 2 x Kmax, no ECN.
    The 3:1 weights are a starting point, not a published value.
    """
    if isinstance(mtu_bytes, bool) or not isinstance(mtu_bytes, int) or mtu_bytes < 64:
        raise ValueError(f"mtu_bytes must be an int >= 64, got {mtu_bytes!r}")
    ramp = hpcc_ecn_ramp(rate_bps, mtu_bytes)
    xoff = 2 * ramp.kmax_bytes
    pfc = PfcThresholds(
        xoff_bytes=xoff,
        xon_bytes=xoff - max(HPCC_RESUME_OFFSET_BYTES, 2 * mtu_bytes),
        headroom_bytes=pfc_headroom_bytes(rate_bps, link_delay_s, mtu_bytes),
    )
    dscp = DEFAULT_DSCP_MAP
    return PortQueues(rate_bps=rate_bps, classes=(
        TrafficClass("roce", dscp.lossless_priority, frozenset({dscp.lossless_dscp}),
                     pfc.buffer_needed_bytes,
                     lossless=True, weight=3, ecn=ramp, pfc=pfc),
        TrafficClass("cnp", dscp.cnp_priority, frozenset({dscp.cnp_dscp}), 8 * mtu_bytes,
                     strict=True),
        TrafficClass("lossy", PRIORITY_DEFAULT, frozenset(), 2 * ramp.kmax_bytes, weight=1),
    ))
