"""ECMP collision: elephants that static hashing puts on the same spine.

Senders are the first hosts of leaf l1, receivers the hosts of l2 (pairwise). Each sender opens
``candidates`` connections to its receiver; each connection sends one probe message alone
while the workload watches l1's uplink counters, so the path every five-tuple hashes to is
known. One connection per sender that lands on the same uplink is chosen (a collision, whatever
the hash function), then all chosen connections send ``flow_size`` bytes at once. Static ECMP
keeps them sharing one spine; the adaptive controller should move one off.

Raw files: probes.csv, flows.csv, uplinks.csv (l1 uplink counters every sample_interval).
"""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

from topologies.leafspine import FabricTopo

from .. import results
from ..schema import Field, SpecIssue
from .ecmp_collision_analysis import analyse  # noqa: F401  (part of the workload interface)
from .openflow_common import CounterSampler, read_json_line, tx_bytes, uplink_ifaces

FIELDS = [
    Field("elephants", "int", 2, "long flows, one per sender on leaf l1", minimum=2,
          maximum=16),
    Field("flow_size", "size", "12MiB", "bytes each elephant sends", minimum=1 << 16,
          maximum=1 << 34),
    Field("candidates", "int", 6, "connections opened per sender to find colliding ones",
          minimum=1, maximum=64),
    Field("probe_size", "size", "256KiB", "bytes of the path-finding probe per connection",
          minimum=1 << 12, maximum=1 << 28),
    Field("port", "int", 5201, "TCP port of the sinks", minimum=1024, maximum=65535),
    Field("sample_interval", "duration", "10ms", "uplink counter sampling period",
          minimum=0.001, maximum=1),
]


def check(workload: dict[str, Any], topo: FabricTopo, issues: list[SpecIssue]) -> None:
    leaves = [n for n in topo.routers() if topo.role(n) == "leaf"]
    if "l1" not in leaves or "l2" not in leaves:
        issues.append(SpecIssue("fabric.topology", "ecmp_collision needs leaves l1 and l2",
                                'use topology = "leafspine" with leaves >= 2'))
        return
    per_leaf = min(len([h for h in topo.neighbors(leaf) if topo.role(h) == "host"])
                   for leaf in ("l1", "l2"))
    if workload["elephants"] > per_leaf:
        issues.append(SpecIssue("workload.elephants", f"{workload['elephants']} elephants "
                                f"but leaves have {per_leaf} hosts",
                                f"set workload.elephants <= {per_leaf} or raise "
                                "fabric.hosts_per_leaf"))


def pairs(topo: FabricTopo, count: int) -> list[tuple[str, str]]:
    def hosts(leaf):
        return sorted((h for h in topo.neighbors(leaf) if topo.role(h) == "host"),
                      key=lambda h: int(h[1:]))
    return list(zip(hosts("l1"), hosts("l2")))[:count]


def run(ctx) -> None:
    fabric, workload = ctx.fabric, ctx.spec.workload
    python = sys.executable
    chosen_pairs = pairs(fabric.topo, workload["elephants"])
    uplinks = uplink_ifaces(fabric, "l1")
    for _, receiver in chosen_pairs:
        fabric.popen(receiver, [python, "-m", "traffic.elephants", "sink",
                                "--port", str(workload["port"])])
    time.sleep(0.5)
    clients = []
    for sender, receiver in chosen_pairs:
        argv = [python, "-m", "traffic.elephants", "send"]
        for k in range(workload["candidates"]):
            argv += ["--flow", f"{receiver}.{k}={fabric.host_ips[receiver]}:{workload['port']}"]
        clients.append(fabric.popen(sender, argv, stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, text=True))
    ready = [read_json_line(c.stdout, "ready")["flows"] for c in clients]

    ctx.progress.update("probing paths", f"{workload['candidates']} connections per sender")
    probes = []
    for (sender, receiver), client, flows in zip(chosen_pairs, clients, ready):
        for k, flow in enumerate(flows):
            before = {i: tx_bytes(i) for i in uplinks}
            client.stdin.write(f"probe {k} {workload['probe_size']}\n")
            client.stdin.flush()
            read_json_line(client.stdout, "probe")
            delta = {i: tx_bytes(i) - before[i] for i in uplinks}
            via = max(delta, key=delta.get)
            probes.append({"sender": sender, "receiver": receiver, "candidate": k,
                           "sport": flow["sport"], "uplink": via, "spine": uplinks[via],
                           **{f"bytes_{i}": v for i, v in delta.items()}})
            time.sleep(0.15)  # probes are bursts, never elephants: keep them apart
    results.write_csv(ctx.run_dir / "probes.csv", probes)

    target = _most_shared_uplink(probes, [s for s, _ in chosen_pairs])
    picks = []
    for sender, _ in chosen_pairs:
        mine = [p for p in probes if p["sender"] == sender]
        on_target = [p for p in mine if p["uplink"] == target]
        picks.append((on_target or mine)[0])
    collided = all(p["uplink"] == target for p in picks)
    ctx.record("collision", {"uplink": target, "spine": uplinks[target], "all_on_it": collided,
                             "flows": [(p["sender"], p["sport"]) for p in picks]})
    if not collided:
        ctx.facts.setdefault("approximations", []).append(
            f"only some elephants hash onto {uplinks[target]}: raise workload.candidates")

    ctx.progress.update("elephants", f"{len(picks)} x {workload['flow_size']} B")
    time.sleep(0.5)  # let the probe traffic drain out of the counters' rate window
    with CounterSampler(list(uplinks), workload["sample_interval"]) as sampler:
        go_time = time.time()
        for client, pick in zip(clients, picks):
            client.stdin.write(f"go {pick['candidate']} {workload['flow_size']}\n")
            client.stdin.flush()
        done = [read_json_line(c.stdout, "done", timeout_s=600)["done"][0] for c in clients]
        time.sleep(0.1)
    rows = []
    for pick, result in zip(picks, done):
        fct = result["end"] - result["start"]
        rows.append({"sender": pick["sender"], "receiver": pick["receiver"],
                     "sport": pick["sport"], "initial_uplink": pick["uplink"],
                     "bytes": result["bytes"], "start": result["start"],
                     "end": result["end"], "fct_s": fct, "ok": result["ok"],
                     "throughput_bps": 8 * result["bytes"] / fct if fct > 0 else 0.0})
    results.write_csv(ctx.run_dir / "flows.csv", rows)
    results.write_csv(ctx.run_dir / "uplinks.csv",
                      [{**r, "spine": uplinks[r["iface"]]} for r in sampler.rows])
    ctx.record("go_time", go_time)
    for client in clients:
        client.stdin.close()
        client.wait(timeout=10)
    if not all(r["ok"] for r in rows):
        raise RuntimeError("an elephant failed; see flows.csv")


def _most_shared_uplink(probes: list[dict], senders: list[str]) -> str:
    """The uplink that the most senders can reach with at least one connection."""
    counts: dict[str, int] = {}
    for uplink in {p["uplink"] for p in probes}:
        counts[uplink] = sum(any(p["uplink"] == uplink for p in probes if p["sender"] == s)
                             for s in senders)
    return max(sorted(counts), key=counts.get)
