"""Spec checks shared by workloads that send from several hosts to one receiver."""

from __future__ import annotations

from typing import Any

from topologies.leafspine import FabricTopo

from ..schema import SpecIssue


def check_receiver_and_senders(workload: dict[str, Any], topo: FabricTopo,
                               issues: list[SpecIssue]) -> None:
    """workload.receiver must be a host; workload.senders at most the other hosts."""
    hosts = topo.host_names()
    if workload["receiver"] not in hosts:
        issues.append(SpecIssue("workload.receiver", f"no host {workload['receiver']!r}",
                                f"use one of h1..h{len(hosts)}"))
    elif workload["senders"] > len(hosts) - 1:
        issues.append(SpecIssue("workload.senders", f"{workload['senders']} senders but only "
                                f"{len(hosts) - 1} other hosts",
                                f"set workload.senders to at most {len(hosts) - 1}, or add "
                                "hosts (fabric.leaves / fabric.hosts_per_leaf)"))
