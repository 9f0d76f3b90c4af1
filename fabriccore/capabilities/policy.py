"""Pure policy, unit-tested with fabricated checks: what stands in for each missing piece,
what the stand-in costs, how to get the real thing, and which backends follow."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from ..backends import Backends
from .checks import NOT_PROBED, PY_DEPS, QDISC_KINDS, REQUIRED, TCP_CCS, TOOLS, Check, qdisc_module

ECN_EBPF_FALLBACK = (
    "ECN marking by an eBPF virtual-queue marker at clsact egress: marks on the same "
    "Kmin/Kmax/Pmax ramp but against a virtual queue drained at the class rate, not the "
    "qdisc's real backlog")
OVS_USER_FALLBACK = (
    "OVS datapath=user (ovs-vswitchd netdev): lower throughput, tx checksum offload must be "
    "off on veths")

#: check name -> (kernel module, Kconfig symbol) for pieces a kernel module provides.
_KERNEL_MODULES: dict[str, tuple[str, str]] = {
    **{f"qdisc.{k}": (qdisc_module(k), f"CONFIG_NET_SCH_{qdisc_module(k)[4:].upper()}")
       for k in QDISC_KINDS},
    "cls_bpf": ("cls_bpf", "CONFIG_NET_CLS_BPF"),
    "ovs.datapath": ("openvswitch", "CONFIG_OPENVSWITCH"),
    **{f"tcp.{cc}": (f"tcp_{cc}", f"CONFIG_TCP_CONG_{cc.upper()}") for cc in TCP_CCS},
}

FIXES: dict[str, str] = {
    "root": "run as root: sudo .venv/bin/kvfabric doctor",
    "netns": "needs CONFIG_NET_NS and CAP_SYS_ADMIN (in a container: run it --privileged)",
    "bpf_jit": "sysctl -w net.core.bpf_jit_enable=1",
    "bpffs": "mount -t bpf bpf /sys/fs/bpf",
    "ovs": "apt install openvswitch-switch && systemctl start openvswitch-switch",
    "mnexec": "apt install mininet",
    "python": "use Python >= 3.10",
    "py.openflow": ".venv/bin/pip install os-ken",
    **{f"tool.{name}": f"apt install {pkg}" for name, (_, pkg) in TOOLS.items()},
    **{name: f".venv/bin/pip install {dist}" for name, (_, dist) in PY_DEPS.items()},
}


def fix_for(name: str, modules_loadable: bool = True) -> str | None:
    """How to get the real `name`; for kernel pieces, modprobe only where modules can load."""
    if name not in _KERNEL_MODULES:
        return FIXES.get(name)
    module, kconfig = _KERNEL_MODULES[name]
    if modules_loadable:
        return f"modprobe {module} ({kconfig}; a module in stock distro kernels)"
    return f"boot a kernel built with {kconfig}=y (this kernel cannot load modules)"


def _fallback(name: str, ok: Mapping[str, bool]) -> tuple[str | None, str | None]:
    """(backend, fidelity cost) that stands in for the missing `name`; (None, None) if nothing
    does. `ok` maps every check name to its result, because some stand-ins need other checks."""
    if name == "qdisc.red":
        return ("ebpf", ECN_EBPF_FALLBACK) if ok.get("cls_bpf") else (None, None)
    if name == "cls_bpf":
        # The eBPF marker is only needed when sch_red is missing.
        if ok.get("qdisc.red"):
            return "red", "ECN marking by sch_red on the real backlog; no eBPF programs"
        return None, None
    if name == "qdisc.netem":
        return "none", "link delay not emulated; propagation delay is the veth's (~µs)"
    if name == "qdisc.prio":
        return "htb", ("strict priority from HTB class prio: a higher class is served first only "
                       "for bandwidth beyond each class's guaranteed rate")
    if name == "qdisc.tbf":
        return "htb", "shaping by a single HTB class (rate = ceil) instead of a token bucket"
    if name == "qdisc.pfifo":
        return "bfifo", "queue limits counted in bytes (bfifo), not packets"
    if name == "bpf_jit":
        return "interpreter", "BPF programs run in the interpreter: more CPU per marked packet"
    if name == "ovs.datapath":
        return ("user", OVS_USER_FALLBACK) if ok.get("ovs") else (None, None)
    if name.startswith("tcp."):
        others = [cc for cc in TCP_CCS if ok.get(f"tcp.{cc}") and f"tcp.{cc}" != name]
        if others:
            return None, f"TCP baselines use {'/'.join(others)} only"
    return None, None


def _not_probed(check: Check) -> bool:
    return check.detail.startswith(NOT_PROBED)


def annotate(checks: list[Check], modules_loadable: bool = True) -> list[Check]:
    """Mark required checks and fill in fallback and fix for every failed one."""
    ok = {c.name: c.ok for c in checks}
    annotated = []
    for check in checks:
        check = replace(check, required=check.name in REQUIRED)
        if not check.ok:
            backend, cost = (None, None) if _not_probed(check) else _fallback(check.name, ok)
            check = replace(check, backend=check.backend or backend,
                            fallback=check.fallback or cost,
                            fix=check.fix or fix_for(check.name, modules_loadable))
        annotated.append(check)
    return annotated



def choose_backends(checks: list[Check]) -> Backends:
    """The implementation kvfabric will use for each function that has more than one."""
    return Backends.choose({c.name: c.ok for c in checks})
