"""The fabric the live RoCE endpoint tests run on (tests/integration/roce_flows.py), checked
unbuilt: one switch whose port towards the receiver is the only slow one, the lossless class
there marked on the given ramp by the eBPF marker, without PFC, with the given buffer."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from topologies.port import Port
from topologies.queues.spec import EcnRamp
from wire.dscp import CNP, LOSSLESS, LOSSY

PATH = Path(__file__).resolve().parents[1] / "integration" / "roce_flows.py"


def _load_roce_flows():
    """The integration tier's helper, by path (tests/integration is not on the unit tier's
    path); registered under its own name, as the integration tests import it."""
    if "roce_flows" not in sys.modules:
        spec = importlib.util.spec_from_file_location("roce_flows", PATH)
        module = importlib.util.module_from_spec(spec)
        sys.modules["roce_flows"] = module
        spec.loader.exec_module(module)
    return sys.modules["roce_flows"]


roce_flows = _load_roce_flows()

RAMP = EcnRamp(15_000, 60_000, 0.2)


def _port(fabric, node: str, peer: str) -> Port:
    """node's end of the link to peer, made as the fabric's build makes it."""
    for plan in fabric.plans:
        for end in (plan.a, plan.b):
            if end.node == node and end.peer_node == peer:
                return Port(node, end.ifname, fabric.netns(node), peer, plan.rate_bps,
                            fabric.topo.role(node), plan.mtu)
    raise LookupError((node, peer))


def test_the_receivers_downlink_is_the_only_slow_port_and_marks_the_lossless_class():
    fabric = roce_flows.bottleneck_fabric(2, 20_000_000, 100e6, 150_000, RAMP)
    assert fabric.mode == "l3" and fabric.has_classes and fabric.ecn_backend == "ebpf"
    assert fabric.topo.receiver == "h3" and fabric.hosts() == ["h1", "h2", "h3"]
    assert len(set(fabric.host_ips.values())) == 3
    rates = {(p.a.node, p.b.node): p.rate_bps for p in fabric.plans}
    assert rates == {("h1", "l1"): 100_000_000, ("h2", "l1"): 100_000_000,
                     ("h3", "l1"): 20_000_000}
    port = _port(fabric, "l1", "h3")
    assert port.netns == "kvf-l1" and port.ifname == "l1-eth3"
    queues, leaves = fabric._plan_classes(port)
    lossless, lossy = queues[LOSSLESS], queues[LOSSY]
    assert lossless.ecn == RAMP and lossless.buffer_bytes == 150_000 and lossless.pfc is None
    assert lossy.ecn is None and lossy.buffer_bytes == 150_000
    assert queues[CNP].strict
    assert not any(leaf.pausable or leaf.red for leaf in leaves)  # bfifo under every class
    assert not fabric.queue_settings.telemetry


def test_the_senders_nics_do_not_mark():
    fabric = roce_flows.bottleneck_fabric(4, 40_000_000, 100e6, 150_000, RAMP)
    assert fabric.topo.receiver == "h5"
    for sender in ("h1", "h2", "h3", "h4"):
        queues, _ = fabric._plan_classes(_port(fabric, sender, "l1"))
        assert all(cls.ecn is None for cls in queues.classes)


def test_without_a_ramp_every_port_is_one_fifo_of_the_buffer():
    fabric = roce_flows.bottleneck_fabric(2, 20_000_000, 100e6, 150_000, None)
    assert not fabric.has_classes
    (downlink,) = [p for p in fabric.plans if "h3" in (p.a.node, p.b.node)]
    assert downlink.buffer_bytes == 150_000 and downlink.rate_bps == 20_000_000
