"""Workload kinds an experiment can run. Each module provides:

``FIELDS`` (its spec fields), ``check(workload, topo, issues)`` (cross-field validation),
``run(ctx)`` (drive the traffic on a live fabric, write raw CSVs) and
``analyse(run_dir, spec) -> dict`` (summary and plots from the raw files alone).
Optional: ``DEFAULT_METRIC`` (the result `kvfabric sweep` plots) and
``overlay(run_dirs, labels, out_dir) -> list[Path]`` (plots for `kvfabric compare`).
"""

from __future__ import annotations

from . import (
    ecmp_collision,
    kv_trace,
    link_failure,
    roce_incast,
    serving_disagg,
    tcp_flows,
    tcp_incast,
    tenant_isolation,
    udp_flows,
)

WORKLOADS = {"tcp_incast": tcp_incast, "tcp_flows": tcp_flows, "udp_flows": udp_flows,
             "ecmp_collision": ecmp_collision, "link_failure": link_failure,
             "tenant_isolation": tenant_isolation, "roce_incast": roce_incast,
             "kv_trace": kv_trace, "serving_disagg": serving_disagg}
