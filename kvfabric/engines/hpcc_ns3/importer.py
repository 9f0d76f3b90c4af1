"""A simulated run's folder in kvfabric's results schema, from the simulator's outputs alone.

Raw files in target units (the simulator runs at the real rate: dilation 1): ``flows.csv``
(one row per transfer), the workload's own files (``<transport>/roce_messages_<host>.csv`` for
roce_incast, ``plan.csv`` and ``roce/`` for kv_trace, ``roce/`` and the serving files for
serving_disagg) so its analysis runs unchanged, ``queues/qlen_ports.csv`` (per switch port,
from the queue histogram) and
``queues/pfc_events.csv`` (the emulation's columns). The simulator's own files stay in sim/.
"""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path
from typing import Any

from ... import results
from ...dilation import Scale
from ...resolved_spec import Spec
from ...workloads import WORKLOADS
from .inputs import START_OFFSET_S, SimInputs
from .outputs import QLEN_SAMPLE_NS, histogram_stats, parse_fct, parse_pfc, parse_qlen


def simulated_spec(spec: Spec) -> Spec:
    """The spec as the simulator runs it: target values, dilation 1."""
    scale = Scale(1.0, spec.scale.target_host_rate_bps, spec.scale.target_fabric_rate_bps)
    fabric = dict(spec.target["fabric"], host_rate=int(scale.target_host_rate_bps),
                  fabric_rate=int(scale.target_fabric_rate_bps), dilation=1.0)
    workload = dict(spec.target["workload"])
    if "transports" in workload:  # only the RoCE phase is simulated (plan.py says so)
        workload["transports"] = ",".join(
            t.strip() for t in workload["transports"].split(",") if t.strip().startswith("roce"))
    return dataclasses.replace(spec, fabric=fabric, workload=workload,
                               queues=dict(spec.target["queues"]), scale=scale)


def port_peers(inputs: SimInputs) -> dict[tuple[int, int], int]:
    """(node, ifindex) -> peer node: a node's devices are numbered from 1 in the order its
    links appear in topology.txt (device 0 is the loopback)."""
    lines = inputs.topology.splitlines()[2:]
    next_index: dict[int, int] = {}
    peers = {}
    for line in lines:
        a, b = (int(x) for x in line.split()[:2])
        for node, peer in ((a, b), (b, a)):
            next_index[node] = next_index.get(node, 0) + 1
            peers[(node, next_index[node])] = peer
    return peers


def import_outputs(spec: Spec, inputs: SimInputs, sim_dir: Path, run_dir: Path) -> dict[str, Any]:
    """Write the run folder's raw files and return the workload and queue summaries."""
    names = {i: name for name, i in inputs.node_ids.items()}
    flows = parse_fct(sim_dir / "fct.txt")
    offset_ns = int(round(START_OFFSET_S * 1e9))
    rows = [{"src": names[f.src_node], "dst": names[f.dst_node], "size_bytes": f.size_bytes,
             "start_s": (f.start_ns - offset_ns) / 1e9, "fct_s": f.fct_ns / 1e9,
             "completed_s": (f.start_ns - offset_ns + f.fct_ns) / 1e9,
             "standalone_s": f.standalone_ns / 1e9,
             "slowdown": f.fct_ns / max(f.standalone_ns, 1), "sport": f.sport}
            for f in flows]
    results.write_csv(run_dir / "flows.csv", rows)
    sim_spec = simulated_spec(spec)
    kind = spec.workload["kind"]
    folder = run_dir / _workload_folder(sim_spec)
    folder.mkdir(exist_ok=True)
    _write_messages(folder, rows)
    if kind == "serving_disagg":
        _write_serving(run_dir, sim_spec, inputs)
    if kind == "kv_trace":
        _write_plan(run_dir / "plan.csv", inputs)
    workload_summary = WORKLOADS[kind].analyse(run_dir, sim_spec)
    if isinstance(workload_summary, dict):
        workload_summary["flows_planned"] = len(inputs.plan)
        workload_summary["flows_completed"] = len(rows)
        if rows:
            slow = sorted(r["slowdown"] for r in rows)
            workload_summary["slowdown_p50"] = slow[len(slow) // 2]
            workload_summary["slowdown_p99"] = slow[min(len(slow) - 1, int(0.99 * len(slow)))]
    span = _span_samples(rows)
    queue_summary = _write_queues(run_dir, sim_dir, inputs, names, span)
    return {"results": workload_summary, "queues": queue_summary}


def _write_serving(run_dir: Path, sim_spec: Spec, inputs: SimInputs) -> None:
    """The emulated run's serving files (requests per mode, transfers, offline tables) from
    the serving model's last turn, whose transfer times are the simulated ones."""
    from ...workloads.serving_disagg import write_results

    served = inputs.workload_plan
    write_results(run_dir, served.requests, served.config, sim_spec.workload, served.records,
                  served.transfers)


def _workload_folder(sim_spec: Spec) -> str:
    if sim_spec.workload["kind"] in ("kv_trace", "serving_disagg"):
        return "roce"
    from ...workloads.roce_incast import transports

    roce = [t for t in transports(sim_spec.workload) if t.startswith("roce")]
    return roce[0]


def _write_messages(folder: Path, rows: list[dict[str, Any]]) -> None:
    by_sender: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_sender.setdefault(r["src"], []).append(r)
    for sender, mine in by_sender.items():
        with (folder / f"roce_messages_{sender}.csv").open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["sender", "dst", "size_bytes", "posted_s", "completed_s",
                             "fct_s"])
            for r in sorted(mine, key=lambda r: r["start_s"]):
                writer.writerow([sender, r["dst"], r["size_bytes"], f"{r['start_s']:.9f}",
                                 f"{r['completed_s']:.9f}", f"{r['fct_s']:.9f}"])


def _write_plan(path: Path, inputs: SimInputs) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["start_s", "src", "dst", "size_bytes"])
        for t in inputs.plan:
            writer.writerow([f"{t.start_s:.9f}", t.src, t.dst, t.size_bytes])


def _span_samples(rows: list[dict[str, Any]]) -> int | None:
    if not rows:
        return None
    span_s = max(r["completed_s"] for r in rows) - min(r["start_s"] for r in rows)
    return max(1, int(span_s * 1e9 / QLEN_SAMPLE_NS))


def _write_queues(run_dir: Path, sim_dir: Path, inputs: SimInputs, names: dict[int, str],
                  span_samples: int | None) -> dict[str, Any]:
    out = run_dir / "queues"
    out.mkdir(exist_ok=True)
    peers = port_peers(inputs)
    _, hist = parse_qlen(sim_dir / "qlen.txt") if inputs.queue_monitor else (None, {})
    ports = []
    for (node, port), counts in sorted(hist.items()):
        stats = histogram_stats(counts, span_samples)
        if stats["samples"]:
            ports.append({"node": names.get(node, node), "port": port,
                          "peer": names.get(peers.get((node, port)), "?"), **stats})
    results.write_csv(out / "qlen_ports.csv", ports)
    if any(p["max_bytes"] for p in ports):
        _plot_queues(ports, hist, names, run_dir / "queues.png")
    events = parse_pfc(sim_dir / "pfc.txt")
    offset_ns = int(round(START_OFFSET_S * 1e9))
    results.write_csv(out / "pfc_events.csv", [
        {"t_s": f"{(e.time_ns - offset_ns) / 1e9:.9f}", "node": names.get(e.node, e.node),
         "port": e.ifindex, "peer": names.get(peers.get((e.node, e.ifindex)), "?"),
         "priority": 3, "event": "pause" if e.pause else "resume"} for e in events])
    summary: dict[str, Any] = {"queue_monitor": inputs.queue_monitor,
                               "pause_frames_received": sum(e.pause for e in events),
                               "resume_frames_received": sum(not e.pause for e in events),
                               "queue_mean_over": "the transfers' span (first start to last "
                                                  "completion)"}
    if ports:
        worst = max(ports, key=lambda p: p["mean_bytes"])
        summary.update(bottleneck=f"{worst['node']} port {worst['port']} -> {worst['peer']}",
                       bottleneck_depth_mean_bytes=worst["mean_bytes"],
                       bottleneck_depth_p50_bytes=worst["p50_bytes"],
                       bottleneck_depth_p99_bytes=worst["p99_bytes"],
                       bottleneck_depth_max_bytes=worst["max_bytes"])
    return summary


def _plot_queues(ports: list[dict[str, Any]], hist: dict[tuple[int, int], list[int]],
                 names: dict[int, str], out: Path, top: int = 4) -> None:
    """Depth distribution (while non-empty) of the ports with the deepest mean queue."""
    import numpy as np

    from ...plotting import new_figure, save_figure

    ids = {name: node for node, name in names.items()}
    fig, ax = new_figure()
    for p in sorted(ports, key=lambda p: -p["mean_bytes"])[:top]:
        counts = hist[(ids.get(p["node"], p["node"]), int(p["port"]))]
        kb = np.arange(len(counts))
        busy = np.array([c if k else 0 for k, c in enumerate(counts)], dtype=float)
        if busy.sum():
            ax.step(kb, np.cumsum(busy) / busy.sum(), where="post",
                    label=f"{p['node']} port {p['port']} -> {p['peer']}")
    ax.set(xlabel="egress queue while non-empty (KB)", ylabel="fraction of 100 ns samples",
           title="Switch queue depth (simulated)")
    ax.legend(loc="lower right", fontsize=8)
    save_figure(fig, out)
