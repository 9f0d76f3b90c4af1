"""The queue agent: PFC on the wire, and queue telemetry, for one running fabric.

One process in the root namespace, started by the fabric (``python -m topologies.queues.agent
CONFIG``) and stopped by SIGTERM, after which it flushes its files. Each sweep it:

1. dumps the qdisc statistics of every switch namespace (one netlink dump each, ~70 us), which
   gives the real backlog of every class of every switch port (`BacklogSampler`);
2. runs PFC for each switch ingress port and lossless priority (`PfcControl`, with `PfcState`
   XOFF/XON hysteresis and refresh before the pause quanta run out). Linux qdiscs buffer at
   egress and do not record which ingress a packet came from, so the "bytes buffered for this
   ingress" of 802.1Qbb are approximated by the deepest queue of that priority on the node's
   *other* ports: when one egress queue passes XOFF, every port that could be feeding it is
   paused. That pauses, at worst, ingresses that were not sending to the congested port (more
   head-of-line blocking than a real switch); docs/queues.md says so;
3. sends each PAUSE/RESUME as a real 802.1Qbb frame (01:80:C2:00:00:01, ethertype 0x8808,
   opcode 0x0101, quanta 0xFFFF or 0) out of that port, bypassing its qdisc (`PfcSockets`);
4. receives PFC frames on every port whose egress can be paused (AF_PACKET, ethertype 0x8808)
   and reacts as that port's transmitter (`PortRuntime.set_paused`): the lossless class's TBF
   leaf goes to a near-zero rate (pause) or back (resume), the eBPF marker's virtual queue
   stops or restarts draining, and a small kick frame makes the qdisc dequeue again (Linux has
   no other way to wake a TBF that was slowed down). A pause expires after its quanta, as in
   802.1Qbb;
5. copies the eBPF program's 100 us telemetry bins (queue depth each packet found, marks,
   drops) of every port into telemetry.csv, one port at a time so that each is read every
   100 ms and no sweep carries them all, and pulls each switch port's virtual queue
   onto the real backlog (resync; `MarkerSync`).

Files written into the output folder (`AgentRecords`): queue_samples.csv (real backlog per
sweep, on change), telemetry.csv (100 us bins), pfc_events.csv, pfc_counters.csv, agent.json
(sweep timing).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy  # noqa: F401  (imported now, not at the first telemetry read mid-run)

from ..process_lifetime import die_with_parent
from ..realtime import run_fifo
from .agent_config import AgentConfig, ClassConfig, PortConfig
from .agent_records import AgentRecords
from .agent_registry import register
from .backlog_sampler import BacklogSampler
from .dataplane_errors import DataplaneErrors
from .marker_layout import TL_BIN_NS
from .marker_sync import MarkerSync
from .pfc_control import PfcControl
from .port_runtime import PortRuntime
from .sweep_timing import SweepTiming
from .tc_netlink import RouteSocket

TELEMETRY_PERIOD_S = 0.1
#: Threads that close the ports' packet sockets at the end (each close waits in the kernel).
CLOSE_WORKERS = 32
RESYNC_PERIOD_S = 0.02
FULL_SAMPLE_PERIOD_S = 0.01


class QueueAgent:
    def __init__(self, config: AgentConfig):
        self.config = config
        self.t0 = time.monotonic()
        self.stop = False
        self.scheduling = "default"
        self.ports = [PortRuntime(p) for p in config.ports]
        self.routes: dict[str | None, RouteSocket] = {}
        self.errors = DataplaneErrors()
        self.records = AgentRecords(Path(config.out_dir), self.t0)
        self.timing = SweepTiming()
        self.sampler = BacklogSampler(self.ports, self.routes, self.records, self.errors)
        self.pfc = PfcControl(self.ports, self.records, self.errors)
        self.markers = MarkerSync(self.ports, self.records, self.errors)

    def open(self) -> None:
        # Every port's PFC sockets first, so that their descriptors stay below select()'s
        # limit whatever the number of map descriptors the markers open after them.
        for port in self.ports:
            port.open_sockets(self.config.pfc)
        for netns in {p.cfg.netns for p in self.ports}:
            self.routes[netns] = RouteSocket(netns)
        for port in self.ports:
            port.open(self.routes[port.cfg.netns], self.config.pfc)
        self.pfc.open_ports()
        self.records.open()

    def close(self) -> None:
        # Closing a packet socket waits for a kernel grace period; closed from many threads
        # at once, the waits overlap (192 ports: 5.7 s one after another).
        with ThreadPoolExecutor(max_workers=CLOSE_WORKERS) as pool:
            list(pool.map(lambda port: port.close(), self.ports))
        for route in self.routes.values():
            route.close()

    def run(self) -> None:
        switch_ns = sorted({p.cfg.netns for p in self.ports if p.cfg.role != "host"},
                           key=lambda n: n or "")
        host_ns = sorted({p.cfg.netns for p in self.ports if p.cfg.role == "host"} - set(switch_ns),
                         key=lambda n: n or "")
        timed = self.timing.timed
        next_flush = next_bins = next_resync = next_full = time.monotonic()
        ports_with_bins = max(1, self.markers.telemetry_ports())
        bins_every = TELEMETRY_PERIOD_S / ports_with_bins
        self.timing.begin()
        while not self.stop:
            now = time.monotonic()
            self.timing.start_sweep(now)
            full = now >= next_full
            if full:  # every class of every port, for the record and the resync
                backlog = timed("sample_all", self.sampler.sample, switch_ns + host_ns, now)
                next_full = now + FULL_SAMPLE_PERIOD_S
            else:
                backlog = timed("sample", self.sampler.sample, switch_ns, now, True)
            if self.config.pfc:
                timed("pfc", self.pfc.run, backlog, now)
            if full and now >= next_resync:
                timed("resync", self.markers.resync, backlog)
                next_resync = now + RESYNC_PERIOD_S
            if self.config.telemetry and now >= next_bins:
                # As many ports as fell due (several per sweep on a large fabric), none twice.
                due = min(1 + int((now - next_bins) / bins_every), ports_with_bins)
                for _ in range(due):
                    timed("telemetry", self.markers.read_next_telemetry)
                next_bins = max(next_bins + due * bins_every, now - TELEMETRY_PERIOD_S)
            if now >= next_flush:
                self.records.flush_events()
                next_flush = now + TELEMETRY_PERIOD_S
            # Sleep at least as long as the sweep took: the agent runs SCHED_FIFO and must
            # leave at least half a core to the datapath (OVS userspace) and the traffic.
            busy = time.monotonic() - now
            timed("receive", self.pfc.receive, max(self.config.sweep_s - busy, busy))
        self.finish()

    def finish(self) -> None:
        """Write pfc_counters.csv and agent.json, and close the files."""
        self.pfc.finish(time.monotonic())
        if self.config.telemetry:
            self.markers.read_telemetry()
        self.records.write_counters(self.ports)
        self.records.write_summary({
            "sweeps": self.timing.sweeps,
            "scheduling": self.scheduling,
            "sweep_target_s": self.config.sweep_s,
            **self.timing.period_summary(),
            "telemetry_bin_s": TL_BIN_NS / 1e9,
            "phase_max_s": self.timing.phase_max_s,
            "max_backlog_bytes": {f"{k[0]}/{k[1]}": v
                                  for k, v in self.sampler.max_backlog.items()},
            "drops": {f"{k[0]}/{k[1]}": v for k, v in self.sampler.drops.items() if v},
            "dataplane_errors": self.errors.by_operation,
        })
        self.records.close()


def _realtime_priority() -> str:
    """The agent plays the switch's PFC logic, which reacts in hardware in a real fabric:
    run it SCHED_FIFO (it sleeps in select() every sweep, so it cannot starve the host) so
    that the traffic processes on a 2-core machine do not delay its reaction by tens of ms."""
    if os.environ.get("KVFABRIC_AGENT_REALTIME", "1") == "0":
        return "default"
    scheduling = run_fifo(20)
    if scheduling is not None:
        return scheduling
    try:
        os.nice(-10)
        return "nice -10"
    except OSError:
        return "default"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m topologies.queues.agent CONFIG.json", file=sys.stderr)
        return 2
    config = AgentConfig.from_json(Path(argv[0]).read_text())
    agent = QueueAgent(config)

    def stop(_signum, _frame):
        agent.stop = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    die_with_parent()
    registration = register(config.out_dir)
    scheduling = _realtime_priority() if config.realtime else "default"
    agent.open()
    ready = Path(config.out_dir) / ".agent-ready"
    agent.scheduling = scheduling
    ready.write_text(str(os.getpid()))
    try:
        agent.run()
    finally:
        agent.close()
        ready.unlink(missing_ok=True)
        registration.unlink(missing_ok=True)
    return 0


# The fabric writes the agent's config with these (topologies/fabric.py).
__all__ = ["AgentConfig", "ClassConfig", "PortConfig", "QueueAgent", "main"]

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
