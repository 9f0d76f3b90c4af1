"""Incast analysis from raw CSV: goodput per round, completion-time percentiles, plot."""

import csv

import pytest

from kvfabric.spec import load_spec
from kvfabric.workloads.tcp_incast import choose_senders
from kvfabric.workloads.tcp_incast_analysis import analyse
from traffic.tcp_incast import FLOW_FIELDS


def _write_flows(path, rows):
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FLOW_FIELDS)
        writer.writeheader()
        writer.writerows(rows)


def test_round_goodput_is_bytes_over_slowest_flow(tmp_path):
    spec = load_spec("tcp_incast", {"workload.senders": 2, "workload.rounds": 2})
    block = spec.workload["block_size"]
    rows = []
    for rnd, fcts in ((1, (0.05, 0.1)), (2, (0.05, 0.3))):
        for sender, fct in zip(("h2", "h3"), fcts):
            rows.append({"round": rnd, "sender": sender, "block_bytes": block,
                         "bytes_received": block, "request_s": 0, "first_byte_s": 0.001,
                         "completion_s": fct, "fct_s": fct})
    _write_flows(tmp_path / "flows.csv", rows)
    summary = analyse(tmp_path, spec)
    goodputs = [8 * 2 * block / 0.1, 8 * 2 * block / 0.3]
    assert summary["goodput_mean_bps"] == pytest.approx(sum(goodputs) / 2)
    assert summary["flows_over_rto_min"] == 1
    assert summary["fct_max_s"] == pytest.approx(0.3)
    assert (tmp_path / "incast.png").stat().st_size > 10_000
    assert (tmp_path / "rounds.csv").read_text().count("\n") == 3


def test_incomplete_round_counts_as_incomplete(tmp_path):
    spec = load_spec("tcp_incast", {"workload.senders": 1, "workload.rounds": 1})
    _write_flows(tmp_path / "flows.csv", [{
        "round": 1, "sender": "h2", "block_bytes": 100, "bytes_received": 40, "request_s": 0,
        "first_byte_s": 0.1, "completion_s": "", "fct_s": ""}])
    summary = analyse(tmp_path, spec)
    assert summary["rounds_completed"] == 0 and summary["flows_incomplete"] == 1


def test_sender_choice_is_seeded_and_excludes_receiver():
    topo = load_spec("tcp_incast").make_topology()
    first = choose_senders(topo, "h1", 4, seed=7)
    assert first == choose_senders(topo, "h1", 4, seed=7)
    assert "h1" not in first and len(set(first)) == 4
