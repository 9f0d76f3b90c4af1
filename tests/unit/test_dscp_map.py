"""One DSCP/priority map (wire.dscp): its defaults, its DSCP -> class/priority rule, and that
the spec's values reach the classifier and every RoCE frame the endpoints send."""

from __future__ import annotations

import pytest
from scapy.layers.inet import IP
from scapy.layers.l2 import Ether

from kvfabric.spec_validate import validate
from kvfabric.workloads.roce_incast import receiver_dscp_args, sender_dscp_args
from traffic.gobackn import Opcode
from traffic.roce_endpoint import main as endpoint_main
from traffic.roce_fastpath import ControlFrames, DataFrames
from traffic.roce_packets import Endpoints
from wire.dscp import CNP, DEFAULT_DSCP_MAP, LOSSLESS, LOSSY, DscpMap

EP = Endpoints("02:00:00:00:00:01", "02:00:00:00:00:02", "10.0.0.1", "10.0.0.2")


def _dscp(frame: bytes) -> int:
    return Ether(bytes(frame))[IP].tos >> 2


def test_default_map_is_roce_26_lossless_at_3_and_cnp_48_strict_at_6():
    m = DEFAULT_DSCP_MAP
    assert (m.lossless_dscp, m.lossless_priority, m.cnp_dscp, m.cnp_priority) == (26, 3, 48, 6)
    assert m.dscp_to_priority == {26: 3, 48: 6}
    assert [m.class_for(d) for d in (26, 48, 0, 46)] == [LOSSLESS, CNP, LOSSY, LOSSY]
    assert [m.priority_for(d) for d in (26, 48, 0, 46)] == [3, 6, 0, 0]


def test_a_moved_map_moves_the_rule_and_bad_values_are_refused():
    m = DscpMap(lossless_dscp=10, cnp_dscp=40)
    assert m.class_for(10) == LOSSLESS and m.class_for(26) == LOSSY
    assert m.priority_for(40) == 6 and m.priority_for(48) == 0
    assert DscpMap.from_fields({"lossless_dscp": 10, "unrelated": 1}) == DscpMap(10)
    assert {f for f, _ in DscpMap(26, 26).problems()} == {"cnp_dscp"}
    with pytest.raises(ValueError):
        DscpMap(lossless_dscp=64)
    with pytest.raises(ValueError):
        m.class_for(-1)


def test_spec_map_reaches_the_port_classes_and_the_endpoint_arguments():
    spec = validate({"experiment": {"name": "t"}, "workload": {"kind": "roce_incast"},
                     "queues": {"lossless_dscp": 10, "cnp_dscp": 40}})
    assert spec.dscp_map() == DscpMap(10, 40)
    port = spec.queue_settings().for_port(100_000_000, 1500, host=False)
    assert port["lossless"].dscp == {10} and port["cnp"].dscp == {40}
    assert port.class_for_dscp(26).name == "lossy"
    assert sender_dscp_args(spec) == ["--dscp", "10"]
    assert receiver_dscp_args(spec) == ["--dscp", "10", "--cnp-dscp", "40"]
    default = validate({"experiment": {"name": "t"}, "workload": {"kind": "roce_incast"}})
    assert default.dscp_map() == DEFAULT_DSCP_MAP
    # queues.enabled = false builds no classes, but the traffic is still marked as specified.
    off = validate({"experiment": {"name": "t"}, "workload": {"kind": "roce_incast"},
                    "queues": {"enabled": False, "lossless_dscp": 12}})
    assert off.queue_settings() is None and off.dscp_map().lossless_dscp == 12


def test_prebuilt_frames_carry_the_given_dscps():
    data = DataFrames(EP, dest_qp=5, mtu_payload_bytes=256, dscp=10)
    for op in Opcode:
        assert _dscp(data.frame(op, 256, 7, dma_len=4096)) == 10
    control = ControlFrames(EP.reversed(), dest_qp=5, dscp=10, cnp_dscp=40)
    assert _dscp(control.ack(3, 1)) == 10 and _dscp(control.nak(3, 1)) == 10
    assert _dscp(control.cnp) == 40
    defaults = ControlFrames(EP.reversed(), dest_qp=5)
    assert (_dscp(defaults.ack(0, 0)), _dscp(defaults.cnp)) == (26, 48)
    assert _dscp(DataFrames(EP, dest_qp=5, mtu_payload_bytes=256).frame(Opcode.ONLY, 8, 0)) == 26


def test_endpoint_refuses_a_dscp_out_of_range(capsys):
    with pytest.raises(SystemExit):
        endpoint_main(["recv", "--bind", "10.0.0.1", "--qp", "10.0.0.2:1:2", "--name", "h1",
                       "--out-dir", "/nonexistent", "--dscp", "64"])
    assert "0..63" in capsys.readouterr().err
