"""Smoke check of the RoCEv2 endpoints: a short RoCE incast with DCQCN on the lossless
fabric completes every block, DCQCN reacts, nothing is dropped in the lossless class."""

from __future__ import annotations

import shutil

from kvfabric.smoke import smoke_check

from .core import run_quietly


@smoke_check("roce-dcqcn", area="roce", order=50)
def roce_incast() -> str:
    """roce_incast, 3 senders x 3 blocks over RoCE + DCQCN: all complete, no lossless drops."""
    outcome, root = run_quietly("roce_incast", {
        "workload.senders": 3, "workload.blocks": 3, "workload.transports": "roce-dcqcn"})
    results = outcome.summary.get("results", {})
    roce = (results.get("transports") or {}).get("roce-dcqcn", {})
    queues = outcome.summary.get("queues") or {}
    problems = []
    if outcome.status != "ok":
        problems.append(f"status {outcome.status} ({outcome.summary.get('error')})")
    if not results.get("all_blocks_completed"):
        problems.append(f"blocks completed: {roce.get('blocks_completed')}")
    if (queues.get("drops_by_class") or {}).get("lossless", 0) != 0:
        problems.append(f"lossless drops {queues['drops_by_class']}")
    if problems:
        raise RuntimeError("; ".join(problems) + f"; kept {outcome.run_dir}")
    shutil.rmtree(root)
    return (f"{roce.get('blocks_completed')} blocks, p99 {roce.get('fct_p99_us', 0):.0f} us "
            f"(target), "
            f"{roce.get('cnps_received', 0)} CNPs, {roce.get('rate_cuts', 0)} rate cuts")
