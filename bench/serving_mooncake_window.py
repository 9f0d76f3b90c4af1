"""The busiest 10-second window of the Mooncake conversation trace, served end to end on the
fabric (disaggregated, every KV transfer measured) and colocated, by `kvfabric run
serving_disagg`. A benchmark, not a test: the window's 73 requests put about 16 GB on NIC 0
(Llama-3-8B, one of 8 shards per NIC), which at the 100 Mbit/s an emulated NIC carries is
20-30 minutes of wall time on a 2-core host.

    .venv/bin/python bench/serving_mooncake_window.py [--trace PATH] [--set K=V ...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TRACE = ROOT.parent / "shared" / "traces" / "conversation_trace.jsonl"
KEYS = ("disaggregated_requests", "disaggregated_finished", "colocated_finished",
        "disaggregated_ttft_p50_ms", "disaggregated_ttft_p99_ms", "colocated_ttft_p50_ms",
        "colocated_ttft_p99_ms", "disaggregated_tpot_p50_ms", "colocated_tpot_p50_ms",
        "disaggregated_network_share_of_ttft_p50", "disaggregated_slo_attainment",
        "colocated_slo_attainment", "disaggregated_goodput_rps", "colocated_goodput_rps",
        "transfer_p50_ms", "prefix_hit_share")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trace", default=str(DEFAULT_TRACE))
    parser.add_argument("--results", default=str(ROOT / "results"))
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE")
    args = parser.parse_args(argv)
    if not Path(args.trace).is_file():
        print(f"no trace {args.trace}", file=sys.stderr)
        return 2
    overrides = [f"workload.trace={Path(args.trace).resolve()}", "workload.busiest_s=10.0",
                 "workload.max_requests=100000", "workload.timeout=3600s",
                 "workload.goodput_repeats=1", *args.set]
    argv_run = [str(Path(sys.executable).parent / "kvfabric"), "run", "serving_disagg",
                "--results", args.results]
    for item in overrides:
        argv_run += ["--set", item]
    proc = subprocess.run(argv_run)
    runs = sorted((Path(args.results) / "serving_disagg").iterdir())
    if not (runs[-1] / "summary.json").is_file():
        print(f"kvfabric run exited {proc.returncode} without a summary.json in {runs[-1]}: "
              "see its run.log (and dmesg, if it was killed)", file=sys.stderr)
        return proc.returncode or 1
    summary = json.loads((runs[-1] / "summary.json").read_text())
    results = summary.get("results") or {}
    print(json.dumps({"status": summary["status"], "run": str(runs[-1]),
                      "fidelity": summary.get("fidelity", {}).get("status"),
                      **{k: results.get(k) for k in KEYS}}, indent=1))
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
