"""Queue settings per port, the qdisc plan, kernel RED configuration, the agent's pieces."""

from __future__ import annotations

import pytest

from kvfabric.schema import SpecError
from kvfabric.spec_validate import validate
from topologies.queues.agent_config import AgentConfig, ClassConfig, PortConfig
from topologies.queues.pfc_frames import parse_pfc, parse_pfc_bytes, pause_frame, resume_frame
from topologies.queues.port_qdiscs import (
    PAUSED_RATE_BPS,
    class_handle,
    handle_str,
    leaf_handle,
    plan_leaves,
    red_argv,
    tbf_running_rate_bps,
)
from topologies.queues.settings import HOST_LOSSLESS_BUFFER_BYTES, QueueSettings
from topologies.queues.tc_netlink import _attr, _attrs


def test_switch_port_classes_scale_with_rate_and_ingress_ports():
    s = QueueSettings()
    q = s.for_port(100_000_000, 1500, host=False, ingress_ports=5)
    lossless, cnp, lossy = q.classes
    assert (lossless.priority, lossless.dscp, lossless.lossless) == (3, {26}, True)
    assert (cnp.priority, cnp.dscp, cnp.strict) == (6, {48}, True)
    assert lossy.is_default and lossy.buffer_bytes == 64 * 1024
    # HPCC 100 KB / 400 KB at 25G scaled by 100M/25G = 400 B / 1600 B, floored at frames.
    assert (lossless.ecn.kmin_bytes, lossless.ecn.kmax_bytes) == (3000, 6000)
    assert lossless.pfc.xoff_bytes == 12000 and lossless.pfc.xon_bytes == 9000
    # headroom: 5 ingress x 12.5 MB/s x 50 ms + 2 frames
    assert lossless.pfc.headroom_bytes == 5 * 12_500_000 * 50 // 1000 + 2 * 1514
    assert lossless.buffer_bytes == 12000 + lossless.pfc.headroom_bytes
    faster = s.for_port(25_000_000_000, 1500, host=False, ingress_ports=5).classes[0]
    assert (faster.ecn.kmin_bytes, faster.ecn.kmax_bytes) == (100_000, 400_000)


def test_host_nic_can_be_paused_but_neither_marks_nor_pauses():
    q = QueueSettings().for_port(100_000_000, 1500, host=True, host_queue_bytes=1_514_000)
    lossless = q.classes[0]
    assert lossless.lossless and lossless.ecn is None and lossless.pfc is None
    assert lossless.buffer_bytes == HOST_LOSSLESS_BUFFER_BYTES
    assert q.default_class.buffer_bytes == 1_514_000
    leaves = plan_leaves(q, pausable=True, ecn_backend="ebpf")
    assert [leaf.pausable for leaf in leaves] == [True, False, False]


def test_explicit_thresholds_win_and_conflicts_are_named():
    s = QueueSettings(kmin_bytes=20_000, kmax_bytes=80_000, pmax=0.5, xoff_bytes=100_000,
                      xon_bytes=90_000, headroom_bytes=50_000)
    lossless = s.for_port(20_000_000, 1500, host=False).classes[0]
    assert (lossless.ecn.kmin_bytes, lossless.ecn.kmax_bytes, lossless.ecn.pmax) == \
        (20_000, 80_000, 0.5)
    assert lossless.buffer_bytes == 150_000
    bad = QueueSettings(kmin_bytes=9000, kmax_bytes=8000, cnp_dscp=26)
    assert {name for name, _ in bad.check()} == {"kmin", "cnp_dscp"}


def test_plan_and_handles():
    q = QueueSettings().for_port(10_000_000, 1500, host=False)
    leaves = plan_leaves(q, pausable=True, ecn_backend="red")
    assert [handle_str(leaf.classid) for leaf in leaves] == ["1:10", "1:11", "1:12"]
    assert [handle_str(leaf.leaf) for leaf in leaves] == ["20:0", "21:0", "22:0"]
    assert leaves[0].pausable and leaves[0].red and not leaves[2].red
    assert class_handle(0) == 0x10010 and leaf_handle(1) == 0x210000
    assert tbf_running_rate_bps(10_000_000) == 100_000_000 > PAUSED_RATE_BPS
    with pytest.raises(ValueError, match="ecn_backend"):
        plan_leaves(q, pausable=True, ecn_backend="magic")


def test_red_configuration_follows_the_ramp():
    q = QueueSettings(kmin_bytes=20_000, kmax_bytes=80_000, pmax=0.2).for_port(
        20_000_000, 1500, host=False)
    argv = red_argv("l1-eth1", class_handle(0), leaf_handle(0), q.classes[0], 20_000_000, 1500)
    text = " ".join(argv)
    assert text.startswith("qdisc add dev l1-eth1 parent 1:10 handle 20:0 red ")
    for expected in ("min 20000", "max 80000", "probability 0.2", "avpkt 1514", "burst 1",
                     "bandwidth 20000000bit"):
        assert expected in text
    assert argv[-1] == "ecn"


def test_fast_pfc_parser_agrees_with_scapy():
    for frame in (pause_frame("02:00:00:00:00:01", 3), resume_frame("02:00:00:00:00:01", 3),
                  pause_frame("02:00:00:00:00:01", 6, 100)):
        assert parse_pfc_bytes(frame) == parse_pfc(frame)
    assert parse_pfc_bytes(bytes(60)) is None


def test_agent_config_round_trips_through_json():
    cfg = AgentConfig(out_dir="/tmp/x", ports=[PortConfig(
        port_id="l1:l1-eth1", node="l1", role="leaf", netns="kvf-l1", ifname="l1-eth1",
        ifindex=7, mac="02:00:00:00:00:01", peer="h1", rate_bps=10_000_000, mtu=1500,
        classes=[ClassConfig("lossless", 0, 3, True, True, 0x10010, 0x200000, 1000, 500, 400)])])
    assert AgentConfig.from_json(cfg.to_json()) == cfg


def test_netlink_attributes_pad_and_parse():
    raw = _attr(1, b"tbf\0") + _attr(2, b"\x01\x02\x03")
    assert len(raw) % 4 == 0
    assert list(_attrs(raw, 0, len(raw))) == [(1, b"tbf\0"), (2, b"\x01\x02\x03")]


def _spec(**queues):
    return {"experiment": {"name": "t"}, "queues": queues,
            "workload": {"kind": "tcp_incast"}}


def test_queue_spec_fields_resolve_and_bad_values_are_named():
    spec = validate(_spec(kmin="20KB", kmax="80KB", pfc_reaction="10ms"))
    settings = spec.queue_settings()
    assert (settings.kmin_bytes, settings.kmax_bytes) == (20_000, 80_000)
    # A duration in target terms: the emulation's is D times longer (default D = 250).
    assert settings.pfc_reaction_s == pytest.approx(0.01 * spec.scale.dilation)
    with pytest.raises(SpecError) as err:
        validate(_spec(kmin="90KB", kmax="80KB", cnp_dscp=26, lossless_buffer="1KB"))
    fields = {issue.field for issue in err.value.issues}
    assert fields == {"queues.kmin", "queues.cnp_dscp", "queues.lossless_buffer"}
    assert "lower kmin or raise kmax" in str(err.value)
    with pytest.raises(SpecError, match="queues.colour: unknown field"):
        validate(_spec(colour="red"))
    with pytest.raises(SpecError, match="queues.pmax"):
        validate(_spec(pmax=1.5))
    assert validate(_spec(enabled=False)).queue_settings() is None
