"""Spec validation: every bad field is named with a fix, before anything is built."""

import subprocess
import sys

import pytest

from kvfabric.resolved_spec import to_toml
from kvfabric.schema import SpecError
from kvfabric.spec import load_spec, shipped_experiments
from kvfabric.spec_validate import validate


def _raw(**sections):
    raw = {"experiment": {"name": "t"}, "fabric": {},
           "workload": {"kind": "tcp_incast"}}
    for section, values in sections.items():
        raw[section].update(values)
    return raw


def _issues(raw):
    with pytest.raises(SpecError) as info:
        validate(raw)
    return {issue.field: issue for issue in info.value.issues}


def test_shipped_demo_resolves_to_canonical_units():
    spec = load_spec("tcp_incast")
    assert spec.fabric["host_rate"] == 100_000_000
    assert spec.fabric["buffer"] == 65536
    assert spec.workload["block_size"] == 256 * 1024
    assert spec.name == "tcp_incast"


def test_resolved_spec_round_trips_through_toml(tmp_path):
    spec = load_spec("tcp_incast")
    path = tmp_path / "again.toml"
    path.write_text(to_toml(spec))
    assert load_spec(str(path)).to_dict() == spec.to_dict()


def test_resolved_spec_names_derived_values_and_still_derives_them(tmp_path):
    """spec.toml gives the value each 0 ("derive") ran with, as a comment: reading it back
    yields the same spec (the 0s derive again) and the same derived values."""
    from kvfabric.derived import derived_values

    spec = load_spec("roce_incast")
    derived = derived_values(spec)
    # HPCC's ramp at 25 Gbit/s (docs/queues.md): Kmin 100 KB, Kmax 400 KB, XOFF 2 x Kmax.
    assert derived["queues.kmin"] == [100_000] and derived["queues.xoff"] == [800_000]
    assert "queues.pmax" not in derived  # not a derived field
    text = to_toml(spec, derived)
    assert "kmin = 0  # derived: ran with 100000\n" in text
    path = tmp_path / "again.toml"
    path.write_text(text)
    again = load_spec(str(path))
    assert again.to_dict() == spec.to_dict() and derived_values(again) == derived
    explicit = load_spec("roce_incast", {"queues.kmin": "50KB"})
    assert "queues.kmin" not in derived_values(explicit)


def test_every_shipped_experiment_validates():
    assert shipped_experiments()
    for name in shipped_experiments():
        load_spec(name)


@pytest.mark.parametrize("section,values,field,fix_mentions", [
    ("fabric", {"target_rate": "fast"}, "fabric.target_rate", "100Mbit"),
    ("fabric", {"mode": "sdn"}, "fabric.mode", "l3, openflow"),
    ("fabric", {"spines": 0}, "fabric.spines", ">= 1"),
    ("fabric", {"spine": 2}, "fabric.spine", "spines"),
    ("fabric", {"buffer": 100}, "fabric.buffer", "at least 1514"),
    ("workload", {"senders": 50}, "workload.senders", "at most 7"),
    ("workload", {"receiver": "h99"}, "workload.receiver", "h1..h8"),
    ("workload", {"rounds": "many"}, "workload.rounds", "whole number"),
])
def test_bad_field_is_named_with_its_fix(section, values, field, fix_mentions):
    issues = _issues(_raw(**{section: values}))
    assert field in issues
    assert fix_mentions in str(issues[field])


def test_unknown_workload_kind_lists_the_known_ones():
    issues = _issues(_raw(workload={"kind": "rdma_magic"}))
    assert "tcp_incast" in issues["workload.kind"].fix


def test_all_problems_reported_at_once():
    issues = _issues(_raw(fabric={"target_rate": "x", "mtu": 10}))
    assert {"fabric.target_rate", "fabric.mtu"} <= set(issues)


def test_cli_rejects_bad_spec_with_exit_2_and_builds_nothing(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[experiment]\nname = "bad"\n[fabric]\nkmin = 3\n'
                   '[workload]\nkind = "tcp_incast"\nsenders = 99\n')
    proc = subprocess.run([sys.executable, "-m", "kvfabric.cli", "run", str(bad),
                           "--results", str(tmp_path / "results")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "fabric.kmin" in proc.stderr and "unknown field" in proc.stderr
    assert not (tmp_path / "results").exists()


def test_a_spec_with_the_old_link_rates_is_told_the_new_fields():
    issues = _issues(_raw(fabric={"host_rate": "100Mbit"}))
    assert "fabric.target_rate" in issues["fabric.host_rate"].fix
    assert "fabric.dilation = 1" in issues["fabric.host_rate"].fix
