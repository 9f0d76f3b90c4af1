"""Analysis of the controller experiments from synthetic raw data."""

import numpy as np

from kvfabric.workloads.link_failure_analysis import outage
from kvfabric.workloads.openflow_common import rates


def _stream(times):
    return np.array([(i, t, t) for i, t in enumerate(times)], dtype=float)


def test_outage_is_measured_from_the_failure_to_the_first_packet_after_the_gap():
    before = [i * 0.001 for i in range(1000)]                 # 0 .. 0.999 s
    after = [1.0 + 0.020 + i * 0.001 for i in range(1000)]    # resumes 20 ms later
    arrivals = _stream(before + after)
    arrivals[1000:, 0] += 19                                   # 19 packets never arrived
    recovery, lost, gap = outage(arrivals, 1.0, 5.0, 0.010)
    assert abs(recovery - 0.020) < 1e-9 and lost == 19 and abs(gap - 0.021) < 1e-9


def test_a_stream_without_a_gap_has_no_outage():
    assert outage(_stream([i * 0.001 for i in range(3000)]), 1.0, 5.0, 0.010) is None


def test_rates_come_from_consecutive_counter_samples():
    rows = [{"t": 0.0, "iface": "a", "tx_bytes": 0}, {"t": 0.01, "iface": "a",
                                                      "tx_bytes": 62_500}]
    assert rates(rows) == [{"t": 0.01, "iface": "a", "rate_bps": 50_000_000.0}]


def test_a_host_stall_without_loss_is_no_outage_and_a_later_gap_is_not_this_events():
    times = [i * 0.001 for i in range(3000)]
    stalled = [t + (0.015 if t >= 1.5 else 0.0) for t in times]    # 15 ms pause, none lost
    assert outage(_stream(stalled), 1.0, 5.0, 0.003) is None
    late = _stream([t + (0.020 if t >= 2.5 else 0.0) for t in times])
    late[2500:, 0] += 19                                            # lost, but 1.5 s later
    assert outage(late, 1.0, 5.0, 0.003) is None


def test_an_outage_just_under_ten_intervals_is_counted():
    before = [i * 0.001 for i in range(1000)]
    after = [1.0 + 0.0093 + i * 0.001 for i in range(1000)]
    arrivals = _stream(before + after)
    arrivals[1000:, 0] += 8
    recovery, lost, _ = outage(arrivals, 1.0, 5.0, 0.003)
    assert abs(recovery - 0.0093) < 1e-9 and lost == 8
