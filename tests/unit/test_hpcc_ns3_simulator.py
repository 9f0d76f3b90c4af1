"""Locating HPCC's ns-3 build (--ns3 or $KVFABRIC_NS3) and `kvfabric doctor`'s line on it."""

from __future__ import annotations

from test_capabilities import NO_RED_HOST, make_report

from kvfabric import doctor
from kvfabric.engines.hpcc_ns3 import simulator


def _fake_build(tmp_path):
    binary = tmp_path / "simulation" / "build" / "scratch" / "third"
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\nexit 0\n")
    binary.chmod(0o755)
    (tmp_path / "simulation" / "VERSION").write_text("3.17\n")
    return binary


def test_a_built_simulation_folder_or_its_binary_is_found(tmp_path, monkeypatch):
    monkeypatch.delenv(simulator.ENV_VAR, raising=False)
    binary = _fake_build(tmp_path)
    for given in (tmp_path / "simulation", binary):
        sim, _ = simulator.locate(str(given))
        assert sim is not None and sim.binary == binary.resolve()
        assert sim.root == (tmp_path / "simulation").resolve()
        assert sim.version()["ns3_version"] == "3.17"


def test_an_unbuilt_folder_or_nothing_says_why(tmp_path, monkeypatch):
    monkeypatch.delenv(simulator.ENV_VAR, raising=False)
    sim, why = simulator.locate(str(tmp_path))
    assert sim is None and "no built simulator" in why
    sim, why = simulator.locate(None)
    assert sim is None and simulator.ENV_VAR in why


def test_the_simulator_runs_in_the_inputs_folder(tmp_path):
    binary = _fake_build(tmp_path)
    binary.write_text("#!/bin/sh\n[ -f config.txt ] && echo ran > out.txt\n")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.txt").write_text("")
    ran = simulator.run(simulator.locate(str(binary))[0], tmp_path / "run")
    assert ran.returncode == 0 and (tmp_path / "run" / "out.txt").read_text() == "ran\n"


def test_doctor_reports_the_simulator(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("KVFABRIC_TRACE_READER", raising=False)
    monkeypatch.setenv(simulator.ENV_VAR, str(_fake_build(tmp_path)))
    assert doctor.main([], probe=lambda: make_report(NO_RED_HOST)) == 0
    out = capsys.readouterr().out
    assert "simulator (kvfabric sim --engine hpcc-ns3): found" in out
    assert "trace_reader (kvfabric sim --trace): not found" in out  # none beside the fake
    reader = tmp_path / "analysis" / "trace_reader"
    reader.parent.mkdir()
    reader.write_text("#!/bin/sh\n")
    reader.chmod(0o755)
    doctor.main([], probe=lambda: make_report(NO_RED_HOST))
    assert f"trace_reader (kvfabric sim --trace): found: {reader}" in capsys.readouterr().out
    monkeypatch.setenv(simulator.ENV_VAR, str(tmp_path / "nowhere"))
    doctor.main([], probe=lambda: make_report(NO_RED_HOST))
    assert "hpcc-ns3): not found" in capsys.readouterr().out
