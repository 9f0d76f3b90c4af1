"""The `hpcc` profile (HPCC's ns-3 CC_MODE 1) step by step against hand-computed values, at
25 Gbit/s: g = 1/256, alpha clock 1 us, decrease check 4 us (+1 ns), increase timer 300 us,
F = 1, AI 5 Mbit/s, HAI 50 Mbit/s, minimum rate 1 Gbit/s, no target clamp."""

from __future__ import annotations

import pytest

from kvfabric.dilation import Scale, emulate_params
from traffic.dcqcn import DcqcnParams, make_reaction_point
from traffic.dcqcn_hpcc import HpccDcqcnReactionPoint

LINE = 25e9
US = 1e-6
G = 1 / 256


def _rp() -> HpccDcqcnReactionPoint:
    rp = make_reaction_point(DcqcnParams.preset("hpcc", LINE))
    assert isinstance(rp, HpccDcqcnReactionPoint)
    return rp


def test_first_notification_sets_alpha_to_one_and_does_not_cut():
    rp = _rp()
    assert rp.next_timer_s() is None and rp.stage == "line_rate"
    rp.on_cnp(0.0)
    assert (rp.rate_bps, rp.target_rate_bps, rp.alpha, rp.rate_cuts) == (LINE, LINE, 1.0, 0)
    assert rp.next_timer_s() == pytest.approx(4 * US + 1e-9)  # the first decrease check
    rp.advance(3.99 * US)
    assert rp.rate_cuts == 0 and rp.alpha == pytest.approx((1 - G) ** 3)


def test_cut_at_the_first_check_uses_alpha_after_four_ticks():
    """No further notification: alpha decays at 1, 2, 3, 4 us to (255/256)^4 = 0.98447; the
    check at 4 us + 1 ns cuts 25G x (1 - 0.98447/2) = 12.694 Gbit/s; the target stays at
    line rate (no clamp before any increase)."""
    rp = _rp()
    rp.on_cnp(0.0)
    rp.advance(5 * US)
    assert rp.rate_cuts == 1
    assert rp.alpha == pytest.approx(0.9844663145486265 * (1 - G))  # one more tick at 5 us
    assert rp.rate_bps == pytest.approx(12_694_171_068.142168)
    assert rp.target_rate_bps == LINE and rp.stage == "fast_recovery"


def test_a_notification_raises_alpha_at_the_next_tick():
    """Notified at 0 and at 2 us: ticks at 1 and 2 us decay (the 2 us one runs before the
    notification), the 3 us tick adds g, the 4 us tick decays: alpha = 0.98836, and the
    cut at 4 us + 1 ns gives 25G x (1 - alpha/2) = 12.6455 Gbit/s."""
    rp = _rp()
    rp.on_cnp(0.0)
    rp.on_cnp(2 * US)
    rp.advance(4.5 * US)
    assert rp.alpha == pytest.approx(0.988357305759564)
    assert rp.rate_bps == pytest.approx(12_645_533_678.00545)


def test_many_notifications_in_one_interval_cut_once():
    rp = _rp()
    for k in range(40):
        rp.on_cnp(k * 0.1 * US)
    rp.advance(4.5 * US)
    assert rp.rate_cuts == 1 and rp.cnps_received == 40
    rp.advance(8.5 * US)
    assert rp.rate_cuts == 1  # nothing new arrived before the 8 us check


def test_increase_stages_fast_recovery_then_additive_then_hyper_and_clamp_after_increase():
    rp = _rp()
    rp.on_cnp(0.0)
    rp.advance(4.5 * US)
    cut_s = 4 * US + 1e-9
    r1 = rp.rate_bps
    # Stage 0 < F: fast recovery towards the unclamped target (line rate).
    rp.advance(cut_s + 300 * US)
    r2 = (r1 + LINE) / 2
    assert rp.rate_bps == pytest.approx(r2) and rp.stage == "additive"
    # A notification now cuts at the next check; an increase happened, so R_T = R_C first.
    rp.on_cnp(cut_s + 301 * US)
    rp.advance(cut_s + 304 * US)
    assert rp.rate_cuts == 2 and rp.target_rate_bps == pytest.approx(r2)
    r3 = rp.rate_bps
    assert r3 == pytest.approx(r2 * (1 - rp.alpha / 2), rel=1e-12)
    cut2_s = 308 * US + 1e-9  # the first check (4k us + 1 ns) after the notification at 305 us
    rp.advance(cut2_s + 300 * US)          # stage 0: fast recovery
    r4 = (r3 + r2) / 2
    assert rp.rate_bps == pytest.approx(r4)
    rp.advance(cut2_s + 600 * US)          # stage 1 == F: additive, R_T += 5 Mbit/s
    assert rp.target_rate_bps == pytest.approx(r2 + 5e6)
    assert rp.rate_bps == pytest.approx((r4 + r2 + 5e6) / 2)
    rp.advance(cut2_s + 900 * US)          # stage 2 > F: hyper, R_T += 50 Mbit/s
    assert rp.target_rate_bps == pytest.approx(r2 + 55e6) and rp.stage == "hyper"


def test_the_rate_never_falls_below_one_gigabit():
    rp = _rp()
    t = 0.0
    for _ in range(200):
        rp.on_cnp(t)
        t += 4 * US
        rp.advance(t)
    assert rp.rate_bps == pytest.approx(1e9)


def test_no_byte_counter():
    rp = _rp()
    rp.on_cnp(0.0)
    rp.advance(5 * US)
    rate = rp.rate_bps
    rp.on_bytes_sent(10**9, 6 * US)
    assert rp.rate_bps == rate


def test_dilated_model_is_the_same_trajectory_in_slow_motion():
    """Time dilation is exact for the model: D = 250 gives rates / 250 at times x 250."""
    d = 250.0
    fast = _rp()
    slow = make_reaction_point(emulate_params(DcqcnParams.preset("hpcc", LINE),
                                              Scale(d, LINE, LINE)))
    events = [0.0, 2 * US, 9 * US, 500 * US, 502 * US, 1500 * US]
    probes = [t * US for t in range(0, 3000, 7)]
    for t in sorted(set(events + probes)):
        for rp, k in ((fast, 1.0), (slow, d)):
            if t in events:
                rp.on_cnp(t * k)
            else:
                rp.advance(t * k)
        assert slow.rate_bps * d == pytest.approx(fast.rate_bps, rel=1e-9)
        assert slow.alpha == pytest.approx(fast.alpha, rel=1e-9)
