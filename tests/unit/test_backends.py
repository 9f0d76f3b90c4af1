"""Backends are chosen once, by the capability probe: the fabric follows the decision it is
handed (probing nothing), the doctor prints that same decision, and a fabric handed none runs
the same probe itself, once."""

from __future__ import annotations

import io
import json

import pytest
from test_capabilities import NO_RED_HOST, make_report

import fabriccore.capabilities
from fabriccore.backends import Backends
from kvfabric import doctor, runner
from kvfabric.progress import Progress
from kvfabric.spec import load_spec
from topologies.fabric import Fabric
from topologies.leafspine import LeafSpine
from topologies.queues.settings import QueueSettings

SMALL = {"spines": 1, "leaves": 1, "hosts_per_leaf": 2}
CLASSES = QueueSettings()  # traffic classes with ECN and PFC


@pytest.fixture
def no_probe(monkeypatch):
    """Any capability probe from here on fails the test."""
    def probe():
        pytest.fail("the fabric probed the host although it was handed the backends")
    monkeypatch.setattr(fabriccore.capabilities, "probe_host", probe)


@pytest.fixture
def counted_probe(monkeypatch):
    """The capability probe answers with a fabricated host without red or the OVS kernel
    datapath; calls[0] counts the probes."""
    calls = [0]

    def probe():
        calls[0] += 1
        return make_report(NO_RED_HOST)
    monkeypatch.setattr(fabriccore.capabilities, "probe_host", probe)
    return calls


def _fabric(mode: str = "openflow", queues: QueueSettings | None = CLASSES,
            **kwargs) -> Fabric:
    return Fabric(LeafSpine(**SMALL), mode, queues=queues, **kwargs)


@pytest.mark.parametrize("backends, ecn, datapath", [
    (Backends("red", "system", "netem", "prio"), "red", "system"),
    (Backends("ebpf", "user", "none", "htb"), "ebpf", "netdev"),
    (Backends("red", "user", "none", "htb"), "red", "netdev"),
    (Backends("ebpf", "system", "netem", "prio"), "ebpf", "system"),
])
def test_fabric_uses_exactly_the_backends_handed_to_it(no_probe, backends, ecn, datapath):
    fabric = _fabric(backends=backends)
    fabric._settle_backends()
    assert (fabric.ecn_backend, fabric.ovs_datapath) == (ecn, datapath)
    assert fabric.backends is backends


def test_build_settles_the_backends_before_it_creates_anything(no_probe, monkeypatch):
    fabric = _fabric(backends=Backends("ebpf", "user", "none", "htb"))
    seen = {}

    def first_step():
        seen.update(ecn=fabric.ecn_backend, datapath=fabric.ovs_datapath)
        raise RuntimeError("stop here")
    monkeypatch.setattr(fabric, "_create_namespaces", first_step)
    monkeypatch.setattr(fabric, "teardown", lambda: None)
    with pytest.raises(RuntimeError, match="stop here"):
        fabric.build()
    assert seen == {"ecn": "ebpf", "datapath": "netdev"}


def test_explicit_settings_win_over_the_backends(no_probe):
    fabric = _fabric(ecn_backend="red", ovs_datapath="system",
                     backends=Backends("ebpf", "user", "none", "htb"))
    fabric._settle_backends()
    assert (fabric.ecn_backend, fabric.ovs_datapath) == ("red", "system")


def test_nothing_to_settle_means_no_probe(no_probe):
    """An l3 fabric with one FIFO per port has no backend to choose."""
    fabric = _fabric("l3", queues=None)
    fabric._settle_backends()
    assert fabric.backends is None


def test_a_fabric_handed_no_backends_probes_once(counted_probe):
    fabric = _fabric()
    fabric._settle_backends()
    fabric._settle_backends()
    assert counted_probe[0] == 1
    assert fabric.backends == make_report(NO_RED_HOST).backends
    assert (fabric.ecn_backend, fabric.ovs_datapath) == ("ebpf", "netdev")


def test_no_ecn_backend_fails_before_building_when_ecn_is_on(no_probe):
    fabric = _fabric(backends=Backends("none", "user", "none", "htb"))
    with pytest.raises(RuntimeError, match="neither"):
        fabric._settle_backends()
    without_ecn = _fabric(queues=QueueSettings(ecn=False),
                          backends=Backends("none", "user", "none", "htb"))
    without_ecn._settle_backends()
    assert without_ecn.ecn_backend == "none"


def test_the_doctor_and_the_fabric_read_the_same_decision(monkeypatch, tmp_path, capsys):
    """The runner probes once: env.json records the report, the fabric gets its backends,
    and the doctor shows the same backends for the same report."""
    report = make_report(NO_RED_HOST)
    probes = []
    monkeypatch.setattr(runner, "probe_host", lambda: probes.append(1) or report)
    monkeypatch.setattr(fabriccore.capabilities, "probe_host",
                        lambda: pytest.fail("a second probe"))
    spec = load_spec("ecn_threshold", {"fabric.mode": "openflow"})
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    fabric = runner.make_fabric(spec, spec.make_topology(), run_dir)
    assert fabric.has_classes and fabric.ecn_backend == "auto"
    built = {}

    def build():  # the real build would need root; settling is its first step
        fabric._settle_backends()
        built.update(ecn=fabric.ecn_backend, datapath=fabric.ovs_datapath)
        return fabric.build_timings
    monkeypatch.setattr(fabric, "build", build)
    ctx = runner.RunContext(spec, fabric, run_dir, Progress(io.StringIO()))
    runner.bring_up(ctx, {})

    assert probes == [1]
    assert fabric.backends is report.backends
    assert built == {"ecn": "ebpf", "datapath": "netdev"}
    env = json.loads((run_dir / "env.json").read_text())
    recorded = env["capabilities"]["backends"]
    assert recorded == fabric.backends.to_dict()
    assert env["queues"]["ecn_backend"] == recorded["ecn_marking"] == fabric.ecn_backend

    assert doctor.main(["--json"], probe=lambda: report) == 0
    assert json.loads(capsys.readouterr().out)["backends"] == recorded
    table = doctor.render_table(report)
    assert "backends: " + "  ".join(f"{k}={v}" for k, v in recorded.items()) in table


def test_backends_round_trip_and_reject_unknown_names():
    backends = make_report(NO_RED_HOST).backends
    assert Backends.from_dict(json.loads(json.dumps(backends.to_dict()))) == backends
    with pytest.raises(ValueError, match="ecn_marking"):
        Backends("magic", "user", "none", "htb")
    with pytest.raises(ValueError, match="ovs_datapath"):
        Backends("red", "kernel", "none", "htb")
