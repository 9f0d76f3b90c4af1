"""The controller's pure parts: routes over live links, tenant reachability and meters, the
adaptive monitor's decisions, and the spec fields that ask for them."""

import pytest

from controllers.adaptive import AdaptiveParams, LoadMonitor
from controllers.model import FabricModel
from controllers.topology import describe
from kvfabric.schema import SpecError
from kvfabric.spec import load_spec
from kvfabric.spec_validate import validate
from topologies.addressing import host_addresses, plan_links
from topologies.leafspine import LeafSpine


def _model(tenants=None, meters=False, **kwargs):
    topo = LeafSpine(**(kwargs or {"spines": 2, "leaves": 2, "hosts_per_leaf": 2}))
    plans = plan_links(topo, "openflow")
    return FabricModel.from_dict(describe(topo, plans, host_addresses(topo, plans),
                                          tenants, meters))


def test_routes_spread_over_every_spine_and_avoid_a_dead_link():
    model = _model()
    routes = model.routes()
    assert routes["l1"]["h3"] == (3, 4)          # both uplinks of l1 lead to h3 on l2
    assert routes["l1"]["h1"] == (1,)            # local host: its port
    assert routes["s1"]["h3"] == (2,)            # spine: the port towards l2
    s1_to_l2 = next(p for p, i in model.switches["s1"].ports.items() if i.peer == "l2")
    assert model.set_port("s1", s1_to_l2, up=False)
    routes = model.routes()
    assert routes["l1"]["h3"] == (4,)            # only via s2 now: the far end failed
    assert routes["l1"]["h1"] == (1,)
    # s1 has only the detour back down through l1 (packets in flight); l1 never sends to s1
    assert routes["s1"]["h3"] == (1,) and model.switches["s1"].ports[1].peer == "l1"
    assert not model.set_port("s1", s1_to_l2, up=False)  # no change, nothing to redo
    model.set_port("s1", s1_to_l2, up=True)
    assert model.routes()["l1"]["h3"] == (3, 4)


def test_tenants_default_deny_across_and_allow_inside():
    model = _model({"a": ["h1", "h3"], "b": ["h2"]})
    assert model.allowed("h1", "h3") and model.allowed("h3", "h1")
    assert not model.allowed("h1", "h2") and not model.allowed("h2", "h3")
    assert not model.allowed("h4", "h1") and not model.allowed("h1", "h4")  # h4: no tenant
    assert not model.allowed("h1", "h1")
    everyone = _model()
    assert all(everyone.allowed(a, b) for a in everyone.hosts for b in everyone.hosts
               if a != b)


def test_meter_rate_is_an_equal_share_of_the_leaf_uplinks():
    model = _model({"a": ["h1"], "b": ["h2"]}, meters=True)
    assert model.meter_rate_bps("l1") == 2 * 100_000_000 // 2


def _busy_monitor():
    capacity = {("l1", 3): 50_000_000, ("l1", 4): 50_000_000}
    return LoadMonitor(AdaptiveParams(), capacity)


def _feed(monitor, seconds, port_bps, flow_bps, placements):
    """Drive the monitor with steady rates: port counters every 10 ms, flow counters that
    move in 500 ms steps as userspace OVS credits them."""
    moves, t, port_bytes, flow_bytes = [], 0.0, 0.0, dict.fromkeys(flow_bps, 0.0)
    for i in range(int(seconds / 0.01)):
        t += 0.01
        port_bytes += port_bps / 8 * 0.01
        monitor.port_sample("l1", 3, t, int(port_bytes))
        monitor.port_sample("l1", 4, t, 0)
        if i % 50 == 0:
            for flow, rate in flow_bps.items():
                flow_bytes[flow] += rate / 8 * 0.5
        if i % 5 == 0:
            for flow in flow_bps:
                monitor.flow_sample("l1", flow, t, int(flow_bytes[flow]))
        move = monitor.decide("l1", t, placements, lambda f: (3, 4))
        if move:
            moves.append((t, move))
            placements[move.flow] = move.new_port
    return moves


def test_two_elephants_on_a_full_uplink_split_once():
    placements = {("a",): 3, ("b",): 3}
    moves = _feed(_busy_monitor(), 2.0, 48e6, {("a",): 24e6, ("b",): 24e6}, placements)
    assert len(moves) == 1
    assert moves[0][1].old_port == 3 and moves[0][1].new_port == 4
    assert sorted(placements.values()) == [3, 4]


def test_one_flow_filling_its_uplink_is_left_alone():
    placements = {("a",): 3}
    assert _feed(_busy_monitor(), 2.0, 48e6, {("a",): 48e6}, placements) == []


def test_a_link_below_the_threshold_is_left_alone():
    placements = {("a",): 3, ("b",): 3}
    assert _feed(_busy_monitor(), 2.0, 30e6, {("a",): 15e6, ("b",): 15e6}, placements) == []


def test_a_burst_shorter_than_sustain_moves_nothing():
    """ecmp_collision's path probes: each flow's 256 KiB burst fills the uplink for 42 ms, and
    a flow's rate is averaged over up to a second, so two flows whose bursts have ended both
    still look like elephants. Moving one then would move a flow that no longer sends (and
    whose probed path the workload has already recorded)."""
    monitor, placements = _busy_monitor(), {("a",): 3, ("b",): 3}
    sustain_s = AdaptiveParams().sustain_s
    moves, t, port_bytes = [], 0.0, 0
    for i in range(200):                    # 2 s of 10 ms polls
        t = (i + 1) * 0.01
        if 0.30 <= t < 0.30 + 0.042:       # b's probe, just after a's
            port_bytes += int(50e6 / 8 * 0.01)
        monitor.port_sample("l1", 3, t, port_bytes)
        monitor.port_sample("l1", 4, t, 0)
        for flow in placements:             # both credited with a probe's bytes in 0.25 s
            monitor.flow_sample("l1", flow, t, 0 if t < 0.25 else 256 * 1024)
        if monitor.decide("l1", t, placements, lambda f: (3, 4)):
            moves.append(t)
    assert 0.042 + 0.03 < sustain_s
    assert moves == []


def test_congestion_must_hold_in_every_sample_for_sustain():
    """One sample below the threshold restarts the wait: a sawtooth that dips below
    congested_util now and then is not a sustained overload."""
    monitor, placements = _busy_monitor(), {("a",): 3, ("b",): 3}
    flow_bytes, moves, port_bytes = 0, [], 0
    for i in range(300):
        t = (i + 1) * 0.01
        dip = i % 8 == 7                    # one light 10 ms in every 80 ms
        port_bytes += int((10e6 if dip else 50e6) / 8 * 0.01)
        monitor.port_sample("l1", 3, t, port_bytes)
        monitor.port_sample("l1", 4, t, 0)
        flow_bytes += int(24e6 / 8 * 0.01)
        for flow in placements:
            monitor.flow_sample("l1", flow, t, flow_bytes)
        if monitor.decide("l1", t, placements, lambda f: (3, 4)):
            moves.append(t)
    assert moves == []


def _raw(**sections):
    raw = {"experiment": {"name": "t"}, "fabric": {"mode": "openflow", "controller": "ecmp"},
           "workload": {"kind": "tcp_incast"}}
    for section, values in sections.items():
        raw.setdefault(section, {}).update(values)
    return raw


def test_tenant_and_controller_mistakes_are_named_before_anything_is_built():
    with pytest.raises(SpecError) as info:
        validate(_raw(tenants={"a": ["h1", "h99"], "b": ["h1"]}))
    problems = " ".join(str(i) for i in info.value.issues)
    assert "h99" in problems and "already in tenant" in problems
    with pytest.raises(SpecError) as info:
        validate(_raw(fabric={"mode": "l3", "controller": "adaptive"}))
    assert info.value.issues[0].field == "fabric.controller"
    with pytest.raises(SpecError) as info:
        validate(_raw(fabric={"controller": "static"}, tenants={"a": ["h1"]}))
    assert info.value.issues[0].field == "tenants"
    with pytest.raises(SpecError) as info:
        validate(_raw(fabric={"tenant_meters": True}))
    assert info.value.issues[0].field == "fabric.tenant_meters"


def test_shipped_controller_experiments_validate():
    for name in ("ecmp_collision", "link_failure", "tenant_isolation"):
        spec = load_spec(name)
        assert spec.fabric["mode"] == "openflow" and spec.fabric["controller"] != "static"
    assert load_spec("tenant_isolation").tenants["b"] == ["h4", "h6", "h8"]


def test_controller_and_fabric_routes_are_the_same_ecmp_rule():
    """The controller's live routes and the static fabric's next hops come from one shortest
    path implementation (topologies.paths): on an intact fabric they name the same hops."""
    from topologies.paths import equal_cost_next_hops

    topo = LeafSpine(spines=2, leaves=3, hosts_per_leaf=2)
    model = _model(spines=2, leaves=3, hosts_per_leaf=2)
    for switch, by_host in model.routes().items():
        ports = model.switches[switch].ports
        for host, route in by_host.items():
            assert sorted(ports[p].peer for p in route) == \
                equal_cost_next_hops(topo, switch, host), (switch, host)
