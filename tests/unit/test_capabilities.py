"""Doctor policy on fabricated probe results: fallbacks, backends, exit code and rendering."""

from __future__ import annotations

import json
import subprocess

import pytest

from fabriccore import capabilities as cap
from fabriccore import naming
from fabriccore.capabilities import (
    Check,
    HostReport,
    annotate,
    choose_backends,
    host_probes,
    kernel_probes,
    policy,
)
from fabriccore.commands import CommandError
from kvfabric import doctor

ALL_NAMES = [
    "root", "kernel", "python", "netns", *(f"qdisc.{k}" for k in cap.QDISC_KINDS), "cls_bpf",
    "bpf_jit", "bpffs", "ovs", "ovs.datapath", *cap.PY_DEPS, "py.openflow",
    *(f"tool.{t}" for t in cap.TOOLS), "mnexec", *(f"tcp.{cc}" for cc in cap.TCP_CCS),
]
# What this kind of host (no red/netem/prio/dctcp, no OVS kernel module) reports.
NO_RED_HOST = {"qdisc.red", "qdisc.netem", "qdisc.prio", "ovs.datapath", "tcp.dctcp", "bpffs"}


def make_report(failed: set[str] = frozenset(), details: dict[str, str] | None = None,
                duration_s: float = 0.5) -> HostReport:
    """A report where every check passed except `failed`, annotated like the real probe."""
    details = details or {}
    checks = [Check(n, n not in failed, details.get(n, "fabricated")) for n in ALL_NAMES]
    checks = annotate(checks)
    return HostReport(checks=checks, backends=choose_backends(checks), duration_s=duration_s,
                      kernel_release="6.1.0-test", python_version="3.11.7")


def test_status_is_ok_fallback_or_missing():
    assert Check("x", True, "").status == cap.OK
    assert Check("x", False, "", fallback="something else").status == cap.FALLBACK
    assert Check("x", False, "").status == cap.MISSING
    # A required piece has no stand-in, whatever the fallback field says.
    assert Check("x", False, "", fallback="y", required=True).status == cap.MISSING


def test_everything_present_uses_the_real_backends():
    report = make_report()
    assert report.backends.to_dict() == {"ecn_marking": "red", "ovs_datapath": "system",
                               "delay": "netem", "strict_priority": "prio"}
    assert report.minimum_ok
    assert all(c.status == cap.OK for c in report.checks)


def test_host_without_red_netem_prio_falls_back():
    report = make_report(NO_RED_HOST)
    assert report.backends.to_dict() == {"ecn_marking": "ebpf", "ovs_datapath": "user",
                               "delay": "none", "strict_priority": "htb"}
    assert report.minimum_ok
    red = report.get("qdisc.red")
    assert (red.status, red.backend) == (cap.FALLBACK, "ebpf")
    assert "virtual queue drained at the class rate" in red.fallback
    assert "sch_red" in red.fix
    assert "propagation delay is the veth's" in report.get("qdisc.netem").fallback
    assert report.get("qdisc.prio").fallback.startswith("strict priority from HTB class prio")
    datapath = report.get("ovs.datapath")
    assert (datapath.status, datapath.backend) == (cap.FALLBACK, "user")
    assert "checksum offload must be off" in datapath.fallback
    assert report.get("tcp.dctcp").fallback == "TCP baselines use cubic/bbr only"


def test_red_without_cls_bpf_has_no_ecn_backend():
    """The eBPF marker can only stand in for sch_red when a BPF program can be attached."""
    report = make_report({"qdisc.red", "cls_bpf"})
    assert report.backends.ecn_marking == "none"
    red = report.get("qdisc.red")
    assert red.status == cap.MISSING and red.backend is None and red.fix


def test_cls_bpf_missing_is_covered_by_red():
    report = make_report({"cls_bpf"})
    assert report.backends.ecn_marking == "red"
    assert report.get("cls_bpf").status == cap.FALLBACK


def test_ovs_not_running_means_no_datapath():
    report = make_report({"ovs", "ovs.datapath"})
    assert report.backends.ovs_datapath == "none"
    assert report.get("ovs.datapath").status == cap.MISSING
    assert "openvswitch-switch" in report.get("ovs").fix


def test_unprobed_checks_get_no_fallback():
    """A check that could not run says nothing about the host, so no stand-in is claimed."""
    report = make_report({"root", "qdisc.netem"},
                         details={"qdisc.netem": f"{cap.NOT_PROBED}: needs root"})
    netem = report.get("qdisc.netem")
    assert netem.status == cap.MISSING and netem.fallback is None


@pytest.mark.parametrize("name", sorted(cap.REQUIRED))
def test_each_required_check_breaks_the_minimum(name):
    report = make_report({name})
    assert not report.minimum_ok
    assert [c.name for c in report.missing_required()] == [name]
    assert doctor.exit_code(report) == 1


@pytest.mark.parametrize("name", sorted(set(ALL_NAMES) - cap.REQUIRED))
def test_optional_checks_never_break_the_minimum(name):
    assert doctor.exit_code(make_report({name})) == 0


def test_every_failed_check_says_how_to_fix_it():
    report = make_report(set(ALL_NAMES) - {"kernel"})
    assert [c.name for c in report.checks if not c.ok and not c.fix] == []


def test_minimum_is_root_netns_htb_bfifo_clsact_and_python():
    assert set(cap.MINIMUM) == {"root", "netns", "qdisc.htb", "qdisc.bfifo", "qdisc.clsact",
                                "python"}
    assert {"py.pyroute2", "py.scapy", "py.openflow"} <= cap.REQUIRED


def test_to_dict_is_json_and_keyed_by_check():
    data = json.loads(json.dumps(make_report(NO_RED_HOST).to_dict()))
    assert set(data) == {"schema", "minimum_ok", "kernel_release", "python_version",
                         "probe_duration_s", "backends", "checks"}
    assert data["backends"]["ecn_marking"] == "ebpf"
    assert list(data["checks"]) == ALL_NAMES
    assert data["checks"]["qdisc.red"] == {
        "name": "qdisc.red", "ok": False, "status": "FALLBACK", "detail": "fabricated",
        "backend": "ebpf", "fallback": cap.ECN_EBPF_FALLBACK, "fix": cap.fix_for("qdisc.red"),
        "required": False}


def test_probe_namespace_never_uses_the_fabric_prefix():
    """Fabric namespaces are kvf-<node>; the probe must not collide with (or clean up) them."""
    name = cap.probe_netns_name(4242)
    assert name == "kvfprobe-4242"
    assert not name.startswith(naming.NETNS_PREFIX)


def _column_starts(header: str) -> list[int]:
    return [header.index(h) for h in doctor._HEADERS]


def test_table_columns_are_aligned_and_fit_the_width():
    report = make_report(NO_RED_HOST | {"root"})
    table = doctor.render_table(report, width=110)
    lines = table.splitlines()
    starts = _column_starts(lines[0])
    rows = lines[2:lines.index("")]
    for line in rows:
        assert len(line) <= 110
        for start in starts[1:]:  # every cell begins at its column or the line is blank there
            assert start >= len(line) or line[start - 1] == " "
    red_row = next(ln for ln in rows if ln.startswith("qdisc.red "))
    assert red_row[starts[1]:].startswith("FALLBACK")
    assert red_row[starts[3]:].startswith("ebpf: ECN marking by an eBPF")
    assert any(ln.startswith("root ") and "MISSING" in ln for ln in rows)
    assert "backends: ecn_marking=ebpf  ovs_datapath=user  delay=none  strict_priority=htb" in table
    assert "NOT met" in table


def test_long_cells_wrap_without_losing_words():
    table = doctor.render_table(make_report({"qdisc.red"}), width=100)
    lines = table.splitlines()
    last = _column_starts(lines[0])[3]
    start = next(i for i, ln in enumerate(lines) if ln.startswith("qdisc.red "))
    end = next(i for i in range(start + 1, len(lines)) if not lines[i].startswith(" "))
    assert end - start > 2  # the fallback text needed continuation lines
    cell = " ".join(ln[last:].strip() for ln in lines[start:end])
    assert cell == f"ebpf: {cap.ECN_EBPF_FALLBACK} fix: {cap.fix_for('qdisc.red')}"


def test_main_exit_zero_when_minimum_holds(capsys):
    assert doctor.main([], probe=lambda: make_report(NO_RED_HOST)) == 0
    out = capsys.readouterr().out
    assert "qdisc.red" in out and "cannot run" not in out


def test_main_exit_one_prints_the_fixes(capsys):
    assert doctor.main([], probe=lambda: make_report({"qdisc.htb", "root"})) == 1
    out = capsys.readouterr().out
    assert "kvfabric cannot run on this host" in out
    assert policy.FIXES["root"] in out and cap.fix_for("qdisc.htb") in out


def test_main_json_keeps_stdout_parseable(capsys):
    assert doctor.main(["--json"], probe=lambda: make_report({"netns"})) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["minimum_ok"] is False
    assert "netns" in captured.err


def test_brief_keeps_the_error_line():
    stderr = "libbpf: loading object\nError: Specified qdisc kind is unknown.\nUsage: tc ..."
    assert host_probes.brief(stderr) == "Error: Specified qdisc kind is unknown."
    assert host_probes.brief("") == "no output"


def test_tc_unknown_kind_is_reported_as_missing_module(monkeypatch):
    def fake_run(argv, **_):
        raise CommandError(argv, 2, "Error: Specified qdisc kind is unknown.")
    monkeypatch.setattr(kernel_probes, "run", fake_run)
    check = kernel_probes._probe_qdisc_tc("kvfprobe-1", "red", "red0")
    assert not check.ok and check.detail == "kernel has no sch_red (qdisc kind unknown)"


def test_tc_other_errors_are_shown_verbatim(monkeypatch):
    def fake_run(argv, **_):
        raise CommandError(argv, 2, "Error: Invalid argument.")
    monkeypatch.setattr(kernel_probes, "run", fake_run)
    check = kernel_probes._probe_qdisc_tc("kvfprobe-1", "prio", "prio0")
    assert check.detail == "add failed: Error: Invalid argument."


def test_tool_version_is_parsed_from_either_stream(monkeypatch):
    monkeypatch.setattr(host_probes.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(host_probes, "run", lambda argv, **_: subprocess.CompletedProcess(
        argv, 0, "TShark (Wireshark) 4.0.17 (Git v4.0.17).\n", 'Running as user "root"\n'))
    tshark = host_probes.probe_tool("tshark", ["tshark", "--version"])
    assert tshark.detail == "4.0.17 (/usr/bin/tshark)"
    monkeypatch.setattr(host_probes, "run", lambda argv, **_: subprocess.CompletedProcess(
        argv, 0, "tc utility, iproute2-6.1.0, libbpf 1.1.2\n", ""))
    assert host_probes.probe_tool("tc", ["tc", "-V"]).detail == "6.1.0 (/usr/bin/tc), libbpf 1.1.2"


def test_kernel_fixes_only_say_modprobe_where_modules_can_load():
    assert cap.fix_for("qdisc.red").startswith("modprobe sch_red (CONFIG_NET_SCH_RED")
    assert cap.fix_for("qdisc.clsact").startswith("modprobe sch_ingress (CONFIG_NET_SCH_INGRESS")
    assert cap.fix_for("tcp.dctcp").startswith("modprobe tcp_dctcp (CONFIG_TCP_CONG_DCTCP")
    no_modules = cap.fix_for("ovs.datapath", modules_loadable=False)
    assert "modprobe" not in no_modules and "CONFIG_OPENVSWITCH=y" in no_modules
    checks = annotate([Check("qdisc.netem", False, "kernel has no sch_netem")],
                      modules_loadable=False)
    assert "CONFIG_NET_SCH_NETEM=y" in checks[0].fix


def test_missing_tool_gets_its_apt_package():
    report = make_report({"tool.tcpreplay", "tool.clang", "mnexec"})
    assert report.get("tool.tcpreplay").fix == "apt install tcpreplay"
    assert "libbpf-dev" in report.get("tool.clang").fix
    assert report.get("mnexec").fix == "apt install mininet"
