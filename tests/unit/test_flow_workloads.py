"""The udp_flows and tcp_flows workloads: flow plans and spec checks."""

from __future__ import annotations

import pytest

from kvfabric.schema import SpecError
from kvfabric.spec_validate import validate
from kvfabric.workloads import udp_flows
from topologies.leafspine import LeafSpine


def test_victim_pattern_shares_the_uplink_with_part_of_the_incast():
    topo = LeafSpine(spines=1, leaves=2, hosts_per_leaf=4)
    flows = udp_flows.plan({"pattern": "victim", "senders": 5}, topo)
    victim = [f for f in flows if f["role"] == "victim"]
    incast = [f for f in flows if f["role"] == "incast"]
    assert victim == [{"src": "h4", "dst": "h8", "role": "victim"}]
    assert [f["src"] for f in incast] == ["h1", "h2", "h3", "h6", "h7"]
    assert {f["dst"] for f in incast} == {"h5"}


def test_incast_pattern_takes_the_first_other_hosts():
    topo = LeafSpine(spines=1, leaves=2, hosts_per_leaf=5)
    flows = udp_flows.plan({"pattern": "incast", "senders": 8, "receiver": "h1"}, topo)
    assert [f["src"] for f in flows] == [f"h{i}" for i in range(2, 10)]


def _spec(fabric=None, **workload):
    return {"experiment": {"name": "t"}, "fabric": fabric or {}, "workload": workload}


def test_bad_flow_specs_are_named():
    with pytest.raises(SpecError, match="workload.senders"):
        validate(_spec(kind="udp_flows", senders=50))
    with pytest.raises(SpecError, match="workload.pattern"):
        validate(_spec({"hosts_per_leaf": 2}, kind="udp_flows", pattern="victim"))
    with pytest.raises(SpecError, match="workload.cc"):
        validate(_spec(kind="tcp_flows", cc="no-such-cc"))
    assert validate(_spec(kind="tcp_flows", cc="cubic")).workload["ecn"] is True
