"""RoCEv2 frames: Scapy-declared headers, fast template patching, and golden vectors checked by
independent decoders (tshark, a ConnectX-4 Lx capture)."""

import random
import shutil
import subprocess

import pytest
from scapy.contrib.roce import AETH, BTH, CNPPadding
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import wrpcap

from traffic.gobackn import Opcode
from traffic.roce_packets import (
    AETH_ACK,
    AETH_NAK,
    CNP_DSCP,
    DATA_DSCP,
    ECN_ECT0,
    RETH,
    ROCEV2_UDP_PORT,
    Endpoints,
    FrameTemplate,
    ack_packet,
    cnp_packet,
    compute_icrc,
    data_packet,
    nak_packet,
)

EP = Endpoints("02:00:00:00:00:01", "02:00:00:00:00:02", "10.0.0.1", "10.0.0.2", 49152)
FILL = bytes(range(251))  # a prime-length pattern so every offset carries distinct bytes

# A CNP captured on a ConnectX-4 Lx, published in Scapy's test suite
# (secdev/scapy test/contrib/roce.uts); its last 4 bytes are the NIC's ICRC.
CONNECTX4_CNP = bytes.fromhex(
    "e41d2dab2bc27cfe90643b32080045c2"
    "003c718c4000401191610a0011010a00"
    "1201000012b7002800008100ffff4000"
    "01180000000000000000000000000000"
    "00000000000082fd002a"
)

EDGE_PSNS = [0, 1, 2, 0x7FFFFF, 0x800000, 0xFFFFFD, 0xFFFFFE, 0xFFFFFF]


def fresh(opcode, psn, sport, length, ack_req, dma_len=None):
    ep = Endpoints(EP.src_mac, EP.dst_mac, EP.src_ip, EP.dst_ip, sport)
    payload = (FILL * 20)[:length]
    return bytes(data_packet(ep, dest_qp=0xABCDE, psn=psn, opcode=opcode, payload=payload,
                             va=0x7F0000001000, rkey=0x1234, dma_len=dma_len, ack_req=ack_req))


@pytest.mark.parametrize("opcode", list(Opcode))
def test_template_render_equals_a_fresh_scapy_build_for_many_psns_including_wraparound(opcode):
    template = FrameTemplate(EP, dest_qp=0xABCDE, opcode=opcode, max_payload_bytes=1024,
                             va=0x7F0000001000, rkey=0x1234, dma_len=65536, fill=FILL)
    rng = random.Random(7)
    psns = EDGE_PSNS + [rng.randrange(1 << 24) for _ in range(60)]
    for i, psn in enumerate(psns):
        length = [1024, 1023, 1022, 1021, 4, 1][i % 6]
        sport = 49152 + i
        ack_req = i % 2 == 1
        dma_len = 65536 if opcode is Opcode.FIRST else None
        expected = fresh(opcode, psn, sport, length, ack_req, dma_len)
        got = template.render(psn, sport=sport, payload_len=length, ack_req=ack_req)
        assert got == expected, (opcode, psn, length)


def test_template_renders_an_empty_only_packet_and_defaults_to_full_payload():
    only = FrameTemplate(EP, dest_qp=0xABCDE, opcode=Opcode.ONLY, max_payload_bytes=64,
                         va=0x7F0000001000, rkey=0x1234, fill=FILL)
    assert only.render(5, payload_len=0) == fresh(Opcode.ONLY, 5, EP.sport, 0, False)
    assert only.render(5) == fresh(Opcode.ONLY, 5, EP.sport, 64, False)
    assert only.dest_qp == 0xABCDE


def test_template_rejects_payloads_beyond_its_size_and_psns_beyond_24_bits():
    template = FrameTemplate(EP, dest_qp=1, opcode=Opcode.MIDDLE, max_payload_bytes=256)
    with pytest.raises(ValueError, match="payload_len"):
        template.render(0, payload_len=257)
    with pytest.raises(ValueError, match="24 bits"):
        template.render(1 << 24)


def test_icrc_matches_the_one_a_connectx4_nic_put_on_the_wire():
    assert compute_icrc(CONNECTX4_CNP) == CONNECTX4_CNP[-4:]


def test_own_icrc_agrees_with_scapy_on_every_frame_kind():
    frames = [bytes(data_packet(EP, dest_qp=3, psn=psn, opcode=op, payload=FILL[:n]))
              for op in Opcode for psn, n in ((0, 0), (0xFFFFFF, 13), (77, 251))]
    frames += [bytes(ack_packet(EP, dest_qp=3, psn=9, msn=4)),
               bytes(nak_packet(EP, dest_qp=3, psn=9, msn=4)),
               bytes(cnp_packet(EP, dest_qp=3))]
    for frame in frames:
        assert compute_icrc(frame) == frame[-4:]


def test_icrc_ignores_the_fields_switches_rewrite():
    frame = bytearray(bytes(data_packet(EP, dest_qp=3, psn=1, opcode=Opcode.ONLY,
                                        payload=FILL[:100])))
    icrc = compute_icrc(bytes(frame))
    frame[15] |= 0x03  # ECN CE, set by a congested switch
    frame[22] -= 1  # TTL decremented by a router
    assert compute_icrc(bytes(frame)) == icrc
    frame[-5] ^= 0xFF  # payload corruption is caught
    assert compute_icrc(bytes(frame)) != icrc


def test_data_frames_carry_dscp_26_ect0_udp_4791_and_reth_only_on_first_and_only():
    for opcode in Opcode:
        pkt = Ether(bytes(data_packet(EP, dest_qp=0x42, psn=7, opcode=opcode,
                                      payload=FILL[:10], ack_req=True)))
        assert pkt[IP].tos >> 2 == DATA_DSCP and pkt[IP].tos & 3 == ECN_ECT0
        assert pkt[IP].flags == "DF"
        assert pkt[UDP].dport == ROCEV2_UDP_PORT and pkt[UDP].chksum == 0
        assert (pkt[BTH].opcode, pkt[BTH].dqpn, pkt[BTH].psn) == (opcode, 0x42, 7)
        assert pkt[BTH].padcount == 2 and pkt[BTH].ackreq == 1
        assert (RETH in pkt) == (opcode in (Opcode.FIRST, Opcode.ONLY))
    first = Ether(bytes(data_packet(EP, dest_qp=1, psn=0, opcode=Opcode.FIRST,
                                    payload=FILL[:8], va=0x1000, rkey=9, dma_len=1 << 20)))
    assert (first[RETH].va, first[RETH].rkey, first[RETH].dma_len) == (0x1000, 9, 1 << 20)


def test_cnp_is_opcode_0x81_with_16_reserved_bytes_and_dscp_48():
    frame = bytes(cnp_packet(EP, dest_qp=0xD2))
    pkt = Ether(frame)
    assert pkt[BTH].opcode == 0x81 and pkt[BTH].becn == 1 and pkt[BTH].dqpn == 0xD2
    assert pkt[IP].tos >> 2 == CNP_DSCP
    assert CNPPadding in pkt and (pkt[CNPPadding].reserved1, pkt[CNPPadding].reserved2) == (0, 0)
    assert len(frame) == 14 + 20 + 8 + 12 + 16 + 4  # same size as the ConnectX-4 capture
    assert len(frame) == len(CONNECTX4_CNP)


def test_ack_and_nak_carry_the_aeth_syndrome_and_msn():
    ack = Ether(bytes(ack_packet(EP, dest_qp=5, psn=100, msn=3)))
    nak = Ether(bytes(nak_packet(EP, dest_qp=5, psn=101, msn=3)))
    assert (ack[BTH].opcode, ack[AETH].syndrome, ack[AETH].msn) == (0x11, AETH_ACK, 3)
    assert (nak[BTH].psn, nak[AETH].syndrome) == (101, AETH_NAK)  # NAK code 0: PSN seq. error
    with pytest.raises(ValueError):
        nak_packet(EP, dest_qp=5, psn=1, msn=0, code=32)


def _golden_frames():
    """(frame, opcode, dest QP, PSN) tuples covering every frame kind and the PSN wrap."""
    template = FrameTemplate(EP, dest_qp=0x1234, opcode=Opcode.MIDDLE, max_payload_bytes=1024)
    rows = [
        (bytes(data_packet(EP, dest_qp=0x1234, psn=0xFFFFFE, opcode=Opcode.FIRST,
                           payload=FILL[:200], dma_len=1224)), 0x06, 0x1234, 0xFFFFFE),
        (template.render(0xFFFFFF), 0x07, 0x1234, 0xFFFFFF),
        (bytes(data_packet(EP, dest_qp=0x1234, psn=0, opcode=Opcode.LAST, payload=FILL[:5],
                           ack_req=True)), 0x08, 0x1234, 0),
        (bytes(data_packet(EP, dest_qp=0xFFFFFF, psn=1, opcode=Opcode.ONLY,
                           payload=FILL[:64])), 0x0A, 0xFFFFFF, 1),
        (bytes(ack_packet(EP.reversed(), dest_qp=0x99, psn=0, msn=1)), 0x11, 0x99, 0),
        (bytes(nak_packet(EP.reversed(), dest_qp=0x99, psn=0xFFFFFF, msn=1)), 0x11, 0x99,
         0xFFFFFF),
        (bytes(cnp_packet(EP.reversed(), dest_qp=0x99)), 0x81, 0x99, 0),
        (CONNECTX4_CNP, 0x81, 0x118, 0),
    ]
    return rows


def _tshark(pcap):
    fields = ["infiniband.bth.opcode", "infiniband.bth.destqp", "infiniband.bth.psn",
              "infiniband.invariant.crc", "_ws.expert", "_ws.malformed"]
    argv = ["tshark", "-r", str(pcap), "-T", "fields"]
    for name in fields:
        argv += ["-e", name]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60).stdout
    return [line.split("\t") for line in out.splitlines()]


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_tshark_decodes_opcode_dest_qp_and_psn_of_every_frame_without_expert_errors(tmp_path):
    rows = _golden_frames()
    pcap = tmp_path / "golden.pcap"
    wrpcap(str(pcap), [Ether(frame) for frame, *_ in rows])
    decoded = _tshark(pcap)
    assert len(decoded) == len(rows)
    for (frame, opcode, qp, psn), fields in zip(rows, decoded, strict=True):
        got_opcode, got_qp, got_psn, icrc, expert, malformed = fields
        assert (int(got_opcode), int(got_qp, 16), int(got_psn)) == (opcode, qp, psn)
        assert expert == "" and malformed == "", expert
        if icrc:  # tshark shows the ICRC bytes (it does not verify them)
            assert int(icrc, 16) == int.from_bytes(frame[-4:], "big")


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_tshark_check_is_not_vacuous_a_truncated_frame_is_flagged(tmp_path):
    frame = bytes(data_packet(EP, dest_qp=1, psn=3, opcode=Opcode.FIRST, payload=FILL[:8]))
    pcap = tmp_path / "broken.pcap"
    wrpcap(str(pcap), [Ether(frame[:-12])])
    (fields,) = _tshark(pcap)
    assert fields[4] != "" or fields[5] != ""
