"""Plans that cannot fit the timeout or memory are refused with the numbers and the fix."""

from traffic.kv_budget import plan_problems
from traffic.kv_patterns import Transfer


def test_a_plan_within_the_timeout_passes():
    plan = [Transfer(0.0, "p0", "d0", 125_000_000, "kv")]  # 1 Gbit: 10 s at 100 Mbit/s
    assert plan_problems(plan, line_rate_bps=100e6, timeout_s=11) == []


def test_a_sender_needing_longer_than_the_timeout_is_named_with_its_numbers():
    plan = [Transfer(0.0, "p0", "d0", 125_000_000, "kv"),
            Transfer(5.0, "p1", "d0", 125_000_000, "kv")]  # p1 ends at 15 s at best
    [(problem, fix)] = plan_problems(plan, line_rate_bps=100e6, timeout_s=12)
    assert problem.startswith("p1 must send 0.125 GB: 10 s at 0.1 Gbit/s")
    assert "15 s after the first transfer, over the 12 s timeout" in problem
    assert "shorter window" in fix and "longer timeout" in fix


def test_too_many_transfers_for_memory_is_refused():
    plan = [Transfer(i * 1e-3, "p0", "d0", 10, "kv") for i in range(11)]
    [(problem, _)] = plan_problems(plan, line_rate_bps=1e9, timeout_s=60, max_transfers=10)
    assert problem == "11 transfers, over the 10 the emulation holds in memory"
