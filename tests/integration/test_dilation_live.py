"""The dilated reference incast on a real fabric (root): HPCC's 8-to-1 DCQCN scenario at a
25 Gbit/s target (bench/fidelity_incast.toml). Exact ratios to HPCC's ns-3 live in
bench/fidelity.py; here the coarse invariants: the lossless class stays lossless and the
bottleneck is used, and a run the host cannot carry says so."""

from __future__ import annotations

from pathlib import Path

import pytest

from kvfabric.queue_results import port_window
from kvfabric.runner import run_experiment
from kvfabric.spec import load_spec

pytestmark = pytest.mark.root
SPEC = Path(__file__).resolve().parents[2] / "bench" / "fidelity_incast.toml"


@pytest.mark.parametrize("senders", ["per-host", "shared"])
def test_eight_to_one_1mb_incast_is_lossless_and_uses_the_bottleneck(tmp_path, senders,
                                                                      nothing_left):
    """Either way of running the senders: a process per host, or one driving all eight.

    At D = 1500, where this 2-core host holds every target of the benchmark: the share used
    is then the protocol's (HPCC's ns-3 itself uses 86 %: ideal 2683 us against 3114 us;
    measured here 0.86-0.88 in 6 runs). At D = 250 the host's late, bursty senders move it
    anywhere from 0.77 to 1.0 on a quiet machine, which says more about the host than about
    the fabric (bench/fidelity.py measures that)."""
    spec = load_spec(str(SPEC), {"workload.block_bytes": 1_000_000, "fabric.dilation": 1500,
                                 "workload.sender_processes": senders})
    outcome = run_experiment(spec, tmp_path)
    summary = outcome.summary
    assert summary["status"] == "ok", summary.get("error")
    assert summary["scale"]["dilation"] == 1500
    assert summary["queues"]["drops_by_class"]["lossless"] == 0
    roce = summary["results"]["transports"]["roce-dcqcn"]
    assert roce["blocks_completed"] == 8 and roce["rate_cuts"] > 0
    window = port_window(outcome.run_dir, "h1")
    used = window["sent_bytes"] * 8 / window["busy_s"] / spec.fabric["host_rate"]
    assert used >= 0.8, f"the receiver's downlink carried {used:.0%} of its rate"
    assert summary["fidelity"]["status"] in ("ok", "degraded")
    nothing_left()


def test_a_run_the_host_cannot_carry_reports_degraded_fidelity(tmp_path, nothing_left):
    """D = 10 asks for 2.5 Gbit/s links from Python endpoints on a small VM."""
    spec = load_spec(str(SPEC), {"workload.block_bytes": 1_000_000, "fabric.dilation": 10})
    outcome = run_experiment(spec, tmp_path)
    fidelity = outcome.summary["fidelity"]
    assert fidelity["status"] == "degraded", fidelity
    assert fidelity["reasons"]
    nothing_left()
