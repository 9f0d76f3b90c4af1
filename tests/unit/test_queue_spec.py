"""Queue specs validate where they are written and encode the published defaults."""

from __future__ import annotations

import math

import pytest

from topologies.queues.spec import (
    DEFAULT_DSCP_TO_PRIORITY,
    EcnRamp,
    PfcThresholds,
    PortQueues,
    TrafficClass,
    default_port_queues,
    hpcc_ecn_ramp,
    pfc_headroom_bytes,
    priority_for_dscp,
)


def _port(*classes: TrafficClass, rate_bps: int = 25_000_000_000) -> PortQueues:
    return PortQueues(rate_bps=rate_bps, classes=classes)


def _cls(name: str, priority: int, dscp=(), **kw) -> TrafficClass:
    return TrafficClass(name, priority, dscp, kw.pop("buffer_bytes", 100_000), **kw)


# ---- EcnRamp -----------------------------------------------------------------------------------

@pytest.mark.parametrize("kmin, kmax, pmax", [
    (10, 5, 0.1),        # kmin above kmax
    (0, 10, 0.0),        # pmax must be positive
    (0, 10, 1.5),        # and at most 1
    (0, 10, math.nan),
    (-1, 10, 0.1),
    (1.5, 10, 0.1),      # bytes are ints
    (True, 10, 0.1),
])
def test_ecn_ramp_rejects_bad_parameters(kmin, kmax, pmax):
    with pytest.raises(ValueError):
        EcnRamp(kmin, kmax, pmax)


def test_ecn_ramp_probability_is_red_ramp():
    """0 up to and at Kmin, linear to Pmax at Kmax, 1 above Kmax (HPCC ShouldSendCN)."""
    ramp = EcnRamp(100_000, 400_000, 0.2)
    assert ramp.probability(0) == 0.0
    assert ramp.probability(100_000) == 0.0
    assert ramp.probability(250_000) == pytest.approx(0.1)
    assert ramp.probability(400_000) == pytest.approx(0.2)
    assert ramp.probability(400_001) == 1.0
    depths = range(0, 500_000, 997)
    probs = [ramp.probability(d) for d in depths]
    assert all(a <= b for a, b in zip(probs, probs[1:])), "the ramp is monotone"


def test_step_ramp_marks_above_k_only():
    ramp = EcnRamp.step(30_000)
    assert ramp.probability(30_000) == 0.0
    assert ramp.probability(30_001) == 1.0


# ---- PFC thresholds ----------------------------------------------------------------------------

def test_pfc_thresholds_need_hysteresis():
    with pytest.raises(ValueError):
        PfcThresholds(xoff_bytes=10_000, xon_bytes=10_000, headroom_bytes=0)
    t = PfcThresholds(xoff_bytes=10_000, xon_bytes=7_000, headroom_bytes=3_000)
    assert t.buffer_needed_bytes == 13_000


def test_headroom_is_hpcc_product_with_two_mtu_floor():
    # 3 x 100 Gbit/s x 1 us / 8 = 37.5 KB (HPCC scratch/third.cc).
    assert pfc_headroom_bytes(100e9, 1e-6, 1500) == 37_500
    # At emulation rates the product is bytes; two frames can still be in flight.
    assert pfc_headroom_bytes(20e6, 1e-6, 1500) == 3_000


# ---- classes and ports -------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs", [
    {"name": "roce", "priority": 8},
    {"name": "roce", "priority": 3, "dscp": (64,)},
    {"name": "roce", "priority": 3, "buffer_bytes": 0},
    {"name": "roce", "priority": 3, "weight": 0},
    {"name": "not a name", "priority": 3},
    # PFC thresholds on a lossy class
    {"name": "roce", "priority": 3, "pfc": PfcThresholds(10_000, 5_000, 1_000)},
    # XOFF + headroom beyond the buffer
    {"name": "roce", "priority": 3, "lossless": True, "buffer_bytes": 10_000,
     "pfc": PfcThresholds(10_000, 5_000, 1_000)},
])
def test_traffic_class_rejects_bad_specs(kwargs):
    with pytest.raises(ValueError):
        _cls(**kwargs)


def test_traffic_class_normalises_dscp_to_frozenset():
    cls = _cls("roce", 3, [26, 26])
    assert cls.dscp == frozenset({26}) and not cls.is_default


@pytest.mark.parametrize("classes", [
    (_cls("a", 0), _cls("a", 1, (26,))),                 # duplicate name
    (_cls("a", 0), _cls("b", 0, (26,))),                 # duplicate priority
    (_cls("a", 0), _cls("b", 1, (26,)), _cls("c", 2, (26,))),  # DSCP claimed twice
    (_cls("a", 0), _cls("b", 1)),                        # two default classes
    (_cls("a", 0, (1,)), _cls("b", 1, (26,))),           # no default class
    (),
])
def test_port_queues_rejects_inconsistent_classes(classes):
    with pytest.raises(ValueError):
        _port(*classes)


def test_port_queues_rejects_bad_rate():
    with pytest.raises(ValueError):
        _port(_cls("a", 0), rate_bps=0)


def test_port_queues_maps_dscp_to_classes():
    port = _port(_cls("lossy", 0), _cls("roce", 3, (26,)), _cls("cnp", 6, (48,), strict=True))
    assert port.class_for_dscp(26).name == "roce"
    assert port.class_for_dscp(48).name == "cnp"
    assert port.class_for_dscp(0).name == "lossy"
    indices = port.dscp_class_indices()
    assert len(indices) == 64 and indices[26] == 1 and indices[48] == 2 and indices[10] == 0
    assert port["roce"].priority == 3 and port.index_of("cnp") == 2
    with pytest.raises(ValueError):
        port.class_for_dscp(64)


def test_share_is_weighted_among_non_strict_classes():
    port = _port(_cls("lossy", 0, weight=1), _cls("roce", 3, (26,), weight=3),
                 _cls("cnp", 6, (48,), strict=True), rate_bps=100_000_000)
    assert port.share_bps("roce") == 75_000_000
    assert port.share_bps("lossy") == 25_000_000
    assert port.share_bps("cnp") == 100_000_000


def test_default_dscp_map():
    assert DEFAULT_DSCP_TO_PRIORITY == {26: 3, 48: 6}
    assert priority_for_dscp(26) == 3
    assert priority_for_dscp(48) == 6
    assert priority_for_dscp(0) == 0 and priority_for_dscp(46) == 0


# ---- defaults ----------------------------------------------------------------------------------

def test_ecn_ramp_is_hpcc_at_25g_and_scales_with_rate():
    assert hpcc_ecn_ramp(25e9, 1500) == EcnRamp(100_000, 400_000, 0.2)
    assert hpcc_ecn_ramp(100e9, 1500) == EcnRamp(400_000, 1_600_000, 0.2)


def test_ecn_ramp_floor_keeps_whole_packets_at_emulation_rates():
    """At 20 Mbit/s the scaled HPCC ramp would start at 80 B: floor at 2 MTU, 2 MTU wide."""
    ramp = hpcc_ecn_ramp(20e6, 1500)
    assert ramp.kmin_bytes == 3_000 and ramp.kmax_bytes == 6_000
    ramp = hpcc_ecn_ramp(1e9, 9000)
    assert ramp.kmin_bytes == 18_000 and ramp.kmax_bytes == 36_000


@pytest.mark.parametrize("rate_bps", [20_000_000, 1_000_000_000, 25_000_000_000,
                                      100_000_000_000])
def test_default_port_queues(rate_bps):
    port = default_port_queues(rate_bps, mtu_bytes=1500)
    roce, cnp, lossy = port["roce"], port["cnp"], port["lossy"]
    assert (roce.priority, cnp.priority, lossy.priority) == (3, 6, 0)
    assert roce.lossless and not roce.strict and cnp.strict and not lossy.lossless
    assert lossy.is_default and port.class_for_dscp(26) is roce
    assert port.class_for_dscp(48) is cnp and port.class_for_dscp(0) is lossy
    # ECN acts before PFC, and the buffer holds XOFF plus headroom.
    assert roce.ecn.kmax_bytes < roce.pfc.xon_bytes < roce.pfc.xoff_bytes
    assert roce.buffer_bytes == roce.pfc.buffer_needed_bytes
    assert roce.pfc.xoff_bytes - roce.pfc.xon_bytes >= 3_000


def test_default_port_queues_rejects_tiny_mtu():
    with pytest.raises(ValueError):
        default_port_queues(25_000_000_000, mtu_bytes=10)


def test_the_agent_sweeps_every_2_target_us_within_what_the_host_can_do():
    from topologies.queues.settings import QueueSettings

    def sweep(d, fastest=0.0005):
        return QueueSettings(enabled=True, dilation=d).agent_sweep_s(fastest)

    assert sweep(1) == 0.0005 and sweep(250) == pytest.approx(0.0005)  # the host's fastest
    assert sweep(1000) == pytest.approx(0.002)  # 2 us of target time
    assert sweep(1e5) == 0.005  # never slower than 5 ms
    assert sweep(250, fastest=0.001) == 0.001  # over OVS's one dump
