"""Bad specs through the installed `kvfabric` command: exit 2, the field or file named with
the fix, no traceback, nothing built or written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from kvfabric_command import kvfabric, usage_error

BAD_DIR = Path(__file__).resolve().parent.parent / "specs" / "bad"
GOOD = '[experiment]\nname = "ok"\n[workload]\nkind = "tcp_incast"\n'


@pytest.mark.parametrize(("spec", "field", "fix"), [
    ("rate_infinite", "fabric.target_rate", "such as '25G'"),
    ("rate_nan", "fabric.target_fabric_rate", "such as '100Mbit'"),
    ("float_nan", "queues.pmax", "such as 0.2"),
    ("size_overflows", "fabric.buffer", "such as '64KiB'"),
    ("int_too_large", "workload.senders", "an int such as 7"),
    ("experiment_not_a_table", "experiment", "[experiment]"),
])
def test_non_finite_numbers_and_non_tables_are_refused(spec, field, fix, tmp_path):
    err = usage_error(kvfabric("run", BAD_DIR / f"{spec}.toml", "--results", tmp_path / "r"))
    assert f"{field}:" in err and fix in err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(("override", "field"), [
    ("fabric.target_rate=inf", "fabric.target_rate"),
    ("fabric.target_fabric_rate=nan", "fabric.target_fabric_rate"),
    ("queues.pmax=nan", "queues.pmax"), ("fabric.mtu=1e999", "fabric.mtu"),
    ("workload.gap=1e999ms", "workload.gap"),
])
def test_non_finite_overrides_are_refused(override, field, tmp_path):
    err = usage_error(kvfabric("run", "tcp_incast", "--set", override,
                               "--results", tmp_path / "r"))
    assert f"{field}:" in err and "fix:" in err and ("finite" in err or "got inf" in err)


def test_fix_text_example_is_in_range(tmp_path):
    err = usage_error(kvfabric("run", "tcp_incast", "--set", "fabric.mtu=4",
                               "--results", tmp_path / "r"))
    assert "set mtu to an int such as 1500 (>= 576 and <= 9000)" in err


def test_override_into_a_section_that_is_not_a_table(tmp_path):
    spec = tmp_path / "five.toml"
    spec.write_text("fabric = 5\n" + GOOD)
    err = usage_error(kvfabric("run", spec, "--set", "fabric.mtu=1500"))
    assert "fabric: must be a table" in err and "[fabric]" in err


@pytest.mark.parametrize("content", [
    "[experiment]\nname = \"caf\xe9\"\n".encode("latin-1"), os.urandom(4096)],
    ids=["latin-1", "random-bytes"])
def test_spec_that_is_not_utf8(content, tmp_path):
    spec = tmp_path / "binary.toml"
    spec.write_bytes(content)
    err = usage_error(kvfabric("run", spec))
    assert f"{spec}: is not UTF-8" in err and "fix:" in err


def test_oversized_spec_is_refused_without_reading_it_all(tmp_path):
    spec = tmp_path / "huge.toml"
    with spec.open("w") as f:
        f.write(GOOD)
        f.write("# padding\n" * 5_000_000)  # 50 MB
    err = usage_error(kvfabric("run", spec, timeout_s=20))
    assert "larger than 1024 KiB" in err and "fix:" in err


def test_sweep_definition_that_is_not_a_table(tmp_path):
    spec = tmp_path / "sweep.toml"
    spec.write_text('sweep = "x"\n')
    err = usage_error(kvfabric("sweep", spec, "--dry-run"))
    assert "sweep: must be a table" in err
