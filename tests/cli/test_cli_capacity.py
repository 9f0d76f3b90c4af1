"""A fabric larger than this host can bring up in reasonable time and memory is refused at
validation (exit 2, nothing built) with the estimate and the fix; --force accepts it."""

from __future__ import annotations

import re

import pytest
from kvfabric_command import TRACEBACK, fabric_busy, kvfabric, usage_error

HUGE = ("--set", "fabric.spines=16", "--set", "fabric.leaves=64",
        "--set", "fabric.hosts_per_leaf=64")  # 4,176 namespaces


def test_run_refuses_a_fabric_too_large_for_this_host(tmp_path):
    err = usage_error(kvfabric("run", "tcp_incast", *HUGE, "--results", tmp_path / "r"))
    assert "fabric: too large for this host: 4176 nodes would take about" in err
    assert re.search(r"about \d+ s to bring up and [\d.]+ GiB of memory", err), err
    assert "fabric.hosts_per_leaf" in err and "simulation" in err and "--force" in err
    assert not (tmp_path / "r").exists()


def test_sweep_dry_run_refuses_it_and_accepts_it_with_force():
    sweep = ("sweep", "tcp_incast", "--param", "workload.senders=1,2", *HUGE, "--dry-run")
    assert "too large for this host" in usage_error(kvfabric(*sweep))
    proc = kvfabric(*sweep, "--force")
    assert proc.returncode == 0, proc.stderr
    assert "2 runs (2 points x 1), every point valid" in proc.stdout


@pytest.mark.root
def test_run_force_passes_validation(tmp_path):
    """With --force the run gets as far as the fabric lock, held here, so nothing is built."""
    with fabric_busy(tmp_path) as env:
        proc = kvfabric("run", "tcp_incast", *HUGE, "--force", "--results", tmp_path / "r",
                        env=env)
    assert TRACEBACK not in proc.stderr
    assert proc.returncode == 3 and "another kvfabric fabric is running" in proc.stderr
