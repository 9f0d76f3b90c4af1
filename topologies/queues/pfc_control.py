"""PFC as the queue agent plays it: each node's ports send PAUSE and RESUME on the backlogs of
the node's other ports (XOFF/XON), and each pausable port reacts to the frames it receives as
its transmitter would, until resumed or until the pause quanta run out."""

from __future__ import annotations

import select
import time

from .agent_config import ClassConfig
from .agent_records import AgentRecords
from .dataplane_errors import DataplaneErrors
from .pfc_frames import MAX_QUANTA, PFC_QUANTUM_BITS
from .port_runtime import PortRuntime

#: FD_SETSIZE: select() watches descriptors below it.
SELECT_FD_LIMIT = 1024


class PfcControl:
    """PFC decisions for `ports`. Call `open_ports()` once their sockets are open."""

    def __init__(self, ports: list[PortRuntime], records: AgentRecords,
                 errors: DataplaneErrors):
        self.ports = ports
        self.records = records
        self.errors = errors
        self.rx_ports: dict = {}
        self.pfc_nodes: dict[str, list[PortRuntime]] = {}

    def open_ports(self) -> None:
        self.rx_ports = {p.sockets.rx: p for p in self.ports
                         if p.sockets is not None and p.sockets.rx is not None}
        highest = max((sock.fileno() for sock in self.rx_ports), default=0)
        if highest >= SELECT_FD_LIMIT:
            raise RuntimeError(f"{len(self.rx_ports)} PFC receivers: descriptor {highest} is "
                               f"beyond what select() can watch ({SELECT_FD_LIMIT}); build a "
                               "smaller fabric, or run this study in simulation")
        self.pfc_nodes = {}
        for port in self.ports:
            if port.send_states:
                self.pfc_nodes.setdefault(port.cfg.node, []).append(port)

    def _failed(self, operation: str, port: PortRuntime, exc: Exception) -> None:
        self.errors.failed(operation, port.cfg.node, port.cfg.ifname, exc)

    # -- sending PAUSE -------------------------------------------------------------------
    def _send_pfc(self, port: PortRuntime, priority: int, quanta: int, now: float) -> None:
        try:
            if not port.send_pfc(priority, quanta):
                return
        except OSError as exc:
            self._failed("send_pfc", port, exc)
            return
        kind = "pause_sent" if quanta else "resume_sent"
        port.counter(priority)[kind] += 1
        self.records.event(port, priority, kind, now)

    def run(self, backlog: dict[tuple[str, int], int], now: float) -> None:
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

    # -- reacting to PAUSE ---------------------------------------------------------------
    def set_paused(self, port: PortRuntime, cls: ClassConfig, paused: bool) -> None:
        try:
            port.set_paused(cls, paused)
        except OSError as exc:
            self._failed("set_paused", port, exc)

    def _pause(self, port: PortRuntime, priority: int, quanta: int, now: float) -> None:
        cls = port.pausable_class(priority)
        if cls is None:
            return
        counter = port.counter(priority)
        if quanta:
            counter["pause_received"] += 1
            self.records.event(port, priority, "pause_received", now)
            if priority not in port.paused_until:
                port.paused_since[priority] = now
                self.set_paused(port, cls, True)
            port.paused_until[priority] = now + quanta * PFC_QUANTUM_BITS / port.cfg.rate_bps
        else:
            counter["resume_received"] += 1
            self.records.event(port, priority, "resume_received", now)
            self._resume(port, priority, cls, now)

    def _resume(self, port: PortRuntime, priority: int, cls: ClassConfig | None,
                now: float) -> None:
        if priority not in port.paused_until:
            return
        cls = cls or port.pausable_class(priority)
        del port.paused_until[priority]
        port.counter(priority)["time_paused_s"] += now - port.paused_since.pop(priority)
        self.set_paused(port, cls, False)

    def receive(self, timeout_s: float) -> None:
        """Wait up to `timeout_s` for PFC frames, react to them, then expire the pauses
        whose quanta ran out."""
        if not self.rx_ports:
            time.sleep(max(0.0, timeout_s))
            return
        readable, _, _ = select.select(list(self.rx_ports), [], [], max(0.0, timeout_s))
        now = time.monotonic()
        for sock in readable:
            port = self.rx_ports[sock]
            for parsed in port.sockets.received():
                for priority, quanta in parsed.items():
                    self._pause(port, priority, quanta, now)
        for port in self.ports:
            for priority, until in list(port.paused_until.items()):
                if now >= until:
                    port.counter(priority)["pause_expired"] += 1
                    self.records.event(port, priority, "pause_expired", now)
                    self._resume(port, priority, None, now)

    def finish(self, now: float) -> None:
        """Count the pauses still running, and give every class that sends PAUSE a counter
        row even when nothing happened."""
        for port in self.ports:
            for priority in list(port.paused_until):
                port.counter(priority)["time_paused_s"] += now - port.paused_since[priority]
            for priority in port.send_states:
                port.counter(priority)
