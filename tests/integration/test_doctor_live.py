"""The real probe on this host: it must agree with direct tc attempts and leave nothing behind."""

from __future__ import annotations

import glob
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from fabriccore import capabilities as cap
from fabriccore import naming
from fabriccore.commands import run
from kvfabric import doctor
from kvfabric.lock import fabric_lock

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0,
                       reason="needs root (euid 0) to create network namespaces and add qdiscs"),
]

# Independent of the probe's own parameters: mininet's RED line, a plain netem delay, prio.
DIRECT_SPECS = {
    "red": ["red", "limit", "1000000", "min", "30000", "max", "35000", "avpkt", "1500",
            "burst", "20", "probability", "1", "ecn"],
    "netem": ["netem", "delay", "1ms"],
    "prio": ["prio"],
}
# Every interface name the probe creates inside its namespace.
PROBE_IFACES = {f"{kind}{end}" for kind in cap.QDISC_KINDS for end in (0, 1)}


def _netns() -> set[str]:
    out = run(["ip", "netns", "list"]).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def _root_links() -> set[str]:
    out = run(["ip", "-o", "link", "show"]).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


def _bpffs_entries() -> set[str]:
    pin_root = Path("/sys/fs/bpf")
    return set(os.listdir(pin_root)) if pin_root.is_dir() else set()


def _bpf_mounts() -> int:
    return sum(1 for line in Path("/proc/self/mounts").read_text().splitlines()
               if line.split()[2] == "bpf")


def _ovs_bridges() -> set[str]:
    if shutil.which("ovs-vsctl") is None:
        return set()
    proc = run(["ovs-vsctl", "--timeout=5", "list-br"], check=False, timeout_s=6)
    return set(proc.stdout.split()) if proc.returncode == 0 else set()


def _tmp_probe_dirs() -> set[str]:
    return set(glob.glob(os.path.join(tempfile.gettempdir(), f"{cap.PROBE_NETNS_PREFIX}*")))


def _snapshot() -> dict[str, object]:
    return {"netns": _netns(), "links": _root_links(), "bpffs": _bpffs_entries(),
            "bpf_mounts": _bpf_mounts(), "bridges": _ovs_bridges(), "tmp": _tmp_probe_dirs()}


def _direct_tc_accepts() -> dict[str, bool]:
    """Try each optional qdisc with tc in a namespace of our own, not through the probe."""
    ns = f"{cap.PROBE_NETNS_PREFIX}t{os.getpid()}"
    run(["ip", "netns", "add", ns])
    try:
        run(["ip", "-n", ns, "link", "add", "t0", "type", "veth", "peer", "name", "t1"])
        accepted = {}
        for kind, spec in DIRECT_SPECS.items():
            add = ["tc", "-n", ns, "qdisc", "add", "dev", "t0", "root", "handle", "1:", *spec]
            accepted[kind] = run(add, check=False).returncode == 0
            run(["tc", "-n", ns, "qdisc", "del", "dev", "t0", "root"], check=False)
        return accepted
    finally:
        run(["ip", "netns", "delete", ns], check=False)


@pytest.fixture(scope="module")
def direct() -> dict[str, bool]:
    return _direct_tc_accepts()


@pytest.fixture(scope="module")
def probed():
    # Under the fabric lock: a run probes the host under it too, so no other job's probe
    # (its namespace, links, temporary folder) shows up between the two snapshots.
    with fabric_lock("pytest: capability probe", wait_s=600):
        before = _snapshot()
        report = cap.probe_host()
        after = _snapshot()
    return report, before, after


def test_minimum_kernel_features_are_ok(probed):
    report, _, _ = probed
    for name in ("root", "netns", "qdisc.htb", "qdisc.bfifo", "qdisc.clsact"):
        assert report.get(name).status == cap.OK, report.get(name)
    assert report.minimum_ok, [c.name for c in report.missing_required()]


@pytest.mark.skipif(shutil.which("clang") is None, reason="clang is needed to build probe.bpf.c")
def test_cls_bpf_program_really_attaches(probed):
    report, _, _ = probed
    check = report.get("cls_bpf")
    assert check.status == cap.OK, check
    assert check.detail.startswith("probe program attached at clsact egress")


@pytest.mark.parametrize("kind", sorted(DIRECT_SPECS))
def test_optional_qdiscs_agree_with_a_direct_tc_attempt(probed, direct, kind):
    report, _, _ = probed
    assert report.get(f"qdisc.{kind}").ok == direct[kind]


def test_ecn_backend_follows_what_the_kernel_says_about_red(probed, direct):
    report, _, _ = probed
    red = report.get("qdisc.red")
    if direct["red"]:
        assert red.status == cap.OK and report.backends.ecn_marking == "red"
    elif report.get("cls_bpf").ok:
        assert (red.status, red.backend) == (cap.FALLBACK, "ebpf")
        assert red.fallback == cap.ECN_EBPF_FALLBACK
        assert report.backends.ecn_marking == "ebpf"
    else:
        assert red.status == cap.MISSING and report.backends.ecn_marking == "none"


def test_probe_leaves_nothing_behind(probed):
    report, before, after = probed
    assert not {n for n in after["netns"] if n.startswith(cap.PROBE_NETNS_PREFIX)}
    assert not after["links"] & PROBE_IFACES
    assert not {n for n in after["links"] if "kvfprobe" in n}
    # Other fabrics may pin under their own directory meanwhile; the probe pins nothing.
    assert after["bpffs"] - before["bpffs"] <= {naming.BPF_PIN_DIR.name}
    assert after["bpf_mounts"] == before["bpf_mounts"]
    assert not {b for b in after["bridges"] if b.startswith("kvfprobe")}
    assert after["tmp"] == before["tmp"]
    assert report.get("netns").detail.startswith("created and deleted")


def test_probe_runs_well_under_three_seconds(probed):
    report, _, _ = probed
    assert report.duration_s < 3.0


def test_doctor_json_on_this_host(capsys):
    code = doctor.main(["--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == (0 if data["minimum_ok"] else 1)
    assert set(data["backends"]) == {"ecn_marking", "ovs_datapath", "delay", "strict_priority"}
    assert data["checks"]["qdisc.htb"]["status"] == "OK"
