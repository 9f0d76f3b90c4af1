"""DCQCN reaction point, driven with explicit times (Zhu et al., SIGCOMM 2015 equations)."""

import dataclasses

import pytest

from traffic.dcqcn import DcqcnParams, DcqcnReactionPoint

LINE_BPS = 25e9
G = 1 / 256
T_S = 55e-6  # paper alpha timer and rate-increase timer


def timer_only(**overrides):
    """Paper parameters whose byte counter never fires, so every increase event is a timer."""
    base = DcqcnParams.preset("paper", LINE_BPS)
    return dataclasses.replace(base, byte_counter_bytes=10**15, **overrides)


def rp_after_two_cuts():
    """Two CNPs before any timer: target = L/2, rate = L/4, alpha = 1 (g cancels at alpha 1)."""
    rp = DcqcnReactionPoint(timer_only())
    rp.on_cnp(0.0)
    rp.on_cnp(1e-6)
    assert rp.target_rate_bps == pytest.approx(LINE_BPS / 2)
    assert rp.rate_bps == pytest.approx(LINE_BPS / 4)
    return rp


def test_first_cnp_sets_rate_to_line_rate_times_one_minus_alpha0_over_two():
    rp = DcqcnReactionPoint(DcqcnParams.preset("paper", LINE_BPS))
    assert rp.rate_bps == LINE_BPS and rp.alpha == 1.0
    rp.on_cnp(0.0)
    assert rp.rate_bps == LINE_BPS * (1 - 1.0 / 2)
    assert rp.target_rate_bps == LINE_BPS  # target = rate before the cut
    assert rp.alpha == pytest.approx((1 - G) * 1.0 + G)


def test_alpha_decays_as_one_minus_g_to_the_n_without_cnps():
    rp = DcqcnReactionPoint(timer_only())
    rp.on_cnp(0.0)  # alpha0 = 1 stays 1 after the EWMA update
    for n in range(1, 40):
        rp.advance(n * T_S)
        assert rp.alpha == pytest.approx((1 - G) ** n, rel=1e-12)


def test_alpha_does_not_decay_before_a_full_period_without_cnp():
    rp = DcqcnReactionPoint(timer_only())
    rp.on_cnp(0.0)
    rp.advance(T_S * 0.99)
    assert rp.alpha == 1.0
    rp.on_cnp(T_S * 0.99)  # restarts the alpha period
    rp.advance(T_S * 1.5)
    assert rp.alpha == pytest.approx(1.0)


def test_each_cnp_moves_alpha_by_the_ewma_and_cuts_with_the_old_alpha():
    rp = DcqcnReactionPoint(timer_only())
    rp.on_cnp(0.0)
    rp.advance(10 * T_S)
    alpha_before = (1 - G) ** 10
    rate_before = rp.rate_bps
    rp.on_cnp(10 * T_S)
    assert rp.rate_bps == pytest.approx(rate_before * (1 - alpha_before / 2))
    assert rp.target_rate_bps == pytest.approx(rate_before)
    assert rp.alpha == pytest.approx((1 - G) * alpha_before + G)


def test_f_fast_recovery_steps_halve_the_gap_to_the_target_each():
    rp = rp_after_two_cuts()
    target = LINE_BPS / 2
    gap = target - rp.rate_bps
    for k in range(1, 6):
        rp.advance(1e-6 + k * T_S)
        assert rp.stage == "fast_recovery"
        assert rp.target_rate_bps == pytest.approx(target)
        assert target - rp.rate_bps == pytest.approx(gap / 2**k)


def test_after_f_timer_events_additive_increase_adds_rate_ai_to_the_target():
    rp = rp_after_two_cuts()
    r_ai = rp.params.rate_ai_bps
    rp.advance(1e-6 + 5 * T_S)
    for k in range(1, 20):
        rate = rp.rate_bps
        rp.advance(1e-6 + (5 + k) * T_S)
        assert rp.stage == "additive"  # the byte counter never passed F
        assert rp.target_rate_bps == pytest.approx(LINE_BPS / 2 + k * r_ai)
        assert rp.rate_bps == pytest.approx((rp.target_rate_bps + rate) / 2)


def test_hyper_increase_adds_i_times_rate_hai_once_both_counters_passed_f():
    params = dataclasses.replace(timer_only(), byte_counter_bytes=1000)
    rp = DcqcnReactionPoint(params)
    rp.on_cnp(0.0)
    rp.on_cnp(1e-6)
    r_ai, r_hai = params.rate_ai_bps, params.rate_hai_bps
    target = LINE_BPS / 2
    for _ in range(5):  # BC = 1..5: fast recovery
        rp.on_bytes_sent(1000, 2e-6)
    assert rp.target_rate_bps == pytest.approx(target)
    rp.on_bytes_sent(1000, 2e-6)  # BC = 6 > F, T = 0: additive
    target += r_ai
    assert rp.stage == "additive" and rp.target_rate_bps == pytest.approx(target)
    for k in range(1, 6):  # T = 1..5, BC = 6: one counter past F, additive
        rp.advance(1e-6 + k * T_S)
        target += r_ai
    assert rp.target_rate_bps == pytest.approx(target)
    rp.advance(1e-6 + 6 * T_S)  # T = 6, BC = 6: hyper with i = min(T, BC) - F = 1
    target += 1 * r_hai
    assert rp.stage == "hyper" and rp.target_rate_bps == pytest.approx(target)
    rp.on_bytes_sent(1000, 1e-6 + 6 * T_S)  # BC = 7, T = 6: i = 1
    target += 1 * r_hai
    rp.advance(1e-6 + 7 * T_S)  # T = 7, BC = 7: i = 2
    target += 2 * r_hai
    assert rp.target_rate_bps == pytest.approx(target)


def test_byte_counter_fires_once_per_byte_counter_bytes():
    params = dataclasses.replace(timer_only(), byte_counter_bytes=1000,
                                 rate_increase_timer_s=1.0)
    rp = DcqcnReactionPoint(params)
    rp.on_cnp(0.0)
    rp.on_cnp(0.0)
    gap = rp.target_rate_bps - rp.rate_bps
    rp.on_bytes_sent(2999, 1e-6)  # two events, 999 bytes carried over
    assert rp.target_rate_bps - rp.rate_bps == pytest.approx(gap / 4)
    rp.on_bytes_sent(1, 2e-6)
    assert rp.target_rate_bps - rp.rate_bps == pytest.approx(gap / 8)


def test_rate_stays_within_min_rate_and_line_rate():
    params = DcqcnParams.preset("paper", LINE_BPS)
    rp = DcqcnReactionPoint(params)
    for i in range(200):
        rp.on_cnp(i * 1e-6)
        assert rp.rate_bps >= params.min_rate_bps
    assert rp.rate_bps == params.min_rate_bps
    rp.advance(10.0)  # long quiet period: recovers all the way, never beyond
    assert rp.rate_bps == LINE_BPS and rp.target_rate_bps == LINE_BPS


def test_no_timer_runs_before_the_first_cnp():
    rp = DcqcnReactionPoint(DcqcnParams.preset("paper", LINE_BPS))
    rp.advance(1.0)
    rp.on_bytes_sent(10**9, 1.0)
    assert (rp.rate_bps, rp.alpha, rp.stage) == (LINE_BPS, 1.0, "line_rate")
    assert rp.next_timer_s() is None


def test_advancing_in_one_jump_equals_advancing_in_small_steps():
    jump, steps = (DcqcnReactionPoint(timer_only()) for _ in range(2))
    for rp in (jump, steps):
        rp.on_cnp(0.0)
        rp.on_cnp(3e-6)
    for i in range(3, 2001):
        steps.advance(i * 1e-6)
    jump.advance(2000e-6)
    assert jump.rate_bps == pytest.approx(steps.rate_bps, rel=1e-12)
    assert jump.target_rate_bps == pytest.approx(steps.target_rate_bps, rel=1e-12)
    assert jump.alpha == pytest.approx(steps.alpha, rel=1e-12)


def test_mellanox_rate_decrease_interval_allows_one_cut_per_interval():
    params = DcqcnParams.preset("mellanox", LINE_BPS)
    rp = DcqcnReactionPoint(params)
    rp.on_cnp(0.0)
    first_cut = rp.rate_bps
    rp.on_cnp(1e-6)
    rp.on_cnp(2e-6)
    rp.advance(3.9e-6)
    assert rp.rate_bps == first_cut and rp.rate_cuts == 1
    assert rp.next_timer_s() == pytest.approx(4e-6)  # the deferred cut (and an alpha tick)
    rp.advance(4e-6)  # the coalesced CNPs cut once when the interval ends
    assert rp.rate_cuts == 2 and rp.cnps_received == 3
    assert rp.rate_bps < first_cut


def test_preset_scales_rate_ai_and_hai_between_target_rates_like_hpcc_run_py():
    p25 = DcqcnParams.preset("paper", 25e9)
    p100 = DcqcnParams.preset("mellanox", 100e9)
    assert (p25.rate_ai_bps, p25.rate_hai_bps) == (5e6, 50e6)
    assert (p100.rate_ai_bps, p100.rate_hai_bps) == (20e6, 200e6)
    # The NIC's minimum rate and HPCC's MIN_RATE are one value at every link speed.
    assert p25.min_rate_bps == p100.min_rate_bps == 1e6
    assert DcqcnParams.preset("hpcc", 100e9).min_rate_bps == 1e9


def test_profiles_carry_the_published_timers():
    paper = DcqcnParams.preset("paper", 40e9)
    mlx = DcqcnParams.preset("mellanox", 40e9)
    hpcc = DcqcnParams.preset("hpcc", 25e9)
    assert (paper.g, paper.alpha_timer_s, paper.rate_increase_timer_s) == (1 / 256, 55e-6, 55e-6)
    assert (paper.byte_counter_bytes, paper.fast_recovery_steps) == (10_000_000, 5)
    assert paper.rate_decrease_interval_s == 0.0
    assert (mlx.alpha_timer_s, mlx.rate_increase_timer_s) == (1e-6, 300e-6)
    assert (mlx.rate_decrease_interval_s, mlx.byte_counter_bytes) == (4e-6, 32767)
    assert (hpcc.alpha_timer_s, hpcc.rate_decrease_interval_s, hpcc.rate_increase_timer_s) \
        == (1e-6, 4e-6, 300e-6)
    assert (hpcc.g, hpcc.fast_recovery_steps, hpcc.byte_counter_bytes) == (1 / 256, 1, 0)
    assert (hpcc.rate_ai_bps, hpcc.rate_hai_bps, hpcc.min_rate_bps) == (5e6, 50e6, 1e9)
    assert hpcc.clamp_target_rate is False and hpcc.profile == "hpcc"


@pytest.mark.parametrize("bad", [dict(g=0), dict(line_rate_bps=0), dict(min_rate_bps=0),
                                 dict(alpha_timer_s=0), dict(initial_alpha=2)])
def test_invalid_parameters_are_rejected(bad):
    with pytest.raises(ValueError):
        DcqcnParams(**{"line_rate_bps": LINE_BPS, **bad})


def test_unknown_profile_and_time_going_backwards_raise():
    with pytest.raises(ValueError, match="profile"):
        DcqcnParams.preset("cisco", LINE_BPS)
    rp = DcqcnReactionPoint(DcqcnParams.preset("paper", LINE_BPS))
    rp.advance(1.0)
    with pytest.raises(ValueError, match="backwards"):
        rp.on_cnp(0.5)
