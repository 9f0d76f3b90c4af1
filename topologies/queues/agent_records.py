"""The files the queue agent writes into its output folder: queue_samples.csv (real backlog,
on change), pfc_events.csv, telemetry.csv (the marker's 100 us bins) while it runs;
pfc_counters.csv and agent.json when it stops."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .marker_readings import TimelineBin
from .port_runtime import PortRuntime
from .tc_netlink import QdiscStats

SAMPLE_COLUMNS = ["t_s", "node", "port", "peer", "class", "backlog_bytes", "packets_queued",
                  "drops", "sent_bytes", "paused"]
EVENT_COLUMNS = ["t_s", "node", "port", "peer", "priority", "event"]
TELEMETRY_COLUMNS = ["t_s", "node", "port", "peer", "class", "max_depth_bytes",
                     "last_depth_bytes", "packets", "bytes", "ect_packets", "marks", "drops"]
COUNTER_COLUMNS = ["node", "port", "peer", "priority", "pause_sent", "resume_sent",
                   "pause_received", "resume_received", "pause_expired", "time_paused_s"]


class AgentRecords:
    """The output folder `out`; times are written in seconds since `t0` (monotonic)."""

    def __init__(self, out: Path, t0: float):
        self.out = out
        self.t0 = t0

    def open(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        self.samples_file = open(self.out / "queue_samples.csv", "w", newline="")
        self.samples = csv.writer(self.samples_file)
        self.samples.writerow(SAMPLE_COLUMNS)
        self.events_file = open(self.out / "pfc_events.csv", "w", newline="")
        self.events = csv.writer(self.events_file)
        self.events.writerow(EVENT_COLUMNS)
        self.telemetry_file = open(self.out / "telemetry.csv", "w", newline="")
        self.telemetry = csv.writer(self.telemetry_file)
        self.telemetry.writerow(TELEMETRY_COLUMNS)

    def sample(self, port: PortRuntime, class_name: str, stats: QdiscStats, paused: int,
               now: float) -> None:
        self.samples.writerow([f"{now - self.t0:.6f}", port.cfg.node, port.cfg.ifname,
                               port.cfg.peer, class_name, stats.backlog_bytes, stats.qlen,
                               stats.drops, stats.bytes, paused])

    def event(self, port: PortRuntime, priority: int, event: str, now: float) -> None:
        self.events.writerow([f"{now - self.t0:.6f}", port.cfg.node, port.cfg.ifname,
                              port.cfg.peer, priority, event])

    def flush_events(self) -> None:
        """Readers of the live fabric (the API, the shell) count PFC events from the file."""
        self.events_file.flush()

    def telemetry_bins(self, port: PortRuntime, bins: Iterable[TimelineBin]) -> None:
        t0_ns = self.t0 * 1e9
        for b in bins:
            self.telemetry.writerow([f"{(b.start_ns - t0_ns) / 1e9:.4f}", port.cfg.node,
                                     port.cfg.ifname, port.cfg.peer, b.class_name,
                                     b.max_depth_bytes, b.last_depth_bytes, b.packets,
                                     b.bytes, b.ect_packets, b.marks, b.drops])

    def write_counters(self, ports: Iterable[PortRuntime]) -> None:
        with open(self.out / "pfc_counters.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(COUNTER_COLUMNS)
            for port in ports:
                for priority, c in sorted(port.counters.items()):
                    w.writerow([port.cfg.node, port.cfg.ifname, port.cfg.peer, priority,
                                int(c["pause_sent"]), int(c["resume_sent"]),
                                int(c["pause_received"]), int(c["resume_received"]),
                                int(c["pause_expired"]), f"{c['time_paused_s']:.6f}"])

    def write_summary(self, summary: dict[str, Any]) -> None:
        (self.out / "agent.json").write_text(json.dumps(summary, indent=1))

    def close(self) -> None:
        for f in (self.samples_file, self.events_file, self.telemetry_file):
            f.close()
