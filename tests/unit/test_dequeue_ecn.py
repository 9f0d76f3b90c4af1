"""Dequeue marking draws the same RED ramp as the eBPF marker (ecn_marker.bpf.c
ramp_marks): nothing at or below Kmin, linear to Pmax at Kmax, everything above Kmax."""

import random
from pathlib import Path

from kvfabric.spec import load_spec
from traffic.dequeue_ecn import DepthCache, ramp_marks

KMIN, KMAX, PMAX = 100_000, 400_000, 0.2


def test_ramp_edges():
    assert not ramp_marks(KMIN, KMIN, KMAX, PMAX, 0.0)
    assert ramp_marks(KMAX + 1, KMIN, KMAX, PMAX, 0.999)
    assert ramp_marks(KMAX, KMIN, KMAX, PMAX, 0.1999) and not ramp_marks(KMAX, KMIN, KMAX,
                                                                          PMAX, 0.2)


def test_ramp_probability_is_linear_between_kmin_and_kmax():
    rng = random.Random(7)
    depth = (KMIN + KMAX) / 2  # expected 0.1
    marked = sum(ramp_marks(depth, KMIN, KMAX, PMAX, rng.random()) for _ in range(20_000))
    assert abs(marked / 20_000 - 0.1) < 0.01


def test_the_fidelity_scenario_marks_at_dequeue():
    spec = load_spec(str(Path(__file__).resolve().parents[2] / "bench" / "fidelity_incast.toml"))
    assert spec.workload["ecn_marking"] == "dequeue"
    assert load_spec("roce_incast").workload["ecn_marking"] == "enqueue"


def test_the_depth_is_read_again_as_time_moves_on_not_once_per_wake_up():
    """A receiver that never finds its socket empty still marks against the queue of now."""
    depths = iter([1000.0, 250_000.0, 500_000.0])
    cache = DepthCache(lambda: next(depths), refresh_s=20e-6)
    assert cache.depth(0.0) == 1000.0
    assert cache.depth(10e-6) == 1000.0  # the same batch: one read
    assert cache.depth(25e-6) == 250_000.0
    assert cache.depth(1.0) == 500_000.0
    assert cache.reads == 3
