"""PFC hysteresis and ECN marking decisions, driven by an injected clock and seeded RNG."""

from __future__ import annotations

import random

import pytest

from topologies.queues.pfc_model import EcnMarker, PfcState, PfcTable
from topologies.queues.spec import EcnRamp, PfcThresholds
from wire.ecn import ECN_CE, ECN_ECT0, ECN_ECT1, ECN_NOT_ECT


def test_pause_at_xoff_resume_at_xon_with_hysteresis():
    pfc = PfcState(xoff_bytes=10_000, xon_bytes=6_000)
    trace = [(0, 0.0), (9_999, 0.1), (10_000, 0.2), (12_000, 0.3), (8_000, 0.4),
             (6_001, 0.5), (6_000, 0.6), (9_000, 0.7), (10_500, 0.8)]
    actions = [pfc.on_depth(d, t) for d, t in trace]
    assert actions == [None, None, "pause", None, None, None, "resume", None, "pause"]
    assert pfc.pause_sent == 2 and pfc.resume_sent == 1 and pfc.paused


def test_time_paused_accumulates_only_while_paused():
    pfc = PfcState(xoff_bytes=10_000, xon_bytes=6_000)
    pfc.on_depth(20_000, 1.0)      # pause at t = 1.0
    pfc.on_depth(20_000, 1.5)
    pfc.on_depth(1_000, 2.25)      # resume: paused for 1.25 s
    pfc.on_depth(1_000, 5.0)
    assert pfc.time_paused_s == pytest.approx(1.25)
    pfc.on_depth(20_000, 6.0)      # paused again
    pfc.on_depth(20_000, 6.5)
    assert pfc.time_paused_s == pytest.approx(1.75)


def test_refresh_repauses_a_queue_still_above_xon():
    pfc = PfcState(xoff_bytes=10_000, xon_bytes=6_000, refresh_s=0.001)
    assert pfc.on_depth(10_000, 0.0) == "pause"
    assert pfc.on_depth(8_000, 0.0005) is None
    assert pfc.on_depth(8_000, 0.001) == "pause"
    assert pfc.on_depth(8_000, 0.0015) is None
    assert pfc.on_depth(5_000, 0.002) == "resume"
    assert pfc.pause_sent == 2


def test_time_must_not_go_backwards():
    pfc = PfcState(xoff_bytes=10_000, xon_bytes=6_000)
    pfc.on_depth(0, 1.0)
    with pytest.raises(ValueError):
        pfc.on_depth(0, 0.5)


@pytest.mark.parametrize("xoff, xon, refresh", [(10, 10, None), (10, 20, None),
                                                 (10, 5, 0.0), (-1, -5, None)])
def test_pfc_state_rejects_bad_configuration(xoff, xon, refresh):
    with pytest.raises(ValueError):
        PfcState(xoff, xon, refresh_s=refresh)


def test_pfc_table_keeps_ports_and_priorities_apart():
    table = PfcTable(PfcThresholds(xoff_bytes=10_000, xon_bytes=6_000, headroom_bytes=3_000))
    assert table.on_depth("s1-eth1", 3, 12_000, 0.0) == "pause"
    assert table.on_depth("s1-eth1", 0, 12_000, 0.0) == "pause"
    assert table.on_depth("s1-eth2", 3, 5_000, 0.0) is None
    assert table.on_depth("s1-eth1", 3, 5_000, 0.1) == "resume"
    assert table.state("s1-eth1", 0).paused and not table.state("s1-eth1", 3).paused
    with pytest.raises(ValueError):
        table.state("s1-eth1", 8)


class _NoDraws:
    def random(self) -> float:
        raise AssertionError("the marker drew randomness outside the ramp")


RAMP = EcnRamp(kmin_bytes=30_000, kmax_bytes=90_000, pmax=0.5)


def test_not_ect_is_never_marked_and_ce_stays_ce():
    marker = EcnMarker(RAMP, _NoDraws())
    for depth in (0, 60_000, 10**9):
        assert marker.mark(depth, ECN_NOT_ECT) == ECN_NOT_ECT
        assert marker.mark(depth, ECN_CE) == ECN_CE
    assert marker.marks == 0 and marker.ect_packets == 0 and marker.packets == 6


def test_no_draws_below_kmin_or_above_kmax():
    marker = EcnMarker(RAMP, _NoDraws())
    assert marker.mark(30_000, ECN_ECT0) == ECN_ECT0
    assert marker.mark(90_001, ECN_ECT0) == ECN_CE
    assert marker.mark(10**9, ECN_ECT1) == ECN_CE
    assert marker.marks == 2 and marker.ect_packets == 3


@pytest.mark.parametrize("depth", [45_000, 60_000, 90_000])
def test_marked_fraction_follows_ramp(depth):
    marker = EcnMarker(RAMP, random.Random(7))
    n = 20_000
    marked = sum(marker.should_mark(depth, ECN_ECT0 if i % 2 else ECN_ECT1) for i in range(n))
    assert marked / n == pytest.approx(RAMP.probability(depth), abs=0.015)
    assert marker.marks == marked


def test_seeded_marker_is_deterministic():
    runs = []
    for _ in range(2):
        marker = EcnMarker(RAMP, random.Random(42))
        runs.append([marker.mark(d, ECN_ECT0) for d in range(30_000, 90_000, 100)])
    assert runs[0] == runs[1]


def test_ecn_field_is_two_bits():
    with pytest.raises(ValueError):
        EcnMarker(RAMP, random.Random(0)).mark(0, 4)
