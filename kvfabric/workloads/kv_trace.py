"""Trace-driven disaggregated serving over the RoCE endpoints: requests (a Mooncake or Azure
trace, or Poisson arrivals) are prefilled on P prefill hosts and their KV caches pushed to D
decode hosts (``traffic.kv_patterns.plan_kv_transfers``); every transfer is one RDMA WRITE
message on the QP of its (prefill, decode) pair, posted at the planned time.

Decode hosts are h1..hD, prefill hosts the next P. Raw files: ``plan.csv`` (the transfers),
``schedule_<host>.csv`` (what each sender was told), and the endpoints' CSV/JSON under
``roce/``; ``kv_trace_analysis.analyse`` summarises them.
"""

from __future__ import annotations

import csv
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from topologies.leafspine import FabricTopo
from traffic import kv_budget, kv_patterns, traces
from traffic.kvcache import MODEL_PRESETS, preset
from wire.frames import ROCE_IP_OVERHEAD_BYTES

from ..schema import Field, SpecIssue
from . import trace_load
from .kv_trace_analysis import analyse  # noqa: F401  (part of the workload interface)
from .roce_incast import (
    ROCE_TRANSPORT_FIELDS,
    _start_together,
    _wait_all,
    receiver_cc_args,
    receiver_dscp_args,
    sender_cc_args,
    sender_dscp_args,
)

FIELDS = [
    Field("prefill", "int", 4, "prefill hosts (after the decode hosts)", minimum=1,
          maximum=256),
    Field("decode", "int", 2, "decode hosts (h1..hD)", minimum=1, maximum=256),
    Field("model", "choice", "llama-3-8b", "KV-cache model preset",
          choices=tuple(sorted(MODEL_PRESETS))),
    Field("tp_size", "int", 8, "tensor-parallel ranks; with nics = tp_size each NIC carries "
          "one rank's shard and only NIC 0's share is emulated", minimum=1, maximum=64),
    *trace_load.request_fields(max_requests=50, max_requests_limit=1_000_000, rate=500.0,
                               duration="20ms", input_tokens=256, output_tokens=64),
    Field("prefill_tokens_per_s", "float", 5e6, "prefill compute of one prefill host",
          minimum=1, maximum=1e9),
    Field("mode", "choice", "whole", "whole: KV after prefill; layerwise: layer by layer",
          choices=kv_patterns.MODES),
    Field("transport", "choice", "roce-dcqcn", "RoCE with or without DCQCN",
          choices=("roce-dcqcn", "roce-none")),
    *ROCE_TRANSPORT_FIELDS,
]


def check(workload: dict[str, Any], topo: FabricTopo, issues: list[SpecIssue]) -> None:
    hosts = topo.host_names()
    need = workload["prefill"] + workload["decode"]
    if need > len(hosts):
        issues.append(SpecIssue("workload.prefill", f"{need} prefill + decode hosts, the "
                                f"fabric has {len(hosts)}", "lower workload.prefill or "
                                "workload.decode, or add hosts"))
    if workload["trace"] and not Path(workload["trace"]).is_file():
        issues.append(SpecIssue("workload.trace", f"no file {workload['trace']!r}",
                                "give a Mooncake JSONL / Azure CSV path, or leave it empty"))
    elif workload["trace"]:
        try:  # read through now, so a bad line is exit 2 before anything is built
            traces.check_trace(workload["trace"], workload["trace_format"])
        except (traces.TraceError, OSError) as exc:
            issues.append(SpecIssue("workload.trace", str(exc), "fix or remove that line, "
                                    f"or check workload.trace_format "
                                    f"({workload['trace_format']!r})"))
    if workload["mtu_payload"] + ROCE_IP_OVERHEAD_BYTES > topo.mtu:
        issues.append(SpecIssue("workload.mtu_payload", "does not fit the fabric MTU",
                                "lower workload.mtu_payload or raise fabric.mtu"))


def check_plan(workload: dict[str, Any], topo: FabricTopo, dilation: float, seed: int,
               issues: list[SpecIssue], budget: bool = True) -> None:
    """Plan the transfers now and refuse a plan the emulation cannot carry (too many
    transfers to hold, or more bytes on one NIC than its line rate sends in the timeout),
    with the numbers and the fix, before anything is built."""
    try:
        transfers, _ = plan(workload, topo.host_names(), seed, dilation)
    except ValueError as exc:
        issues.append(trace_load.window_issue(exc))
        return
    if not budget:  # a simulated run: no emulated NIC has to carry it in the timeout
        return
    for problem, fix in kv_budget.plan_problems(transfers, line_rate_bps=topo.host_rate_bps,
                                                timeout_s=workload["timeout"]):
        issues.append(SpecIssue("workload", problem, fix))


def plan(workload: dict[str, Any], hosts: list[str], seed: int,
         dilation: float = 1.0) -> tuple[list[kv_patterns.Transfer], dict]:
    """(the transfers in emulated time with pool names replaced by fabric hosts, the trace
    mapping). ``workload`` is emulated already (prefill speed / D); arrivals are target
    times (``trace_load``), stretched by ``dilation`` here. Only NIC 0 of each host is
    emulated, so only NIC 0's shard is planned."""
    requests, mapping = trace_load.load_requests(workload, seed, dilation)
    requests = [replace(r, arrival_s=r.arrival_s * dilation) for r in requests]
    pool = kv_patterns.Pool.xpyd(workload["prefill"], workload["decode"])
    tp = workload["tp_size"]
    transfers = kv_patterns.plan_kv_transfers(
        requests, pool, preset(workload["model"]),
        prefill_tokens_per_s=workload["prefill_tokens_per_s"], mode=workload["mode"],
        tp_size=tp, nics_per_node=tp, emulated_nics=[0], seed=seed)
    names = {f"decode{j}": hosts[j] for j in range(workload["decode"])}
    names.update({f"prefill{i}": hosts[workload["decode"] + i]
                  for i in range(workload["prefill"])})
    out = [kv_patterns.Transfer(t.start_s, names[t.src.partition("/")[0]],
                                names[t.dst.partition("/")[0]], t.size_bytes, t.kind,
                                t.request_index, t.layer) for t in transfers]
    mapping["emulated_nics"] = f"NIC 0 of {tp} per host"
    return out, mapping


def _qpns(p: int, d: int) -> tuple[int, int]:
    """(prefill-side QPN, decode-side QPN) of the pair."""
    return 0x100 + 64 * p + d, 0x4000 + 64 * p + d


def run(ctx) -> None:
    spec, fabric, workload = ctx.spec, ctx.fabric, ctx.spec.workload
    hosts = fabric.topo.host_names()
    transfers, mapping = plan(workload, hosts, spec.experiment["seed"], spec.scale.dilation)
    ctx.record("trace_mapping", mapping)
    if not transfers:
        raise RuntimeError("the plan has no transfers (every request fully cached?)")
    decode = hosts[:workload["decode"]]
    prefill = hosts[workload["decode"]:workload["decode"] + workload["prefill"]]
    _write_plan(ctx.run_dir / "plan.csv", transfers)
    ctx.record("prefill_hosts", prefill)
    ctx.record("decode_hosts", decode)
    ctx.record("transfers", len(transfers))
    line = spec.fabric["host_rate"]
    out_dir = ctx.run_dir / "roce"
    out_dir.mkdir(exist_ok=True)
    python = sys.executable
    receivers = []
    for d, host in enumerate(decode):
        argv = [python, "-m", "traffic.roce_endpoint", "recv", "--bind", fabric.host_ips[host],
                "--name", host, "--out-dir", str(out_dir),
                *receiver_cc_args(spec), *receiver_dscp_args(spec)]
        for p, sender in enumerate(prefill):
            s_qpn, r_qpn = _qpns(p, d)
            argv += ["--qp", f"{fabric.host_ips[sender]}:{r_qpn}:{s_qpn}"]
        proc = fabric.popen(host, argv, stdout=subprocess.PIPE, text=True)
        if not proc.stdout.readline():
            raise RuntimeError(f"RoCE receiver on {host} exited with {proc.wait()}")
        receivers.append(proc)
    senders = []
    for p, host in enumerate(prefill):
        rows = [(t.start_s, _qpns(p, decode.index(t.dst))[0], t.size_bytes)
                for t in transfers if t.src == host]
        if not rows:
            continue
        schedule = ctx.run_dir / f"schedule_{host}.csv"
        with schedule.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["offset_s", "qpn", "size_bytes"])
            writer.writerows(rows)
        argv = [python, "-m", "traffic.roce_endpoint", "send", "--name", host,
                "--out-dir", str(out_dir), "--schedule", str(schedule), "--start-at", "stdin",
                "--line-rate-bps", str(line), "--mtu-payload", str(workload["mtu_payload"]),
                "--window", str(workload["window"]),
                "--timeout-s", repr(workload["retransmit_timeout"]),
                "--cc", "dcqcn" if workload["transport"] == "roce-dcqcn" else "none",
                *sender_cc_args(spec), *sender_dscp_args(spec),
                "--max-duration-s", repr(workload["timeout"])]
        for d, dst in enumerate(decode):
            s_qpn, r_qpn = _qpns(p, d)
            argv += ["--qp", f"{fabric.host_ips[dst]}:{s_qpn}:{r_qpn}"]
        senders.append((host, fabric.popen(host, argv, stdin=subprocess.PIPE,
                                           stdout=subprocess.PIPE, text=True)))
    ctx.progress.update("transfers", f"{len(transfers)} KV transfers from {len(senders)} "
                        f"prefill hosts to {len(decode)} decode hosts")
    started = time.monotonic()
    _start_together(senders)
    failed = _wait_all(ctx, senders, workload["timeout"] + 10)
    ctx.record("workload_s", time.monotonic() - started)
    for proc in receivers:
        proc.terminate()
        proc.communicate(timeout=30)
    ctx.facts.setdefault("approximations", []).extend([
        "KV transfers of one NIC per host (NIC 0's share of tensor-parallel shards); "
        f"time dilation {spec.scale.dilation:g} (rates / D, durations x D, bytes unchanged; "
        "results in target units, see docs/roce.md)"])
    if failed:
        raise RuntimeError(f"senders {failed} did not complete every transfer")


def _write_plan(path: Path, transfers: list[kv_patterns.Transfer]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["start_s", "src", "dst", "size_bytes", "kind", "request_index",
                         "layer"])
        for t in transfers:
            writer.writerow([f"{t.start_s:.6f}", t.src, t.dst, t.size_bytes, t.kind,
                             t.request_index, t.layer])
