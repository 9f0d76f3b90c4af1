"""Per-port egress queues: typed specs, the ECN/PFC models they drive, PFC frames on the wire
and the eBPF ECN marker used where the kernel has no `red` qdisc."""

from topologies.queues.spec import (
    DEFAULT_DSCP_TO_PRIORITY,
    EcnRamp,
    PfcThresholds,
    PortQueues,
    TrafficClass,
    default_port_queues,
)
from wire.ecn import ECN_CE, ECN_ECT0, ECN_ECT1, ECN_NOT_ECT

__all__ = [
    "DEFAULT_DSCP_TO_PRIORITY",
    "ECN_CE",
    "ECN_ECT0",
    "ECN_ECT1",
    "ECN_NOT_ECT",
    "EcnRamp",
    "PfcThresholds",
    "PortQueues",
    "TrafficClass",
    "default_port_queues",
]
