"""The topology graph and address plan: counts, unique addresses, equal-cost paths, rules."""

import ipaddress
import runpy
from pathlib import Path

import pytest

from topologies.addressing import host_addresses, plan_links
from topologies.leafspine import DEFAULT_HOST_RATE_BPS, Bottleneck, Dumbbell, LeafSpine, Star
from topologies.openflow import static_rules
from topologies.paths import count_equal_cost_paths, equal_cost_next_hops


@pytest.mark.parametrize("spines,leaves,hpl", [(2, 2, 2), (2, 4, 4), (4, 3, 5)])
def test_leafspine_counts(spines, leaves, hpl):
    topo = LeafSpine(spines=spines, leaves=leaves, hosts_per_leaf=hpl)
    assert len(topo.host_names()) == leaves * hpl
    assert len(topo.routers()) == spines + leaves
    assert len(topo.links()) == leaves * hpl + leaves * spines


def test_star_and_dumbbell_counts():
    assert len(Star(hosts=5).links()) == 5
    dumbbell = Dumbbell(hosts_per_side=3)
    assert len(dumbbell.host_names()) == 6 and len(dumbbell.links()) == 7


def test_bottleneck_puts_the_receiver_alone_behind_the_slow_link():
    topo = Bottleneck(senders=3, bottleneck_rate_bps=20_000_000, host_rate_bps=100_000_000)
    assert topo.host_names() == ["h1", "h2", "h3", "h4"] and topo.routers() == ["l1"]
    assert topo.receiver == "h4"
    rates = {frozenset((a, b)): info["rate_bps"] for a, b, info in topo.links(withInfo=True)}
    assert rates == {frozenset(("h1", "l1")): 100_000_000, frozenset(("h2", "l1")): 100_000_000,
                     frozenset(("h3", "l1")): 100_000_000, frozenset(("h4", "l1")): 20_000_000}
    # The switch's end of the receiver's link is the only port at the bottleneck rate.
    ends = [end for plan in plan_links(topo, "l3") for end in (plan.a, plan.b)
            if plan.rate_bps == 20_000_000 and end.node == "l1"]
    assert [(end.peer_node, end.ifname) for end in ends] == [("h4", "l1-eth4")]
    assert topo.describe()["bottleneck_rate_bps"] == 20_000_000
    assert Bottleneck(senders=2).bottleneck_rate_bps == DEFAULT_HOST_RATE_BPS


@pytest.mark.parametrize("mode", ["l3", "openflow"])
def test_addresses_and_interface_names_are_unique(mode):
    topo = LeafSpine(spines=2, leaves=4, hosts_per_leaf=4)
    plans = plan_links(topo, mode)
    ends = [end for plan in plans for end in (plan.a, plan.b)]
    addresses = [end.address for end in ends if end.address]
    assert len(set(addresses)) == len(addresses)
    assert len({(e.node, e.ifname) for e in ends}) == len(ends)
    assert len({e.mac for e in ends}) == len(ends)
    assert all(len(f"kvf-{e.ifname}") <= 15 for e in ends)
    assert len(host_addresses(topo, plans)) == 16


def test_l3_plan_puts_each_host_on_its_own_subnet_with_its_leaf():
    topo = LeafSpine(spines=2, leaves=2, hosts_per_leaf=2)
    for plan in plan_links(topo, "l3"):
        a = ipaddress.IPv4Interface(plan.a.address)
        b = ipaddress.IPv4Interface(plan.b.address)
        assert a.network == b.network and a.ip != b.ip
    hosts = host_addresses(topo, plan_links(topo, "l3"))
    subnets = {ipaddress.IPv4Interface(ip + "/24").network for ip in hosts.values()}
    assert len(subnets) == 4


def test_equal_cost_paths_span_every_spine():
    topo = LeafSpine(spines=4, leaves=3, hosts_per_leaf=2)
    assert count_equal_cost_paths(topo, "h1", "h6") == 4   # across leaves: one per spine
    assert count_equal_cost_paths(topo, "h1", "h2") == 1   # same leaf
    assert equal_cost_next_hops(topo, "l1", "h6") == ["s1", "s2", "s3", "s4"]
    assert equal_cost_next_hops(topo, "s2", "h6") == ["l3"]


def test_static_rules_use_a_select_group_over_all_uplinks():
    topo = LeafSpine(spines=2, leaves=2, hosts_per_leaf=2)
    groups, flows = static_rules(topo, "l1")
    assert groups == ["group_id=1,type=select,bucket=output:3,bucket=output:4"]
    assert any("nw_dst=10.0.0.4" in f and "group:1" in f for f in flows)   # h3, remote
    assert any("nw_dst=10.0.0.2" in f and "output:1" in f for f in flows)  # h1, local


def test_topologies_load_as_mininet_custom_file():
    """`mn --custom topologies/leafspine.py --topo leafspine,2,2,2` reads the `topos` dict."""
    path = Path(__file__).resolve().parents[2] / "topologies" / "leafspine.py"
    namespace = runpy.run_path(str(path))
    assert namespace["topos"]["bottleneck"](4, 20_000_000).receiver == "h5"
    topo = namespace["topos"]["leafspine"](2, 2, 2)
    assert len(topo.hosts()) == 4 and len(topo.switches()) == 4
    assert all("bw" in topo.linkInfo(a, b) for a, b in topo.links())
    # Mininet's learning bridges need STP to break the leaf-spine's loops (README.md).
    assert all(topo.nodeInfo(s)["stp"] for s in topo.switches())


def test_leafspine_loads_as_mn_custom_loads_it():
    """`mn --custom topologies/leafspine.py` execs the file with the system's Python, where
    only Mininet is importable: the file must import nothing of kvfabric's."""
    import shutil
    import subprocess
    from pathlib import Path

    system_python = shutil.which("python3", path="/usr/bin")
    source = Path(__file__).resolve().parents[2] / "topologies" / "leafspine.py"
    loader = ("import sys; namespace = {}; "
              "exec(compile(open(sys.argv[1]).read(), sys.argv[1], 'exec'), namespace); "
              "print(sorted(namespace['topos']))")
    if system_python is None or subprocess.run([system_python, "-c", "import mininet"],
                                               capture_output=True).returncode != 0:
        pytest.skip("the system's python3 has no Mininet (make setup installs it)")
    loaded = subprocess.run([system_python, "-c", loader, str(source)], cwd="/",
                            capture_output=True, text=True, timeout=60)
    assert loaded.returncode == 0, loaded.stderr
    assert "leafspine" in loaded.stdout
