"""Test tiers: tests/unit needs nothing; tests/integration needs root, netns and tc (and OVS
for openflow mode) and skips with the reason otherwise."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

# Test sessions on one machine queue for the fabric lock instead of failing (CLI runs started
# by tests inherit this); tests of the busy-lock error set it back to 0 themselves.
os.environ.setdefault("KVFABRIC_LOCK_WAIT_S", "1800")


def ovs_running() -> bool:
    if shutil.which("ovs-vsctl") is None:
        return False
    return subprocess.run(["ovs-vsctl", "--timeout=3", "show"], capture_output=True).returncode == 0


def pytest_collection_modifyitems(config, items):
    is_root = os.geteuid() == 0
    has_ovs = ovs_running() if is_root else False
    for item in items:
        if "root" in item.keywords and not is_root:
            item.add_marker(pytest.mark.skip(reason="needs root: network namespaces and tc"))
        if "ovs" in item.keywords and not has_ovs:
            item.add_marker(pytest.mark.skip(reason="Open vSwitch is not running "
                                             "(make setup starts it)"))
