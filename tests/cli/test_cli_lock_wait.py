"""The lock wait, from $KVFABRIC_LOCK_WAIT_S or `sweep --lock-wait`, must be a finite number
of seconds >= 0; anything else is a usage error (exit 2) before anything is built."""

from __future__ import annotations

import pytest
from kvfabric_command import fabric_busy, kvfabric, usage_error

SWEEP = ("sweep", "tcp_incast", "--param", "workload.senders=1,2")


@pytest.mark.parametrize("value", ["abc", "-5", "nan", "inf", ""])
def test_bad_env_wait_is_a_usage_error_for_run(value, tmp_path):
    with fabric_busy(tmp_path) as env:  # should the check go, nothing is built either
        err = usage_error(kvfabric("run", "tcp_incast", "--results", tmp_path / "r",
                                   env={**env, "KVFABRIC_LOCK_WAIT_S": value}))
    assert f"KVFABRIC_LOCK_WAIT_S: {value!r} is not a number of seconds >= 0" in err
    assert "fix: give e.g. KVFABRIC_LOCK_WAIT_S=600" in err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("command", [SWEEP, ("smoke", "--only", "core/fabric-l3"),
                                     ("clean",)], ids=lambda c: c[0])
def test_bad_env_wait_is_a_usage_error_for_every_locking_command(command, tmp_path):
    work = tmp_path / "cwd"
    work.mkdir()
    with fabric_busy(tmp_path) as env:  # should the check go, nothing is built or cleaned
        err = usage_error(kvfabric(*command, env={**env, "KVFABRIC_LOCK_WAIT_S": "abc"},
                                   cwd=work))
    assert "KVFABRIC_LOCK_WAIT_S: 'abc' is not a number of seconds >= 0" in err
    assert not list(work.iterdir())  # no sweep folder, no smoke run folder


@pytest.mark.parametrize("value", ["-5", "nan", "inf", "soon"])
def test_sweep_lock_wait_option_must_be_seconds(value, tmp_path):
    err = usage_error(kvfabric(*SWEEP, "--lock-wait", value, "--dry-run"))
    assert "--lock-wait" in err and "seconds >= 0" in err and "--lock-wait 600" in err
