"""Real fabrics in both modes on a 2x2 leaf-spine: reachability, ECMP spreading, shaping."""

from __future__ import annotations

import json
import time

import pytest

from topologies.queues.settings import QueueSettings

pytestmark = [pytest.mark.root]
MODES = ["l3", pytest.param("openflow", marks=pytest.mark.ovs)]
#: TCP payload per full frame at MTU 1500 with timestamps: 1448 of 1514 bytes on the wire.
TCP_GOODPUT_FRACTION = 1448 / 1514


@pytest.mark.parametrize("mode", MODES)
def test_all_pairs_reachable(fabric_of, mode):
    fabric = fabric_of(mode, spines=2, leaves=2, hosts_per_leaf=2)
    failures = []
    for src in fabric.hosts():
        for dst in fabric.hosts():
            if src != dst:
                ping = fabric.run(src, ["ping", "-c", "1", "-W", "2", fabric.host_ips[dst]],
                                  check=False)
                if ping.returncode != 0:
                    failures.append((src, dst))
    assert not failures, f"unreachable pairs: {failures}"


def _iperf(fabric, src, dst, seconds, parallel=1, port=5201, omit=0):
    """iperf3 from src to dst; returns its JSON report."""
    fabric.popen(dst, ["iperf3", "-s", "-1", "-p", str(port)])
    argv = ["iperf3", "-c", fabric.host_ips[dst], "-p", str(port), "-t", str(seconds),
            "-O", str(omit), "-P", str(parallel), "-J"]
    for _ in range(20):  # the server may still be starting
        result = fabric.run(src, argv, timeout_s=seconds + omit + 20, check=False)
        report = json.loads(result.stdout or "{}")
        if "unable to connect" not in report.get("error", ""):
            break
        time.sleep(0.1)
    assert "error" not in report, report.get("error")
    return report


def _spine_bytes(fabric) -> dict[str, int]:
    totals: dict[str, int] = {}
    for row in fabric.port_stats():
        if row["node"].startswith("s"):
            totals[row["node"]] = totals.get(row["node"], 0) + row["sent_bytes"]
    return totals


@pytest.mark.parametrize("mode", MODES)
def test_flows_spread_over_both_spines(fabric_of, mode):
    fabric = fabric_of(mode, spines=2, leaves=2, hosts_per_leaf=2,
                       host_rate_bps=50_000_000, fabric_rate_bps=50_000_000)
    before = _spine_bytes(fabric)
    _iperf(fabric, "h1", "h3", seconds=2, parallel=16)
    after = _spine_bytes(fabric)
    carried = {spine: after[spine] - before.get(spine, 0) for spine in after}
    total = sum(carried.values())
    assert total > 5_000_000, f"too little traffic crossed the spines: {carried}"
    for spine, sent in carried.items():
        assert sent / total > 0.1, f"{spine} carried {sent / total:.1%} of {carried}"


@pytest.mark.parametrize("queues", [None, QueueSettings()], ids=["fifo", "classes"])
@pytest.mark.parametrize("mode", MODES)
def test_shaped_tcp_throughput_within_5_percent(fabric_of, mode, queues):
    """One TCP flow through a 50 Mbit/s host link gets the link's rate less headers, with one
    FIFO per port and with the traffic classes (lossy class, telemetry and agent running).

    The buffer is deep (512 KiB) because this checks the shaper, not buffer dynamics:
    userspace OVS forwards in scheduling-delayed bursts that overflow a shallow buffer.
    A try that comes out low is repeated (twice at most): on a shared 2-core machine a stall
    of other work can cost one 4-second measurement a few percent; a shaper that is really
    off is off in every try.
    """
    rate_bps = 50_000_000
    fabric = fabric_of(mode, queues=queues, spines=2, leaves=2, hosts_per_leaf=2,
                       buffer_bytes=512 * 1024, host_rate_bps=rate_bps,
                       fabric_rate_bps=4 * rate_bps)
    expected_bps = rate_bps * TCP_GOODPUT_FRACTION
    tries = []
    for port in (5201, 5202, 5203):
        report = _iperf(fabric, "h1", "h3", seconds=4, omit=1, port=port)
        tries.append(report["end"]["sum_received"]["bits_per_second"])
        if tries[-1] >= 0.95 * expected_bps:
            break
    goodput_bps = max(tries)
    assert goodput_bps == pytest.approx(expected_bps, rel=0.05), (
        f"{goodput_bps / 1e6:.2f} Mbit/s vs expected {expected_bps / 1e6:.2f} "
        f"(tries: {[round(t / 1e6, 2) for t in tries]})")
