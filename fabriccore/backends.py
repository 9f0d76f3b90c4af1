"""The implementation kvfabric uses for each function that has more than one, decided once.

The capability probe (`fabriccore.capabilities.probe_host`) makes the decision from what it
found; the doctor prints it, env.json records it, and the runner hands the same value to the
fabric, which never probes again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

ECN_MARKING = ("red", "ebpf", "none")
OVS_DATAPATHS = ("system", "user", "none")


@dataclass(frozen=True)
class Backends:
    #: red: sch_red marks on the real backlog; ebpf: the clsact virtual-queue marker;
    #: none: this host has neither.
    ecn_marking: str
    #: system: the kernel datapath; user: ovs-vswitchd's netdev datapath; none: no OVS.
    ovs_datapath: str
    #: netem, or none (link delay not emulated).
    delay: str
    #: prio, or htb (strict priority from HTB class prio).
    strict_priority: str

    def __post_init__(self) -> None:
        if self.ecn_marking not in ECN_MARKING:
            raise ValueError(f"ecn_marking must be one of {ECN_MARKING}, "
                             f"got {self.ecn_marking!r}")
        if self.ovs_datapath not in OVS_DATAPATHS:
            raise ValueError(f"ovs_datapath must be one of {OVS_DATAPATHS}, "
                             f"got {self.ovs_datapath!r}")

    @classmethod
    def choose(cls, ok: Mapping[str, bool]) -> Backends:
        """The decision from the probe's results (check name -> passed)."""
        if ok.get("qdisc.red"):
            ecn = "red"
        elif ok.get("cls_bpf"):
            ecn = "ebpf"
        else:
            ecn = "none"
        if not ok.get("ovs"):
            ovs_datapath = "none"
        else:
            ovs_datapath = "system" if ok.get("ovs.datapath") else "user"
        return cls(ecn_marking=ecn, ovs_datapath=ovs_datapath,
                   delay="netem" if ok.get("qdisc.netem") else "none",
                   strict_priority="prio" if ok.get("qdisc.prio") else "htb")

    @property
    def ovs_datapath_type(self) -> str:
        """The bridges' OVSDB datapath_type: ``system``, else ``netdev`` (the userspace
        datapath; without OVS at all, creating the bridges fails and says so)."""
        return datapath_type(self.ovs_datapath)

    def to_dict(self) -> dict[str, str]:
        """The form env.json and ``kvfabric doctor --json`` show."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, str]) -> Backends:
        return cls(**{k: data[k] for k in ("ecn_marking", "ovs_datapath", "delay",
                                           "strict_priority")})


def datapath_type(choice: str) -> str:
    """OVSDB datapath_type of an OVS datapath choice (``system``/``user``/``none``, as the
    probe and the spec's fabric.ovs_datapath name them): ``system``, else ``netdev``."""
    return "system" if choice == "system" else "netdev"
