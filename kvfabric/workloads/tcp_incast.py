"""TCP incast on a fabric: N senders, one aggregator, R synchronized rounds of B-byte blocks."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from typing import Any

from topologies.leafspine import FabricTopo

from ..schema import Field, SpecIssue
from .tcp_incast_analysis import analyse, overlay  # noqa: F401  (the workload interface)

#: The result `kvfabric sweep` plots unless --metric says otherwise (the incast collapse curve).
DEFAULT_METRIC = "goodput_mean_bps"

FIELDS = [
    Field("senders", "int", 7, "number of senders (hosts other than the receiver)",
          minimum=1, maximum=1024),
    Field("receiver", "str", "h1", "the aggregating host"),
    Field("block_size", "size", "256KiB", "bytes each sender sends per round",
          minimum=1, maximum=1 << 30),
    Field("rounds", "int", 20, "synchronized rounds", minimum=1, maximum=100_000),
    Field("port", "int", 5001, "TCP port of the senders", minimum=1024, maximum=65535),
    Field("round_timeout", "duration", "10s", "give up a round after this long",
          minimum=0.01, maximum=600),
    Field("gap", "duration", "0s", "idle time between rounds", minimum=0, maximum=60),
    Field("rto_min", "duration", None, "TCP minimum retransmission timeout on every route of "
          "the senders and the receiver (ip route ... rto_min; unset: Linux's 200 ms); "
          "rounded to whole ms", minimum=0.001, maximum=10),
]


def check(workload: dict[str, Any], topo: FabricTopo, issues: list[SpecIssue]) -> None:
    hosts = topo.host_names()
    if workload["receiver"] not in hosts:
        issues.append(SpecIssue("workload.receiver", f"no host {workload['receiver']!r} in "
                                f"this fabric", f"use one of h1..h{len(hosts)}"))
        return
    if workload["senders"] > len(hosts) - 1:
        issues.append(SpecIssue("workload.senders", f"{workload['senders']} senders but the "
                                f"fabric has only {len(hosts) - 1} hosts besides the receiver",
                                f"set workload.senders to at most {len(hosts) - 1}, or add "
                                "hosts (fabric.leaves / fabric.hosts_per_leaf)"))


def choose_senders(topo: FabricTopo, receiver: str, count: int, seed: int) -> list[str]:
    """Senders drawn with the run's seed from every host but the receiver."""
    candidates = [h for h in topo.host_names() if h != receiver]
    chosen = random.Random(seed).sample(candidates, count)
    return sorted(chosen, key=lambda h: int(h[1:]))


def run(ctx) -> None:
    spec, fabric, workload = ctx.spec, ctx.fabric, ctx.spec.workload
    senders = choose_senders(fabric.topo, workload["receiver"], workload["senders"],
                             spec.experiment["seed"])
    ctx.record("senders", senders)
    if workload.get("rto_min") is not None:
        for host in [workload["receiver"], *senders]:
            set_rto_min(fabric, host, workload["rto_min"])
        ctx.record("rto_min_ms", _rto_ms(workload["rto_min"]))
    python = sys.executable
    for sender in senders:
        fabric.popen(sender, [python, "-m", "traffic.tcp_incast", "serve",
                              "--port", str(workload["port"])])
    argv = [python, "-m", "traffic.tcp_incast", "fetch",
            "--block-bytes", str(workload["block_size"]), "--rounds", str(workload["rounds"]),
            "--out", str(ctx.run_dir / "flows.csv"),
            "--round-timeout-s", str(workload["round_timeout"]),
            "--gap-s", str(workload["gap"])]
    for sender in senders:
        argv += ["--server", f"{sender}={fabric.host_ips[sender]}:{workload['port']}"]
    client = fabric.popen(workload["receiver"], argv, stdout=subprocess.PIPE,
                          text=True)
    started = time.monotonic()
    for line in client.stdout:
        progress = json.loads(line)
        ctx.progress.update(
            f"round {progress['round']}/{progress['rounds']}",
            f"goodput {progress['goodput_bps'] / 1e6:.1f} Mbit/s, "
            f"round {progress['round_s'] * 1e3:.0f} ms")
    code = client.wait()
    ctx.record("workload_s", time.monotonic() - started)
    if code != 0:
        raise RuntimeError(f"incast aggregator on {workload['receiver']} exited with {code}; "
                           "see flows.csv for the rounds that completed")


def _rto_ms(seconds: float) -> int:
    return max(1, int(round(seconds * 1e3)))


def route_change_argvs(routes: list[dict[str, Any]], rto_min_s: float,
                       quickack: bool = False) -> list[list[str]]:
    """`ip route change` argv lists that add rto_min (and with ``quickack`` no delayed ACKs)
    to each route of `ip -j route show`."""
    argvs = []
    for route in routes:
        argv = ["ip", "route", "change", str(route["dst"])]
        for key, word in (("gateway", "via"), ("dev", "dev"), ("protocol", "proto"),
                          ("scope", "scope"), ("prefsrc", "src")):
            if route.get(key):
                argv += [word, str(route[key])]
        argvs.append(argv + ["rto_min", f"{_rto_ms(rto_min_s)}ms"]
                     + (["quickack", "1"] if quickack else []))
    return argvs


def set_rto_min(fabric, host: str, rto_min_s: float, quickack: bool = False) -> None:
    """Lower (or raise) TCP's minimum RTO for every route of host: the knob Vasudevan et al.
    turn to cure incast. Linux's timer granularity (a jiffy) still bounds it from below."""
    shown = fabric.run(host, ["ip", "-j", "route", "show"])
    for argv in route_change_argvs(json.loads(shown.stdout or "[]"), rto_min_s, quickack):
        fabric.run(host, argv)
