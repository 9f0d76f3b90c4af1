"""How big a fabric this host can build in reasonable time and memory, from measured costs.

Every node is a network namespace with veths and qdiscs, brought up mostly serially over
netlink, and every host runs a traffic endpoint process. The costs per node below were
measured on the 2-vCPU, 24 GiB development VM (2026-12-01); a fabric whose estimate exceeds
the limits is refused at validation (``kvfabric run --force`` builds it anyway). The estimate
is a lower bound: routes and OpenFlow rules grow with hosts x switches.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

#: Bring-up seconds per node, l3 mode with the traffic classes, an eBPF marker on every port
#: and the queue agent (a run's default), from `bench/bringup.py --scale` on a 2-vCPU VM:
#: 22 nodes 1.89 s, 76 nodes 7.41 s, 148 nodes 14.32 s in one run (0.086-0.098 s a node),
#: 1.82 / 5.10 / 9.61 s as medians of three; rounded up. (Before namespaces, veths and
#: sockets were set up in-process: 0.27 s.)
BRINGUP_S_PER_NODE = 0.10
#: Cores of the host BRINGUP_S_PER_NODE was measured on. Bring-up is mostly serial netlink
#: work: more cores do not make it faster, fewer make it slower.
MEASURED_CORES = 2
#: Memory per node: a traffic endpoint process is 12.7 MB resident (VmRSS of
#: `python -c "import traffic.tcp_incast"`), rounded up to 16 MiB to cover the namespace's
#: veths, qdiscs and routes (not measured on their own).
MEMORY_BYTES_PER_NODE = 16 << 20
#: Longest bring-up accepted without --force.
MAX_BRINGUP_S = 300.0
#: Share of the host's available memory a fabric may take without --force.
MEMORY_SHARE = 0.5


@dataclass(frozen=True)
class Host:
    cores: int
    available_bytes: int

    @classmethod
    def this_one(cls) -> Host:
        return cls(cores=len(os.sched_getaffinity(0)), available_bytes=_available_memory())


def _available_memory(meminfo: Path = Path("/proc/meminfo")) -> int:
    for line in meminfo.read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


@dataclass(frozen=True)
class Estimate:
    nodes: int
    bringup_s: float
    memory_bytes: int
    host: Host

    @property
    def too_slow(self) -> bool:
        return self.bringup_s > MAX_BRINGUP_S

    @property
    def too_big(self) -> bool:
        return self.memory_bytes > MEMORY_SHARE * self.host.available_bytes

    @property
    def max_nodes(self) -> int:
        """The largest fabric within both limits on this host."""
        by_time = MAX_BRINGUP_S / seconds_per_node(self.host)
        by_memory = MEMORY_SHARE * self.host.available_bytes / MEMORY_BYTES_PER_NODE
        return max(0, math.floor(min(by_time, by_memory)))


def seconds_per_node(host: Host) -> float:
    return BRINGUP_S_PER_NODE * MEASURED_CORES / min(max(host.cores, 1), MEASURED_CORES)


def estimate(nodes: int, host: Host | None = None) -> Estimate:
    host = host or Host.this_one()
    return Estimate(nodes, nodes * seconds_per_node(host), nodes * MEMORY_BYTES_PER_NODE, host)


def problem(found: Estimate) -> str | None:
    """Why the fabric is too large for this host (None: it is not)."""
    if not (found.too_slow or found.too_big):
        return None
    over = [f"{MAX_BRINGUP_S:g} s of bring-up" if found.too_slow else "",
            "half the available memory" if found.too_big else ""]
    return (f"{found.nodes} nodes would take about {found.bringup_s:.0f} s to bring up and "
            f"{found.memory_bytes / 2**30:.1f} GiB of memory on this host ({found.host.cores} "
            f"cores, {found.host.available_bytes / 2**30:.1f} GiB available): over "
            f"{' and '.join(o for o in over if o)}")
