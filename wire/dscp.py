"""The DSCP/priority map: the DSCP each kind of traffic is sent with, and the traffic class
and 802.1p priority a DSCP lands in.

One definition for the classifier of every port (`topologies.queues`) and for every generator
that marks traffic (`traffic/`): RoCEv2 data and its ACKs/NAKs are sent with the lossless
DSCP (a RoCE NIC answers in the QP's own traffic class), CNPs with the CNP DSCP (NVIDIA NIC
defaults ``cnp_dscp`` 48, ``cnp_802p_prio`` 6; see shared/REFERENCES.md), and every other
DSCP is lossy, priority 0. The spec's ``[queues]`` section may move any of them
(`kvfabric.resolved_spec.Spec.dscp_map`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from types import MappingProxyType

NUM_DSCP = 64
NUM_PRIORITIES = 8

#: Names of the three traffic classes of a port.
LOSSLESS = "lossless"
CNP = "cnp"
LOSSY = "lossy"

#: 802.1p priority of the lossy class: every DSCP the map does not name.
PRIORITY_DEFAULT = 0


def check_dscp(dscp: int) -> int:
    """`dscp` if it is an int in 0..63, else ValueError."""
    if isinstance(dscp, bool) or not isinstance(dscp, int) or not 0 <= dscp < NUM_DSCP:
        raise ValueError(f"DSCP must be an int in 0..63, got {dscp!r}")
    return dscp


@dataclass(frozen=True)
class DscpMap:
    """Which DSCP and priority the lossless (RoCEv2) and CNP classes use; everything else
    is lossy at `PRIORITY_DEFAULT`."""

    lossless_dscp: int = 26
    cnp_dscp: int = 48
    lossless_priority: int = 3
    cnp_priority: int = 6

    def __post_init__(self) -> None:
        check_dscp(self.lossless_dscp)
        check_dscp(self.cnp_dscp)
        for name in ("lossless_priority", "cnp_priority"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) \
                    or not 0 <= value < NUM_PRIORITIES:
                raise ValueError(f"{name} must be an int in 0..7, got {value!r}")

    @classmethod
    def from_fields(cls, values: Mapping[str, object]) -> DscpMap:
        """The map of a dict holding (some of) this class's field names, e.g. a spec's
        ``[queues]``; missing fields take the defaults."""
        return cls(**{f.name: values[f.name] for f in fields(cls) if f.name in values})

    def class_for(self, dscp: int) -> str:
        """`LOSSLESS`, `CNP` or `LOSSY`: the class a packet with this DSCP lands in."""
        check_dscp(dscp)
        if dscp == self.lossless_dscp:
            return LOSSLESS
        if dscp == self.cnp_dscp:
            return CNP
        return LOSSY

    def priority_for(self, dscp: int) -> int:
        """The 802.1p priority of a packet with this DSCP."""
        return {LOSSLESS: self.lossless_priority, CNP: self.cnp_priority,
                LOSSY: PRIORITY_DEFAULT}[self.class_for(dscp)]

    @property
    def dscp_to_priority(self) -> Mapping[int, int]:
        """The DSCPs the map names, each with its priority (the rest: `PRIORITY_DEFAULT`)."""
        return MappingProxyType({self.lossless_dscp: self.lossless_priority,
                                 self.cnp_dscp: self.cnp_priority})

    def problems(self) -> list[tuple[str, str]]:
        """(field, problem and fix) where the classes would not be told apart."""
        out = []
        if self.lossless_dscp == self.cnp_dscp:
            out.append(("cnp_dscp", f"equals lossless_dscp ({self.lossless_dscp}); give "
                        "CNPs their own DSCP (48 is the common choice)"))
        if len({self.lossless_priority, self.cnp_priority, PRIORITY_DEFAULT}) != 3:
            out.append(("cnp_priority", "lossless, CNP and lossy (0) classes need three "
                        "different priorities (defaults 3 and 6)"))
        return out


#: RoCEv2 data (DSCP 26) to lossless priority 3, CNP (DSCP 48) to strict priority 6.
DEFAULT_DSCP_MAP = DscpMap()
