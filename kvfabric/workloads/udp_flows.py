"""Constant-bit-rate UDP flows in a chosen class: the lossless incast and the PFC victim.

pattern = "incast": `senders` hosts send to `receiver` at line rate (rate 0) in the class of
`dscp`; with PFC on nothing is lost in the lossless class, with PFC off the receiver's port
drops. pattern = "victim": the same incast, to the first host of the last leaf, from hosts of
the first and last leaves, plus one victim flow from the first leaf to an idle host on the
last leaf: it shares the leaf -> spine -> leaf path with the incast, so pauses spreading
upstream slow it down (head-of-line blocking), which they do not without PFC.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from topologies.leafspine import FabricTopo
from traffic.udp_flow import run_flows
from wire.ecn import ECN_CODEPOINTS

from .. import results
from ..schema import Field, SpecIssue
from .hosts import check_receiver_and_senders

FIELDS = [
    Field("pattern", "choice", "incast", "incast, or incast plus a victim flow",
          choices=("incast", "victim")),
    Field("senders", "int", 8, "incast senders", minimum=1, maximum=1024),
    Field("receiver", "str", "h1", "incast receiver (pattern incast)"),
    Field("dscp", "int", None, "DSCP of every flow; unset: the lossless class's "
          "(queues.lossless_dscp, 26 by default)", minimum=0, maximum=63),
    Field("ecn", "choice", "notect", "ECN codepoint sent", choices=tuple(ECN_CODEPOINTS)),
    Field("rate", "rate", 0, "payload rate per flow; 0 = as fast as the sender's NIC goes",
          minimum=0, maximum=10e9),
    Field("duration", "duration", "3s", "how long every sender sends", minimum=0.1,
          maximum=3600),
    Field("drain", "duration", "2s", "receivers stop this long after their last packet",
          minimum=0.1, maximum=60),
]


def _leaf_hosts(topo: FabricTopo) -> list[list[str]]:
    leaves = sorted((n for n in topo.nodes() if topo.role(n) == "leaf"),
                    key=lambda n: int(n.lstrip("l") or 0))
    return [sorted((h for h in topo.neighbors(leaf) if topo.role(h) == "host"),
                   key=lambda h: int(h[1:])) for leaf in leaves]


def plan(workload: dict[str, Any], topo: FabricTopo) -> list[dict]:
    """The flows: dicts with src, dst, role (incast / victim)."""
    if workload["pattern"] == "incast":
        receiver = workload["receiver"]
        senders = [h for h in topo.host_names() if h != receiver][:workload["senders"]]
        return [{"src": s, "dst": receiver, "role": "incast"} for s in senders]
    groups = _leaf_hosts(topo)
    first, last = groups[0], groups[-1]
    receiver, idle, victim_src = last[0], last[-1], first[-1]
    candidates = first[:-1] + last[1:-1]
    senders = candidates[:workload["senders"]]
    flows = [{"src": s, "dst": receiver, "role": "incast"} for s in senders]
    flows.append({"src": victim_src, "dst": idle, "role": "victim"})
    return flows


def check(workload: dict[str, Any], topo: FabricTopo, issues: list[SpecIssue]) -> None:
    hosts = topo.host_names()
    if workload["pattern"] == "incast":
        check_receiver_and_senders(workload, topo, issues)
        return
    groups = _leaf_hosts(topo) if topo.role(hosts[0]) == "host" else []
    if len(groups) < 2 or len(groups[0]) < 2 or len(groups[-1]) < 3:
        issues.append(SpecIssue("workload.pattern", "the victim pattern needs a leaf-spine "
                                "with at least 2 leaves and 3 hosts per leaf",
                                "set fabric.topology = 'leafspine', fabric.leaves >= 2 and "
                                "fabric.hosts_per_leaf >= 3"))
        return
    available = len(groups[0]) - 1 + len(groups[-1]) - 2
    if workload["senders"] > available:
        issues.append(SpecIssue("workload.senders", f"{workload['senders']} incast senders "
                                f"but the victim pattern has {available} hosts for them",
                                f"set workload.senders to at most {available}"))


def run(ctx) -> None:
    workload = ctx.spec.workload
    flows = plan(workload, ctx.fabric.topo)
    ctx.record("flows", [f"{f['src']}->{f['dst']} ({f['role']})" for f in flows])
    ctx.progress.update("sending", f"{len(flows)} UDP flows for {workload['duration']:g} s")
    dscp = workload["dscp"]
    if dscp is None:
        dscp = ctx.spec.dscp_map().lossless_dscp
    for flow in flows:
        flow.update(dscp=dscp, ecn=workload["ecn"], rate=workload["rate"])
    result = run_flows(ctx.fabric, flows, duration_s=workload["duration"],
                       drain_s=workload["drain"])
    rows = []
    for number, (flow, sent) in enumerate(zip(flows, result["senders"])):
        received = next((f for f in result["receivers"][flow["dst"]]["flows"]
                         if f["flow"] == number), None) or {}
        rows.append({"flow": number, "role": flow["role"], "src": flow["src"],
                     "dst": flow["dst"], "dscp": flow["dscp"], "ecn_sent": flow["ecn"],
                     "sent_packets": sent["packets"], "sent_bytes": sent["bytes"],
                     "received_packets": received.get("packets", 0),
                     "received_bytes": received.get("bytes", 0),
                     "ce_packets": received.get("ce", 0),
                     "duration_s": round(sent["duration_s"], 4),
                     "sender_blocked_s": sent["blocked_s"],
                     # over the longer of sending and receiving: paused queues drain late
                     "goodput_bps": round(received.get("bytes", 0) * 8 / max(
                         sent["duration_s"], received.get("span_s", 0.0)))})
    results.write_csv(ctx.run_dir / "flows.csv", rows)
    drops = {h: r["socket_buffer_drops"] for h, r in result["receivers"].items()}
    ctx.record("receiver_socket_drops", drops)


def analyse(run_dir: Path, spec) -> dict[str, Any]:
    with open(run_dir / "flows.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    sent = sum(int(r["sent_packets"]) for r in rows)
    received = sum(int(r["received_packets"]) for r in rows)
    incast = [r for r in rows if r["role"] == "incast"]
    victim = [r for r in rows if r["role"] == "victim"]
    summary = {
        "flows": len(rows),
        "packets_sent": sent,
        "packets_delivered": received,
        "loss_fraction": round(1 - received / sent, 6) if sent else None,
        "incast_goodput_bps": sum(int(r["goodput_bps"]) for r in incast),
        "ce_fraction": round(sum(int(r["ce_packets"]) for r in rows) / received, 4)
        if received else 0.0,
    }
    if victim:
        summary["victim_goodput_bps"] = int(victim[0]["goodput_bps"])
    _plot(rows, run_dir / "flows.png")
    summary["plot"] = "flows.png"
    return summary


def _plot(rows: list[dict], out: Path) -> None:
    from ..plotting import new_figure, save_figure

    fig, ax = new_figure(width=7, height=3.5)
    labels = [f"{r['src']}→{r['dst']}" for r in rows]
    colours = ["tab:red" if r["role"] == "victim" else "tab:blue" for r in rows]
    ax.bar(labels, [int(r["goodput_bps"]) / 1e6 for r in rows], color=colours)
    ax.set_ylabel("goodput (Mbit/s)")
    ax.set_title("UDP flows (red: victim)")
    ax.tick_params(axis="x", labelrotation=45, labelsize=7)
    save_figure(fig, out)
