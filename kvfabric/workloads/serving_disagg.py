"""Disaggregated serving on the emulated fabric against colocated serving on the same GPUs.

Requests (a Mooncake/Azure trace window or Poisson arrivals of long prompts) are served by P
prefill and D decode instances of the serving model (``serving/``); each instance is one
fabric host (decode h1..hD, prefill the next P) whose NIC 0 carries its share of the KV. The
model decides when each prefill ends and where its KV goes; the RoCE endpoints carry every
transfer and their measured completion is fed back (``serving_fabric.drive``). The colocated
baseline is the same model on the same requests and P + D instances, with no transfer.

Raw files: ``requests_<mode>.csv`` (one row per request), ``transfers.csv`` (each KV transfer
as posted and measured), ``attainment.csv`` (SLO attainment against request rate, offline),
``policies.csv`` (per routing policy, offline) and the endpoints' files under ``roce/``;
``serving_disagg_analysis.analyse`` summarises them.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from fabriccore.processes import stop_groups
from serving.cluster import TRANSFER_MODES, ClusterConfig, serve
from serving.metrics import Slo
from serving.presets import GPUS, PARAMETERS, roofline_profile
from serving.routing import POLICIES
from serving.study import attainment_curve, compare_policies
from serving.transfer import RecordedTransfer
from topologies.leafspine import FabricTopo
from traffic import kv_budget, kv_patterns, traces
from traffic.kvcache import preset
from traffic.trace_window import COPY_ID_STRIDE
from wire.frames import ROCE_IP_OVERHEAD_BYTES

from ..schema import Field, SpecIssue
from . import trace_load
from .kv_trace import _qpns
from .roce_incast import (
    ROCE_TRANSPORT_FIELDS,
    _start_together,
    receiver_cc_args,
    receiver_dscp_args,
    sender_cc_args,
    sender_dscp_args,
)
from .serving_disagg_analysis import analyse, write_rows  # noqa: F401  (workload interface)
from .serving_fabric import MeasuredTransfer, drive

DEFAULT_METRIC = "goodput_gain"
#: How long a sender may take to exit once told that no transfer follows (its last reports).
SENDER_END_TIMEOUT_S = 60.0
#: How long an endpoint has to write its files after SIGTERM before it is killed.
ENDPOINT_STOP_GRACE_S = 30.0
FIELDS = [
    Field("prefill", "int", 3, "prefill instances (hosts after the decode hosts)", minimum=1,
          maximum=64),
    Field("decode", "int", 1, "decode instances (h1..hD)", minimum=1, maximum=64),
    Field("model", "choice", "llama-3-8b", "model (roofline profile and KV size)",
          choices=tuple(sorted(PARAMETERS))),
    Field("gpu", "choice", "a100-sxm-80gb", "GPU of every instance", choices=tuple(sorted(GPUS))),
    Field("gpus_per_instance", "int", 8, "tensor-parallel GPUs per instance, one NIC each; "
          "NIC 0's share of the KV is emulated", minimum=1, maximum=64),
    *trace_load.request_fields(max_requests=8, max_requests_limit=100_000, rate=24.0,
                               duration="350ms", input_tokens=4096, output_tokens=128,
                               min_output_tokens=2),
    Field("policy", "choice", "kv_aware", "routing policy of the run on the fabric",
          choices=POLICIES),
    Field("policies_on_fabric", "bool", False, "carry the other routing policies' transfers "
          "on the fabric too, one pass each after the run's own, so the per-policy table "
          "reads each policy's measured transfers (default: it replays the run's)"),
    Field("transfer_mode", "choice", "whole", "KV transfer: whole (one RDMA WRITE when the "
          "prefill ends) or layerwise (a WRITE per layer as the prefill computes it)",
          choices=TRANSFER_MODES),
    Field("ttft_slo_s", "float", 0.3, "TTFT SLO, target seconds", minimum=1e-6, maximum=1e4),
    Field("tpot_slo_s", "float", 0.006, "TPOT SLO, target seconds", minimum=1e-6,
          maximum=1e3),
    Field("goodput_rates", "str", "4,8,16,24,32,48,64,96,128",
          "request rates (req/s) goodput is searched over, offline"),
    Field("goodput_repeats", "int", 8, "goodput is searched on the run's requests repeated "
          "back to back this many times, each copy with its original's measured transfer",
          minimum=1, maximum=1000),
    Field("transport", "choice", "roce-dcqcn", "RoCE with or without DCQCN",
          choices=("roce-dcqcn", "roce-none")),
    *ROCE_TRANSPORT_FIELDS,
]


def cluster_config(workload: dict[str, Any]) -> ClusterConfig:
    model = workload["model"]
    return ClusterConfig(roofline_profile(model, workload["gpu"],
                                          workload["gpus_per_instance"]),
                         preset(model), workload["prefill"], workload["decode"],
                         policy=workload["policy"], transfer_mode=workload["transfer_mode"])


def goodput_rates(workload: dict[str, Any]) -> list[float]:
    return [float(r) for r in workload["goodput_rates"].split(",") if r.strip()]


def nic0_bytes(workload: dict[str, Any]):
    model, tp = preset(workload["model"]), workload["gpus_per_instance"]
    return lambda tokens: model.bytes_per_nic(tokens, tp, tp)[0]


def check(workload: dict[str, Any], topo: FabricTopo, issues: list[SpecIssue]) -> None:
    need = workload["prefill"] + workload["decode"]
    if need > len(topo.host_names()):
        issues.append(SpecIssue("workload.prefill", f"{need} prefill + decode hosts, the "
                                f"fabric has {len(topo.host_names())}",
                                "lower workload.prefill or workload.decode, or add hosts"))
    try:
        cluster_config(workload)
        rates = goodput_rates(workload)
        if not rates or min(rates) <= 0:
            raise ValueError("no positive rate")
    except ValueError as exc:
        issues.append(SpecIssue("workload", str(exc), "check workload.model, gpu, "
                                "gpus_per_instance and goodput_rates (e.g. \"4,8,16\")"))
    if workload["trace"] and not Path(workload["trace"]).is_file():
        issues.append(SpecIssue("workload.trace", f"no file {workload['trace']!r}",
                                "give a Mooncake JSONL / Azure CSV path, or leave it empty"))
    elif workload["trace"]:
        try:  # read through now, so a bad line is exit 2 before anything is built
            traces.check_trace(workload["trace"], workload["trace_format"])
        except (traces.TraceError, OSError) as exc:
            issues.append(SpecIssue("workload.trace", str(exc), "fix or remove that line, or "
                                    f"check workload.trace_format ({workload['trace_format']!r})"))
    if workload["mtu_payload"] + ROCE_IP_OVERHEAD_BYTES > topo.mtu:
        issues.append(SpecIssue("workload.mtu_payload", "does not fit the fabric MTU",
                                "lower workload.mtu_payload or raise fabric.mtu"))


def check_plan(workload: dict[str, Any], topo: FabricTopo, dilation: float, seed: int,
               issues: list[SpecIssue], budget: bool = True) -> None:
    """Refuse a load whose KV bytes cannot cross the emulated NICs within the timeout. The
    driver skips the fabric's idle stretches, so the bound is the bytes alone: every request
    uncached, spread over the prefill hosts as the planner places them, all at once."""
    try:
        requests, _ = trace_load.load_requests(workload, seed, dilation)
    except ValueError as exc:
        issues.append(trace_load.window_issue(exc))
        return
    if not budget:  # a simulated run: no emulated NIC has to carry it in the timeout
        if workload["transfer_mode"] == "layerwise":
            issues.append(SpecIssue(
                "workload.transfer_mode", "layerwise transfers are carried by the emulation "
                "only: the simulator is given each transfer as one flow",
                "set workload.transfer_mode = \"whole\" for the simulator, or run emulated"))
        return
    pool = kv_patterns.Pool.xpyd(workload["prefill"], workload["decode"])
    tp = workload["gpus_per_instance"]
    plan = kv_patterns.plan_kv_transfers(
        [replace(r, arrival_s=0.0, cached_tokens=0) for r in requests], pool,
        preset(workload["model"]), prefill_tokens_per_s=1e18, tp_size=tp, nics_per_node=tp,
        emulated_nics=[0], seed=seed)
    hosts = topo.host_names()
    host = {f"prefill{i}": hosts[workload["decode"] + i] for i in range(workload["prefill"])}
    host.update({f"decode{j}": hosts[j] for j in range(workload["decode"])})
    plan = [replace(t, src=host[t.src.partition("/")[0]], dst=host[t.dst.partition("/")[0]])
            for t in plan]
    for problem, fix in kv_budget.plan_problems(plan, line_rate_bps=topo.host_rate_bps,
                                                timeout_s=workload["timeout"]):
        issues.append(SpecIssue("workload", problem, fix.replace(
            "rate_rps", "workload.trace_rate_rps or max_requests, shorter prompts")))


def run(ctx) -> None:
    spec, fabric, workload = ctx.spec, ctx.fabric, ctx.spec.workload
    d = spec.scale.dilation
    requests, mapping = trace_load.load_requests(workload, spec.experiment["seed"], d)
    ctx.record("trace_mapping", mapping)
    config = cluster_config(workload)
    host_of = instance_hosts(fabric.topo.host_names(), workload)
    ctx.record("instances", host_of)
    started = time.monotonic()
    live = _carry(ctx, requests, config, host_of, ctx.run_dir / "roce")
    others = {}
    if workload["policies_on_fabric"]:
        for policy in (p for p in POLICIES if p != config.policy):
            ctx.progress.update("serving", f"policy {policy} on the fabric")
            others[policy] = _carry(ctx, requests, replace(config, policy=policy), host_of,
                                    ctx.run_dir / "roce" / f"policy_{policy}").transfers
    ctx.record("workload_s", time.monotonic() - started)
    ctx.record("report_lag_target_s_max", max(live.late_s, default=0.0))
    ctx.record("post_lag_target_s_max", max((t.post_lag_s for t in live.transfers),
                                            default=0.0))
    write_results(ctx.run_dir, requests, config, workload, live.records, live.transfers,
                  others)
    ctx.facts.setdefault("approximations", []).extend([
        *model_notes(workload, f"measured on the fabric; time dilation {d:g} (results in "
                               "target units)"),
        "the fabric runs only while a transfer is in flight: idle stretches of the trace are "
        "skipped (nothing on the fabric can change then)",
    ])


def _carry(ctx, requests, config: ClusterConfig, host_of: dict[str, str], out_dir: Path):
    """One pass of the serving model with every transfer on the fabric, through RoCE
    endpoints started for it (their files in ``out_dir``) and stopped after it."""
    workload = ctx.spec.workload
    decode = [host_of[f"decode{j}"] for j in range(workload["decode"])]
    prefill = [host_of[f"prefill{i}"] for i in range(workload["prefill"])]
    out_dir.mkdir(parents=True, exist_ok=True)
    receivers = _start_receivers(ctx, decode, prefill, out_dir)
    senders = _start_senders(ctx, decode, prefill, out_dir)
    _start_together(list(senders.items()))
    finished = False
    try:
        live = drive(requests, config, senders=senders, host_of=host_of,
                     qpn=lambda src, dst: _qpns(prefill.index(src), decode.index(dst))[0],
                     nic_bytes=nic0_bytes(workload), dilation=ctx.spec.scale.dilation,
                     timeout_s=workload["timeout"],
                     on_progress=lambda text: ctx.progress.update("serving", text))
        finished = True
    finally:
        _stop_endpoints(senders, receivers, finished)
    return live


def _stop_endpoints(senders: dict, receivers: list, finished: bool) -> None:
    """After a pass that finished, each sender is told to end once its transfers are out
    and waited for; after one that was interrupted or failed, the senders are stopped at
    once (a sender may still be carrying a transfer that nothing will read)."""
    stuck = []
    for host, proc in senders.items() if finished else ():
        try:
            proc.stdin.write("end\n")
            proc.stdin.close()
        except (BrokenPipeError, ValueError):
            pass
        try:
            proc.wait(timeout=SENDER_END_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            stuck.append(host)
    for proc in [*senders.values(), *receivers]:  # their reports are not read any more
        with contextlib.suppress(OSError):
            proc.stdout.close()
    stop_groups([*senders.values(), *receivers], ENDPOINT_STOP_GRACE_S)
    if stuck:
        raise RuntimeError(f"RoCE sender(s) on {', '.join(stuck)} did not end within "
                           f"{SENDER_END_TIMEOUT_S:g} s of the last transfer; see their "
                           "files under roce/")


def instance_hosts(hosts: list[str], workload: dict[str, Any]) -> dict[str, str]:
    """Serving instance -> fabric host: decode0.. on the first D hosts, prefill0.. on the
    next P."""
    decode = hosts[:workload["decode"]]
    prefill = hosts[workload["decode"]:workload["decode"] + workload["prefill"]]
    host_of = {f"decode{j}": h for j, h in enumerate(decode)}
    host_of.update({f"prefill{i}": h for i, h in enumerate(prefill)})
    return host_of


def write_results(run_dir: Path, requests, config: ClusterConfig, workload: dict[str, Any],
                  records, transfers: list[MeasuredTransfer],
                  other_policies: dict[str, list[MeasuredTransfer]] | None = None) -> None:
    """The raw files ``analyse`` reads, from the disaggregated run's records and its
    transfers' times (measured on the fabric, or simulated): both modes' requests, the
    transfers, and the offline attainment and policy tables. ``other_policies``: the
    transfers each other routing policy's own pass measured (``transfers_<policy>.csv``)."""
    colocated = serve(requests, "colocated", config)
    write_rows(run_dir / "requests_disaggregated.csv", [asdict(r) for r in records])
    write_rows(run_dir / "requests_colocated.csv", [asdict(r) for r in colocated.records])
    columns = [f.name for f in fields(MeasuredTransfer)]
    write_rows(run_dir / "transfers.csv", [asdict(t) for t in transfers], columns)
    for policy, theirs in (other_policies or {}).items():
        write_rows(run_dir / f"transfers_{policy}.csv", [asdict(t) for t in theirs], columns)
    _write_offline(run_dir, requests, config, workload, transfers, other_policies or {})


def model_notes(workload: dict[str, Any], transfers_are: str,
                timed: str = "measured") -> list[str]:
    """What the serving model approximates, whoever carries the transfers
    (``transfers_are``: how their times were obtained; ``timed``: "measured" or
    "simulated")."""
    return [
        "prefill and decode compute are the serving model's roofline profile (no GPU); the KV "
        f"transfers are {transfers_are}, NIC 0's share of each instance's "
        f"{workload['gpus_per_instance']} NICs",
        "goodput and the attainment curve are searched on the run's requests repeated "
        f"{workload['goodput_repeats']} times back to back, replaying each request's {timed} "
        f"transfer time (congestion and bytes as {timed} at the run's rate) at the other "
        "rates",
        "the per-policy table: each routing policy's transfers carried on the fabric in a "
        "pass of its own" if workload.get("policies_on_fabric") and timed == "measured" else
        f"the per-policy table replays the run's policy's {timed} transfer times under the "
        "other policies (workload.policies_on_fabric = true carries each on the fabric)",
    ]


def _start_receivers(ctx, decode: list[str], prefill: list[str], out_dir: Path) -> list:
    fabric, spec = ctx.fabric, ctx.spec
    receivers = []
    for d, host in enumerate(decode):
        argv = [sys.executable, "-m", "traffic.roce_endpoint", "recv",
                "--bind", fabric.host_ips[host], "--name", host, "--out-dir", str(out_dir),
                *receiver_cc_args(spec), *receiver_dscp_args(spec)]
        for p, sender in enumerate(prefill):
            s_qpn, r_qpn = _qpns(p, d)
            argv += ["--qp", f"{fabric.host_ips[sender]}:{r_qpn}:{s_qpn}"]
        proc = fabric.popen(host, argv, stdout=subprocess.PIPE, text=True)
        if not proc.stdout.readline():
            raise RuntimeError(f"RoCE receiver on {host} exited with {proc.wait()}")
        receivers.append(proc)
    return receivers


def _start_senders(ctx, decode: list[str], prefill: list[str], out_dir: Path) -> dict:
    fabric, spec, workload = ctx.fabric, ctx.spec, ctx.spec.workload
    senders = {}
    for p, host in enumerate(prefill):
        argv = [sys.executable, "-m", "traffic.roce_endpoint", "send", "--name", host,
                "--out-dir", str(out_dir), "--posts", "stdin",
                "--line-rate-bps", str(spec.fabric["host_rate"]),
                "--mtu-payload", str(workload["mtu_payload"]),
                "--window", str(workload["window"]),
                "--timeout-s", repr(workload["retransmit_timeout"]),
                "--cc", "dcqcn" if workload["transport"] == "roce-dcqcn" else "none",
                *sender_cc_args(spec), *sender_dscp_args(spec),
                "--max-duration-s", repr(workload["timeout"])]
        for d, dst in enumerate(decode):
            s_qpn, r_qpn = _qpns(p, d)
            argv += ["--qp", f"{fabric.host_ips[dst]}:{s_qpn}:{r_qpn}"]
        senders[host] = fabric.popen(host, argv, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
    return senders


def _recorded(transfers: list[MeasuredTransfer]):
    """A factory of ports replaying these transfers' times (others: their median)."""
    measured = {t.request_index: t.arrived_s - t.start_s for t in transfers}
    fallback = float(np.median(list(measured.values()))) if measured else 0.0
    return measured, fallback, lambda: RecordedTransfer(measured, default_s=fallback)


def _write_offline(run_dir: Path, requests, config: ClusterConfig, workload: dict[str, Any],
                   transfers: list[MeasuredTransfer],
                   other_policies: dict[str, list[MeasuredTransfer]]) -> None:
    """attainment.csv and policies.csv: the model replayed with the measured transfer times
    (each policy with its own pass's where it had one on the fabric)."""
    slo = Slo(workload["ttft_slo_s"], workload["tpot_slo_s"])
    measured, fallback, port = _recorded(transfers)
    repeated, repeated_measured = repeat_load(requests, measured, workload["goodput_repeats"])
    repeated_port = lambda: RecordedTransfer(repeated_measured, default_s=fallback)  # noqa: E731
    rows = []
    if len(repeated) >= 2 and repeated[-1].arrival_s > repeated[0].arrival_s:
        curves = attainment_curve(repeated, config, repeated_port, slo, goodput_rates(workload))
        for mode, points in curves.items():
            rows += [{"mode": mode, "rate_rps": r, "attainment": a} for r, a in points]
    write_rows(run_dir / "attainment.csv", rows, ["mode", "rate_rps", "attainment"])
    own = {policy: _recorded(theirs)[2] for policy, theirs in other_policies.items()}
    own[config.policy] = port
    policies = compare_policies(requests, config, port, slo, per_policy=own)
    write_rows(run_dir / "policies.csv", [
        {"policy": name, "prefix_hit_share": p["prefix_hit_share"],
         "fabric_bytes": p["fabric_bytes"], "ttft_p50_s": p["ttft_s"]["p50"],
         "ttft_p99_s": p["ttft_s"]["p99"], "slo_attainment": p.get("slo_attainment"),
         # own: the times this policy's own pass measured (or simulated); replayed: the
         # run's policy's times, replayed under this one
         "transfers": "own" if name in own else "replayed"}
        for name, p in policies.items()])


def repeat_load(requests, measured: dict[int, float], repeats: int):
    """``requests`` repeated ``repeats`` times back to back (copy c shifted by c x (span +
    mean gap), its block ids its own), with each copy's transfer time its original's."""
    n = len(requests)
    if n == 0 or repeats == 1:
        return list(requests), dict(measured)
    span = requests[-1].arrival_s - requests[0].arrival_s
    gap = span / (n - 1) if n > 1 and span > 0 else 1.0
    out, times = [], {}
    for c in range(repeats):
        shift = c * (span + gap)
        for i, r in enumerate(requests):
            out.append(replace(r, arrival_s=r.arrival_s + shift, block_ids=tuple(
                b + c * COPY_ID_STRIDE for b in r.block_ids)))
            if i in measured:
                times[c * n + i] = measured[i]
    return out, times
