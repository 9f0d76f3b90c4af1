"""Every subcommand and documented option (README "Using it", `kvfabric --help`) through the
installed `kvfabric` command. Commands that build fabrics (run, sweep, smoke) are tested
here only up to their parsing, validation, --dry-run and --list paths, or against a fabric
lock the test holds (so nothing is built); the integration tests build fabrics."""

from __future__ import annotations

import json

import pytest
from fake_runs import fake_run
from kvfabric_command import TRACEBACK, fabric_busy, kvfabric, usage_error

SUBCOMMANDS = ("run", "list", "show", "doctor", "clean", "sweep", "compare", "smoke",
               "spec-doc")


def test_help_lists_every_subcommand():
    proc = kvfabric("--help")
    assert proc.returncode == 0
    assert all(name in proc.stdout for name in SUBCOMMANDS)


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_every_subcommand_has_help(name):
    proc = kvfabric(name, "--help")
    assert proc.returncode == 0 and f"usage: kvfabric {name}" in proc.stdout


def test_unknown_subcommand_is_a_usage_error():
    assert "invalid choice" in usage_error(kvfabric("frobnicate"))


def test_list_shows_shipped_experiments_and_sweeps():
    proc = kvfabric("list")
    assert proc.returncode == 0, proc.stderr
    names = {line.split()[0] for line in proc.stdout.splitlines()}
    assert {"tcp_incast", "roce_incast", "incast_senders"} <= names
    assert "(sweep)" in proc.stdout


# --- run: validation paths (a valid run would build a fabric) ------------------------------

def test_run_unknown_experiment_lists_the_shipped_ones():
    err = usage_error(kvfabric("run", "no_such_experiment"))
    assert "no shipped experiment named 'no_such_experiment'" in err and "tcp_incast" in err


def test_run_set_that_is_not_section_field_value():
    err = usage_error(kvfabric("run", "tcp_incast", "--set", "senders4"))
    assert "--set: 'senders4' is not SECTION.FIELD=VALUE" in err


def test_run_set_overrides_are_validated():
    err = usage_error(kvfabric("run", "tcp_incast", "--set", "workload.senders=0"))
    assert "workload.senders: 0 is below the minimum 1" in err


@pytest.mark.root
def test_run_capture_of_a_link_the_fabric_lacks(tmp_path):
    with fabric_busy(tmp_path) as env:  # nothing could be built should the check go
        err = usage_error(kvfabric("run", "tcp_incast", "--capture", "h1-h99",
                                   "--results", tmp_path / "r", env=env))
    assert "--capture: 'h1-h99' is not a link of this fabric" in err


# --- sweep ---------------------------------------------------------------------------------

def test_sweep_dry_run_lists_every_run():
    proc = kvfabric("sweep", "tcp_incast", "--param", "workload.senders=1,2",
                    "--set", "workload.rounds=2", "--repeat", "2",
                    "--metric", "goodput_mean_bps", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "4 runs (2 points x 2), every point valid" in proc.stdout
    assert "--set workload.rounds=2" in proc.stdout and "--metric goodput_mean_bps" in proc.stdout
    assert "004-senders=2-r2" in proc.stdout


def test_sweep_shipped_definition_dry_run():
    proc = kvfabric("sweep", "incast_senders", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "every point valid" in proc.stdout and "--repeat 3" in proc.stdout


@pytest.mark.parametrize(("args", "words"), [
    (("--param", "senders"), "--param: 'senders' is not SECTION.FIELD=V1,V2,..."),
    (("--param", "workload.senders=1,2", "--repeat", "0"), "--repeat: 0 is below 1"),
    (("--param", "workload.senders=1,2,99"), "(at point workload.senders=99)"),
    ((), "--param: nothing to sweep"),
    (("--param", "workload.senders=1,2", "--set", "workload.senders=3"),
     "both swept (--param) and fixed (--set)"),
])
def test_sweep_bad_plan_is_a_usage_error(args, words):
    assert words in usage_error(kvfabric("sweep", "tcp_incast", *args, "--dry-run"))


def test_sweep_resume_needs_a_sweep_folder(tmp_path):
    assert "is not a sweep folder" in usage_error(kvfabric("sweep", "--resume", tmp_path))


def test_sweep_resume_of_a_damaged_sweep_folder(tmp_path):
    (tmp_path / "sweep.json").write_text('{"plan": ')
    err = usage_error(kvfabric("sweep", "--resume", tmp_path, "--dry-run"))
    assert f"{tmp_path / 'sweep.json'}: is not a readable sweep state" in err


def test_sweep_resume_takes_no_plan(tmp_path):
    err = usage_error(kvfabric("sweep", "tcp_incast", "--resume", tmp_path))
    assert "--resume: takes no SPEC" in err


def _unfinished_sweep(root):
    """A sweep folder of the tcp_incast senders=1,2 plan with no run done."""
    from kvfabric import sweep
    from kvfabric.sweep_plan import make_plan

    plan = make_plan("tcp_incast", ["workload.senders=1,2"], None, None, {})
    sweep_dir = sweep.new_sweep_dir(root, "tcp_incast")
    sweep._save(sweep_dir, sweep._new_state(plan, "tcp_incast"))
    return sweep_dir


@pytest.mark.root
def test_sweep_reruns_into_the_unfinished_folder_and_fresh_starts_anew(tmp_path):
    root = tmp_path / "r"
    old = _unfinished_sweep(root)
    command = ("sweep", "tcp_incast", "--param", "workload.senders=1,2", "--results", root)
    with fabric_busy(tmp_path) as env:
        fresh = kvfabric(*command, "--fresh", env=env)
        resumed = kvfabric(*command, env=env)
    assert fresh.returncode == 3 and resumed.returncode == 3, fresh.stderr + resumed.stderr
    assert "sweep of 2 runs" in fresh.stdout  # a new folder (removed again: nothing ran)
    assert "sweep of 2 runs" not in resumed.stdout  # the unfinished one, kept
    assert [p.name for p in (root / "tcp_incast").iterdir()] == [old.name]
    assert json.loads((old / "sweep.json").read_text())["status"] == "stopped"


# --- smoke ---------------------------------------------------------------------------------

def test_smoke_list_shows_every_check():
    proc = kvfabric("smoke", "--list")
    assert proc.returncode == 0, proc.stderr
    assert "core/capabilities" in proc.stdout and "core/fabric-l3" in proc.stdout


def test_smoke_only_filters_the_list():
    proc = kvfabric("smoke", "--only", "core/fabric-*", "--list")
    assert proc.returncode == 0
    assert {line.split()[0] for line in proc.stdout.splitlines()} == {
        "core/fabric-l3", "core/fabric-openflow"}


def test_smoke_only_matching_nothing_is_a_usage_error():
    assert "no check matches" in usage_error(kvfabric("smoke", "--only", "nothing/*"))


def test_smoke_junit_of_a_check_that_needs_no_fabric(tmp_path):
    junit = tmp_path / "out" / "smoke.xml"
    proc = kvfabric("smoke", "--only", "core/capabilities", "--junit", junit)
    assert TRACEBACK not in proc.stdout + proc.stderr
    assert proc.returncode in (0, 1)  # 1: this host lacks the minimum
    assert ("1 passed" if proc.returncode == 0 else "1 failed") in proc.stdout
    assert '<testcase classname="kvfabric.smoke.core" name="capabilities"' in junit.read_text()


# --- show, compare, spec-doc ---------------------------------------------------------------

def test_show_a_run_folder_given_by_path(tmp_path):
    run_dir = fake_run(tmp_path, "20260101-000000-aaaa")
    proc = kvfabric("show", run_dir)
    assert proc.returncode == 0 and "experiment  tcp_incast" in proc.stdout


def test_compare_default_output_folder_is_under_the_results_root(tmp_path):
    fake_run(tmp_path, "20260101-000000-aaaa", senders=2)
    fake_run(tmp_path, "20260101-000000-bbbb", senders=4)
    proc = kvfabric("compare", "20260101-000000-aaaa", "20260101-000000-bbbb",
                    "--results", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert len(list((tmp_path / "compare").glob("*/report.md"))) == 1


def test_spec_doc_prints_writes_and_checks(tmp_path):
    printed = kvfabric("spec-doc")
    assert printed.returncode == 0 and "fabric.target_rate" in printed.stdout
    written = kvfabric("spec-doc", "--write", tmp_path / "ref.md")
    assert written.returncode == 0
    assert (tmp_path / "ref.md").read_text() == printed.stdout
    assert kvfabric("spec-doc", "--check").returncode == 0


def test_spec_doc_write_to_an_unwritable_path_names_it():
    err = usage_error(kvfabric("spec-doc", "--write", "/proc/x/ref.md"))
    assert "--write /proc/x/ref.md: cannot be written" in err
