"""The queue agent: PFC on the wire, and queue telemetry, for one running fabric.

One process in the root namespace, started by the fabric (``python -m topologies.queues.agent
CONFIG``) and stopped by SIGTERM, after which it flushes its files. Each sweep it:

1. dumps the qdisc statistics of every switch namespace (one netlink dump each, ~70 us), which
   gives the real backlog of every class of every switch port;
2. runs PFC for each switch ingress port and lossless priority (`PfcState`, XOFF/XON
   hysteresis and refresh before the pause quanta run out). Linux qdiscs buffer at egress and
   do not record which ingress a packet came from, so the "bytes buffered for this ingress"
   of 802.1Qbb are approximated by the deepest queue of that priority on the node's *other*
   ports: when one egress queue passes XOFF, every port that could be feeding it is paused.
   That pauses, at worst, ingresses that were not sending to the congested port (more
   head-of-line blocking than a real switch); docs/queues.md says so;
3. sends each PAUSE/RESUME as a real 802.1Qbb frame (01:80:C2:00:00:01, ethertype 0x8808,
   opcode 0x0101, quanta 0xFFFF or 0) out of that port, bypassing its qdisc;
4. receives PFC frames on every port whose egress can be paused (AF_PACKET, ethertype 0x8808)
   and reacts as that port's transmitter: the lossless class's TBF leaf goes to a near-zero
   rate (pause) or back (resume), the eBPF marker's virtual queue stops or restarts draining,
   and a small kick frame makes the qdisc dequeue again (Linux has no other way to wake a
   TBF that was slowed down). A pause expires after its quanta, as in 802.1Qbb;
5. every 100 ms, copies the eBPF program's 100 us telemetry bins (queue depth each packet found,
   marks, drops) of every port into telemetry.csv, and pulls each switch port's virtual queue
   onto the real backlog (resync).

Files written into the output folder: queue_samples.csv (real backlog per sweep, on change),
telemetry.csv (100 us bins), pfc_events.csv, pfc_counters.csv, agent.json (sweep timing).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import select
import signal
import socket
import statistics
import struct
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy  # noqa: F401  (imported now, not at the first telemetry read mid-run)

from ..process_lifetime import die_with_parent
from .ebpf_marker import TL_BIN_NS, MarkerHandle
from .pfc_frames import MAX_QUANTA, PFC_QUANTUM_BITS, parse_pfc_bytes, pfc_frame
from .pfc_model import PfcState
from .port_qdiscs import PAUSED_RATE_BPS, tbf_burst_bytes, tbf_running_rate_bps
from .tc_netlink import RouteSocket, in_namespace

ETH_P_PFC = 0x8808
SOL_PACKET = 263
PACKET_QDISC_BYPASS = 20
PACKET_OUTGOING = 4
#: IEEE 802 "local experimental" ethertype: the kick frame the peer drops.
KICK_ETHERTYPE = 0x88B5
TELEMETRY_PERIOD_S = 0.1
RESYNC_PERIOD_S = 0.02
FULL_SAMPLE_PERIOD_S = 0.01


@dataclass
class ClassConfig:
    name: str
    index: int
    priority: int
    lossless: bool
    pausable: bool
    classid: int
    leaf: int
    limit_bytes: int
    xoff_bytes: int = 0      # 0: this port sends no PAUSE for the class
    xon_bytes: int = 0


@dataclass
class PortConfig:
    port_id: str            # "<node>:<ifname>"
    node: str
    role: str               # host | leaf | spine | switch
    netns: str | None
    ifname: str
    ifindex: int
    mac: str
    peer: str
    rate_bps: int
    mtu: int
    classes: list[ClassConfig] = field(default_factory=list)


@dataclass
class AgentConfig:
    out_dir: str
    ports: list[PortConfig]
    pfc: bool = True
    telemetry: bool = True
    sweep_s: float = 0.0005
    realtime: bool = True    # SCHED_FIFO; off where a userspace datapath needs the CPU

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> AgentConfig:
        raw = json.loads(text)
        ports = [PortConfig(**{**p, "classes": [ClassConfig(**c) for c in p["classes"]]})
                 for p in raw.pop("ports")]
        return cls(ports=ports, **raw)


def _mac_bytes(mac: str) -> bytes:
    return bytes(int(x, 16) for x in mac.split(":"))


class PortRuntime:
    """Sockets and PFC state of one port."""

    def __init__(self, cfg: PortConfig):
        self.cfg = cfg
        self.route: RouteSocket | None = None
        self.rx: socket.socket | None = None
        self.tx: socket.socket | None = None
        self.kick: socket.socket | None = None
        self.marker: MarkerHandle | None = None
        self.send_states: dict[int, PfcState] = {}           # priority -> ingress state
        self.paused_until: dict[int, float] = {}             # priority -> expiry (transmitter)
        self.paused_since: dict[int, float] = {}
        self.counters: dict[int, dict[str, float]] = {}
        self.frames: dict[tuple[int, int], bytes] = {}       # (priority, quanta) -> frame
        self.last_sample: dict[str, tuple] = {}

    def counter(self, priority: int) -> dict[str, float]:
        return self.counters.setdefault(priority, {
            "pause_sent": 0, "resume_sent": 0, "pause_received": 0, "resume_received": 0,
            "pause_expired": 0, "time_paused_s": 0.0})


class QueueAgent:
    def __init__(self, config: AgentConfig):
        self.config = config
        self.out = Path(config.out_dir)
        self.ports = [PortRuntime(p) for p in config.ports]
        self.ports_in: dict[str | None, list[PortRuntime]] = {}
        for port in self.ports:
            self.ports_in.setdefault(port.cfg.netns, []).append(port)
        self.routes: dict[str | None, RouteSocket] = {}
        self.t0 = time.monotonic()
        self.stop = False
        self.sweep_periods: list[float] = []
        self.sweeps = 0
        self.scheduling = "default"
        self._last_resync: dict[tuple[str, str], int] = {}
        self.phase_max_s: dict[str, float] = {}
        self.max_backlog: dict[tuple[str, str], int] = {}
        self.drops: dict[tuple[str, str], int] = {}
        #: operation -> {"count", "first"}: data-plane calls that failed (agent.json).
        self.errors: dict[str, dict[str, Any]] = {}

    #: Failed calls that mean PFC did not act: a pause or resume frame not sent, a port's
    #: lossless class not paused or resumed, the backlogs PFC decides on not read.
    PFC_OPERATIONS = ("send_pfc", "set_paused", "dump_qdiscs")

    # -- setup ---------------------------------------------------------------------------
    def open(self) -> None:
        for netns in {p.cfg.netns for p in self.ports}:
            self.routes[netns] = RouteSocket(netns)
        for port in self.ports:
            cfg = port.cfg
            port.route = self.routes[cfg.netns]
            with in_namespace(cfg.netns):
                if any(c.pausable for c in cfg.classes) and self.config.pfc:
                    port.rx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW,
                                            socket.htons(ETH_P_PFC))
                    port.rx.bind((cfg.ifname, ETH_P_PFC))
                    port.rx.setblocking(False)
                    port.kick = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
                    port.kick.bind((cfg.ifname, 0))
                if any(c.xoff_bytes for c in cfg.classes) and self.config.pfc:
                    port.tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
                    port.tx.setsockopt(SOL_PACKET, PACKET_QDISC_BYPASS, 1)
                    port.tx.bind((cfg.ifname, 0))
            for cls in cfg.classes:
                if cls.xoff_bytes:
                    # Built once: Scapy takes about a millisecond per frame.
                    for quanta in (MAX_QUANTA, 0):
                        port.frames[(cls.priority, quanta)] = pfc_frame(
                            cfg.mac, {cls.priority: quanta})
                    quanta_s = MAX_QUANTA * PFC_QUANTUM_BITS / cfg.rate_bps
                    port.send_states[cls.priority] = PfcState(
                        cls.xoff_bytes, cls.xon_bytes, refresh_s=quanta_s / 2)
            try:
                port.marker = MarkerHandle.open_pinned(cfg.ifname, cfg.netns)
                port.marker.class_names[:len(cfg.classes)] = [c.name for c in cfg.classes]
            except OSError:
                port.marker = None  # no marker on this port: no virtual queue, no bins
        # Lossless leaves of the ports of nodes that send PAUSE, per namespace.
        self.pfc_leaves: dict[str | None, set[tuple[int, int]]] = {}
        for port in self.ports:
            if any(c.xoff_bytes for c in port.cfg.classes) or (
                    port.cfg.role != "host" and any(c.lossless for c in port.cfg.classes)):
                self.pfc_leaves.setdefault(port.cfg.netns, set()).update(
                    (port.cfg.ifindex, c.leaf) for c in port.cfg.classes if c.lossless)
        self.rx_ports = {p.rx: p for p in self.ports if p.rx is not None}
        self.pfc_nodes: dict[str, list[PortRuntime]] = {}
        for port in self.ports:
            if port.send_states:
                self.pfc_nodes.setdefault(port.cfg.node, []).append(port)
        self.out.mkdir(parents=True, exist_ok=True)
        self.samples_file = open(self.out / "queue_samples.csv", "w", newline="")
        self.samples = csv.writer(self.samples_file)
        self.samples.writerow(["t_s", "node", "port", "peer", "class", "backlog_bytes",
                               "packets_queued", "drops", "sent_bytes", "paused"])
        self.events_file = open(self.out / "pfc_events.csv", "w", newline="")
        self.events = csv.writer(self.events_file)
        self.events.writerow(["t_s", "node", "port", "peer", "priority", "event"])
        self.telemetry_file = open(self.out / "telemetry.csv", "w", newline="")
        self.telemetry = csv.writer(self.telemetry_file)
        self.telemetry.writerow(["t_s", "node", "port", "peer", "class", "max_depth_bytes",
                                 "last_depth_bytes", "packets", "bytes", "ect_packets", "marks",
                                 "drops"])

    def close(self) -> None:
        for port in self.ports:
            for sock in (port.rx, port.tx, port.kick):
                if sock is not None:
                    sock.close()
            if port.marker is not None:
                port.marker.detach()  # a read-only view: closes fds only
        for route in self.routes.values():
            route.close()

    def _failed(self, operation: str, port: PortRuntime, exc: Exception) -> None:
        """Count a failed data-plane call; the run fails if PFC could not act (see
        PFC_OPERATIONS) and says so with the first failure."""
        entry = self.errors.setdefault(operation, {"count": 0, "first": ""})
        entry["count"] += 1
        if not entry["first"]:
            entry["first"] = f"{port.cfg.node} {port.cfg.ifname}: {exc}"

    # -- PFC -----------------------------------------------------------------------------
    def _event(self, port: PortRuntime, priority: int, event: str, now: float) -> None:
        self.events.writerow([f"{now - self.t0:.6f}", port.cfg.node, port.cfg.ifname,
                              port.cfg.peer, priority, event])

    def _send_pfc(self, port: PortRuntime, priority: int, quanta: int, now: float) -> None:
        if port.tx is None:
            return
        try:
            port.tx.send(port.frames[(priority, quanta)])
        except OSError as exc:
            self._failed("send_pfc", port, exc)
            return
        kind = "pause_sent" if quanta else "resume_sent"
        port.counter(priority)[kind] += 1
        self._event(port, priority, kind, now)

    def _run_pfc(self, backlog: dict[tuple[str, int], int], now: float) -> None:
        """backlog: (port_id, priority) -> bytes in that port's lossless queue."""
        for ports in self.pfc_nodes.values():
            for port in ports:
                for priority, state in port.send_states.items():
                    depth = max((backlog.get((other.cfg.port_id, priority), 0)
                                 for other in ports if other is not port), default=0)
                    action = state.on_depth(depth, now)
                    if action == "pause":
                        self._send_pfc(port, priority, MAX_QUANTA, now)
                    elif action == "resume":
                        self._send_pfc(port, priority, 0, now)

    def _set_paused(self, port: PortRuntime, cls: ClassConfig, paused: bool) -> None:
        rate = PAUSED_RATE_BPS if paused else tbf_running_rate_bps(port.cfg.rate_bps)
        try:
            port.route.change_tbf(port.cfg.ifindex, cls.leaf, cls.classid, rate_bps=rate,
                                  burst_bytes=tbf_burst_bytes(port.cfg.mtu),
                                  limit_bytes=cls.limit_bytes)
            if port.marker is not None:
                port.marker.set_paused(cls.name, paused)
            if not paused and port.kick is not None:
                port.kick.send(_mac_bytes(port.cfg.mac) + _mac_bytes(port.cfg.mac)
                               + struct.pack("!H", KICK_ETHERTYPE) + bytes(46))
        except OSError as exc:
            self._failed("set_paused", port, exc)

    def _pause(self, port: PortRuntime, priority: int, quanta: int, now: float) -> None:
        cls = next((c for c in port.cfg.classes if c.priority == priority and c.pausable), None)
        if cls is None:
            return
        counter = port.counter(priority)
        if quanta:
            counter["pause_received"] += 1
            self._event(port, priority, "pause_received", now)
            if priority not in port.paused_until:
                port.paused_since[priority] = now
                self._set_paused(port, cls, True)
            port.paused_until[priority] = now + quanta * PFC_QUANTUM_BITS / port.cfg.rate_bps
        else:
            counter["resume_received"] += 1
            self._event(port, priority, "resume_received", now)
            self._resume(port, priority, cls, now)

    def _resume(self, port: PortRuntime, priority: int, cls: ClassConfig | None,
                now: float) -> None:
        if priority not in port.paused_until:
            return
        cls = cls or next(c for c in port.cfg.classes if c.priority == priority and c.pausable)
        del port.paused_until[priority]
        port.counter(priority)["time_paused_s"] += now - port.paused_since.pop(priority)
        self._set_paused(port, cls, False)

    def _receive(self, timeout_s: float) -> None:
        if not self.rx_ports:
            time.sleep(max(0.0, timeout_s))
            return
        readable, _, _ = select.select(list(self.rx_ports), [], [], max(0.0, timeout_s))
        now = time.monotonic()
        for sock in readable:
            port = self.rx_ports[sock]
            while True:
                try:
                    frame, addr = sock.recvfrom(256)
                except BlockingIOError:
                    break
                if addr[2] == PACKET_OUTGOING:
                    continue
                parsed = parse_pfc_bytes(frame)
                for priority, quanta in (parsed or {}).items():
                    self._pause(port, priority, quanta, now)
        for port in self.ports:
            for priority, until in list(port.paused_until.items()):
                if now >= until:
                    port.counter(priority)["pause_expired"] += 1
                    self._event(port, priority, "pause_expired", now)
                    self._resume(port, priority, None, now)

    # -- sampling ------------------------------------------------------------------------
    def _sample(self, namespaces: list[str | None], now: float,
                pfc_only: bool = False) -> dict[tuple[str, int], int]:
        """Read the real backlogs. `pfc_only`: just the lossless leaves PFC decides on (the
        fast path, every sweep); otherwise every class of every port."""
        backlog: dict[tuple[str, int], int] = {}
        for netns in namespaces:
            wanted = self.pfc_leaves.get(netns, set()) if pfc_only else None
            if pfc_only and not wanted:
                continue
            try:
                stats = self.routes[netns].dump_qdiscs(wanted)
            except OSError as exc:
                self._failed("dump_qdiscs", self.ports_in[netns][0], exc)
                continue
            by_key = {(s.ifindex, s.handle): s for s in stats}
            for port in self.ports_in[netns]:
                ifindex = port.cfg.ifindex
                for cls in port.cfg.classes:
                    if pfc_only and (ifindex, cls.leaf) not in wanted:
                        continue
                    s = by_key.get((ifindex, cls.leaf))
                    if s is None:
                        continue
                    backlog[(port.cfg.port_id, cls.priority)] = s.backlog_bytes
                    key = (port.cfg.port_id, cls.name)
                    self.max_backlog[key] = max(self.max_backlog.get(key, 0), s.backlog_bytes)
                    self.drops[key] = s.drops
                    paused = int(cls.priority in port.paused_until and cls.pausable)
                    row = (s.backlog_bytes, s.qlen, s.drops, paused)
                    if port.last_sample.get(cls.name) != row:
                        port.last_sample[cls.name] = row
                        self.samples.writerow([f"{now - self.t0:.6f}", port.cfg.node,
                                               port.cfg.ifname, port.cfg.peer, cls.name,
                                               s.backlog_bytes, s.qlen, s.drops, s.bytes,
                                               paused])
        return backlog

    def _resync(self, backlog: dict[tuple[str, int], int]) -> None:
        for port in self.ports:
            if port.marker is None or port.cfg.role == "host":
                continue
            for cls in port.cfg.classes:
                real = backlog.get((port.cfg.port_id, cls.priority))
                if real is None or cls.priority in port.paused_until:
                    continue
                key = (port.cfg.port_id, cls.name)
                if real == 0 and self._last_resync.get(key) == 0:
                    continue  # idle: the virtual queue has drained by itself
                self._last_resync[key] = real
                try:
                    port.marker.resync(cls.name, lambda r=real: r)
                except (OSError, KeyError) as exc:
                    self._failed("resync", port, exc)

    def _read_telemetry(self) -> None:
        for port in self.ports:
            if port.marker is None:
                continue
            try:
                bins = port.marker.read_timeline()
            except (OSError, ValueError):
                continue
            t0_ns = self.t0 * 1e9
            for b in bins:
                self.telemetry.writerow([f"{(b.start_ns - t0_ns) / 1e9:.4f}", port.cfg.node,
                                         port.cfg.ifname, port.cfg.peer, b.class_name,
                                         b.max_depth_bytes, b.last_depth_bytes, b.packets,
                                         b.bytes, b.ect_packets, b.marks, b.drops])

    # -- main loop -----------------------------------------------------------------------
    def run(self) -> None:
        switch_ns = sorted({p.cfg.netns for p in self.ports if p.cfg.role != "host"},
                           key=lambda n: n or "")
        host_ns = sorted({p.cfg.netns for p in self.ports if p.cfg.role == "host"} - set(switch_ns),
                         key=lambda n: n or "")
        next_telemetry = next_resync = next_full = time.monotonic()
        last = time.monotonic()
        while not self.stop:
            now = time.monotonic()
            self.sweep_periods.append(now - last)
            last = now
            self.sweeps += 1
            full = now >= next_full
            if full:  # every class of every port, for the record and the resync
                backlog = self._timed("sample_all", self._sample, switch_ns + host_ns, now)
                next_full = now + FULL_SAMPLE_PERIOD_S
            else:
                backlog = self._timed("sample", self._sample, switch_ns, now, True)
            if self.config.pfc:
                self._timed("pfc", self._run_pfc, backlog, now)
            if full and now >= next_resync:
                self._timed("resync", self._resync, backlog)
                next_resync = now + RESYNC_PERIOD_S
            if now >= next_telemetry:
                if self.config.telemetry:
                    self._timed("telemetry", self._read_telemetry)
                # Readers of the live fabric (the API, the shell) count PFC events from it.
                self.events_file.flush()
                next_telemetry = now + TELEMETRY_PERIOD_S
            # Sleep at least as long as the sweep took: the agent runs SCHED_FIFO and must
            # leave at least half a core to the datapath (OVS userspace) and the traffic.
            busy = time.monotonic() - now
            self._timed("receive", self._receive, max(self.config.sweep_s - busy, busy))
        self._finish()

    def _timed(self, phase: str, func, *args):
        start = time.monotonic()
        result = func(*args)
        took = time.monotonic() - start
        if took > self.phase_max_s.get(phase, 0.0):
            self.phase_max_s[phase] = took
        return result

    def _finish(self) -> None:
        now = time.monotonic()
        for port in self.ports:
            for priority in list(port.paused_until):
                port.counter(priority)["time_paused_s"] += now - port.paused_since[priority]
            for priority in port.send_states:
                port.counter(priority)  # a row even when nothing happened
        if self.config.telemetry:
            self._read_telemetry()
        with open(self.out / "pfc_counters.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["node", "port", "peer", "priority", "pause_sent", "resume_sent",
                        "pause_received", "resume_received", "pause_expired", "time_paused_s"])
            for port in self.ports:
                for priority, c in sorted(port.counters.items()):
                    w.writerow([port.cfg.node, port.cfg.ifname, port.cfg.peer, priority,
                                int(c["pause_sent"]), int(c["resume_sent"]),
                                int(c["pause_received"]), int(c["resume_received"]),
                                int(c["pause_expired"]), f"{c['time_paused_s']:.6f}"])
        periods = sorted(self.sweep_periods[1:]) or [0.0]
        summary = {
            "sweeps": self.sweeps,
            "scheduling": self.scheduling,
            "sweep_target_s": self.config.sweep_s,
            "sweep_period_median_s": statistics.median(periods),
            "sweep_period_p90_s": periods[int(0.9 * (len(periods) - 1))],
            "sweep_period_p99_s": periods[int(0.99 * (len(periods) - 1))],
            "sweep_period_max_s": periods[-1],
            "telemetry_bin_s": TL_BIN_NS / 1e9,
            "phase_max_s": self.phase_max_s,
            "max_backlog_bytes": {f"{k[0]}/{k[1]}": v for k, v in self.max_backlog.items()},
            "drops": {f"{k[0]}/{k[1]}": v for k, v in self.drops.items() if v},
            "dataplane_errors": self.errors,
        }
        (self.out / "agent.json").write_text(json.dumps(summary, indent=1))
        for f in (self.samples_file, self.events_file, self.telemetry_file):
            f.close()


def _realtime_priority() -> str:
    """The agent plays the switch's PFC logic, which reacts in hardware in a real fabric:
    run it SCHED_FIFO (it sleeps in select() every sweep, so it cannot starve the host) so
    that the traffic processes on a 2-core machine do not delay its reaction by tens of ms."""
    if os.environ.get("KVFABRIC_AGENT_REALTIME", "1") == "0":
        return "default"
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(20))
        return "SCHED_FIFO 20"
    except (OSError, AttributeError):
        try:
            os.nice(-10)
            return "nice -10"
        except OSError:
            return "default"


AGENT_DIR = Path("/run/kvfabric/agents")


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def live_agent_pids() -> list[int]:
    """Agents that registered themselves and are still this program (pid not reused)."""
    if not AGENT_DIR.is_dir():
        return []
    pids = []
    for entry in AGENT_DIR.iterdir():
        pid = int(entry.name) if entry.name.isdigit() else None
        if pid and "topologies.queues.agent" in _cmdline(pid):
            pids.append(pid)
        else:
            entry.unlink(missing_ok=True)  # stale registration
    return sorted(pids)


def stop_agents(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        (AGENT_DIR / str(pid)).unlink(missing_ok=True)


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
    AGENT_DIR.mkdir(parents=True, exist_ok=True)
    registration = AGENT_DIR / str(os.getpid())
    registration.write_text(config.out_dir)
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


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
