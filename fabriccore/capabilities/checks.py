"""What a probe result is (`Check`, its status) and the tables of what is probed: the
required pieces, the qdisc kinds, the tools and Python packages, the TCP algorithms."""

from __future__ import annotations

from dataclasses import dataclass

OK, MISSING, FALLBACK = "OK", "MISSING", "FALLBACK"

#: Without these kvfabric cannot build a fabric at all; everything else has a fallback.
MINIMUM = ("root", "netns", "qdisc.htb", "qdisc.bfifo", "qdisc.clsact", "python")
PY_DEPS_REQUIRED = ("py.pyroute2", "py.scapy", "py.numpy", "py.matplotlib", "py.mininet",
                    "py.openflow")
REQUIRED = frozenset(MINIMUM + PY_DEPS_REQUIRED)

QDISC_KINDS = ("htb", "tbf", "bfifo", "pfifo", "red", "netem", "prio", "clsact")
#: Kernel module behind each qdisc kind (clsact lives in sch_ingress).
_QDISC_MODULE = {"clsact": "sch_ingress"}

#: name -> (version argv, apt package that provides it)
TOOLS: dict[str, tuple[list[str], str]] = {
    "iperf3": (["iperf3", "--version"], "iperf3"),
    "tshark": (["tshark", "--version"], "tshark"),
    "tcpdump": (["tcpdump", "--version"], "tcpdump"),
    "tcpreplay": (["tcpreplay", "--version"], "tcpreplay"),
    "ethtool": (["ethtool", "--version"], "ethtool"),
    "clang": (["clang", "--version"], "clang llvm libbpf-dev"),
    "tc": (["tc", "-V"], "iproute2"),
}
#: check name -> (import name, distribution name) of the Python packages kvfabric imports.
PY_DEPS = {
    "py.pyroute2": ("pyroute2", "pyroute2"),
    "py.scapy": ("scapy", "scapy"),
    "py.numpy": ("numpy", "numpy"),
    "py.matplotlib": ("matplotlib", "matplotlib"),
    "py.mininet": ("mininet", "mininet"),
}
TCP_CCS = ("cubic", "bbr", "dctcp")

#: Detail prefix of a check that could not run; it gets no fallback, since nothing is known.
NOT_PROBED = "not probed"


def qdisc_module(kind: str) -> str:
    return _QDISC_MODULE.get(kind, f"sch_{kind}")


@dataclass(frozen=True)
class Check:
    """One probed capability; `backend` names what kvfabric uses for it (the real thing or a
    stand-in), `fallback` says what a stand-in costs, `fix` how to get the real thing."""

    name: str
    ok: bool
    detail: str
    backend: str | None = None
    fallback: str | None = None
    fix: str | None = None
    required: bool = False

    @property
    def status(self) -> str:
        if self.ok:
            return OK
        return FALLBACK if self.fallback and not self.required else MISSING
