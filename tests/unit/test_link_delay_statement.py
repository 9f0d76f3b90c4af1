"""What a run says about fabric.link_delay, which the emulated links do not add: facts and
approximations, and the target's propagation RTT beside roce_incast's measured path RTT."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from fabriccore.backends import Backends
from kvfabric.link_delay import link_delay_fact, state_link_delay, target_propagation_rtt
from kvfabric.spec import load_spec
from kvfabric.workloads.path_rtt import measure_path_rtt, path_rtt_note

ROOT = Path(__file__).resolve().parents[2]
FIDELITY = str(ROOT / "bench" / "fidelity_incast.toml")


# --- what a run says -----------------------------------------------------------------------

def _backends(delay: str) -> Backends:
    return Backends(ecn_marking="ebpf", ovs_datapath="none", delay=delay,
                    strict_priority="htb")


def test_every_run_states_the_target_delay_and_that_it_is_not_added():
    spec = load_spec(FIDELITY, {"fabric.link_delay": "2us", "fabric.dilation": 250})
    facts: dict = {}
    note = state_link_delay(spec, facts, _backends("none"))
    assert facts["link_delay"] == {"target_us": pytest.approx(2.0),
                                   "emulated_us": pytest.approx(500.0),
                                   "applied": False, "netem": False}
    assert "not emulated" in note and "2 us per link" in note and "500 us" in note
    assert "no netem" in note
    assert link_delay_fact(spec, "netem")["netem"] is True
    assert link_delay_fact(spec, None)["netem"] is None  # host never probed
    assert "not added" in state_link_delay(spec, {}, None)


def test_target_propagation_rtt_counts_the_links_of_the_path():
    leafspine = load_spec(FIDELITY, {"fabric.topology": "leafspine", "fabric.spines": 2,
                                     "fabric.leaves": 2, "fabric.hosts_per_leaf": 2,
                                     "workload.senders": 3})
    topo = leafspine.make_topology()
    same_leaf = target_propagation_rtt(topo, "h1", "h2", 1e-6)
    across = target_propagation_rtt(topo, "h1", "h3", 1e-6)
    assert (same_leaf["hops"], same_leaf["target_propagation_rtt_us"]) == (2, pytest.approx(4))
    assert (across["hops"], across["target_propagation_rtt_us"]) == (4, pytest.approx(8))


class _FakeFabric:
    """What measure_path_rtt uses of a Fabric: its Topo, host IPs and run()."""

    def __init__(self, topo, stdout: str):
        self.topo, self.stdout = topo, stdout
        self.host_ips = {h: f"10.0.0.{i}" for i, h in enumerate(topo.host_names(), 1)}

    def run(self, node, argv, timeout_s, check):
        return SimpleNamespace(stdout=self.stdout, returncode=0)


def test_path_rtt_puts_the_targets_propagation_rtt_beside_the_measured_one():
    spec = load_spec(FIDELITY, {"fabric.link_delay": "2us"})
    ping = ("rtt min/avg/max/mdev = 0.070/0.100/0.150/0.010 ms\n")
    rtt = measure_path_rtt(_FakeFabric(spec.make_topology(), ping), "h2", "h1", 250, 2e-6)
    assert rtt["rtt_avg_s"] == pytest.approx(100e-6)
    assert rtt["rtt_avg_target_us"] == pytest.approx(0.4)
    assert (rtt["hops"], rtt["target_link_delay_us"]) == (2, pytest.approx(2.0))
    assert rtt["target_propagation_rtt_us"] == pytest.approx(8.0)  # 2 links x 2 x 2 us
    note = path_rtt_note(rtt)
    assert "0.40 us of target time" in note and "8 us of propagation over its 2 links" in note
    failed = measure_path_rtt(_FakeFabric(spec.make_topology(), ""), "h2", "h1", 250, 2e-6)
    assert failed["error"] == "no ping summary"
    assert failed["target_propagation_rtt_us"] == pytest.approx(8.0)
