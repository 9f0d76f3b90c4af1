"""What the queue agent does with each port's eBPF marker besides pausing it: pull its virtual
queues onto the real backlogs (resync), and copy its 100 us telemetry bins to telemetry.csv."""

from __future__ import annotations

from .agent_records import AgentRecords
from .dataplane_errors import DataplaneErrors
from .port_runtime import PortRuntime


class MarkerSync:
    def __init__(self, ports: list[PortRuntime], records: AgentRecords,
                 errors: DataplaneErrors):
        self.ports = ports
        self.records = records
        self.errors = errors
        self._last_resync: dict[tuple[str, str], int] = {}
        self._next = 0  # the port read_next_telemetry reads next
        self._with_marker: list[PortRuntime] = []  # set by telemetry_ports()

    def resync(self, backlog: dict[tuple[str, int], int]) -> None:
        """backlog: (port_id, priority) -> real bytes, of every class of every port. Switch
        ports only, and not while PFC pauses the class (its virtual queue does not drain)."""
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
                    self.errors.failed("resync", port.cfg.node, port.cfg.ifname, exc)

    def read_telemetry(self) -> None:
        """Every port's bins at once (at the end)."""
        for port in self.ports:
            self._read_port(port)

    def telemetry_ports(self) -> int:
        """The ports with a marker (known once the agent has opened them)."""
        self._with_marker = [port for port in self.ports if port.marker is not None]
        return len(self._with_marker)

    def read_next_telemetry(self) -> None:
        """The next port's bins, round robin: called every period / ports, each port is read
        once a period and no sweep carries the whole fabric's bins (tens of ms on a loaded
        host, during which the agent could not react to a queue)."""
        if not self._with_marker:
            return
        self._read_port(self._with_marker[self._next % len(self._with_marker)])
        self._next += 1

    def _read_port(self, port: PortRuntime) -> None:
        if port.marker is None:
            return
        try:
            bins = port.marker.read_timeline()
        except (OSError, ValueError):
            return
        self.records.telemetry_bins(port, bins)
