"""Disaggregated against colocated serving on a trace window, in the serving model alone.

No fabric: KV transfer times come from ``LinkFormulaTransfer`` (latency + bytes / rate, one
transfer at a time per NIC), so the table shows what the model predicts for an uncongested
link of each rate; the fabric's measured times replace the formula once the
``serving_disagg`` workload drives the model (docs/serving.md).

    .venv/bin/python bench/serving_window.py --busiest-s 10 --link-gbps 25,100,400
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from serving.cluster import ClusterConfig  # noqa: E402
from serving.metrics import Slo  # noqa: E402
from serving.presets import roofline_profile  # noqa: E402
from serving.study import compare_modes, table  # noqa: E402
from serving.transfer import LinkFormulaTransfer  # noqa: E402
from traffic.kvcache import preset  # noqa: E402
from traffic.trace_window import Selection  # noqa: E402
from traffic.traces import read_trace  # noqa: E402

DEFAULT_TRACE = ROOT.parent / "shared" / "traces" / "conversation_trace.jsonl"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trace", default=str(DEFAULT_TRACE))
    parser.add_argument("--format", default="mooncake", choices=("mooncake", "azure"))
    parser.add_argument("--busiest-s", type=float, default=10.0)
    parser.add_argument("--model", default="qwen2.5-7b")
    parser.add_argument("--gpu", default="h100-sxm")
    parser.add_argument("--prefill", type=int, default=4)
    parser.add_argument("--decode", type=int, default=4)
    parser.add_argument("--policy", default="kv_aware")
    parser.add_argument("--transfer-mode", default="whole", choices=("whole", "layerwise"))
    parser.add_argument("--link-gbps", default="25,100,400")
    parser.add_argument("--rates", default="2,4,6,8,10,12,16,20,25,30,40")
    parser.add_argument("--ttft-slo-s", type=float, default=2.0)
    parser.add_argument("--tpot-slo-s", type=float, default=0.1)
    parser.add_argument("--plots-dir", help="write TTFT/TPOT CDFs and attainment curves here")
    args = parser.parse_args(argv)
    if not Path(args.trace).is_file():
        print(f"no trace {args.trace}", file=sys.stderr)
        return 2
    started = time.monotonic()
    trace = read_trace(args.trace, args.format, selection=Selection(busiest_s=args.busiest_s))
    config = ClusterConfig(roofline_profile(args.model, args.gpu), preset(args.model),
                           args.prefill, args.decode, policy=args.policy,
                           transfer_mode=args.transfer_mode)
    slo = Slo(args.ttft_slo_s, args.tpot_slo_s)
    rates = [float(r) for r in args.rates.split(",")]
    print(f"{args.trace}: {len(trace.requests)} requests, window "
          f"{trace.mapping['window_start_s']:g}-{trace.mapping['window_end_s']:g} s; "
          f"{config.profile.name}, {args.prefill}P{args.decode}D vs "
          f"{args.prefill + args.decode} colocated, policy {args.policy}, "
          f"{args.transfer_mode} transfers, SLO TTFT "
          f"{slo.ttft_s:g} s / TPOT {slo.tpot_s * 1e3:g} ms")
    for gbps in (float(g) for g in args.link_gbps.split(",")):
        comparison = compare_modes(trace.requests, config,
                                   lambda gbps=gbps: LinkFormulaTransfer(gbps * 1e9, 10e-6),
                                   slo, rates)
        print(f"\n### link {gbps:g} Gbit/s\n\n{table(comparison)}")
        if args.plots_dir:
            _plot(Path(args.plots_dir), f"{gbps:g}G", trace.requests, config, slo, rates,
                  lambda gbps=gbps: LinkFormulaTransfer(gbps * 1e9, 10e-6))
    print(f"\n({time.monotonic() - started:.1f} s)")
    return 0


def _plot(folder: Path, tag: str, requests, config, slo, rates, transfer) -> None:
    from kvfabric.serving_plots import plot_attainment, plot_latency_cdfs
    from serving.cluster import serve
    from serving.study import attainment_curve

    folder.mkdir(parents=True, exist_ok=True)
    runs = {mode: serve(requests, mode, config, transfer() if mode == "disaggregated" else None)
            for mode in ("disaggregated", "colocated")}
    plot_latency_cdfs(runs, folder / f"latency_cdf_{tag}.png", slo)
    plot_attainment(attainment_curve(requests, config, transfer, slo, rates),
                    folder / f"attainment_{tag}.png")
    print(f"plots in {folder}")


if __name__ == "__main__":
    sys.exit(main())
