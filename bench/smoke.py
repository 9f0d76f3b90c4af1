"""How long `kvfabric smoke` takes against its 2-minute budget: each check's own time (time
queued for the fabric lock behind other jobs excluded) and the total, median over N runs.
Run as root: ``.venv/bin/python bench/smoke.py [--repeat N]``."""

from __future__ import annotations

import argparse
import statistics
import time

from kvfabric.smoke import discover, run_checks

BUDGET_S = 120.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    checks = discover()
    per_check: dict[str, list[float]] = {c.name: [] for c in checks}
    totals, waits = [], []
    for _ in range(args.repeat):
        started = time.monotonic()
        results = run_checks(checks, say=lambda _: None)
        waited = sum(r.lock_wait_s for r in results)
        totals.append(time.monotonic() - started - waited)
        waits.append(waited)
        for result in results:
            if result.status == "failed":
                print(f"{result.check.name} FAILED: {result.detail}\n{result.trace}")
                return 1
            per_check[result.check.name].append(result.own_s)
    for name, times in per_check.items():
        print(f"{name:28} median {statistics.median(times):6.2f} s  "
              f"(min {min(times):.2f}, max {max(times):.2f})")
    median = statistics.median(totals)
    print(f"{'total':28} median {median:6.2f} s over {args.repeat} runs "
          f"(budget {BUDGET_S:.0f} s); queued for the fabric lock: "
          + ", ".join(f"{w:.1f}" for w in waits) + " s")
    return 0 if median < BUDGET_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
