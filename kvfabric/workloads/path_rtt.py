"""The fabric's real round-trip time between two hosts (kernel ping, before the workload), in
wall-clock seconds and in target microseconds: kernels without netem cannot add a target's
link delay, so a run states the latency its path really had."""

from __future__ import annotations

import re
from typing import Any

_RTT = re.compile(r"= ([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+) ms")


def measure_path_rtt(fabric, src: str, dst_ip: str, dilation: float,
                     count: int = 20) -> dict[str, Any]:
    """min/avg/max RTT of ``count`` pings from ``src`` to ``dst_ip`` (idle fabric)."""
    proc = fabric.run(src, ["ping", "-q", "-n", "-c", str(count), "-i", "0.01", dst_ip],
                      timeout_s=30.0, check=False)
    match = _RTT.search(proc.stdout or "")
    if not match:
        return {"error": "no ping summary"}
    low, avg, high = (float(match.group(i)) / 1e3 for i in (1, 2, 3))
    return {"from": src, "to": dst_ip, "rtt_min_s": low, "rtt_avg_s": avg, "rtt_max_s": high,
            "rtt_min_target_us": low / dilation * 1e6,
            "rtt_avg_target_us": avg / dilation * 1e6}
