"""The fabric's real round-trip time between two hosts (kernel ping, before the workload), in
wall-clock seconds and in target microseconds, beside the round trip the target's links alone
would give the same path: kernels without netem cannot add a target's link delay (kvfabric adds
none, kvfabric/link_delay.py), so a run states the latency its path really had and the one it
was meant to have."""

from __future__ import annotations

import re
from typing import Any

from ..link_delay import target_propagation_rtt

_RTT = re.compile(r"= ([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+) ms")


def measure_path_rtt(fabric, src: str, dst: str, dilation: float, link_delay_s: float,
                     count: int = 20) -> dict[str, Any]:
    """min/avg/max RTT of ``count`` pings from host ``src`` to host ``dst`` (idle fabric),
    with ``hops``, ``target_link_delay_us`` and ``target_propagation_rtt_us`` (hops x 2 x
    ``link_delay_s``, the target's link delay in target seconds) beside them."""
    intended = target_propagation_rtt(fabric.topo, src, dst, link_delay_s)
    dst_ip = fabric.host_ips[dst]
    proc = fabric.run(src, ["ping", "-q", "-n", "-c", str(count), "-i", "0.01", dst_ip],
                      timeout_s=30.0, check=False)
    match = _RTT.search(proc.stdout or "")
    if not match:
        return {"from": src, "to": dst_ip, "error": "no ping summary", **intended}
    low, avg, high = (float(match.group(i)) / 1e3 for i in (1, 2, 3))
    return {"from": src, "to": dst_ip, "rtt_min_s": low, "rtt_avg_s": avg, "rtt_max_s": high,
            "rtt_min_target_us": low / dilation * 1e6,
            "rtt_avg_target_us": avg / dilation * 1e6, **intended}


def path_rtt_note(rtt: dict[str, Any]) -> str:
    """The approximation a run with a measured ``rtt`` carries: measured against intended."""
    nan = float("nan")
    intended = rtt.get("target_propagation_rtt_us")
    return ("no link delay is added (no netem): the path's real RTT (kernel ping, idle fabric) "
            f"was {rtt.get('rtt_avg_s', nan) * 1e6:.0f} us of wall time, "
            f"{rtt.get('rtt_avg_target_us', nan):.2f} us of target time, against the target's "
            f"{nan if intended is None else intended:g} us of propagation over its "
            f"{rtt.get('hops')} links (hops x 2 x fabric.link_delay; facts.path_rtt); the RoCE "
            "endpoints' own processing adds to it")
