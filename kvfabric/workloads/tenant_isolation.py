"""Tenant isolation: a reachability matrix, then tenant B's throughput under tenant A's incast.

1. Every host runs a probe server (TCP, UDP, UDP 4791 and a raw sniffer counting every IPv4
   frame that arrives, by source); every host probes every other with ICMP, TCP, UDP and UDP
   4791. reachability.csv holds one row per ordered pair: what answered, and how many frames
   from the source reached the destination at all.
2. B's flow (``victim`` -> ``victim_receiver``, iperf3) runs alone, then while A's
   ``incast_senders`` all send to ``incast_receiver``. With fabric.tenant_meters each tenant
   is policed at every leaf to its share of the uplinks, so A's incast cannot crowd B out of
   the shared leaf-spine links.

Raw files: reachability.csv, sniffed-<host>.csv, iperf-*.json, throughput.csv.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

from topologies.leafspine import FabricTopo

from .. import results
from ..schema import Field, SpecIssue
from .tenant_isolation_analysis import analyse  # noqa: F401  (part of the workload interface)

FIELDS = [
    Field("incast_senders", "str", "h1,h2,h3", "tenant A's senders, comma-separated"),
    Field("incast_receiver", "str", "h5", "tenant A's receiver"),
    Field("victim", "str", "h4", "tenant B's sender"),
    Field("victim_receiver", "str", "h6", "tenant B's receiver"),
    Field("incast_streams", "int", 4, "parallel TCP streams per incast sender (iperf3 -P)",
          minimum=1, maximum=64),
    Field("duration", "duration", "5s", "length of each throughput phase", minimum=1,
          maximum=600),
    Field("probe_timeout", "duration", "300ms", "wait for a probe's answer", minimum=0.05,
          maximum=10),
]


def _hosts(text: str) -> list[str]:
    return [h.strip() for h in text.split(",") if h.strip()]


def check(workload: dict[str, Any], topo: FabricTopo, issues: list[SpecIssue]) -> None:
    hosts = set(topo.host_names())
    for key in ("incast_senders", "incast_receiver", "victim", "victim_receiver"):
        for host in _hosts(workload[key]):
            if host not in hosts:
                issues.append(SpecIssue(f"workload.{key}", f"no host {host!r} in this fabric",
                                        f"use hosts h1..h{len(hosts)}"))


def _iface(fabric, host: str) -> str:
    return next(end.ifname for plan in fabric.plans for end in (plan.a, plan.b)
                if end.node == host)


def run(ctx) -> None:
    fabric, workload = ctx.fabric, ctx.spec.workload
    hosts = fabric.hosts()
    python = sys.executable
    probe_s = workload["probe_timeout"] * 4 * (len(hosts) - 1) + 5
    ctx.progress.update("reachability", f"{len(hosts)} hosts, 4 probes per pair")
    servers = [fabric.popen(h, [python, "-m", "traffic.reach_probe", "serve", "--iface",
                                _iface(fabric, h), "--duration-s", f"{probe_s + 2:g}",
                                "--out", str(ctx.run_dir / f"sniffed-{h}.csv")])
               for h in hosts]
    time.sleep(1.0)
    probers = []
    for src in hosts:
        argv = [python, "-m", "traffic.reach_probe", "probe", "--timeout-s",
                str(workload["probe_timeout"]), "--out", str(ctx.run_dir / f"probes-{src}.csv")]
        for dst in hosts:
            if dst != src:
                argv += ["--target", f"{dst}={fabric.host_ips[dst]}"]
        probers.append(fabric.popen(src, argv))
    for proc in probers:
        proc.wait(timeout=probe_s + 30)
    for proc in servers:
        proc.wait(timeout=probe_s + 30)
    _reachability(ctx, hosts)
    _performance(ctx)


def _reachability(ctx, hosts: list[str]) -> None:
    import csv
    ips = ctx.fabric.host_ips
    by_ip = {ip: h for h, ip in ips.items()}
    tenants = ctx.spec.tenants
    tenant_of = {h: t for t, members in tenants.items() for h in members}
    frames: dict[tuple[str, str], int] = {}
    for dst in hosts:
        path = ctx.run_dir / f"sniffed-{dst}.csv"
        with path.open() as f:
            for row in csv.DictReader(f):
                src = by_ip.get(row["src"])
                if src:
                    frames[(src, dst)] = frames.get((src, dst), 0) + int(row["frames"])
    rows = []
    for src in hosts:
        with (ctx.run_dir / f"probes-{src}.csv").open() as f:
            for row in csv.DictReader(f):
                dst = row["dst"]
                same = (tenant_of.get(src) == tenant_of.get(dst)
                        and tenant_of.get(src) is not None) if tenants else True
                rows.append({"src": src, "dst": dst, "src_tenant": tenant_of.get(src, ""),
                             "dst_tenant": tenant_of.get(dst, ""), "same_tenant": same,
                             **{k: row[k] == "True" for k in ("icmp", "tcp", "udp",
                                                              "roce_udp_4791")},
                             "frames_at_dst": frames.get((src, dst), 0)})
    results.write_csv(ctx.run_dir / "reachability.csv", rows)


def _iperf(ctx, host: str, server: str, port: int, seconds: float, tag: str,
           streams: int = 1):
    out = ctx.run_dir / f"iperf-{tag}.json"
    argv = ["iperf3", "-c", ctx.fabric.host_ips[server], "-p", str(port), "-t", f"{seconds:g}",
            "-P", str(streams), "-J", "--logfile", str(out)]
    return ctx.fabric.popen(host, argv, stdout=subprocess.DEVNULL), out


def _bps(path) -> float:
    data = json.loads(path.read_text())
    return float(data["end"]["sum_received"]["bits_per_second"])


def _performance(ctx) -> None:
    workload, fabric = ctx.spec.workload, ctx.fabric
    seconds = workload["duration"]
    senders = _hosts(workload["incast_senders"])
    receiver, victim, victim_rx = (workload["incast_receiver"], workload["victim"],
                                   workload["victim_receiver"])
    fabric.popen(victim_rx, ["iperf3", "-s", "-p", "5300"], stdout=subprocess.DEVNULL)
    for i, _ in enumerate(senders):
        fabric.popen(receiver, ["iperf3", "-s", "-p", str(5301 + i)],
                     stdout=subprocess.DEVNULL)
    time.sleep(1.0)
    ctx.progress.update("B alone", f"{victim} -> {victim_rx}, {seconds:g} s")
    proc, b_alone = _iperf(ctx, victim, victim_rx, 5300, seconds, "b-alone")
    proc.wait(timeout=seconds + 30)
    time.sleep(0.5)
    ctx.progress.update("B during A's incast", f"{','.join(senders)} -> {receiver}")
    incast = [_iperf(ctx, s, receiver, 5301 + i, seconds + 2, f"a-{s}",
                     workload["incast_streams"])
              for i, s in enumerate(senders)]
    time.sleep(1.0)
    proc, b_during = _iperf(ctx, victim, victim_rx, 5300, seconds, "b-during-incast")
    proc.wait(timeout=seconds + 30)
    for p, _ in incast:
        p.wait(timeout=seconds + 30)
    rows = [{"phase": "alone", "flow": f"B {victim}->{victim_rx}", "bps": _bps(b_alone)},
            {"phase": "incast", "flow": f"B {victim}->{victim_rx}", "bps": _bps(b_during)}]
    rows += [{"phase": "incast", "flow": f"A {s}->{receiver}", "bps": _bps(out)}
             for s, (_, out) in zip(senders, incast)]
    results.write_csv(ctx.run_dir / "throughput.csv", rows)
