"""Summary and plots of a serving_disagg run from its raw files alone (target units: the
workload wrote every time in target seconds already).

Per mode: TTFT (and its parts), TPOT, end-to-end latency and the network's share of TTFT at
p50/p90/p99, SLO attainment at the run's rate (DistServe: both the TTFT and the TPOT SLO,
unfinished requests miss), and goodput (the highest rate in ``attainment.csv`` with
attainment >= 90 %, stopping at the first miss); per routing policy the prefix-hit share,
fabric bytes and TTFT.
"""

from __future__ import annotations

import csv
import math
from dataclasses import fields
from pathlib import Path
from typing import Any

from serving.metrics import RequestRecord, Slo, attainment, summarise

from ..serving_plots import plot_attainment, plot_latency_cdfs

MODES = ("disaggregated", "colocated")
GOODPUT_TARGET = 0.9


def write_rows(path: Path, rows: list[dict], header: list[str] | None = None) -> None:
    header = header or (list(rows[0]) if rows else [])
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)


def _rows(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def read_records(path: Path) -> list[RequestRecord]:
    """The requests of one mode, as the workload wrote them."""
    types = {f.name: f.type for f in fields(RequestRecord)}
    out = []
    for row in _rows(path):
        out.append(RequestRecord(**{k: (v if types[k] == "str" else
                                        int(v) if types[k] == "int" else float(v))
                                    for k, v in row.items()}))
    return out


class _Run:  # what plot_latency_cdfs reads
    def __init__(self, records: list[RequestRecord]) -> None:
        self.records = records


def goodput_from_curve(points: list[tuple[float, float]],
                       target: float = GOODPUT_TARGET) -> float:
    best = 0.0
    for rate, value in sorted(points):
        if value < target:
            break
        best = rate
    return best


def _parts_p50(records: list[RequestRecord]) -> dict[str, float]:
    done = [r.ttft_parts_s() for r in records if r.done]
    if not done:
        return {}
    return {f"ttft_{k}_p50_ms": sorted(p[k] for p in done)[len(done) // 2] * 1e3
            for k in done[0]}


def _flat(prefix: str, summary: dict[str, Any]) -> dict[str, float]:
    out = {}
    for key, unit, scale in (("ttft_s", "ms", 1e3), ("tpot_s", "ms", 1e3),
                             ("e2e_s", "ms", 1e3), ("network_share_of_ttft", "", 1.0)):
        for q, value in summary[key].items():
            name = key.removesuffix("_s")
            out[f"{prefix}_{name}_{q}" + (f"_{unit}" if unit else "")] = value * scale
    return out


def analyse(run_dir: Path, spec) -> dict[str, Any]:
    w = spec.workload
    slo = Slo(w["ttft_slo_s"], w["tpot_slo_s"])
    curves: dict[str, list[tuple[float, float]]] = {m: [] for m in MODES}
    for row in _rows(run_dir / "attainment.csv"):
        curves[row["mode"]].append((float(row["rate_rps"]), float(row["attainment"])))
    records = {m: read_records(run_dir / f"requests_{m}.csv") for m in MODES}
    transfers = _rows(run_dir / "transfers.csv")
    out: dict[str, Any] = {"ttft_slo_s": slo.ttft_s, "tpot_slo_s": slo.tpot_s}
    for mode in MODES:
        recs = records[mode]
        if not recs:
            continue
        summary = summarise(recs, slo)
        out[f"{mode}_requests"] = summary["requests"]
        out[f"{mode}_finished"] = summary["finished"]
        out[f"{mode}_slo_attainment"] = attainment(recs, slo)
        out[f"{mode}_goodput_rps"] = goodput_from_curve(curves[mode])
        out.update(_flat(mode, summary))
        if mode == "disaggregated":
            out.update({f"disaggregated_{k}": v for k, v in _parts_p50(recs).items()})
            out["fabric_bytes"] = summary["fabric_bytes"]
            out["prefix_hit_share"] = summary["prefix_hit_share"]
    disagg, coloc = out.get("disaggregated_goodput_rps"), out.get("colocated_goodput_rps")
    if disagg is not None and coloc:
        out["goodput_gain"] = disagg / coloc - 1.0
    measured = [float(t["fct_emulated_s"]) for t in transfers]
    out["transfers"] = len(transfers)
    out["transfers_measured"] = sum(1 for t in transfers if float(t["size_bytes"]) > 0
                                    and math.isfinite(float(t["fct_emulated_s"])))
    out["nic_bytes"] = sum(int(t["size_bytes"]) for t in transfers)
    if measured:
        d = spec.scale.dilation
        ordered = sorted(x / d for x in measured)
        out["transfer_p50_ms"] = ordered[len(ordered) // 2] * 1e3
        out["transfer_max_ms"] = ordered[-1] * 1e3
    out["all_requests_completed"] = all(
        records[m] and out[f"{m}_finished"] == out[f"{m}_requests"] for m in MODES)
    for row in _rows(run_dir / "policies.csv"):
        name = row["policy"]
        out[f"policy_{name}_prefix_hit_share"] = float(row["prefix_hit_share"])
        out[f"policy_{name}_fabric_bytes"] = int(row["fabric_bytes"])
        out[f"policy_{name}_ttft_p50_ms"] = float(row["ttft_p50_s"]) * 1e3
        out[f"policy_{name}_transfers"] = row.get("transfers", "replayed")
    if all(records[m] for m in MODES):
        plot_latency_cdfs({m: _Run(records[m]) for m in MODES},
                          run_dir / "latency_cdfs.png", slo)
    if any(curves.values()):
        plot_attainment(curves, run_dir / "attainment.png", GOODPUT_TARGET)
    return out
