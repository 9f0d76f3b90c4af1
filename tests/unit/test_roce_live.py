"""Pure parts of the live RoCEv2 endpoints: in-place frames equal Scapy's, run-based
segmentation equals per-packet segmentation, pacing holds the rate, the responder ACKs, NAKs
a gap and paces CNPs, received headers parse."""

import math
import random

import pytest

from traffic.cnp import CnpPacer
from traffic.dcqcn import DcqcnParams, DcqcnReactionPoint
from traffic.gobackn import Opcode, Requester, run_segment
from traffic.roce_fastpath import ControlFrames, DataFrames
from traffic.roce_packets import (
    CNP_OPCODE,
    Endpoints,
    ack_packet,
    cnp_packet,
    compute_icrc,
    data_packet,
    nak_packet,
)
from traffic.roce_requester import Pacer, QpSender
from traffic.roce_responder import ResponderQp
from traffic.roce_wire import is_nak, parse_aeth, parse_bth
from wire.ecn import is_ce

EP = Endpoints("02:00:00:00:00:01", "02:00:00:00:00:02", "10.0.0.1", "10.0.0.2", 49200)
FILL = bytes(range(251))
UDP_PAYLOAD = 14 + 20 + 8  # offset of the BTH in a frame


class ListTx:
    """A transmitter that keeps copies of what it is asked to send."""

    def __init__(self):
        self.frames = []

    def send(self, frame):
        self.frames.append(bytes(frame))


class RunTx(ListTx):
    """Also takes runs, rendering them the way a ring writer patches them."""

    def send_run(self, shape, first_psn, count):
        hi, lo = shape.word_tables()
        for k in range(count):
            psn = (first_psn + k) & 0xFFFFFF
            frame = bytearray(shape.buf)
            frame[50:54] = psn.to_bytes(4, "big")
            frame[-4:] = (shape.base_crc ^ hi[psn >> 16] ^ lo[psn & 0xFFFF]).to_bytes(4, "little")
            self.frames.append(bytes(frame))
        return len(shape.buf) * count


@pytest.mark.parametrize("opcode", list(Opcode))
@pytest.mark.parametrize("length", [1024, 500, 3, 0])
def test_in_place_frames_equal_scapy_builds_for_edge_and_random_psns(opcode, length):
    frames = DataFrames(EP, dest_qp=0x12345, mtu_payload_bytes=1024, fill=FILL)
    rng = random.Random(length)
    dma = {Opcode.ONLY: length, Opcode.FIRST: 70000}.get(opcode)
    for psn in [0, 1, 0x7FFFFF, 0xFFFFFF, *(rng.randrange(1 << 24) for _ in range(10))]:
        for ack_req in (False, True):
            got = bytes(frames.frame(opcode, length, psn, ack_req=ack_req, dma_len=dma))
            want = bytes(data_packet(EP, dest_qp=0x12345, psn=psn, opcode=opcode,
                                     payload=(FILL * 5)[:length], dma_len=dma, ack_req=ack_req))
            assert got == want, (psn, ack_req)


def test_control_frames_equal_scapy_builds():
    frames = ControlFrames(EP, dest_qp=0x77)
    for psn, msn in [(0, 0), (5, 9), (0xFFFFFF, 0xFFFFFF)]:
        assert frames.ack(psn, msn) == bytes(ack_packet(EP, dest_qp=0x77, psn=psn, msn=msn))
        assert frames.nak(psn, msn) == bytes(nak_packet(EP, dest_qp=0x77, psn=psn, msn=msn))
    assert frames.cnp == bytes(cnp_packet(EP, dest_qp=0x77))


def test_next_run_matches_next_segment_packet_for_packet_with_loss_and_wrap():
    def make():
        req = Requester(1000, 50, 0.01, start_psn=(1 << 24) - 30)
        for size in (1, 999, 1000, 1001, 5500, 0, 64000):
            req.post(size, 0.0)
        return req

    one, many = make(), make()
    rng = random.Random(3)
    now = 0.0
    for _ in range(200):
        now += 0.001
        want = []
        while len(want) < 7 and (seg := one.next_segment(now)) is not None:
            want.append((seg.psn, seg.opcode, seg.length_bytes, seg.ack_req))
        got = []
        while len(got) < len(want) and (run := many.next_run(now, len(want) - len(got))):
            for k in range(run.count):
                op, _off, length, ack = run_segment(run, k, 1000)
                got.append(((run.first_psn + k) % (1 << 24), op, length, ack))
        assert got == want
        if want and rng.random() < 0.7:
            psn = want[rng.randrange(len(want))][0]
            if rng.random() < 0.2:
                one.on_nak(psn, now)
                many.on_nak(psn, now)
            else:
                one.on_ack(psn, now)
                many.on_ack(psn, now)
    assert (one.sent_packets, one.retransmitted_packets) == \
        (many.sent_packets, many.retransmitted_packets)


def test_pacer_holds_the_rate_and_limits_catch_up():
    pacer = Pacer(max_burst_s=100e-6, quantum_s=0.0)
    now, sent = 0.0, 0
    while now < 1.0:
        if pacer.ready(now):
            pacer.on_sent(now, 1250, 10e6)  # 1 ms per frame at 10 Mbit/s
            sent += 1
        now += 37e-6
    assert sent == pytest.approx(1000, abs=2)
    pacer.on_sent(5.0, 1250, 10e6)  # after 4 s idle: no 4 s burst banked
    assert pacer.next_s == pytest.approx(5.0 - 100e-6 + 1e-3)


def _sender(rate_bps, rp=None):
    frames = DataFrames(EP, dest_qp=0x99, mtu_payload_bytes=1024)
    return QpSender(7, frames, Requester(1024, 10_000, 1.0), rp, rate_bps)


def test_paced_sender_sends_at_its_rate_and_frames_decode():
    qp = _sender(8e6)  # ~1 kB frames at 8 Mbit/s: about 940 frames per second
    qp.requester.post(10_000_000, 0.0)
    tx = ListTx()
    now = 0.0
    while now < 0.5:
        qp.send_due(now, tx)
        now += 50e-6
    out = tx.frames
    assert 8 * sum(map(len, out)) / 0.5 == pytest.approx(8e6, rel=0.01)
    psns = [parse_bth(f[UDP_PAYLOAD:]).psn for f in out]
    assert psns == list(range(len(out)))
    assert out[0][UDP_PAYLOAD] == Opcode.FIRST and out[1][UDP_PAYLOAD] == Opcode.MIDDLE


def test_cnp_cuts_the_paced_rate():
    params = DcqcnParams.preset("paper", 100e6)
    qp = _sender(100e6, DcqcnReactionPoint(params))
    qp.requester.post(50_000_000, 0.0)
    qp.send_due(0.0, ListTx())
    qp.on_cnp(0.001)
    assert qp.rate_bps == pytest.approx(50e6)
    assert qp.rate_samples[-1].rate_bps == pytest.approx(50e6)
    assert qp.rp.rate_cuts == 1


def test_unpaced_sender_sends_whole_batches():
    qp = _sender(math.inf)
    qp.requester.post(100 * 1024, 0.0)
    assert qp.send_due(0.0, ListTx(), max_packets=64) == 64


@pytest.mark.parametrize("start_psn", [0, (1 << 24) - 5])
def test_run_writer_and_per_frame_sends_emit_identical_frames(start_psn):
    """Packet for packet, through a PSN wrap: runs patched from the 16-bit ICRC tables equal
    frames rendered one by one (which equal Scapy's)."""
    outs = []
    for tx in (ListTx(), RunTx()):
        qp = QpSender(7, DataFrames(EP, dest_qp=0x99, mtu_payload_bytes=1024),
                      Requester(1024, 10_000, 1.0, start_psn=start_psn), None, math.inf)
        for size in (5000, 1, 3000):
            qp.requester.post(size, 0.0)
        while qp.send_due(0.0, tx, max_packets=3):
            pass
        outs.append(tx.frames)
    assert len(outs[0]) == 5 + 1 + 3
    assert outs[0] == outs[1]


def _responder(coalesce=1, interval=50e-6):
    return ResponderQp(0x99, ControlFrames(EP.reversed(), dest_qp=7), CnpPacer(interval),
                       coalesce)


def _bth(frame: bytes):
    return parse_bth(frame[UDP_PAYLOAD:])


def test_responder_acks_naks_a_gap_and_paces_cnps():
    frames = DataFrames(EP, dest_qp=0x99, mtu_payload_bytes=1024)
    resp = _responder(coalesce=4)
    replies = []
    for psn in (0, 1, 2, 3):
        replies += resp.on_packet(_bth(frames.frame(Opcode.MIDDLE, 1024, psn)), False, 1040,
                                  psn * 1e-3)
    assert len(replies) == 1  # coalesced: one ACK for four packets
    assert _bth(replies[0]).psn == 3
    gap = resp.on_packet(_bth(frames.frame(Opcode.MIDDLE, 1024, 6)), False, 1040, 0.01)
    syndrome, _msn = parse_aeth(gap[0][UDP_PAYLOAD:])
    assert is_nak(syndrome) and _bth(gap[0]).psn == 4
    assert resp.on_packet(_bth(frames.frame(Opcode.MIDDLE, 1024, 7)), False, 1040, 0.011) == []
    ce = [resp.on_packet(_bth(frames.frame(Opcode.MIDDLE, 1024, 4 + k)), True, 1040,
                         0.02 + k * 20e-6) for k in range(5)]
    cnps = [f for out in ce for f in out if f[UDP_PAYLOAD] == CNP_OPCODE]
    assert len(cnps) == 2  # at 0, 20, 40, 60, 80 us: CNPs at 0 and 60 us
    assert _bth(cnps[0]).dest_qp == 7
    assert resp.stats.ce_packets == 5 and resp.stats.cnps_sent == 2


def test_an_ack_with_becn_is_the_ack_with_its_becn_bit_set_and_a_valid_icrc():
    frames = ControlFrames(EP, dest_qp=0x77)
    for psn, msn in [(0, 0), (5, 9), (0xFFFFFF, 0xFFFFFF)]:
        plain, echo = frames.ack(psn, msn), frames.ack(psn, msn, becn=True)
        assert not _bth(plain).becn and _bth(echo).becn
        assert _bth(echo).psn == psn
        assert parse_aeth(echo[UDP_PAYLOAD:]) == parse_aeth(plain[UDP_PAYLOAD:])
        assert echo[-4:] == compute_icrc(echo)  # the receiving NIC would not drop it
        differs = [i for i in range(len(plain) - 4) if plain[i] != echo[i]]
        assert differs == [UDP_PAYLOAD + 4]  # only the BTH byte that holds BECN
    nak = frames.nak(3, 1, becn=True)
    assert _bth(nak).becn and is_nak(parse_aeth(nak[UDP_PAYLOAD:])[0])
    assert nak[-4:] == compute_icrc(nak)


def test_a_responder_that_echoes_on_acks_sends_no_cnp_and_echoes_each_mark_once():
    frames = DataFrames(EP, dest_qp=0x99, mtu_payload_bytes=1024)
    resp = ResponderQp(0x99, ControlFrames(EP.reversed(), dest_qp=7), CnpPacer(0.0), 2,
                       echo_on_ack=True)
    out = [resp.on_packet(_bth(frames.frame(Opcode.MIDDLE, 1024, psn)), ce, 1040, psn * 1e-6)
           for psn, ce in [(0, True), (1, False), (2, False), (3, False), (4, False),
                           (5, True)]]
    sent = [f for replies in out for f in replies]
    assert all(f[UDP_PAYLOAD] != CNP_OPCODE for f in sent)
    # ACKs every 2 packets: the mark on psn 0 rides on the ACK of psn 1, none on psn 3's,
    # the mark on psn 5 on psn 5's own ACK.
    assert [(_bth(f).psn, _bth(f).becn) for f in sent] == [(1, True), (3, False), (5, True)]
    assert resp.stats.ecn_echoes_sent == 2 and resp.stats.cnps_sent == 0
    assert resp.stats.ce_packets == 2


def test_a_sender_takes_an_ack_with_becn_as_a_congestion_notification():
    from traffic.roce_send import _on_control

    class Qp:
        def __init__(self):
            self.calls = []

        def on_cnp(self, now):
            self.calls.append(("cnp", now))

        def on_ack(self, psn, now):
            self.calls.append(("ack", psn))

        def on_nak(self, psn, now):
            self.calls.append(("nak", psn))

    frames = ControlFrames(EP, dest_qp=0x77)
    qp = Qp()
    _on_control(frames.ack(9, 1)[UDP_PAYLOAD:], {0x77: qp}, 1.0)
    _on_control(frames.ack(10, 1, becn=True)[UDP_PAYLOAD:], {0x77: qp}, 2.0)
    assert qp.calls == [("ack", 9), ("cnp", 2.0), ("ack", 10)]


def test_ce_bits():
    assert is_ce(0b11) and is_ce((26 << 2) | 3)
    assert not is_ce((26 << 2) | 2) and not is_ce(0)


def test_kv_trace_plan_maps_pools_onto_hosts_and_keeps_nic0():
    from kvfabric.spec import load_spec
    from kvfabric.workloads.kv_trace import plan

    spec = load_spec("kv_trace")
    hosts = spec.make_topology().host_names()
    transfers, mapping = plan(spec.workload, hosts, 1, spec.scale.dilation)
    assert transfers and mapping["source"] == "poisson"
    assert {t.dst for t in transfers} <= {"h1", "h2"}
    assert {t.src for t in transfers} <= {"h3", "h4", "h5", "h6"}
    # llama-3-8b, 256 tokens, one of 8 shards (1 KV head of 8): 256 x 16 KiB
    assert {t.size_bytes for t in transfers} == {256 * 16384}
    assert [t.start_s for t in transfers] == sorted(t.start_s for t in transfers)


def test_a_sender_does_not_wake_for_dcqcn_timers_and_applies_them_at_its_next_send():
    """The hpcc decrease check (every 4 us) would wake each sender a thousand times a second
    at D = 250; the check is run when the sender next sends, before it takes the rate."""
    from traffic.dcqcn import make_reaction_point

    params = DcqcnParams.preset("hpcc", 25e9)
    qp = QpSender(1, DataFrames(EP, dest_qp=2, mtu_payload_bytes=1000),
                  Requester(1000, 2, 1e-3), make_reaction_point(params), 25e9, Pacer(0.0, 0.0))
    qp.requester.post(100_000, 0.0)
    tx = ListTx()
    assert qp.send_due(0.0, tx) == 1 and qp.send_due(0.4e-6, tx) == 1  # the window is full
    qp.on_cnp(0.5e-6)
    qp.on_cnp(0.6e-6)  # a notification pending: the first decrease check is at 4.5 us
    assert qp.rp.next_timer_s() == pytest.approx(4.5e-6, abs=1e-8)
    assert qp.next_event_s() == pytest.approx(1e-3)  # only the transport timer
    qp.on_ack(1, 10e-6)  # the window opens at 10 us
    assert qp.send_due(10e-6, tx) >= 1
    assert qp.rp.rate_cuts == 1 and qp.rate_bps < 25e9  # the check ran before the send
