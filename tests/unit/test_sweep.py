"""Sweeps without a fabric: plans, validation of every point first, numbered run folders,
resume after an interruption, failed points recorded, the combined table and plot."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kvfabric import sweep
from kvfabric.schema import SpecError
from kvfabric.sweep_plan import SweepPlan, make_plan, parse_param, shipped_sweeps


@dataclass
class FakeOutcome:
    status: str
    summary: dict = field(default_factory=dict)
    signals: list = field(default_factory=list)


class FakeRunner:
    """Writes a run folder like the runner would; goodput falls with senders."""

    def __init__(self, fail=(), interrupt_at=None):
        self.calls: list[tuple[int, str]] = []
        self.fail, self.interrupt_at = set(fail), interrupt_at

    def __call__(self, spec, run_dir: Path):
        senders = spec.workload["senders"]
        self.calls.append((senders, run_dir.name))
        run_dir.mkdir(parents=True)
        (run_dir / "spec.toml").write_text(
            f'[workload]\nkind = "tcp_incast"\nsenders = {senders}\n')
        if self.interrupt_at is not None and len(self.calls) == self.interrupt_at:
            raise KeyboardInterrupt("SIGINT")
        status = "failed" if senders in self.fail else "ok"
        results = {"goodput_mean_bps": 90e6 / senders + len(self.calls) * 1e3,
                   "bottleneck_rate_bps": 100e6} if status == "ok" else {}
        summary = {"status": status, "error": "boom" if status == "failed" else None,
                   "results": results}
        (run_dir / "summary.json").write_text(json.dumps(summary))
        return FakeOutcome(status, summary)


def _plan(**kw) -> SweepPlan:
    base = {"spec": "tcp_incast", "params": {"workload.senders": [1, 2, 4]}, "repeat": 2,
            "overrides": {"workload.rounds": 2}}
    return SweepPlan(**{**base, **kw})


def test_param_values_parse_as_toml_scalars_or_unit_words():
    assert parse_param("workload.senders=1,2,4,8") == ("workload.senders", [1, 2, 4, 8])
    assert parse_param("fabric.buffer=32KiB,64KiB") == ("fabric.buffer", ["32KiB", "64KiB"])
    assert parse_param("fabric.mode=l3,openflow")[1] == ["l3", "openflow"]
    for bad in ("senders=1,2", "workload.senders=", "workload.senders=1,1"):
        with pytest.raises(SpecError):
            parse_param(bad)


def test_runs_are_numbered_and_repeats_interleaved():
    runs = _plan().runs()
    assert [r["dir"] for r in runs] == [
        "001-senders=1-r1", "002-senders=2-r1", "003-senders=4-r1",
        "004-senders=1-r2", "005-senders=2-r2", "006-senders=4-r2"]


def test_grid_of_two_params():
    plan = _plan(params={"workload.senders": [1, 2], "fabric.buffer": ["32KiB", "64KiB"]},
                 repeat=1)
    assert len(plan.runs()) == 4
    assert plan.runs()[1]["dir"] == "002-senders=1-buffer=64KiB-r1"


def test_every_point_is_validated_before_anything_runs(tmp_path):
    plan = _plan(params={"workload.senders": [1, 7, 8, 50]})
    runner = FakeRunner()
    with pytest.raises(SpecError) as info:
        sweep.run_sweep(plan, tmp_path, runner, say=lambda _: None)
    problems = " ".join(i.problem for i in info.value.issues)
    assert "at point workload.senders=8" in problems and "workload.senders=50" in problems
    assert not runner.calls and not list(tmp_path.iterdir())


def test_make_plan_refuses_sweeping_and_fixing_the_same_field():
    with pytest.raises(SpecError, match="both swept"):
        make_plan("tcp_incast", ["workload.senders=1,2"], None, None,
                  {"workload.senders": 3})
    with pytest.raises(SpecError, match="nothing to sweep"):
        make_plan("tcp_incast", [], None, None, {})


def test_complete_sweep_writes_tables_plot_and_report(tmp_path):
    state = sweep.run_sweep(_plan(), tmp_path, FakeRunner(), say=lambda _: None)
    assert state["status"] == "complete" and sweep.exit_code(state) == 0
    for name in ("sweep.json", "sweep.csv", "points.csv", "sweep.png", "report.md"):
        assert (tmp_path / name).stat().st_size > 0, name
    points = (tmp_path / "points.csv").read_text().splitlines()
    assert points[0].startswith("workload.senders,runs_ok,runs_failed,metric,mean,std")
    assert len(points) == 4 and points[1].startswith("1,2,0,goodput_mean_bps,")
    report = (tmp_path / "report.md").read_text()
    assert "![sweep.png](sweep.png)" in report and "runs/001-senders=1-r1/report.md" in report


def test_failed_point_is_recorded_and_the_sweep_goes_on(tmp_path):
    runner = FakeRunner(fail={2})
    state = sweep.run_sweep(_plan(), tmp_path, runner, say=lambda _: None)
    assert len(runner.calls) == 6
    statuses = {r["dir"]: r["status"] for r in state["runs"]}
    assert statuses["002-senders=2-r1"] == "failed" and statuses["003-senders=4-r1"] == "ok"
    assert sweep.exit_code(state) == 1
    assert "2 failed" in (tmp_path / "report.md").read_text()


def test_interrupted_sweep_resumes_where_it_stopped(tmp_path):
    first = FakeRunner(interrupt_at=3)
    state = sweep.run_sweep(_plan(), tmp_path, first, say=lambda _: None)
    assert state["status"] == "interrupted" and sweep.exit_code(state) == 130
    assert [r["status"] for r in state["runs"]][:3] == ["ok", "ok", "pending"]
    assert not (tmp_path / "report.md").exists()
    second = FakeRunner()
    state = sweep.run_sweep(_plan(), tmp_path, second, say=lambda _: None)
    # Runs 1-2 are kept; run 3's partial folder is redone, then the rest.
    assert [name for _, name in second.calls] == [
        "003-senders=4-r1", "004-senders=1-r2", "005-senders=2-r2", "006-senders=4-r2"]
    assert state["status"] == "complete"
    assert (tmp_path / "report.md").exists()


def test_an_interrupted_run_stops_the_sweep(tmp_path):
    class Interrupting(FakeRunner):
        def __call__(self, spec, run_dir):
            outcome = super().__call__(spec, run_dir)
            return FakeOutcome("interrupted", {"error": "SIGTERM"}) if len(self.calls) == 2 \
                else outcome
    runner = Interrupting()
    state = sweep.run_sweep(_plan(), tmp_path, runner, say=lambda _: None)
    assert len(runner.calls) == 2 and state["status"] == "interrupted"
    assert state["runs"][1]["status"] == "interrupted"


def test_rerun_finds_the_unfinished_sweep_of_the_same_plan(tmp_path):
    plan = _plan()
    sweep_dir = sweep.new_sweep_dir(tmp_path, "tcp_incast")
    sweep.run_sweep(plan, sweep_dir, FakeRunner(interrupt_at=2), say=lambda _: None)
    assert sweep.find_unfinished(tmp_path, "tcp_incast", plan) == sweep_dir
    assert sweep.find_unfinished(tmp_path, "tcp_incast", _plan(repeat=3)) is None
    sweep.run_sweep(plan, sweep_dir, FakeRunner(), say=lambda _: None)
    assert sweep.find_unfinished(tmp_path, "tcp_incast", plan) is None


def test_resume_with_a_different_plan_is_refused(tmp_path):
    sweep.run_sweep(_plan(), tmp_path, FakeRunner(interrupt_at=1), say=lambda _: None)
    with pytest.raises(SpecError, match="different sweep plan"):
        sweep.run_sweep(_plan(repeat=5), tmp_path, FakeRunner(), say=lambda _: None)


def test_shipped_sweeps_validate_every_point():
    from kvfabric.sweep_plan import validate_points

    assert "incast_senders" in shipped_sweeps()
    for name in shipped_sweeps():
        plan = make_plan(name, [], None, None, {})
        assert len(validate_points(plan)) == len(plan.combos())


def test_cli_bad_sweep_exits_2_before_anything(tmp_path, capsys):
    from kvfabric import cli

    code = cli.main(["sweep", "tcp_incast", "--param", "workload.senders=1,99",
                     "--results", str(tmp_path)])
    assert code == 2 and "workload.senders=99" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_runs_inside_a_sweep_are_found_by_id(tmp_path):
    from kvfabric import results

    sweep_dir = sweep.new_sweep_dir(tmp_path, "tcp_incast")
    sweep.run_sweep(_plan(repeat=1), sweep_dir, FakeRunner(), say=lambda _: None)
    assert results.find_run("002-senders=2-r1", tmp_path) == \
        sweep_dir / "runs" / "002-senders=2-r1"


def test_unknown_metric_is_reported_with_the_available_ones(tmp_path):
    sweep.run_sweep(_plan(repeat=1, metric="nope_bps"), tmp_path, FakeRunner(),
                    say=lambda _: None)
    report = (tmp_path / "report.md").read_text()
    assert "no ok run has a result named 'nope_bps'" in report
    assert "goodput_mean_bps" in report and not (tmp_path / "sweep.png").exists()


def test_a_finished_sweep_can_be_replotted_with_another_metric(tmp_path):
    sweep.run_sweep(_plan(repeat=1), tmp_path, FakeRunner(), say=lambda _: None)
    runner = FakeRunner()
    state = sweep.run_sweep(_plan(repeat=1, metric="bottleneck_rate_bps"), tmp_path, runner,
                            say=lambda _: None)
    assert not runner.calls and state["plan"]["metric"] == "bottleneck_rate_bps"
    assert "## bottleneck_rate_bps per point" in (tmp_path / "report.md").read_text()


def test_dry_run_validates_and_lists_runs_without_running(tmp_path, capsys):
    from kvfabric import cli

    assert cli.main(["sweep", "incast_senders", "--repeat", "1", "--dry-run",
                     "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "8 runs (8 points x 1), every point valid" in out and "008-senders=15-r1" in out
    assert not list(tmp_path.iterdir())


def test_a_sweep_records_its_engine_and_resumes_only_on_it(tmp_path):
    first = FakeRunner(interrupt_at=2)
    state = sweep.run_sweep(_plan(), tmp_path, first, say=lambda _: None, engine="hpcc-ns3")
    assert state["engine"] == "hpcc-ns3" and state["status"] == "interrupted"
    with pytest.raises(SpecError, match="swept on hpcc-ns3"):
        sweep.run_sweep(_plan(), tmp_path, FakeRunner(), say=lambda _: None)
    state = sweep.run_sweep(_plan(), tmp_path, FakeRunner(), say=lambda _: None,
                            engine="hpcc-ns3")
    assert state["status"] == "complete"
