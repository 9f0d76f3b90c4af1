"""Parsers of HPCC ns-3's outputs against fixtures in the formats third.cc writes, and the
run folder the importer makes of them (results schema, target units)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kvfabric import results
from kvfabric.engines.hpcc_ns3.importer import import_outputs, port_peers
from kvfabric.engines.hpcc_ns3.inputs import build_inputs
from kvfabric.engines.hpcc_ns3.outputs import (
    histogram_stats,
    ip_to_node,
    parse_fct,
    parse_pfc,
    parse_qlen,
)
from kvfabric.spec import load_spec

ROOT = Path(__file__).resolve().parents[2]
OUTPUTS = Path(__file__).parent / "fixtures" / "hpcc_ns3" / "outputs"


def test_node_ids_come_from_the_simulator_address_plan():
    # third.cc: node_id_to_ip(id) = 0x0b000001 + (id / 256) * 0x10000 + (id % 256) * 0x100
    assert ip_to_node("0b000001") == 0
    assert ip_to_node("0b000201") == 2
    assert ip_to_node("0b010301") == 259


def test_fct_rows_parse_into_nodes_bytes_and_nanoseconds():
    flows = parse_fct(OUTPUTS / "fct.txt")
    assert [(f.src_node, f.dst_node, f.size_bytes, f.start_ns, f.fct_ns) for f in flows] == [
        (2, 0, 1_000_000, 2_000_000_000, 3_000_000), (3, 0, 1_000_000, 2_000_500_000,
                                                     2_500_000)]
    assert flows[0].standalone_ns == 340_000


def test_pfc_rows_say_who_was_paused_and_when():
    events = parse_pfc(OUTPUTS / "pfc.txt")
    assert [(e.time_ns, e.node, e.node_type, e.ifindex, e.pause) for e in events] == [
        (2_000_100_000, 9, 1, 2, True), (2_000_150_000, 9, 1, 2, False),
        (2_000_120_000, 1, 0, 1, True)]


def test_qlen_keeps_the_last_cumulative_dump():
    when, hist = parse_qlen(OUTPUTS / "qlen.txt")
    assert when == 2_100_000_000
    assert hist == {(9, 1): [70, 0, 10, 0, 20], (9, 2): [100]}


def test_histogram_figures_in_bytes():
    stats = histogram_stats([70, 0, 10, 0, 20])
    assert stats["max_bytes"] == 4000
    assert stats["p50_bytes"] == 0 and stats["p99_bytes"] == 4000
    assert stats["mean_bytes"] == pytest.approx((2 * 10 + 4 * 20) * 1000 / 100)
    # Over a span of 50 samples (the queue is empty outside it) the mean doubles.
    assert histogram_stats([70, 0, 10, 0, 20], 50)["mean_bytes"] == pytest.approx(2000)


def test_ifindex_counts_a_node_links_in_topology_order():
    inputs = build_inputs(load_spec(str(ROOT / "bench" / "fidelity_incast.toml")))
    peers = port_peers(inputs)
    assert peers[(9, 1)] == 0 and peers[(9, 9)] == 8 and peers[(3, 1)] == 9


def test_imported_run_has_the_emulation_schema_in_target_units(tmp_path):
    spec = load_spec(str(ROOT / "bench" / "fidelity_incast.toml"))
    inputs = build_inputs(spec)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    imported = import_outputs(spec, inputs, OUTPUTS, run_dir)
    flows = results.read_csv(run_dir / "flows.csv")
    assert [(r["src"], r["dst"], float(r["start_s"]), float(r["fct_s"])) for r in flows] == [
        ("h3", "h1", 0.0, 0.003), ("h4", "h1", 0.0005, 0.0025)]
    roce = imported["results"]["transports"]["roce-dcqcn"]
    assert roce["blocks_completed"] == 2 and roce["blocks_expected"] == 8
    assert roce["fct_p50_us"] == pytest.approx(2750)  # target us: no dilation
    assert not imported["results"]["all_blocks_completed"]
    queues = imported["queues"]
    assert queues["pause_frames_received"] == 2 and queues["resume_frames_received"] == 1
    assert queues["bottleneck"] == "l1 port 1 -> h1"
    assert queues["bottleneck_depth_max_bytes"] == 4000
    events = results.read_csv(run_dir / "queues" / "pfc_events.csv")
    assert (events[0]["node"], events[0]["peer"], events[0]["event"]) == ("l1", "h2", "pause")
    assert (run_dir / "roce_incast.png").exists() and (run_dir / "queues.png").exists()
    json.dumps(imported, default=str)


def test_without_the_queue_monitor_no_depth_is_reported(tmp_path):
    spec = load_spec(str(ROOT / "bench" / "fidelity_incast.toml"))
    inputs = build_inputs(spec, queue_monitor=False)
    assert inputs.config.keys["QLEN_MON_END"] == inputs.config.keys["QLEN_MON_START"]
    assert any("queue monitor off" in n for n in inputs.config.approximations)
    imported = import_outputs(spec, inputs, OUTPUTS, tmp_path)
    assert imported["queues"]["queue_monitor"] is False
    assert "bottleneck" not in imported["queues"]
    assert imported["queues"]["pause_frames_received"] == 2


def test_a_tcp_phase_that_is_not_simulated_does_not_count_as_missing(tmp_path):
    spec = load_spec(str(ROOT / "bench" / "fidelity_incast.toml"),
                     {"workload.transports": "roce-dcqcn,tcp-cubic", "workload.senders": 2})
    inputs = build_inputs(spec)
    imported = import_outputs(spec, inputs, OUTPUTS, tmp_path)
    assert list(imported["results"]["transports"]) == ["roce-dcqcn"]
    assert imported["results"]["all_blocks_completed"]
