"""The fabric size estimate: linear in nodes from the measured per-node costs, slower on
fewer cores than it was measured on, limited by time and by memory."""

from __future__ import annotations

from kvfabric import capacity
from kvfabric.capacity import Host, estimate, problem

ROOMY = Host(cores=2, available_bytes=64 << 30)


def test_estimate_scales_with_nodes():
    assert estimate(100, ROOMY).bringup_s == 100 * capacity.BRINGUP_S_PER_NODE
    assert estimate(100, ROOMY).memory_bytes == 100 * capacity.MEMORY_BYTES_PER_NODE


def test_fewer_cores_are_slower_more_are_not_faster():
    one, two, eight = (estimate(100, Host(c, 64 << 30)).bringup_s for c in (1, 2, 8))
    assert one == 2 * two and eight == two


def test_the_shipped_default_fits_and_a_huge_fabric_does_not():
    assert problem(estimate(12, ROOMY)) is None
    assert "over 300 s of bring-up" in problem(estimate(4176, ROOMY))


def test_memory_limits_too():
    small_host = Host(cores=2, available_bytes=1 << 30)  # 32 nodes fit in half of it
    found = estimate(100, small_host)
    assert found.too_big and not found.too_slow
    assert "half the available memory" in problem(found)
    assert found.max_nodes == 32
