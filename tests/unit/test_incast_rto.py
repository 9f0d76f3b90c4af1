"""workload.rto_min: parsed as a duration, turned into `ip route change ... rto_min` for every
route a host has (both fabric modes' route shapes)."""

from __future__ import annotations

import pytest

from kvfabric.schema import SpecError
from kvfabric.spec import load_spec
from kvfabric.workloads.tcp_incast import route_change_argvs

L3_ROUTES = [  # `ip -j route show` on an l3-mode host
    {"dst": "default", "gateway": "10.1.1.1", "dev": "h1-eth0", "protocol": "static",
     "flags": []},
    {"dst": "10.1.1.0/24", "dev": "h1-eth0", "protocol": "kernel", "scope": "link",
     "prefsrc": "10.1.1.2", "flags": []},
]


def test_every_route_gets_rto_min_in_whole_ms():
    argvs = route_change_argvs(L3_ROUTES, 0.005)
    assert argvs[0] == ["ip", "route", "change", "default", "via", "10.1.1.1", "dev", "h1-eth0",
                        "proto", "static", "rto_min", "5ms"]
    assert argvs[1][-2:] == ["rto_min", "5ms"] and ["src", "10.1.1.2"] == argvs[1][-4:-2]
    assert route_change_argvs(L3_ROUTES[:1], 0.0002)[0][-1] == "1ms"  # never 0 (= unset)


def test_rto_min_is_optional_and_bounded():
    assert load_spec("tcp_incast").workload["rto_min"] is None
    assert load_spec("tcp_incast", {"workload.rto_min": "5ms"}).workload["rto_min"] == \
        pytest.approx(0.005)
    with pytest.raises(SpecError, match="workload.rto_min"):
        load_spec("tcp_incast", {"workload.rto_min": "10us"})


def test_quickack_is_added_to_every_route_when_asked():
    argvs = route_change_argvs(L3_ROUTES, 0.05, quickack=True)
    assert all(argv[-4:] == ["rto_min", "50ms", "quickack", "1"] for argv in argvs)


def test_roce_incast_tcp_rto_min_is_a_target_duration_dilated_once():
    from kvfabric.schema import SpecError
    from kvfabric.spec import load_spec

    spec = load_spec("roce_incast", {"workload.tcp_rto_min": "200ms"})
    assert spec.workload["tcp_rto_min"] == 0.2 * 250  # 50 s of wall time at D = 250
    try:
        load_spec("roce_incast", {"workload.tcp_rto_min": "1s"})  # 250 s > Linux's 120 s
    except SpecError as err:
        assert "workload.tcp_rto_min" in {i.field for i in err.issues}
    else:
        raise AssertionError("a dilated rto_min above 120 s must be refused")
