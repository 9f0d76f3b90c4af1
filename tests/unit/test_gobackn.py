"""Go-back-N on an RC QP: segmentation, cumulative ACKs, NAK rewind, timeouts, 24-bit PSNs."""

import pytest

from traffic.gobackn import (
    PSN_MODULUS,
    Opcode,
    ReplyKind,
    Requester,
    Responder,
    psn_add,
    psn_diff,
)


def drain(req, now_s, limit=10_000):
    """Every segment the requester releases at ``now_s``."""
    out = []
    while (seg := req.next_segment(now_s)) is not None and len(out) < limit:
        out.append(seg)
    return out


def run_lossless(req, resp, now_s=0.0, drop_psns=()):
    """Deliver segments through ``resp``, dropping the first copy of each PSN in drop_psns."""
    dropped = set()
    for _ in range(1000):
        segs = drain(req, now_s)
        if not segs and req.done:
            return now_s
        for seg in segs:
            if seg.psn in drop_psns and seg.psn not in dropped:
                dropped.add(seg.psn)
                continue
            reply = resp.on_packet(seg.psn, seg.opcode, seg.ack_req).reply
            if reply is not None and reply.kind is ReplyKind.ACK:
                req.on_ack(reply.psn, now_s)
            elif reply is not None:
                req.on_nak(reply.psn, now_s)
        now_s += 1e-3
    raise AssertionError("did not finish")


def test_psn_arithmetic_wraps_at_2_to_the_24():
    assert PSN_MODULUS == 2**24
    assert psn_add(0xFFFFFF, 1) == 0
    assert psn_add(0, -1) == 0xFFFFFF
    assert psn_diff(2, 0xFFFFFE) == 4
    assert psn_diff(0xFFFFFE, 2) == -4


def test_messages_are_segmented_into_first_middle_last_or_only():
    req = Requester(mtu_payload_bytes=1000, window_packets=100, timeout_s=1.0)
    req.post(2500, 0.0)
    req.post(1000, 0.0)
    req.post(0, 0.0)
    segs = drain(req, 0.0)
    assert [(s.msg_id, s.offset_bytes, s.length_bytes, s.opcode) for s in segs] == [
        (0, 0, 1000, Opcode.FIRST),
        (0, 1000, 1000, Opcode.MIDDLE),
        (0, 2000, 500, Opcode.LAST),
        (1, 0, 1000, Opcode.ONLY),
        (2, 0, 0, Opcode.ONLY),
    ]
    assert [s.psn for s in segs] == [0, 1, 2, 3, 4]
    assert [s.ack_req for s in segs] == [False, False, True, True, True]


def test_window_limits_unacknowledged_packets_and_acks_open_it():
    req = Requester(1000, window_packets=4, timeout_s=1.0)
    req.post(10_000, 0.0)
    assert [s.psn for s in drain(req, 0.0)] == [0, 1, 2, 3]
    assert req.on_ack(1, 0.001) == 2  # cumulative: PSN 0 and 1
    assert [s.psn for s in drain(req, 0.001)] == [4, 5]
    assert req.on_ack(1, 0.002) == 0  # duplicate ACK changes nothing
    assert req.outstanding_packets == 4


def test_psns_wrap_around_at_2_to_the_24_and_acks_across_the_wrap_work():
    req = Requester(1000, window_packets=16, timeout_s=1.0, start_psn=PSN_MODULUS - 3)
    req.post(6000, 0.0)
    psns = [s.psn for s in drain(req, 0.0)]
    assert psns == [0xFFFFFD, 0xFFFFFE, 0xFFFFFF, 0, 1, 2]
    assert req.on_ack(0, 0.001) == 4
    assert req.oldest_unacked_psn == 1
    assert req.on_ack(2, 0.002) == 2 and req.done
    assert req.completion_s(0) == 0.002


def test_go_back_n_retransmits_from_the_naked_psn():
    req = Requester(1000, window_packets=8, timeout_s=1.0)
    req.post(11_000, 0.0)
    assert [s.psn for s in drain(req, 0.0)] == list(range(8))
    req.on_nak(3, 0.001)  # responder got 0..2 and expects 3
    assert req.oldest_unacked_psn == 3
    resent = drain(req, 0.001)
    assert [s.psn for s in resent] == [3, 4, 5, 6, 7, 8, 9, 10]
    assert [s.retransmission for s in resent] == [True] * 5 + [False] * 3
    assert req.retransmitted_packets == 5 and req.naks_received == 1


def test_timeout_rewinds_to_the_oldest_unacknowledged_psn():
    req = Requester(1000, window_packets=8, timeout_s=0.01)
    req.post(4000, 0.0)
    drain(req, 0.0)
    req.on_ack(0, 0.005)  # progress restarts the timer: deadline 0.015
    assert req.next_segment(0.0149) is None
    seg = req.next_segment(0.015)
    assert (seg.psn, seg.retransmission) == (1, True)
    assert req.timeouts == 1


def test_stale_nak_and_ack_for_unsent_psns_are_ignored():
    req = Requester(1000, window_packets=8, timeout_s=1.0)
    req.post(4000, 0.0)
    drain(req, 0.0)
    req.on_ack(2, 0.001)
    req.on_nak(1, 0.002)  # older than the cumulative ACK
    assert req.on_ack(100, 0.003) == 0
    assert req.naks_received == 0 and req.oldest_unacked_psn == 3


def test_responder_naks_once_per_gap_and_drops_until_the_expected_psn():
    resp = Responder(ack_coalesce_packets=100)
    assert resp.on_packet(0, Opcode.FIRST).delivered
    first = resp.on_packet(2, Opcode.MIDDLE)
    assert not first.delivered
    assert (first.reply.kind, first.reply.psn) == (ReplyKind.NAK, 1)
    again = resp.on_packet(3, Opcode.MIDDLE)
    assert (again.delivered, again.reply) == (False, None)
    assert resp.on_packet(1, Opcode.MIDDLE).delivered
    assert resp.naks_sent == 1 and resp.dropped_packets == 2


def test_responder_reacks_duplicates_with_the_latest_in_order_psn():
    resp = Responder(ack_coalesce_packets=100)
    for psn in range(3):
        resp.on_packet(psn, Opcode.MIDDLE)
    dup = resp.on_packet(1, Opcode.MIDDLE)
    assert not dup.delivered
    assert (dup.reply.kind, dup.reply.psn) == (ReplyKind.ACK, 2)
    assert resp.duplicate_packets == 1


def test_responder_coalesces_acks_and_acks_on_ack_req():
    resp = Responder(ack_coalesce_packets=3)
    replies = [resp.on_packet(psn, Opcode.MIDDLE).reply for psn in range(6)]
    assert [r.psn if r else None for r in replies] == [None, None, 2, None, None, 5]
    last = resp.on_packet(6, Opcode.LAST, ack_req=True).reply
    assert (last.psn, last.msn) == (6, 1)


def test_responder_expects_psns_across_the_wrap():
    resp = Responder(1, start_psn=0xFFFFFF)
    assert resp.on_packet(0xFFFFFF).delivered
    assert resp.on_packet(0).delivered and resp.expected_psn == 1
    assert resp.on_packet(0xFFFFFF).reply.kind is ReplyKind.ACK  # duplicate across the wrap


def test_end_to_end_loss_is_repaired_and_every_message_completes_once():
    req = Requester(1000, window_packets=8, timeout_s=0.05, start_psn=PSN_MODULUS - 5)
    resp = Responder(ack_coalesce_packets=4, start_psn=PSN_MODULUS - 5)
    for size in (3000, 500, 9000, 1):
        req.post(size, 0.0)
    run_lossless(req, resp, drop_psns={PSN_MODULUS - 2, 3})
    assert [c.msg_id for c in req.completions] == [0, 1, 2, 3]
    assert resp.delivered_packets == 3 + 1 + 9 + 1
    assert resp.msn == 4
    assert req.retransmitted_packets > 0


def test_loss_of_the_last_packet_is_recovered_by_timeout():
    req = Requester(1000, window_packets=8, timeout_s=0.01)
    resp = Responder(1)
    req.post(2000, 0.0)
    first, last = drain(req, 0.0)
    req.on_ack(resp.on_packet(first.psn, first.opcode).reply.psn, 0.001)
    assert req.next_segment(0.005) is None  # last packet lost, nothing to send yet
    again = req.next_segment(0.011)
    assert again.psn == last.psn and again.retransmission
    req.on_ack(resp.on_packet(again.psn, again.opcode, again.ack_req).reply.psn, 0.012)
    assert req.done and req.completion_s(0) == 0.012


@pytest.mark.parametrize("kwargs", [dict(mtu_payload_bytes=0, window_packets=1, timeout_s=1),
                                    dict(mtu_payload_bytes=1, window_packets=0, timeout_s=1),
                                    dict(mtu_payload_bytes=1, window_packets=1, timeout_s=0)])
def test_requester_rejects_non_positive_parameters(kwargs):
    with pytest.raises(ValueError):
        Requester(**kwargs)
