"""`kvfabric show` and `kvfabric compare` on run folders: finished ones are shown and
compared; a damaged summary.json, a run that did not finish and a bad --results are usage
errors (exit 2) that name the file or option and say what to do."""

from __future__ import annotations

import json

import pytest
from fake_runs import fake_run, unfinished_run
from kvfabric_command import kvfabric, usage_error

DAMAGED = {"truncated": '{"status": "ok", "experi', "empty": "", "empty-object": "{}",
           "garbage": "\x00\x01not json", "a-list": "[1, 2]",
           "fabric-not-object": json.dumps({"status": "ok", "experiment": "x", "fabric": 5}),
           "results-not-object": json.dumps({"status": "ok", "experiment": "x",
                                             "fabric": {}, "results": [1]})}


def test_show_prints_a_finished_run(tmp_path):
    run_dir = fake_run(tmp_path, "20260101-000000-aaaa")
    proc = kvfabric("show", "latest", "--results", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert str(run_dir) in proc.stdout and "status      ok" in proc.stdout
    assert "goodput_mean_bps" in proc.stdout and "bringup_s   0.50 s" in proc.stdout


def test_show_json_prints_the_summary(tmp_path):
    fake_run(tmp_path, "20260101-000000-aaaa")
    proc = kvfabric("show", "20260101-000000", "--json", "--results", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["results"]["rounds_completed"] == 3


@pytest.mark.parametrize(("content", "json_flag"), [
    *((content, []) for content in DAMAGED.values()),
    *((DAMAGED[name], ["--json"]) for name in ("empty-object", "truncated", "a-list"))],
    ids=[*DAMAGED, "json-empty-object", "json-truncated", "json-a-list"])
def test_show_damaged_summary_is_a_usage_error(content, json_flag, tmp_path):
    run_dir = fake_run(tmp_path, "20260101-000000-aaaa", summary={})
    (run_dir / "summary.json").write_text(content)
    proc = kvfabric("show", run_dir, *json_flag)
    err = usage_error(proc)
    assert f"{run_dir / 'summary.json'}:" in err and "fix: " in err
    assert proc.stdout == ""  # not even `{}`


def test_compare_damaged_summary_is_a_usage_error(tmp_path):
    fake_run(tmp_path, "20260101-000000-aaaa")
    bad = fake_run(tmp_path, "20260101-000000-bbbb", summary={})
    (bad / "summary.json").write_text('{"status": "ok"')
    err = usage_error(kvfabric("compare", "20260101-000000-aaaa", "20260101-000000-bbbb",
                               "--results", tmp_path))
    assert f"{bad / 'summary.json'}: is not readable JSON" in err
    assert not (tmp_path / "compare").exists()


def test_compare_puts_two_runs_side_by_side(tmp_path):
    fake_run(tmp_path, "20260101-000000-aaaa", senders=2)
    fake_run(tmp_path, "20260101-000000-bbbb", senders=4)
    out = tmp_path / "cmp"
    proc = kvfabric("compare", "20260101-000000-aaaa", "20260101-000000-bbbb",
                    "--results", tmp_path, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert "workload.senders" in (out / "compare.csv").read_text()
    assert "senders=2" in (out / "report.md").read_text()


def test_compare_needs_two_runs(tmp_path):
    fake_run(tmp_path, "20260101-000000-aaaa")
    err = usage_error(kvfabric("compare", "latest", "--results", tmp_path))
    assert "at least two runs" in err


@pytest.mark.parametrize("by", ["folder", "id"])
def test_unfinished_run_is_reported_as_such(by, tmp_path):
    run_dir = unfinished_run(tmp_path, "20260101-000000-cccc")
    ref = run_dir if by == "folder" else "20260101-000000-cccc"
    err = usage_error(kvfabric("show", ref, "--results", tmp_path))
    assert "the run did not finish" in err and "holds run.log, spec.toml" in err
    assert "no run" not in err and f"kvfabric run {run_dir / 'spec.toml'}" in err
    err = usage_error(kvfabric("compare", ref, ref, "--results", tmp_path))
    assert "the run did not finish" in err


@pytest.mark.parametrize("command", [("show", "latest"), ("compare", "a", "b")],
                         ids=lambda c: c[0])
def test_results_root_that_is_not_a_folder_is_named(command):
    err = usage_error(kvfabric(*command, "--results", "/proc/x"))
    assert "--results /proc/x:" in err and "not a folder" in err and "fix: " in err


def test_results_root_from_the_environment_is_named():
    err = usage_error(kvfabric("show", "latest", env={"KVFABRIC_RESULTS": "/proc/x"}))
    assert "KVFABRIC_RESULTS=/proc/x:" in err


def test_show_of_an_unknown_run_names_it(tmp_path):
    fake_run(tmp_path, "20260101-000000-aaaa")
    err = usage_error(kvfabric("show", "nosuchrun", "--results", tmp_path))
    assert "nosuchrun: no run by that name under" in err and "fix: " in err


def test_show_of_an_ambiguous_run_id_lists_the_matches(tmp_path):
    fake_run(tmp_path, "20260101-000000-aaaa")
    fake_run(tmp_path, "20260101-000000-bbbb")
    err = usage_error(kvfabric("show", "20260101", "--results", tmp_path))
    assert "matches 2 runs: 20260101-000000-aaaa, 20260101-000000-bbbb" in err


def _nested_summary(run_id: str) -> dict:
    return {"status": "ok", "error": None, "experiment": "tcp_incast", "run_id": run_id,
            "fabric": {"mode": "l3", "topology": "leafspine"},
            "results": {"all_blocks_completed": True, "transports": {
                "roce-dcqcn": {"fct_p99_us": 3183.0, "goodput_bps": 2.1e10,
                               "cnps": {"sent": 4, "received": 3}},
                "tcp-cubic": {"fct_p99_us": 5120.0, "goodput_bps": 1.9e10}}}}


def test_nested_results_are_shown_as_values_not_as_a_dict(tmp_path):
    """show and compare print roce_incast's transports entry by entry in readable units;
    neither prints the mapping's repr."""
    for run_id in ("20260101-000000-aaaa", "20260101-000000-bbbb"):
        fake_run(tmp_path, run_id, summary=_nested_summary(run_id))
    proc = kvfabric("show", "20260101-000000-aaaa", "--results", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "{" not in proc.stdout
    assert "roce-dcqcn.fct_p99_us" in proc.stdout and "3183 us" in proc.stdout
    assert "roce-dcqcn.cnps.sent" in proc.stdout and "21 Gbit/s" in proc.stdout
    out = tmp_path / "cmp"
    proc = kvfabric("compare", "20260101-000000-aaaa", "20260101-000000-bbbb",
                    "--results", tmp_path, "--out", out)
    assert proc.returncode == 0, proc.stderr
    report = (out / "report.md").read_text()
    assert "{'" not in report and "### transports" in report
    assert "| tcp-cubic.fct_p99_us | 5120 us | 5120 us |" in report
