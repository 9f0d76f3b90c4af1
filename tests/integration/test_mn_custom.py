"""The documented `mn --custom topologies/leafspine.py` command forwards: every host pair
pings across a looped leaf-spine of Mininet's learning bridges (STP from the topology)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from kvfabric.lock import fabric_lock

pytestmark = [pytest.mark.root, pytest.mark.ovs]

REPO = Path(__file__).resolve().parents[2]

#: The command as README.md documents it (run from the repository root).
MN_COMMAND = ["mn", "--custom", "topologies/leafspine.py", "--topo", "leafspine,2,2,2",
              "--switch", "ovsbr,datapath=user", "--controller", "none", "--test", "pingall"]

#: What Mininet creates for leafspine,2,2,2 in the root namespace: bridges and switch ports.
BRIDGES = ("l1", "l2", "s1", "s2")
LINKS = (*(f"l{i}-eth{p}" for i in (1, 2) for p in range(1, 5)),
         *(f"s{i}-eth{p}" for i in (1, 2) for p in range(1, 3)))


def _bridges() -> set[str]:
    out = subprocess.run(["ovs-vsctl", "--timeout=10", "list-br"], capture_output=True,
                         text=True, check=True).stdout
    return set(out.split())


def _links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True,
                         check=True).stdout
    return {line.split(": ")[1].split("@")[0] for line in out.splitlines()}


def _mininet_hosts() -> set[int]:
    """pids of Mininet host shells (`mnexec ... bash ... mininet:h1`) on this machine."""
    pids = set()
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if entry.name.isdigit() and any(a.startswith(b"mininet:h") for a in cmdline):
            pids.add(int(entry.name))
    return pids


def _remove_what_we_made(hosts_before: set[int]) -> None:
    """Only our run's bridges, switch ports and host shells (a failed or stuck run)."""
    for pid in _mininet_hosts() - hosts_before:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for bridge in set(BRIDGES) & _bridges():
        subprocess.run(["ovs-vsctl", "--timeout=10", "--if-exists", "del-br", bridge],
                       check=False)
    for link in set(LINKS) & _links():
        subprocess.run(["ip", "link", "del", link], check=False)


def test_documented_mn_custom_command_pings_every_pair(tmp_path):
    """README's `mn --custom` command: 0 % dropped over all 12 host pairs.

    Mininet's learning bridges flood forever around a leaf-spine's loops unless STP breaks
    them; the topology turns STP on for its switches and `ovsbr` waits until every port
    forwards before pingall. On any error `mn` runs its global cleanup (that of `mn -c`:
    it removes every *-ethN link and /tmp/*.log), so the test holds the fabric lock (no
    kvfabric fabric is up meanwhile) and gives mn a private /tmp."""
    for tool in ("mn", "unshare", "ovs-vsctl"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (make setup installs Mininet and OVS)")
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    with fabric_lock("pytest: mn --custom"):
        taken = (set(BRIDGES) & _bridges()) | (set(LINKS) & _links())
        assert not taken, f"names Mininet would use already exist (not ours): {taken}"
        hosts_before = _mininet_hosts()
        argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                'mount --bind "$0" /tmp && exec "$@"', str(private_tmp), *MN_COMMAND]
        proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            # A guard, not a measurement: STP takes about 30 s to forward.
            out, _ = proc.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            left = (set(BRIDGES) & _bridges()) | (set(LINKS) & _links()) \
                | (_mininet_hosts() - hosts_before)
            _remove_what_we_made(hosts_before)
    assert proc.returncode == 0, out[-3000:]
    assert "*** Results: 0% dropped (12/12 received)" in out, out[-3000:]
    assert not left, f"mn left {left} behind"
