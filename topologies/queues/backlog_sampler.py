"""The real backlogs of the agent's ports, from one netlink qdisc dump per namespace: the
lossless leaves PFC decides on every sweep, or every class of every port for the record
(queue_samples.csv, on change) and for the resync; the largest backlog and drops of each."""

from __future__ import annotations

from .agent_records import AgentRecords
from .dataplane_errors import DataplaneErrors
from .port_runtime import PortRuntime
from .tc_netlink import RouteSocket


class BacklogSampler:
    """Reads through `routes` (netns -> route socket), which the agent opens."""

    def __init__(self, ports: list[PortRuntime], routes: dict[str | None, RouteSocket],
                 records: AgentRecords, errors: DataplaneErrors):
        self.routes = routes
        self.records = records
        self.errors = errors
        self.ports_in: dict[str | None, list[PortRuntime]] = {}
        for port in ports:
            self.ports_in.setdefault(port.cfg.netns, []).append(port)
        # Lossless leaves of the ports of nodes that send PAUSE, per namespace.
        self.pfc_leaves: dict[str | None, set[tuple[int, int]]] = {}
        for port in ports:
            leaves = port.pfc_leaves()
            if leaves:
                self.pfc_leaves.setdefault(port.cfg.netns, set()).update(leaves)
        self.max_backlog: dict[tuple[str, str], int] = {}
        self.drops: dict[tuple[str, str], int] = {}

    def sample(self, namespaces: list[str | None], now: float,
               pfc_only: bool = False) -> dict[tuple[str, int], int]:
        """Read the real backlogs, (port_id, priority) -> bytes. `pfc_only`: just the lossless
        leaves PFC decides on (the fast path, every sweep); otherwise every class of every
        port."""
        backlog: dict[tuple[str, int], int] = {}
        for netns in namespaces:
            wanted = self.pfc_leaves.get(netns, set()) if pfc_only else None
            if pfc_only and not wanted:
                continue
            try:
                stats = self.routes[netns].dump_qdiscs(wanted)
            except OSError as exc:
                first = self.ports_in[netns][0]
                self.errors.failed("dump_qdiscs", first.cfg.node, first.cfg.ifname, exc)
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
                        self.records.sample(port, cls.name, s, paused, now)
        return backlog
