"""Helpers shared by the OpenFlow workloads: root-namespace port counters sampled in a thread,
the controller's event log, and the JSON-line protocol of the traffic tools."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from topologies.openflow import port_name
from topologies.paths import switch_port


def uplink_ifaces(fabric, switch: str) -> dict[str, str]:
    """OVS port name -> the switch at its other end, for switch's switch-facing ports."""
    topo = fabric.topo
    result = {}
    for plan in fabric.plans:
        for end, other in ((plan.a, plan.b), (plan.b, plan.a)):
            if end.node == switch and topo.role(other.node) != "host":
                result[port_name(end.ifname)] = other.node
    return dict(sorted(result.items(), key=lambda kv: switch_port(topo, switch, kv[1])))


def tx_bytes(ifname: str) -> int:
    return int(Path(f"/sys/class/net/{ifname}/statistics/tx_bytes").read_text())


class CounterSampler:
    """Samples tx_bytes of root-namespace interfaces every interval_s (wall clock)."""

    def __init__(self, ifaces: list[str], interval_s: float):
        self.ifaces, self.interval_s = ifaces, interval_s
        self.rows: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            now = time.time()
            for name in self.ifaces:
                try:
                    self.rows.append({"t": now, "iface": name, "tx_bytes": tx_bytes(name)})
                except OSError:
                    pass
            self._stop.wait(self.interval_s)

    def __enter__(self) -> CounterSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def rates(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-interface rate between consecutive samples: rows with t, iface, rate_bps."""
    last: dict[str, dict] = {}
    out = []
    for row in rows:
        t, name, value = float(row["t"]), row["iface"], int(row["tx_bytes"])
        prev = last.get(name)
        if prev and t > prev["t"]:
            out.append({"t": t, "iface": name,
                        "rate_bps": 8 * (value - prev["v"]) / (t - prev["t"])})
        last[name] = {"t": t, "v": value}
    return out


def controller_events(run_dir: Path, kind: str | None = None) -> list[dict[str, Any]]:
    path = run_dir / "controller-events.jsonl"
    if not path.exists():
        return []
    events = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [e for e in events if kind is None or e["kind"] == kind]


def read_json_line(stream, key: str, timeout_s: float = 60.0) -> dict[str, Any]:
    """The next JSON line on stream that has key (other lines are skipped)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            raise RuntimeError(f"traffic tool exited before reporting {key!r}")
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if key in data:
            return data
    raise TimeoutError(f"no {key!r} line within {timeout_s:g} s")
