"""Long-lived TCP flows (iperf3) from `senders` hosts to one receiver, for `duration`.

The workload behind the ECN threshold sweep: with `ecn = true` the hosts negotiate ECN
(net.ipv4.tcp_ecn = 1) and, with `queues.lossy_ecn = true`, the lossy class marks on the
Kmin/Kmax ramp, so the bottleneck queue settles where marks start: lower thresholds, shorter
queues, and below some point, lost throughput. The congestion control is any the kernel offers.
"""

from __future__ import annotations

import csv
import json
import subprocess
import time
from pathlib import Path
from typing import Any

from topologies.leafspine import FabricTopo
from traffic.tcp_kv import available_congestion_controls

from .. import results
from ..schema import Field, SpecIssue
from .hosts import check_receiver_and_senders

FIELDS = [
    Field("senders", "int", 2, "hosts sending one long TCP flow each", minimum=1,
          maximum=256),
    Field("receiver", "str", "h1", "the receiving host"),
    Field("duration", "duration", "8s", "how long the flows run", minimum=1, maximum=3600),
    Field("cc", "str", "cubic", "TCP congestion control (one the kernel offers)"),
    Field("ecn", "bool", True, "negotiate ECN (net.ipv4.tcp_ecn = 1 on every host)"),
    Field("port", "int", 5400, "first iperf3 port", minimum=1024, maximum=65000),
]


def check(workload: dict[str, Any], topo: FabricTopo, issues: list[SpecIssue]) -> None:
    check_receiver_and_senders(workload, topo, issues)
    ccs = available_congestion_controls()
    if ccs and workload["cc"] not in ccs:
        issues.append(SpecIssue("workload.cc", f"this kernel has no {workload['cc']!r}",
                                f"use one of: {', '.join(ccs)}"))


def run(ctx) -> None:
    fabric, workload = ctx.fabric, ctx.spec.workload
    receiver = workload["receiver"]
    senders = [h for h in fabric.topo.host_names() if h != receiver][:workload["senders"]]
    if workload["ecn"]:
        for host in fabric.hosts():
            fabric.run(host, ["sysctl", "-q", "-w", "net.ipv4.tcp_ecn=1"])
    ctx.record("senders", senders)
    for number, _ in enumerate(senders):
        fabric.popen(receiver, ["iperf3", "-s", "-1", "-p", str(workload["port"] + number)],
                     stdout=subprocess.DEVNULL)
    time.sleep(0.5)
    ctx.progress.update("flows", f"{len(senders)} x {workload['cc']} for "
                        f"{workload['duration']:g} s")
    clients = [fabric.popen(sender, ["iperf3", "-c", fabric.host_ips[receiver], "-p",
                                     str(workload["port"] + number), "-t",
                                     str(workload["duration"]), "-C", workload["cc"], "-J"],
                            stdout=subprocess.PIPE, text=True)
               for number, sender in enumerate(senders)]
    rows = []
    for sender, proc in zip(senders, clients):
        out, _ = proc.communicate(timeout=workload["duration"] + 60)
        report = json.loads(out)
        if "error" in report:
            raise RuntimeError(f"iperf3 from {sender}: {report['error']}")
        end = report["end"]
        rows.append({"sender": sender, "receiver": receiver, "cc": workload["cc"],
                     "ecn": workload["ecn"],
                     "goodput_bps": round(end["sum_received"]["bits_per_second"]),
                     "retransmits": end["sum_sent"].get("retransmits", 0),
                     "mean_rtt_us": end["streams"][0]["sender"].get("mean_rtt", 0)})
    results.write_csv(ctx.run_dir / "flows.csv", rows)


def analyse(run_dir: Path, spec) -> dict[str, Any]:
    with open(run_dir / "flows.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    goodput = sum(int(r["goodput_bps"]) for r in rows)
    summary = {"flows": len(rows), "aggregate_goodput_bps": goodput,
               "retransmits": sum(int(r["retransmits"]) for r in rows),
               "mean_rtt_us": round(sum(float(r["mean_rtt_us"]) for r in rows) / len(rows))}
    return summary
