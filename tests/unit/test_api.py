"""The Python API's pure parts: cheap import, specs from dicts and Topos, host names in
commands, PFC counted from the queue agent's event log."""

from __future__ import annotations

import subprocess
import sys

import pytest

import kvfabric
from kvfabric.nodes import resolve_hosts
from kvfabric.spec import spec_for_topology, spec_from_dict
from topologies.queues.pfc_events import count_events


def test_import_kvfabric_loads_neither_the_fabric_nor_numpy():
    """The CLI imports the package on every start: its exports are lazy."""
    code = ("import sys, kvfabric; "
            "print(sorted(m for m in ('topologies', 'numpy', 'kvfabric.network') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_exports_resolve_and_unknown_names_raise():
    assert kvfabric.Network.__module__ == "kvfabric.network"
    assert kvfabric.LeafSpine.__name__ == "LeafSpine"
    with pytest.raises(AttributeError):
        kvfabric.NoSuchThing  # noqa: B018


def test_spec_from_dict_validates_and_names_the_field():
    spec = spec_from_dict({"fabric": {"topology": "star", "hosts": 3},
                           "workload": {"kind": "tcp_incast", "senders": 2}},
                          {"workload.rounds": 2}, name="mine")
    assert (spec.name, spec.workload["rounds"], spec.make_topology().host_names()) == (
        "mine", 2, ["h1", "h2", "h3"])
    with pytest.raises(kvfabric.SpecError) as err:
        spec_from_dict({"fabric": {"spines": 0}, "workload": {"kind": "tcp_incast"}})
    assert "fabric.spines" in str(err.value)


def test_spec_for_a_topology_takes_its_rates_and_has_no_workload():
    spec = spec_for_topology(kvfabric.Star(hosts=2, host_rate_bps=50_000_000), "l3")
    assert spec.fabric["host_rate"] == 50_000_000 and spec.scale.dilation == 1
    assert spec.workload == {} and spec.queue_settings() is None


def test_host_names_become_addresses_other_words_stay():
    ips = {"h1": "10.1.1.2", "h2": "10.1.2.2"}
    assert resolve_hosts(["ping", "-c1", "h2", "h22"], ips) == ["ping", "-c1", "10.1.2.2",
                                                               "h22"]


def test_pfc_counted_from_events_with_paused_state(tmp_path):
    log = tmp_path / "pfc_events.csv"
    log.write_text("t_s,node,port,peer,priority,event\n"
                   "0.1,l1,l1-eth1,h1,3,pause_sent\n"
                   "0.1,h2,h2-eth1,l1,3,pause_received\n"
                   "0.2,h2,h2-eth1,l1,3,pause_received\n"
                   "0.3,h2,h2-eth1,l1,3,pause_expired\n"
                   "0.4,h3,h3-eth1,l1,3,pause_received\n"
                   "0.5,h3,h3-eth1,l1,3,res")  # a line the agent is still writing
    rows = {r["node"]: r for r in count_events(log)}
    assert rows["l1"]["pause_sent"] == 1 and not rows["l1"]["paused"]
    assert rows["h2"]["pause_received"] == 2 and rows["h2"]["pause_expired"] == 1
    assert not rows["h2"]["paused"]
    assert rows["h3"]["paused"]
    assert [r["node"] for r in count_events(log, {("h3", "h3-eth1")})] == ["h3"]
    assert count_events(tmp_path / "missing.csv") == []
