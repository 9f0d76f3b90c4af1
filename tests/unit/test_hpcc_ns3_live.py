"""`kvfabric sim` on HPCC's ns-3 itself, when a build is given ($KVFABRIC_NS3): the 8-to-1
reference incast must reproduce HPCC's published figures (../shared/REFERENCES.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kvfabric import cli, results
from kvfabric.engines.hpcc_ns3 import simulator

ROOT = Path(__file__).resolve().parents[2]
SIM, WHY = simulator.locate()


@pytest.mark.skipif(SIM is None, reason=f"HPCC's ns-3 simulator not found: {WHY}")
def test_simulated_8_to_1_incast_reproduces_hpcc_figures(tmp_path):
    code = cli.main(["sim", str(ROOT / "bench" / "fidelity_incast.toml"),
                     "--results", str(tmp_path), "--timeout", "600"])
    assert code == 0
    run_dir = results.find_run("latest", tmp_path)
    summary = results.load_summary(run_dir)
    assert summary["engine"] == "hpcc-ns3" and summary["scale"]["dilation"] == 1.0
    roce = summary["results"]["transports"]["roce-dcqcn"]
    assert roce["blocks_completed"] == 8
    assert roce["fct_p50_us"] == pytest.approx(3114, rel=0.02)
    assert roce["fct_p99_us"] == pytest.approx(3183, rel=0.02)
    assert summary["queues"]["bottleneck_depth_max_bytes"] == pytest.approx(815e3, rel=0.1)
    assert summary["queues"]["pause_frames_received"] == 0
    assert summary["timings_s"]["simulation"] > 0
