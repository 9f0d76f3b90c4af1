"""serving_disagg's per-policy table: a policy carried on the fabric in its own pass is
summarised from that pass's transfers ("own"); without one, the run's policy's times are
replayed under it ("replayed"), and the table says which."""

from __future__ import annotations

import csv
import math
from dataclasses import replace

from kvfabric.schema import resolve_section
from kvfabric.workloads.serving_disagg import FIELDS, cluster_config, write_results
from kvfabric.workloads.serving_fabric import MeasuredTransfer
from serving.cluster import serve
from serving.routing import POLICIES
from serving.transfer import FixedTransfer
from traffic.traces import requests_from_arrivals

WORKLOAD = resolve_section("workload", FIELDS, {"goodput_repeats": 1, "goodput_rates": "4,8"},
                           [])


def _transfers(requests, config, transfer_s):
    """What a pass of ``config``'s policy would measure if every transfer took transfer_s."""
    run = serve(requests, "disaggregated", config, FixedTransfer(transfer_s))
    return run.records, [MeasuredTransfer(r.index, "h2", "h1", 1 << 20, r.transfer_start_s,
                                          fct_emulated_s=transfer_s,
                                          arrived_s=r.transfer_start_s + transfer_s)
                         for r in run.records]


def _policies(run_dir):
    with (run_dir / "policies.csv").open() as f:
        return {row["policy"]: row for row in csv.DictReader(f)}


def test_each_policy_carried_in_its_own_pass_is_summarised_from_it(tmp_path):
    requests = requests_from_arrivals([0.0, 0.1, 0.2], 2048, 8)
    config = cluster_config(WORKLOAD)
    records, mine = _transfers(requests, config, 0.002)
    others = {p: _transfers(requests, replace(config, policy=p), 0.2)[1]
              for p in POLICIES if p != config.policy}
    write_results(tmp_path, requests, config, WORKLOAD, records, mine, others)
    table = _policies(tmp_path)
    assert {row["transfers"] for row in table.values()} == {"own"}
    for policy in others:
        assert (tmp_path / f"transfers_{policy}.csv").is_file()
        # 200 ms transfers in the other passes, 2 ms in the run's own
        assert float(table[policy]["ttft_p50_s"]) > \
            float(table[config.policy]["ttft_p50_s"]) + 0.15


def test_without_their_own_pass_the_other_policies_replay_the_runs_times(tmp_path):
    requests = requests_from_arrivals([0.0, 0.1, 0.2], 2048, 8)
    config = cluster_config(WORKLOAD)
    records, mine = _transfers(requests, config, 0.002)
    write_results(tmp_path, requests, config, WORKLOAD, records, mine)
    table = _policies(tmp_path)
    assert table[config.policy]["transfers"] == "own"
    others = [p for p in POLICIES if p != config.policy]
    assert {table[p]["transfers"] for p in others} == {"replayed"}
    assert not any((tmp_path / f"transfers_{p}.csv").exists() for p in others)
    for policy in others:
        assert math.isclose(float(table[policy]["ttft_p50_s"]),
                            float(table[config.policy]["ttft_p50_s"]), rel_tol=0.5)
