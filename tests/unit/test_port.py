"""A Port owns one end of a link: the queue agent's config and every reading the results files
are written from come out of the Ports as they came out of the fabric before (fixtures under
fixtures/ports, recorded from the fabric's code before the Port owned them), and each port's
ECN marker is the port's own, not a list kept beside the ports."""

from __future__ import annotations

import ast
import contextlib
import json
from pathlib import Path
from types import SimpleNamespace

import port_cases
import pytest

import fabriccore.processes
import topologies.port
import topologies.queues.tc_netlink
from topologies import netlink
from topologies.fabric import Fabric
from topologies.leafspine import LeafSpine
from topologies.port import Port
from topologies.queues.agent_config import AgentConfig, ClassConfig, PortConfig
from topologies.queues.settings import QueueSettings

FIXTURES = Path(__file__).parent / "fixtures" / "ports"
ROOT = Path(__file__).resolve().parents[2]


def hand_built(case: str) -> Fabric:
    """The case's fabric, unbuilt, with its Ports made by hand as its build would make them
    (interface facts from port_cases, classes from the fabric's own plan)."""
    topo, mode, settings, backend = port_cases.CASES[case]
    fabric = Fabric(topo(), mode, queues=settings, ecn_backend=backend,
                    queue_dir=port_cases.QUEUE_DIR)
    for plan, end, netns, ifname, mac, ifindex in port_cases.interface_ends(fabric):
        port = Port(end.node, ifname, netns, end.peer_node, plan.rate_bps,
                    fabric.topo.role(end.node), plan.mtu, mac=mac, ifindex=ifindex)
        queues, leaves = fabric._plan_classes(port)
        port.queues, port.leaves = queues, tuple(leaves)
        fabric.ports.append(port)
    return fabric


@pytest.mark.parametrize("case", sorted(port_cases.CASES))
def test_agent_config_is_byte_identical_to_the_fabric_built_one(case):
    fabric = hand_built(case)
    expected = (FIXTURES / f"agent-config-{case}.json").read_text()
    assert fabric.agent_config().to_json() == expected
    assert AgentConfig.from_json(expected).ports == [p.agent_entry() for p in fabric.ports]


def test_a_port_writes_its_own_agent_entry():
    fabric = hand_built("leafspine-l3")
    port = fabric.port("l1", "s1")
    lossless = port.leaves[0]
    assert port.agent_entry() == PortConfig(
        port_id="l1:l1-eth3", node="l1", role="leaf", netns="kvf-l1", ifname="l1-eth3",
        ifindex=port.ifindex, mac=port.mac, peer="s1", rate_bps=40_000_000, mtu=1500,
        classes=[ClassConfig(
            name="lossless", index=0, priority=3, lossless=True, pausable=True,
            classid=0x10010, leaf=0x200000, limit_bytes=lossless.cls.buffer_bytes,
            xoff_bytes=lossless.cls.pfc.xoff_bytes, xon_bytes=lossless.cls.pfc.xon_bytes),
            *port.agent_entry().classes[1:]])
    assert [c.name for c in port.agent_entry().classes] == ["lossless", "cnp", "lossy"]
    bare = Port("h1", "h1-eth0", "kvf-h1", "l1", 10_000_000, "host", 1500)
    assert bare.agent_entry().classes == [] and bare.marker is None


class FakeRoute:
    """A RouteSocket whose qdisc dump holds made-up counters for the ports' classes (the
    last class of each port has none, and is left out)."""

    def __init__(self, fabric, netns):
        self.fabric, self.netns = fabric, netns

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def dump_qdiscs(self):
        rows = []
        for p in self.fabric.ports:
            if p.netns != self.netns:
                continue
            for leaf in p.leaves[:-1]:
                k = p.ifindex * 100 + leaf.index
                rows.append(SimpleNamespace(ifindex=p.ifindex, handle=leaf.leaf, bytes=k * 1000,
                                            packets=k, drops=k % 7, backlog_bytes=k % 13 * 100))
        return rows


class FakeMarker:
    def __init__(self, port):
        self.port, self.released = port, False

    def read_counters(self):
        return {leaf.cls.name: SimpleNamespace(
            packets=self.port.ifindex + leaf.index, ect_packets=leaf.index,
            marks=self.port.ifindex % 3, ce_in=1) for leaf in self.port.leaves}

    def release(self):
        self.released = True


@pytest.fixture
def readings():
    return json.loads((FIXTURES / "readings.json").read_text())


def test_queue_stats_rows_are_unchanged(monkeypatch, readings):
    fabric = hand_built("leafspine-l3")
    monkeypatch.setattr(topologies.queues.tc_netlink, "RouteSocket",
                        lambda netns: FakeRoute(fabric, netns))
    p0, p3 = fabric.ports[0], fabric.ports[3]
    assert fabric.queue_stats() == readings["queue_stats"]
    assert fabric.queue_stats([p3, p0]) == readings["queue_stats_two"]
    assert p3.queue_stats() == [r for r in readings["queue_stats"]
                                if (r["node"], r["ifname"]) == (p3.node, p3.ifname)]


def test_marker_counters_come_from_each_ports_own_marker(readings):
    fabric = hand_built("leafspine-l3")
    for port in fabric.ports:
        port.marker = FakeMarker(port)

    def plain(rows):
        return [{**r, "counters": vars(r["counters"])} for r in rows]
    p0, p3 = fabric.ports[0], fabric.ports[3]
    assert plain(fabric.marker_counters()) == readings["marker_counters"]
    assert plain(fabric.marker_counters([p3, p0])) == readings["marker_counters_two"]
    assert plain(p3.marker_counters()) == [r for r in readings["marker_counters"]
                                           if r["ifname"] == p3.ifname]
    # A port without a marker reads nothing, and takes nothing from its neighbours.
    p3.marker = None
    assert p3.marker_counters() == []
    assert {r["ifname"] for r in fabric.marker_counters()} == \
        {p.ifname for p in fabric.ports} - {p3.ifname}


def test_port_stats_rows_are_unchanged(monkeypatch, readings):
    @contextlib.contextmanager
    def namespace(netns):
        yield SimpleNamespace(netns=netns)
    monkeypatch.setattr(netlink, "namespace", namespace)
    monkeypatch.setattr(netlink, "interface_counters", lambda handle, ifname: {
        "rx_bytes": len(ifname), "tx_bytes": 2, "netns": handle.netns})
    monkeypatch.setattr(topologies.port, "egress_stats", lambda handle, ifname, classes=False: {
        "sent_bytes": 5, "classes": classes, "backlog_bytes": 3})
    fabric = hand_built("leafspine-l3")
    p0, p3 = fabric.ports[0], fabric.ports[3]
    assert fabric.port_stats() == readings["port_stats"]
    assert fabric.port_stats([p3, p0]) == readings["port_stats_two"]
    assert p3.stats() == readings["port_stats_two"][0]


def test_attach_marker_keeps_the_handle_on_the_port(monkeypatch):
    """The handle is the port's before it is configured (so a failure is still released),
    configured with the port's classes, rate and MTU."""
    import topologies.queues.ebpf_marker as ebpf_marker

    configured = {}

    class Handle:
        def configure(self, queues, **kwargs):
            configured.update(queues=queues, **kwargs)
            raise RuntimeError("map update failed")
    monkeypatch.setattr(ebpf_marker, "attach_marker", lambda ifname, netns: Handle())
    port = hand_built("leafspine-l3").port("l1", "h1")
    with pytest.raises(RuntimeError, match="map update"):
        port.attach_marker(timeline=True, ecn=False)
    assert isinstance(port.marker, Handle)
    assert configured["queues"] is port.queues
    assert configured["skb_priority"] == {"lossless": 0x10010, "cnp": 0x10011, "lossy": 0x10012}
    assert (configured["timeline"], configured["ecn"]) == (True, False)


def test_teardown_releases_every_ports_marker(monkeypatch):
    monkeypatch.setattr(fabriccore.processes, "kill_processes_in_namespaces", lambda n: [])
    monkeypatch.setattr(netlink, "delete_root_interfaces", lambda names: None)
    fabric = hand_built("leafspine-l3")
    markers = [FakeMarker(p) for p in fabric.ports]
    for port, marker in zip(fabric.ports, markers):
        port.marker = marker
    fabric.ports[1].marker.release = lambda: 1 / 0  # one failing release stops no other
    fabric.teardown()
    assert fabric.ports == []
    assert [m.released for m in markers] == [True] + [False] + [True] * (len(markers) - 2)
    assert not hasattr(fabric, "markers")


def test_ports_are_one_object_each():
    fabric = hand_built("star-l3")
    port = fabric.port("l1", "h2")
    twin = Port(**{k: getattr(port, k) for k in port.__dataclass_fields__})
    assert port in fabric.ports and twin not in fabric.ports
    assert {port: 1}[port] == 1


#: Where the tree is read for the check below.
SOURCE_DIRS = ("kvfabric", "topologies", "controllers", "traffic", "fabriccore", "wire",
               "serving", "experiments", "bench", "examples", "scripts", "tests")


def _ends_in_fabric(node: ast.AST) -> bool:
    """`fabric`, `self.fabric`, `ctx.fabric`, `self._fabric`, `net.fabric`..."""
    name = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", "")
    return name.lstrip("_").endswith("fabric")


def per_port_state_beside_ports(tree: ast.AST, fabric_module: bool = False) -> list[str]:
    """Lines that look a port up by its position in a ports list, read marker data (not a
    method) off a fabric, give the fabric itself a marker attribute (`fabric_module`), or
    probe the fabric for its queue settings with getattr."""
    called = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            if node.attr == "index" and getattr(node.value, "attr", "") == "ports":
                found.append(f"{node.lineno}: ports.index")
            elif "marker" in node.attr and id(node) not in called \
                    and _ends_in_fabric(node.value):
                found.append(f"{node.lineno}: a fabric's .{node.attr}")
        elif isinstance(node, (ast.Assign, ast.AnnAssign)) and fabric_module:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            found += [f"{t.lineno}: self.{t.attr}" for t in targets
                      if isinstance(t, ast.Attribute) and getattr(t.value, "id", "") == "self"
                      and "marker" in t.attr]
        elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "getattr" \
                and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant) \
                and node.args[1].value == "queue_settings":
            found.append(f"{node.lineno}: getattr(..., 'queue_settings')")
    return found


def test_no_per_port_state_is_kept_beside_the_ports():
    """A port's state lives on its Port: nothing looks a port up by its position in
    fabric.ports, keeps markers on the fabric beside the ports, or asks the fabric whether
    it has classes by probing for an attribute (it says so: Fabric.has_classes)."""
    offences = []
    for directory in SOURCE_DIRS:
        for path in sorted((ROOT / directory).rglob("*.py")):
            where = path.relative_to(ROOT)
            tree = ast.parse(path.read_text(), filename=str(path))
            offences += [f"{where}:{line}" for line in per_port_state_beside_ports(
                tree, fabric_module=where == Path("topologies/fabric.py"))]
    assert offences == []


def test_the_check_above_sees_a_parallel_marker_list():
    source = "\n".join([
        "marker = fabric.markers[fabric.ports.index(port)]",
        "for port, m in zip(self.ports, ctx.fabric.markers): pass",
        "getattr(fabric, 'queue_settings', None)",
        "rows = fabric.marker_counters()",  # a method of the fabric: fine
        "self._phase('markers', self._attach_markers)",
    ])
    assert sorted(per_port_state_beside_ports(ast.parse(source))) == [
        "1: a fabric's .markers", "1: ports.index", "2: a fabric's .markers",
        "3: getattr(..., 'queue_settings')"]
    assert per_port_state_beside_ports(ast.parse("self.markers: list = []"), True) == \
        ["1: self.markers"]
    assert per_port_state_beside_ports(ast.parse("self.markers = []")) == []


@pytest.mark.parametrize("queues, classes", [
    (QueueSettings(), True), (QueueSettings(pfc=False, ecn=False), True),
    (QueueSettings(enabled=False), False), (None, False)])
def test_the_fabric_says_whether_it_has_classes(queues, classes):
    fabric = Fabric(LeafSpine(spines=1, leaves=1, hosts_per_leaf=2), "l3", queues=queues)
    assert fabric.has_classes is classes
    assert (fabric.queue_settings is not None) is classes


class FakeHandle:
    """A netlink socket in one namespace with interfaces by name, recording what was set."""

    def __init__(self, names):
        self.names, self.calls = dict(names), []

    def link_lookup(self, ifname):
        return [self.names[ifname]] if ifname in self.names else []

    def link(self, command, index, **attrs):
        self.calls.append((command, index, attrs))
        if "ifname" in attrs:
            self.names = {attrs["ifname"] if i == index else n: i for n, i in self.names.items()}

    def get_links(self, index):
        return [SimpleNamespace(get_attr=lambda name: f"02:00:00:00:00:{index:02x}")]


@pytest.mark.parametrize("mode, node, peer", [("l3", "l1", "s1"), ("openflow", "l1", "s1"),
                                              ("openflow", "h1", "l1")])
def test_set_up_addresses_the_interface_and_makes_its_port(monkeypatch, mode, node, peer):
    monkeypatch.setattr(netlink, "configure_interface", lambda handle, index, **kw:
                        handle.calls.append(("configure", index, kw)))
    fabric = Fabric(LeafSpine(spines=1, leaves=1, hosts_per_leaf=2), mode)
    plan = next(p for p in fabric.plans if {p.a.node, p.b.node} == {node, peer})
    end = plan.a if plan.a.node == node else plan.b
    netns = fabric.netns(node) if fabric._has_netns(node) else None
    ifname = fabric._ifname(end)
    assert ifname == (end.ifname if netns else f"kvf-{end.ifname}")
    handle = FakeHandle({ifname: 7})
    port = Port.set_up(handle, ifname, end, plan, netns, fabric.topo.role(node))
    assert (port.node, port.peer_node, port.netns, port.ifindex) == (node, peer, netns, 7)
    assert port.ifname == ifname
    assert (port.rate_bps, port.mtu, port.role) == (plan.rate_bps, plan.mtu,
                                                    fabric.topo.role(node))
    # In a namespace the MAC is the plan's (set when the veth was made), an OVS port's read.
    assert port.mac == (end.mac if netns else "02:00:00:00:00:07")
    assert port.queues is None and port.marker is None
    assert [c for c in handle.calls if c[0] == "set"] == []  # created named: no rename
    (configure,) = [c for c in handle.calls if c[0] == "configure"]
    assert configure == ("configure", 7, {"address": end.address})
