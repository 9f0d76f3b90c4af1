"""Fabric-wide queue settings, and the `PortQueues` each port gets from them.

One `QueueSettings` (from the spec's [queues] section, in emulated units) describes every port;
`for_port` turns it into the classes of one port at that port's emulated rate. Derived byte
thresholds come from the port's *target* rate (emulated rate x `dilation`: HPCC's ramp at that
rate, see `spec.hpcc_ecn_ramp`), because time dilation leaves bytes unchanged; the headroom
(rate x (reaction time + the link's round trip)) is the same in either units. Zero means
"derive it" for every threshold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from wire.dscp import CNP, DEFAULT_DSCP_MAP, LOSSLESS, LOSSY, PRIORITY_DEFAULT, DscpMap
from wire.frames import frame_bytes

from .spec import (
    HPCC_PMAX,
    HPCC_RESUME_OFFSET_BYTES,
    EcnRamp,
    PfcThresholds,
    PortQueues,
    TrafficClass,
    hpcc_ecn_ramp,
)

#: A host NIC's lossless queue: large, so a paused NIC holds what the application wrote and
#: the socket's send buffer, not a drop, pushes back on the application (as a real NIC's
#: descriptor rings do).
HOST_LOSSLESS_BUFFER_BYTES = 4 << 20

#: Time from a queue crossing XOFF to the upstream transmitter stopping, which the headroom
#: must absorb: the queue agent's poll interval, a netlink TBF change, and one frame at each
#: end. The agent's sweep takes about 1 ms on our 2-core VM (median), 3 ms at p90 and
#: 13 ms at p99 while 8 senders flood the fabric, with stalls up to 50 ms; 50 ms covers them (see
#: the agent.json of each run for the sweep periods measured there).
DEFAULT_PFC_REACTION_S = 0.05  # wall-clock: the agent runs in real time whatever the dilation
#: The queue agent sweeps every 2 us of target time (x D emulated), but not more often than it
#: can without taking the traffic's CPU (0.5 ms a sweep, 1 ms over OVS's single dump) and not
#: less often than every 5 ms: at D = 250 every 0.5 ms, at D = 1000 every 2 ms.
AGENT_SWEEP_TARGET_S = 2e-6
AGENT_SWEEP_MAX_S = 5e-3

__all__ = ["CNP", "LOSSLESS", "LOSSY", "QueueSettings"]


@dataclass(frozen=True)
class QueueSettings:
    enabled: bool = True
    dilation: float = 1.0        # target rate of a port = its emulated rate x dilation
    pfc: bool = True
    ecn: bool = True
    lossy_ecn: bool = False
    lossless_dscp: int = DEFAULT_DSCP_MAP.lossless_dscp
    cnp_dscp: int = DEFAULT_DSCP_MAP.cnp_dscp
    lossless_priority: int = DEFAULT_DSCP_MAP.lossless_priority
    cnp_priority: int = DEFAULT_DSCP_MAP.cnp_priority
    kmin_bytes: int = 0          # 0: HPCC's ramp at the port's target rate
    kmax_bytes: int = 0
    pmax: float = HPCC_PMAX
    xoff_bytes: int = 0          # 0: 2 x Kmax
    xon_bytes: int = 0           # 0: XOFF - max(3 KB, 2 MTU)
    headroom_bytes: int = 0      # 0: ingress ports x rate x (reaction + 2 x link delay) + 2 MTU
    lossless_buffer_bytes: int = 0  # 0: XOFF + headroom
    lossy_buffer_bytes: int = 64 * 1024
    lossless_weight: int = 3
    lossy_weight: int = 1
    pfc_reaction_s: float = 0.0  # 0: DEFAULT_PFC_REACTION_S
    #: Propagation delay of one link (emulated seconds: the target's x dilation). The bytes a
    #: link holds in flight each way are in the headroom; the emulated links add no delay, so
    #: 0 (a fabric built without a spec) sizes for the reaction alone.
    link_delay_s: float = 0.0
    telemetry: bool = True

    @property
    def dscp_map(self) -> DscpMap:
        """The DSCP/priority map these classes classify by, which every generator marks by."""
        return DscpMap(self.lossless_dscp, self.cnp_dscp, self.lossless_priority,
                       self.cnp_priority)

    def ramp(self, rate_bps: int, mtu: int) -> EcnRamp:
        auto = hpcc_ecn_ramp(rate_bps * self.dilation, mtu)
        kmin = self.kmin_bytes or auto.kmin_bytes
        kmax = self.kmax_bytes or max(auto.kmax_bytes, kmin)
        return EcnRamp(kmin, kmax, self.pmax)

    def agent_sweep_s(self, fastest_s: float) -> float:
        """The queue agent's sweep period, emulated seconds (``fastest_s``: the backend's)."""
        return min(max(AGENT_SWEEP_TARGET_S * self.dilation, fastest_s), AGENT_SWEEP_MAX_S)

    @property
    def reaction_s(self) -> float:
        """XOFF-to-stop time the headroom covers, emulated (wall-clock) seconds."""
        return self.pfc_reaction_s or DEFAULT_PFC_REACTION_S

    def headroom(self, rate_bps: int, mtu: int, ingress_ports: int) -> int:
        """Bytes above XOFF: each ingress link keeps sending for the reaction time (XOFF to
        the PAUSE leaving) plus the link's round trip (the PAUSE reaching the peer, then the
        bytes already on the wire arriving), plus a frame at each end. Rate x time is the
        same in target and emulated units."""
        if self.headroom_bytes:
            return self.headroom_bytes
        in_flight = ingress_ports * rate_bps / 8 * (self.reaction_s + 2 * self.link_delay_s)
        return math.ceil(in_flight) + 2 * frame_bytes(mtu)

    def pfc_thresholds(self, rate_bps: int, mtu: int, ingress_ports: int) -> PfcThresholds:
        xoff = self.xoff_bytes or 2 * self.ramp(rate_bps, mtu).kmax_bytes
        xon = self.xon_bytes or max(0, xoff - max(HPCC_RESUME_OFFSET_BYTES, 2 * mtu))
        return PfcThresholds(xoff, xon, self.headroom(rate_bps, mtu, ingress_ports))

    def for_port(self, rate_bps: int, mtu: int, *, host: bool, ingress_ports: int = 1,
                 host_queue_bytes: int = 0) -> PortQueues:
        """Classes of one egress port. Host NICs get the same classes without ECN marking
        (a NIC does not mark its own queue) and without PFC thresholds (a host forwards
        nothing, so it never sends PAUSE), but can be paused."""
        ramp = self.ramp(rate_bps, mtu)
        lossless_ecn = ramp if self.ecn and not host else None
        lossy_ecn = ramp if self.ecn and self.lossy_ecn and not host else None
        pfc = None
        if host:
            lossless_buffer = max(HOST_LOSSLESS_BUFFER_BYTES, self.lossless_buffer_bytes)
            lossy_buffer = host_queue_bytes or self.lossy_buffer_bytes
        else:
            thresholds = self.pfc_thresholds(rate_bps, mtu, ingress_ports)
            lossless_buffer = self.lossless_buffer_bytes or thresholds.buffer_needed_bytes
            pfc = thresholds if self.pfc else None
            lossy_buffer = self.lossy_buffer_bytes
        return PortQueues(rate_bps=rate_bps, classes=(
            TrafficClass(LOSSLESS, self.lossless_priority, frozenset({self.lossless_dscp}),
                         lossless_buffer, lossless=True, weight=self.lossless_weight,
                         ecn=lossless_ecn, pfc=pfc),
            TrafficClass(CNP, self.cnp_priority, frozenset({self.cnp_dscp}), 16 * frame_bytes(mtu),
                         strict=True),
            TrafficClass(LOSSY, PRIORITY_DEFAULT, frozenset(), lossy_buffer,
                         weight=self.lossy_weight, ecn=lossy_ecn),
        ))

    def check(self) -> list[tuple[str, str]]:
        """(field, problem and fix) for settings that cannot work together."""
        problems = self.dscp_map.problems()
        if self.kmin_bytes and self.kmax_bytes and self.kmin_bytes > self.kmax_bytes:
            problems.append(("kmin", f"Kmin ({self.kmin_bytes} B) is above Kmax "
                             f"({self.kmax_bytes} B); lower kmin or raise kmax"))
        if self.xoff_bytes and self.xon_bytes and self.xon_bytes >= self.xoff_bytes:
            problems.append(("xon", f"XON ({self.xon_bytes} B) must be below XOFF "
                             f"({self.xoff_bytes} B); lower xon"))
        return problems
