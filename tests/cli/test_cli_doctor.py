"""`kvfabric doctor` through the installed command: its options are real argparse options
(`--json` works, `--help` lists it), and a wrong option is a usage error."""

from __future__ import annotations

import json

from kvfabric_command import kvfabric, usage_error


def test_doctor_json_prints_the_report():
    proc = kvfabric("doctor", "--json")
    assert proc.returncode in (0, 1), proc.stderr  # 1: this host lacks the minimum
    report = json.loads(proc.stdout)
    assert report["minimum_ok"] == (proc.returncode == 0)
    assert {"root", "netns"} <= set(report["checks"])


def test_doctor_table():
    proc = kvfabric("doctor")
    assert proc.returncode in (0, 1), proc.stderr
    assert proc.stdout.startswith("CHECK") and "minimum to run" in proc.stdout


def test_doctor_help_lists_its_options():
    proc = kvfabric("doctor", "--help")
    assert proc.returncode == 0
    assert "--json" in proc.stdout and "rest" not in proc.stdout


def test_doctor_unknown_option_is_a_usage_error():
    err = usage_error(kvfabric("doctor", "--jsn"))
    assert "unrecognized arguments: --jsn" in err
