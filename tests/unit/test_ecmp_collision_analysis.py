"""ecmp_collision's summary claims a collision only when the picked elephants kept the uplink
their probes saw."""

from __future__ import annotations

import json
from types import SimpleNamespace

from kvfabric.results import write_csv
from kvfabric.workloads.ecmp_collision_analysis import analyse

SPEC = SimpleNamespace(fabric={"fabric_rate": 50_000_000, "controller": "adaptive"})


def _run_dir(tmp_path, reroutes):
    flows = [{"sender": s, "receiver": r, "sport": port, "initial_uplink": "kvf-l1-eth3",
              "bytes": 12 << 20, "start": 100.0, "end": 102.5, "fct_s": 2.5, "ok": True,
              "throughput_bps": 40e6} for s, r, port in (("h1", "h3", 44180),
                                                          ("h2", "h4", 57358))]
    write_csv(tmp_path / "flows.csv", flows)
    write_csv(tmp_path / "uplinks.csv",
              [{"t": 100.0 + i * 0.01, "iface": "kvf-l1-eth3", "tx_bytes": i * 62_500}
               for i in range(100)])
    with (tmp_path / "controller-events.jsonl").open("w") as f:
        for t, sport in reroutes:
            f.write(json.dumps({"t": t, "kind": "reroute", "switch": "l1",
                                "flow": ["10.0.0.2", "10.0.0.4", 6, sport, 5201],
                                "old_port": 3, "new_port": 4}) + "\n")
    return tmp_path


def test_a_picked_connection_moved_while_probing_voids_the_collision(tmp_path):
    summary = analyse(_run_dir(tmp_path, [(99.0, 44180)]), SPEC)
    assert summary["reroutes_before_start"] == 1
    assert summary["picked_moved_before_start"] == 1
    assert summary["collided_on"] is None
    assert summary["reroutes"] == 0


def test_a_probe_moved_that_was_not_picked_keeps_the_collision(tmp_path):
    summary = analyse(_run_dir(tmp_path, [(99.0, 44184), (100.6, 57358)]), SPEC)
    assert summary["reroutes_before_start"] == 1
    assert summary["picked_moved_before_start"] == 0
    assert summary["collided_on"] == "kvf-l1-eth3"
    assert summary["reroutes"] == 1
