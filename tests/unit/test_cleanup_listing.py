"""`kvfabric clean` when something cannot be listed: it says what, and exits 1, instead of
reporting that nothing was left. Every lister and remover is replaced here, so nothing on
the host is listed or removed (this runs in-process: a real `kvfabric clean` would remove
the fabrics of other jobs on this machine that hold no lock at that moment)."""

from __future__ import annotations

import pytest

from fabriccore.commands import CommandError
from kvfabric import cleanup, cli


@pytest.fixture
def no_host(monkeypatch, tmp_path):
    """Listers that find nothing; removers that must not be called with anything."""
    from topologies import netlink, openflow
    from topologies.queues import agent_registry

    monkeypatch.setenv("KVFABRIC_LOCK_PATH", str(tmp_path / "fabric.lock"))
    monkeypatch.setattr(cli.os, "geteuid", lambda: 0)
    for name in ("our_namespaces", "our_agents", "our_root_interfaces", "bpf_pins",
                 "ovs_send_buffer_raised"):
        monkeypatch.setattr(cleanup, name, lambda: [])
    monkeypatch.setattr(cleanup, "BPF_PIN_DIR", tmp_path / "no-pins")
    monkeypatch.setattr(cleanup.shutil, "which", lambda tool: f"/usr/bin/{tool}")
    removed = []

    def remover(name):
        return lambda items=(), *_a, **_k: removed.extend(items)
    monkeypatch.setattr(agent_registry, "stop_agents", remover("agents"))
    monkeypatch.setattr(openflow, "delete_bridges", remover("bridges"))
    monkeypatch.setattr(openflow, "delete_qos_rows", remover("qos"))
    monkeypatch.setattr(netlink, "delete_root_interfaces", remover("interfaces"))
    return removed


def _ovs_fails(monkeypatch, stderr: str) -> None:
    from topologies import openflow

    def fail():
        raise CommandError(["ovs-vsctl", "list-br"], 1, stderr)
    monkeypatch.setattr(openflow, "list_bridges", fail)
    monkeypatch.setattr(openflow, "our_qos_rows", lambda: [])


def test_clean_reports_what_it_could_not_list_and_exits_1(no_host, monkeypatch, capsys):
    _ovs_fails(monkeypatch, "ovs-vsctl: permission denied")
    assert cli.main(["clean"]) == 1
    out, err = capsys.readouterr()
    assert "could not list bridges" in err and "permission denied" in err
    assert "nothing of kvfabric's was left" not in out
    assert no_host == []


def test_ovs_not_running_is_a_note_not_a_failure(no_host, monkeypatch, capsys):
    _ovs_fails(monkeypatch, "ovs-vsctl: unix:/var/run/openvswitch/db.sock: database "
               "connection failed (No such file or directory)")
    assert cli.main(["clean"]) == 0
    out, _ = capsys.readouterr()
    assert "note: OVS bridges: not listed, Open vSwitch is not running" in out


def test_ovs_not_installed_is_a_note(no_host, monkeypatch, capsys):
    from topologies import openflow

    monkeypatch.setattr(cleanup.shutil, "which", lambda tool: None)
    monkeypatch.setattr(openflow, "list_bridges", lambda: pytest.fail("ran ovs-vsctl"))
    assert cli.main(["clean"]) == 0
    out, _ = capsys.readouterr()
    assert "ovs-vsctl is not installed" in out and "nothing of kvfabric's was left" in out


def test_leftovers_raises_with_what_it_could_list(no_host, monkeypatch):
    monkeypatch.setattr(cleanup, "our_root_interfaces", lambda: ["kvf-s1-eth1"])
    _ovs_fails(monkeypatch, "ovs-vsctl: timed out")
    with pytest.raises(cleanup.ListingError) as info:
        cleanup.leftovers()
    assert set(info.value.failures) == {"bridges"}
    assert info.value.found["interfaces"] == ["kvf-s1-eth1"]
