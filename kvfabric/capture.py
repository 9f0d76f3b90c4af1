"""Packet captures of named links (``--capture h1-l1,l1-s1`` or ``all``) into the run folder."""

from __future__ import annotations

import time
from pathlib import Path

from topologies.leafspine import FabricTopo

from .schema import SpecError, SpecIssue

SNAPLEN_BYTES = 256  # headers only: enough for Ethernet/IP/TCP/UDP/BTH/RETH/AETH


def parse_capture(arg: str | None, topo: FabricTopo) -> list[tuple[str, str]]:
    """Validate LINKS against the topology before anything is built."""
    if not arg:
        return []
    links = {frozenset(pair) for pair in topo.links()}
    if arg == "all":
        return [tuple(sorted(pair, key=lambda n: (topo.role(n) != "host", n))) for pair in
                sorted(links, key=sorted)]
    result = []
    for item in arg.split(","):
        a, sep, b = item.strip().partition("-")
        if not sep or frozenset((a, b)) not in links:
            example = "-".join(sorted(next(iter(links))))
            raise SpecError([SpecIssue("--capture", f"{item!r} is not a link of this fabric",
                                       f"name links as NODE-NODE, e.g. {example}, or 'all'")])
        result.append((a, b))
    return result


def start_captures(fabric, links: list[tuple[str, str]], run_dir: Path) -> list[Path]:
    """tcpdump on the first node's end of each link; teardown stops them (SIGTERM flushes)."""
    paths = []
    for a, b in links:
        port = next(p for p in fabric.ports if p.node == a and p.peer_node == b)
        path = run_dir / f"capture-{a}-{b}.pcap"
        argv = ["tcpdump", "-i", port.ifname, "-w", str(path), "-s", str(SNAPLEN_BYTES), "-U",
                "-Z", "root", "-q"]
        fabric.popen_at(port.netns, argv)
        paths.append(path)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not all(p.exists() for p in paths):
        time.sleep(0.05)
    return paths
