"""Workload kinds an experiment can run. Each module provides:

``FIELDS`` (its spec fields), ``check(workload, topo, issues)`` (cross-field validation),
``run(ctx)`` (drive the traffic on a live fabric, write raw CSVs) and
``analyse(run_dir, spec) -> dict`` (summary and plots from the raw files alone).
"""

from __future__ import annotations

from . import kv_trace, roce_incast, tcp_flows, tcp_incast, udp_flows

WORKLOADS = {"tcp_incast": tcp_incast, "tcp_flows": tcp_flows, "udp_flows": udp_flows,
             "roce_incast": roce_incast, "kv_trace": kv_trace}
