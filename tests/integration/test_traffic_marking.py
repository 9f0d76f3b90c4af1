"""The spec's DSCP map reaches the RoCE endpoints: `kvfabric run roce_incast` with a moved
`queues.lossless_dscp` still carries the RoCE data (senders) and its ACKs (receiver) in the
lossless class, counted by the ports' own class queues; the default map does too.

Before the map was passed on, the endpoints always sent DSCP 26, so with any other lossless
DSCP the RoCE bytes landed in the lossy class.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces, tc and bpf(2)"),
    pytest.mark.skipif(shutil.which("clang") is None, reason="clang builds the ECN marker"),
]

KVFABRIC = Path(sys.executable).with_name("kvfabric")
SENDERS, BLOCKS, BLOCK_BYTES = 2, 3, 131072


def _class_counters(run_dir: Path) -> dict[tuple[str, str], dict[str, int]]:
    """(node, peer) -> class -> bytes sent, from the run's per-class queue counters."""
    out: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    with (run_dir / "queues" / "queue_counters.csv").open() as f:
        for row in csv.DictReader(f):
            out[(row["node"], row["peer"])][row["class"]] = int(row["sent_bytes"])
    return out


@pytest.mark.parametrize("lossless_dscp", [None, 10], ids=["default-map", "lossless-dscp-10"])
def test_roce_incast_is_counted_in_the_lossless_class_of_the_spec(tmp_path, nothing_left,
                                                                    lossless_dscp):
    moved = [] if lossless_dscp is None else ["--set", f"queues.lossless_dscp={lossless_dscp}",
                                              "--set", "queues.cnp_dscp=40"]
    proc = subprocess.run(
        [str(KVFABRIC), "run", "roce_incast", "--results", str(tmp_path),
         "--set", f"workload.senders={SENDERS}", "--set", f"workload.blocks={BLOCKS}",
         "--set", f"workload.block_bytes={BLOCK_BYTES}",
         "--set", "workload.transports=roce-dcqcn", *moved],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = (tmp_path / "roce_incast").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "ok" and summary["results"]["all_blocks_completed"]
    receiver = "h1"  # roce_incast's default receiver
    counters = _class_counters(run_dir)
    payload = SENDERS * BLOCKS * BLOCK_BYTES
    # The receiver's downlink carries every data byte: in the lossless class, not the lossy.
    (downlink,) = [c for (node, peer), c in counters.items() if peer == receiver]
    assert downlink["lossless"] >= payload, downlink
    assert downlink["lossy"] < payload / 20, downlink
    # The receiver's NIC sends the ACKs: in the QP's (lossless) class too.
    (nic,) = [c for (node, _), c in counters.items() if node == receiver]
    assert nic["lossless"] > 0, nic
    assert nic["lossy"] < nic["lossless"], nic
    nothing_left()
