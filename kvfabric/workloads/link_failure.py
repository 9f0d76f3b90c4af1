"""Link failure and recovery: UDP streams cross the fabric while one switch-to-switch link is
taken down (``ip link set <veth> down`` on one end) and, optionally, brought back.

Senders are the hosts of leaf l1, receivers the hosts of l2 (pairwise); each sender runs
``flows`` streams (distinct source ports, so ECMP spreads them) of one packet every
``interval``. A stream whose path crossed the failed link shows a gap in its arrivals: the
outage, from the failure to the first packet on the new path. Failing the far end of a link
(``link = "s1-l2"`` downs s1's port towards l2) makes recovery depend on the controller: l1's
own uplinks stay up, so only a route update at l1 stops it sending into s1.

``link = "auto"`` fails the far end of the spine link towards the receivers' leaf that carries
the most of the streams' packets just before the failure (which spine a stream takes is up to
the switches' hashing), so that the failure always cuts streams.

Raw files: arrivals-<receiver>.csv, link_events.csv (failure/restore wall-clock times).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from fabriccore.commands import run as run_cmd
from topologies.leafspine import FabricTopo
from topologies.openflow import port_name
from topologies.paths import switch_port

from .. import results
from ..schema import Field, SpecIssue
from .ecmp_collision import pairs
from .link_failure_analysis import analyse  # noqa: F401  (part of the workload interface)

#: Fixed source ports (stream i of all senders: SPORT_BASE + i): the same five-tuples, hence
#: the same ECMP paths, in every run of a spec.
SPORT_BASE = 40000

FIELDS = [
    Field("link", "str", "auto", "the link to fail, NODE-PEER: NODE's port towards PEER "
          "goes down; auto: the spine link into the receivers' leaf that the streams use"),
    Field("flows", "int", 4, "UDP streams per sender", minimum=1, maximum=64),
    Field("interval", "duration", "1ms", "packet spacing within a stream", minimum=1e-4,
          maximum=1),
    Field("duration", "duration", "6s", "how long the streams run", minimum=1, maximum=600),
    Field("fail_at", "duration", "2s", "when the link goes down", minimum=0.1, maximum=600),
    Field("restore_at", "duration", "4s", "when it comes back up (0: never)", minimum=0,
          maximum=600),
    Field("pairs", "int", 2, "sender/receiver pairs (l1 hosts -> l2 hosts)", minimum=1,
          maximum=64),
    Field("port", "int", 6000, "UDP port of the receivers", minimum=1024, maximum=65535),
]


def parse_link(text: str) -> tuple[str, str]:
    node, _, peer = text.partition("-")
    return node, peer


def check(workload: dict[str, Any], topo: FabricTopo, issues: list[SpecIssue]) -> None:
    if workload["link"] == "auto":
        if RECEIVER_LEAF not in topo.routers() or not _spines_of(topo, RECEIVER_LEAF):
            issues.append(SpecIssue("workload.link", "auto needs a leaf-spine fabric with "
                                    f"spines above {RECEIVER_LEAF}", 'name a link such '
                                    'as "s1-l2"'))
    else:
        _check_named_link(workload, topo, issues)
    _check_times(workload, issues)


def _check_named_link(workload: dict[str, Any], topo: FabricTopo,
                      issues: list[SpecIssue]) -> None:
    node, peer = parse_link(workload["link"])
    routers = topo.routers()
    if node not in routers or peer not in routers or peer not in topo.neighbors(node):
        issues.append(SpecIssue("workload.link", f"{workload['link']!r} is not a link "
                                "between two switches", 'name one such as "s1-l2", or auto'))


def _check_times(workload: dict[str, Any], issues: list[SpecIssue]) -> None:
    if workload["fail_at"] >= workload["duration"]:
        issues.append(SpecIssue("workload.fail_at", "the failure must happen while the "
                                "streams run", "set fail_at below workload.duration"))
    if workload["restore_at"] and not (workload["fail_at"] < workload["restore_at"]
                                       < workload["duration"]):
        issues.append(SpecIssue("workload.restore_at", "must fall between fail_at and "
                                "duration", "set restore_at in that range, or 0"))


def link_iface(fabric, node: str, peer: str) -> str:
    return port_name(f"{node}-eth{switch_port(fabric.topo, node, peer)}")


#: The receivers' leaf (pairs() sends from l1's hosts to l2's).
RECEIVER_LEAF = "l2"
#: How long the candidate links' transmit counters are compared before an auto failure.
AUTO_SAMPLE_S = 0.3


def _spines_of(topo: FabricTopo, leaf: str) -> list[str]:
    return sorted(n for n in topo.neighbors(leaf) if n in topo.routers()
                  and topo.role(n) == "spine")


def _tx_packets(iface: str) -> int:
    return int(Path(f"/sys/class/net/{iface}/statistics/tx_packets").read_text())


def busiest_spine_link(fabric, sample_s: float) -> tuple[str, str]:
    """The spine -> receivers' leaf link that sent the most packets over sample_s."""
    links = [(spine, RECEIVER_LEAF) for spine in _spines_of(fabric.topo, RECEIVER_LEAF)]
    before = {link: _tx_packets(link_iface(fabric, *link)) for link in links}
    time.sleep(sample_s)
    sent = {link: _tx_packets(link_iface(fabric, *link)) - before[link] for link in links}
    return max(links, key=lambda link: (sent[link], link[0]))


def run(ctx) -> None:
    fabric, workload = ctx.fabric, ctx.spec.workload
    python = sys.executable
    auto = workload["link"] == "auto"
    chosen = pairs(fabric.topo, workload["pairs"])
    receivers = []
    for _, receiver in chosen:
        receivers.append(fabric.popen(receiver, [
            python, "-m", "traffic.udp_stream", "recv", "--port", str(workload["port"]),
            "--duration-s", str(workload["duration"] + 1.5),
            "--out", str(ctx.run_dir / f"arrivals-{receiver}.csv")]))
    time.sleep(0.5)
    senders = [fabric.popen(sender, [
        python, "-m", "traffic.udp_stream", "send", "--dst", fabric.host_ips[receiver],
        "--port", str(workload["port"]), "--flows", str(workload["flows"]),
        "--interval-s", str(workload["interval"]), "--duration-s", str(workload["duration"]),
        "--sport-base", str(SPORT_BASE + i * workload["flows"])])
        for i, (sender, receiver) in enumerate(chosen)]
    start = time.time()
    ctx.progress.update("streams running", f"{workload['link']} fails at "
                        f"{workload['fail_at']:g} s")
    if auto:
        time.sleep(max(0.0, workload["fail_at"] - AUTO_SAMPLE_S))
        node, peer = busiest_spine_link(fabric, min(AUTO_SAMPLE_S, workload["fail_at"]))
    else:
        time.sleep(workload["fail_at"])
        node, peer = parse_link(workload["link"])
    iface = link_iface(fabric, node, peer)
    events = [{"event": "start", "t": start, "iface": iface, "link": f"{node}-{peer}"}]
    run_cmd(["ip", "link", "set", iface, "down"])
    events.append({"event": "down", "t": time.time(), "iface": iface, "link": ""})
    if workload["restore_at"]:
        time.sleep(workload["restore_at"] - workload["fail_at"])
        run_cmd(["ip", "link", "set", iface, "up"])
        events.append({"event": "up", "t": time.time(), "iface": iface, "link": ""})
    results.write_csv(ctx.run_dir / "link_events.csv", events)
    for proc in senders + receivers:
        proc.wait(timeout=workload["duration"] + 30)
