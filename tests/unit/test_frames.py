"""Frame overheads are defined once (wire.frames), and they are what Scapy builds."""

from __future__ import annotations

from traffic.gobackn import Opcode
from traffic.roce_packets import Endpoints, ack_packet, data_packet
from wire.frames import (
    AETH_BYTES,
    ETH_HEADER_BYTES,
    ROCE_IP_OVERHEAD_BYTES,
    ROCE_MIDDLE_WIRE_OVERHEAD_BYTES,
    frame_bytes,
)

EP = Endpoints("02:00:00:00:00:01", "02:00:00:00:00:02", "10.0.0.1", "10.0.0.2")


def test_frame_of_an_ip_mtu_adds_the_ethernet_header():
    assert frame_bytes(1500) == 1514 and frame_bytes(9000) == 9014


def test_roce_overheads_match_the_frames_scapy_builds():
    payload = bytes(1024)
    only = data_packet(EP, dest_qp=1, psn=0, opcode=Opcode.ONLY, payload=payload)
    assert len(only) == ETH_HEADER_BYTES + ROCE_IP_OVERHEAD_BYTES + len(payload) == 1098
    middle = data_packet(EP, dest_qp=1, psn=0, opcode=Opcode.MIDDLE, payload=payload)
    # A real Ethernet wire adds FCS, preamble and inter-frame gap (24 B) to each frame.
    assert len(middle) + 24 == len(payload) + ROCE_MIDDLE_WIRE_OVERHEAD_BYTES == 1106
    ack = ack_packet(EP, dest_qp=1, psn=0, msn=0)
    assert len(ack) == len(middle) - len(payload) + AETH_BYTES
