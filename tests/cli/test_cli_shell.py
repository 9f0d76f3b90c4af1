"""`kvfabric shell` refuses bad input as `run` does: exit 2 naming the field, before anything
is built (these need no root: validation comes first)."""

from __future__ import annotations

from kvfabric_command import kvfabric, usage_error


def test_bad_spec_field_is_named_and_nothing_is_built(tmp_path):
    err = usage_error(kvfabric("shell", "tcp_incast", "--set", "fabric.spines=0",
                               "--results", str(tmp_path)))
    assert "fabric.spines" in err
    assert not any(tmp_path.iterdir())


def test_unknown_experiment_is_refused():
    err = usage_error(kvfabric("shell", "no_such_experiment"))
    assert "SPEC" in err and "no shipped experiment" in err


def test_capture_of_a_link_that_does_not_exist_is_refused(tmp_path):
    err = usage_error(kvfabric("shell", "tcp_incast", "--capture", "h1-h2",
                               "--results", str(tmp_path)))
    assert "--capture" in err


def test_bad_lock_wait_is_a_usage_error():
    err = usage_error(kvfabric("shell", "tcp_incast", env={"KVFABRIC_LOCK_WAIT_S": "soon"}))
    assert "KVFABRIC_LOCK_WAIT_S" in err
