"""The smoke-check registry, its exit code and its JUnit XML (no fabric)."""

from __future__ import annotations

from xml.etree import ElementTree as ET

import pytest

from kvfabric import smoke


@pytest.fixture
def registry(monkeypatch):
    monkeypatch.setattr(smoke, "REGISTRY", {})
    return smoke.REGISTRY


def test_checks_register_run_in_order_and_report(registry):
    @smoke.smoke_check("second", area="x", order=2, needs_root=False)
    def second():
        raise RuntimeError("no packets")

    @smoke.smoke_check("first", area="x", order=1, needs_root=False)
    def first():
        return "fine"

    @smoke.smoke_check("skipped", area="y", order=3, needs_root=False)
    def skipped():
        raise smoke.Skip("no OVS")

    checks = sorted(registry.values(), key=lambda c: c.order)
    results = smoke.run_checks(checks, say=lambda _: None)
    assert [(r.check.name, r.status) for r in results] == [
        ("first", "passed"), ("second", "failed"), ("skipped", "skipped")]
    assert smoke.exit_code(results) == 1
    assert smoke.exit_code(results[:1] + results[2:]) == 0

    suite = ET.fromstring(smoke.junit_xml(results, 1.5)).find("testsuite")
    assert suite.get("tests") == "3" and suite.get("failures") == "1"
    assert suite.get("skipped") == "1"
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert cases["second"].find("failure").get("message") == "RuntimeError: no packets"
    assert "no packets" in cases["second"].find("failure").text  # the traceback
    assert cases["skipped"].find("skipped").get("message") == "no OVS"
    assert cases["first"].get("classname") == "kvfabric.smoke.x"


def test_a_name_cannot_be_taken_twice(registry):
    smoke.smoke_check("dup", needs_root=False)(lambda: "a")
    with pytest.raises(ValueError, match="registered twice"):
        @smoke.smoke_check("dup", needs_root=False)
        def other():
            return "b"


def test_the_core_checks_are_discovered():
    names = {(c.area, c.name) for c in smoke.discover()}
    assert {("core", "capabilities"), ("core", "fabric-l3"), ("core", "fabric-openflow"),
            ("core", "tcp-incast-run")} <= names


def test_root_checks_skip_without_root(registry, monkeypatch):
    monkeypatch.setattr(smoke.os, "geteuid", lambda: 1000)
    smoke.smoke_check("needs-root")(lambda: "ran")
    (result,) = smoke.run_checks(list(registry.values()), say=lambda _: None)
    assert result.status == "skipped" and result.detail == "needs root"


def test_cli_only_filters_and_unknown_pattern_is_usage_error(capsys):
    from kvfabric import cli

    assert cli.main(["smoke", "--list", "--only", "core/fabric-*"]) == 0
    out = capsys.readouterr().out
    assert "fabric-l3" in out and "capabilities" not in out
    assert cli.main(["smoke", "--only", "nothing-matches"]) == 2


def test_cli_exit_1_and_junit_failure_when_a_check_fails(registry, tmp_path, capsys):
    from kvfabric import cli

    smoke.smoke_check("always-fails", area="test", needs_root=False)(lambda: 1 / 0)
    smoke.smoke_check("fine", area="test", needs_root=False)(lambda: "ok")
    junit = tmp_path / "out" / "smoke.xml"
    assert cli.main(["smoke", "--only", "test/*", "--junit", str(junit)]) == 1
    assert "1 passed, 1 failed, 0 skipped" in capsys.readouterr().out
    cases = {c.get("name"): c for c in ET.parse(junit).getroot().iter("testcase")}
    assert cases["always-fails"].find("failure").get("message").startswith("ZeroDivisionError")
    assert cases["fine"].find("failure") is None
