"""Fidelity benchmark: kvfabric's 8-to-1 DCQCN incast beside HPCC's ns-3 run of the same
scenario (bench/fidelity_incast.toml), figures in target microseconds at 25 Gbit/s, with the
ratio and whether each target holds. Run as root:

    .venv/bin/python bench/fidelity.py                    # 1 MB and 8 MB flows at D = 250
    .venv/bin/python bench/fidelity.py --size 1MB --dilation 2500,2000,1500,1000,500,250 \
        --stop-at-first-fail                              # the smallest D that holds
    .venv/bin/python bench/fidelity.py --set workload.endpoint_rt_priority=10

Targets: FCT p50 and p99 within 10 %, mean receiver-port queue within 30 %, no drop in the
lossless class. "Speed at fidelity" is target seconds emulated per wall-clock second (1 / D).
Exit 1 when a run fails (or, with --strict, when a target does not hold at the largest D).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import tomllib

from fabriccore.units import parse_size_bytes
from kvfabric.queue_results import port_window
from kvfabric.runner import run_experiment
from kvfabric.spec import load_spec

SPEC = Path(__file__).with_name("fidelity_incast.toml")

#: HPCC's ns-3 (alibaba-edu/High-Precision-Congestion-Control, `run.py --cc dcqcn`), 8 -> 1,
#: 1 us links, 25 Gbit/s, 1000 B payload, flows starting together; see ../shared/REFERENCES.md.
REFERENCE = {
    1_000_000: {"fct_p50_us": 3114, "fct_p99_us": 3183, "ideal_us": 2683,
                "queue_max_kb": 815, "queue_mean_kb": 225, "pauses": 0, "drops": 0},
    8_000_000: {"fct_p50_us": 22062, "fct_p99_us": 22393, "ideal_us": 21463,
                "queue_mean_kb": 121, "pauses": 0, "drops": 0},
}
TOLERANCE = {"fct_p50_us": 0.10, "fct_p99_us": 0.10, "queue_mean_kb": 0.30}


def parse_override(text: str) -> tuple[str, Any]:
    """FIELD=VALUE with a TOML value (a bare word is a string), as `kvfabric run --set`."""
    key, _, value = text.partition("=")
    try:
        return key.strip(), tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        return key.strip(), value


def run_point(size: int, dilation: float, results: Path,
              overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    spec = load_spec(str(SPEC), {"workload.block_bytes": size, "fabric.dilation": dilation,
                                 **(overrides or {})})
    outcome = run_experiment(spec, results)
    summary = outcome.summary
    roce = (summary.get("results") or {}).get("transports", {}).get("roce-dcqcn", {})
    queues = summary.get("queues") or {}
    out = {"run_dir": str(outcome.run_dir), "status": summary["status"],
           "fct_p50_us": roce.get("fct_p50_us"), "fct_p99_us": roce.get("fct_p99_us"),
           "pauses": queues.get("pause_frames_sent"),
           "drops": (queues.get("drops_by_class") or {}).get("lossless"),
           "rate_cuts": roce.get("rate_cuts"), "ce_marked": roce.get("ce_marked_packets"),
           "goodput_bps": roce.get("goodput_bps"),
           "path_rtt_target_us": (summary.get("facts", {}).get("path_rtt") or {}).get(
               "rtt_avg_target_us"),
           "fidelity_figures": (summary.get("fidelity") or {}).get("figures", {}),
           "fidelity": (summary.get("fidelity") or {}).get("status"),
           "fidelity_reasons": (summary.get("fidelity") or {}).get("reasons", [])}
    if summary["status"] == "ok":
        window = port_window(outcome.run_dir, spec.workload["receiver"])
        out.update(queue_max_kb=window["max_bytes"] / 1e3,
                   queue_mean_kb=window["mean_middle_bytes"] / 1e3,
                   bottleneck_busy_us=window["busy_s"] / dilation * 1e6,
                   bottleneck_utilisation=window["sent_bytes"] * 8 / window["busy_s"]
                   / spec.fabric["host_rate"])
    return out


def verdict(size: int, got: dict[str, Any]) -> tuple[bool, list[str]]:
    ref, lines, ok = REFERENCE[size], [], got["status"] == "ok"
    for key in ("fct_p50_us", "fct_p99_us", "queue_max_kb", "queue_mean_kb", "pauses",
                "drops"):
        if key not in ref:
            continue
        mine = got.get(key)
        ratio = f"{mine / ref[key]:.3f}" if mine is not None and ref[key] else "-"
        tol = TOLERANCE.get(key)
        holds = ""
        if tol is not None:
            good = mine is not None and abs(mine / ref[key] - 1) <= tol
            ok &= good
            holds = f"{'ok' if good else 'FAIL'} (±{tol:.0%})"
        elif key == "drops":
            good = mine == 0
            ok &= good
            holds = "ok" if good else "FAIL (lossless drop)"
        shown = "-" if mine is None else f"{mine:.0f}" if isinstance(mine, float) else mine
        lines.append(f"  {key:14} kvfabric {shown!s:>9}  HPCC ns-3 {ref[key]:>7}  "
                     f"ratio {ratio:>6}  {holds}")
    return ok, lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="1MB,8MB", help="flow sizes (1MB, 8MB)")
    parser.add_argument("--dilation", default="250", help="comma-separated dilation factors")
    parser.add_argument("--stop-at-first-fail", action="store_true",
                        help="with several D (largest first): stop once a D fails")
    parser.add_argument("--results", default=None, help="keep the run folders here")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    parser.add_argument("--strict", action="store_true",
                        help="exit 1 when a target does not hold at the largest D (default: "
                        "only when a run fails)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a field of bench/fidelity_incast.toml")
    args = parser.parse_args(argv)
    sizes = [parse_size_bytes(s) for s in args.size.split(",")]
    sizes = [1_000_000 if s in (1 << 20, 10**6) else 8_000_000 if s in (8 << 20, 8 * 10**6)
             else s for s in sizes]
    dilations = sorted((float(d) for d in args.dilation.split(",")), reverse=True)
    overrides = dict(parse_override(text) for text in args.set)
    root = Path(args.results) if args.results else Path(tempfile.mkdtemp(prefix="kvf-fid-"))
    report, all_ok = [], True
    for size in sizes:
        if size not in REFERENCE:
            raise SystemExit(f"no reference for {size} bytes: use 1MB or 8MB")
        smallest = None
        for d in dilations:
            got = run_point(size, d, root, overrides)
            ok, lines = verdict(size, got)
            print(f"{size / 1e6:g} MB flows, D = {d:g} (speed {1 / d:.4f} target s per wall s)"
                  f": {'holds' if ok else 'does not hold'}; host fidelity "
                  f"{got['fidelity']}; {got['run_dir']}")
            print("\n".join(lines))
            figures = got.get("fidelity_figures") or {}
            print(f"  path RTT (ping, idle) {got.get('path_rtt_target_us') or float('nan'):.2f}"
                  f" us target (ns-3: 4 us of links); PFC agent sweep p99 "
                  f"{figures.get('pfc_agent_reaction_p99_target_us', float('nan')):.1f} us "
                  f"target; senders' pacing lag p99 "
                  f"{figures.get('pacing_lag_p99_target_us_worst', float('nan')):.1f} us "
                  f"target; CPU busy {figures.get('cpu_busy_mean', float('nan')):.0%}")
            shares = figures.get("endpoint_core_share") or {}
            if shares:
                senders = [v for k, v in shares.items() if k.startswith("send")]
                print(f"  core share: receiver {shares.get('recv h1', float('nan')):.0%}, "
                      f"senders up to {max(senders, default=float('nan')):.0%}")
            if got.get("fidelity_reasons"):
                print("  fidelity: " + "; ".join(got["fidelity_reasons"]))
            report.append({"size_bytes": size, "dilation": d, "holds": ok, **got})
            all_ok &= (ok or not args.strict) if d == max(dilations) else True
            all_ok &= got["status"] == "ok"
            if ok:
                smallest = d
            elif args.stop_at_first_fail:
                break
        if len(dilations) > 1:
            print(f"{size / 1e6:g} MB: smallest D at which the targets hold: "
                  f"{smallest if smallest is not None else 'none tried'}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
