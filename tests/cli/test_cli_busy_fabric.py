"""While another fabric holds the lock, every command that builds one exits 3 and leaves
nothing behind. The lock is one the test holds itself (tests/kvfabric_command.fabric_busy),
so no fabric is ever built here."""

from __future__ import annotations

import pytest
from kvfabric_command import TRACEBACK, fabric_busy, kvfabric

pytestmark = pytest.mark.root  # the commands check for root before they take the lock


def _busy(proc) -> str:
    output = proc.stdout + proc.stderr
    assert TRACEBACK not in output, output
    assert proc.returncode == 3, f"exit {proc.returncode}\n{output}"
    return output


def test_run_while_busy_exits_3_and_writes_nothing(tmp_path):
    with fabric_busy(tmp_path) as env:
        out = _busy(kvfabric("run", "tcp_incast", "--results", tmp_path / "r", env=env))
    assert "another kvfabric fabric is running (pid" in out and "pytest" in out
    assert not list((tmp_path / "r").rglob("*"))  # the results root, with no run folder


def test_sweep_while_busy_exits_3_and_leaves_no_sweep_folder(tmp_path):
    results = tmp_path / "r"
    with fabric_busy(tmp_path) as env:
        out = _busy(kvfabric("sweep", "tcp_incast", "--param", "workload.senders=1,2",
                             "--lock-wait", "0", "--results", results, env=env))
    assert "another kvfabric fabric is running" in out and "nothing ran" in out
    assert not list(results.rglob("*")), list(results.rglob("*"))


def test_sweep_while_busy_queues_with_env_wait_then_exits_3(tmp_path):
    """$KVFABRIC_LOCK_WAIT_S (here 0) is the wait when --lock-wait is not given."""
    with fabric_busy(tmp_path) as env:
        _busy(kvfabric("sweep", "tcp_incast", "--param", "workload.senders=1,2",
                       "--results", tmp_path / "r", env=env))


def test_smoke_while_busy_exits_3_not_failed(tmp_path):
    with fabric_busy(tmp_path) as env:
        out = _busy(kvfabric("smoke", "--only", "core/fabric-l3", "--only",
                             "core/tcp-incast-run", "--junit", tmp_path / "smoke.xml",
                             env=env))
    assert "BUSY" in out and "FAILED" not in out and "0 failed" in out
    assert "NOT RUN" in out  # the first busy check stops the rest
    assert 'skipped="1"' in (tmp_path / "smoke.xml").read_text()


def test_clean_while_busy_exits_3(tmp_path):
    with fabric_busy(tmp_path) as env:
        out = _busy(kvfabric("clean", env=env))
    assert "another kvfabric fabric is running" in out


@pytest.mark.parametrize("command", [("run", "tcp_incast"),
                                     ("sweep", "tcp_incast", "--param", "workload.senders=1,2"),
                                     ("compare", "a", "b")], ids=lambda c: c[0])
def test_results_root_that_cannot_be_written_is_named(command, tmp_path):
    """Checked before the lock is taken (the lock is held here only so that nothing could
    be built should the check go)."""
    from fake_runs import fake_run

    fake_run(tmp_path, "a")
    fake_run(tmp_path, "b")
    args = [*command, "--results", "/proc/x"]
    if command[0] == "compare":  # reads from tmp_path, writes to /proc/x
        args = [*command, "--results", tmp_path, "--out", "/proc/x"]
    with fabric_busy(tmp_path) as env:
        proc = kvfabric(*args, env=env)
    assert TRACEBACK not in proc.stderr and proc.returncode == 2, proc.stderr
    named = "--out /proc/x:" if command[0] == "compare" else "--results /proc/x:"
    assert named in proc.stderr and "fix: give a folder you can write to" in proc.stderr
