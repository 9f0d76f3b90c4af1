"""CNP pacing at the notification point: at most one CNP per QP per interval."""

import pytest

from traffic.cnp import MELLANOX_MIN_TIME_BETWEEN_CNPS_S, PAPER_CNP_INTERVAL_S, CnpPacer


def test_published_intervals_are_50us_paper_and_4us_mellanox():
    assert PAPER_CNP_INTERVAL_S == 50e-6
    assert MELLANOX_MIN_TIME_BETWEEN_CNPS_S == 4e-6
    assert CnpPacer().interval_s == PAPER_CNP_INTERVAL_S


def test_at_most_one_cnp_per_qp_per_interval():
    pacer = CnpPacer(50e-6)
    marked_arrivals = [i * 1e-6 for i in range(200)]  # a CE-marked packet every microsecond
    sent = [t for t in marked_arrivals if pacer.should_send("qp1", t)]
    assert sent == pytest.approx([0.0, 50e-6, 100e-6, 150e-6])
    assert (pacer.sent, pacer.suppressed) == (4, 196)


def test_a_cnp_exactly_one_interval_later_is_sent_despite_float_rounding():
    pacer = CnpPacer(4e-6)
    assert pacer.should_send(7, 0.1)
    assert pacer.should_send(7, 0.1 + 4e-6)


def test_qps_are_paced_independently():
    pacer = CnpPacer(50e-6)
    assert pacer.should_send(("10.0.0.1", 17), 0.0)
    assert pacer.should_send(("10.0.0.2", 17), 1e-6)
    assert not pacer.should_send(("10.0.0.1", 17), 2e-6)
    assert pacer.last_sent_s(("10.0.0.2", 17)) == 1e-6


def test_forgetting_a_qp_lets_its_next_cnp_through():
    pacer = CnpPacer(50e-6)
    assert pacer.should_send(1, 0.0)
    pacer.forget(1)
    assert pacer.should_send(1, 1e-6)


def test_zero_interval_sends_a_cnp_for_every_marked_packet_and_negative_is_rejected():
    pacer = CnpPacer(0.0)
    assert all(pacer.should_send(1, 0.0) for _ in range(5))
    with pytest.raises(ValueError):
        CnpPacer(-1e-6)
