"""One port as the queue agent sees it: its config, its route socket, PFC sockets and marker,
the PFC state it keeps as a sender of PAUSE and as a paused transmitter, and its counters."""

from __future__ import annotations

from fabriccore.netns import in_namespace

from .agent_config import ClassConfig, PortConfig
from .marker_handle import MarkerHandle
from .pfc_frames import MAX_QUANTA, PFC_QUANTUM_BITS, pfc_frame
from .pfc_model import PfcState
from .pfc_sockets import PfcSockets
from .port_qdiscs import PAUSED_RATE_BPS, tbf_burst_bytes, tbf_running_rate_bps
from .tc_netlink import RouteSocket


class PortRuntime:
    """Sockets and PFC state of one port."""

    def __init__(self, cfg: PortConfig):
        self.cfg = cfg
        self.route: RouteSocket | None = None
        self.sockets: PfcSockets | None = None
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

    # -- setup ---------------------------------------------------------------------------
    def open_sockets(self, pfc: bool) -> None:
        """With `pfc`, the port's PFC sockets (receiver, kick and sender, as its classes
        need them)."""
        cfg = self.cfg
        with in_namespace(cfg.netns):
            self.sockets = PfcSockets(
                cfg.ifname, receive=pfc and any(c.pausable for c in cfg.classes),
                send=pfc and any(c.xoff_bytes for c in cfg.classes))

    def open(self, route: RouteSocket, pfc: bool) -> None:
        """After open_sockets: take the namespace's route socket; with `pfc`, build the frames
        and XOFF/XON state of each class that sends PAUSE; open the marker's pins."""
        cfg = self.cfg
        self.route = route
        for cls in cfg.classes:
            if cls.xoff_bytes:
                # Built once: Scapy takes about a millisecond per frame.
                for quanta in (MAX_QUANTA, 0):
                    self.frames[(cls.priority, quanta)] = pfc_frame(cfg.mac, {cls.priority: quanta})
                quanta_s = MAX_QUANTA * PFC_QUANTUM_BITS / cfg.rate_bps
                self.send_states[cls.priority] = PfcState(
                    cls.xoff_bytes, cls.xon_bytes, refresh_s=quanta_s / 2)
        try:
            self.marker = MarkerHandle.open_pinned(cfg.ifname, cfg.netns)
            self.marker.class_names[:len(cfg.classes)] = [c.name for c in cfg.classes]
        except OSError:
            self.marker = None  # no marker on this port: no virtual queue, no bins

    def close(self) -> None:
        if self.sockets is not None:
            self.sockets.close()
        if self.marker is not None:
            self.marker.detach()  # a read-only view: closes fds only

    def pfc_leaves(self) -> set[tuple[int, int]]:
        """(ifindex, leaf) of the lossless classes whose backlog PFC decides on: those of a
        port that sends PAUSE, or of a switch port."""
        cfg = self.cfg
        if any(c.xoff_bytes for c in cfg.classes) or (
                cfg.role != "host" and any(c.lossless for c in cfg.classes)):
            return {(cfg.ifindex, c.leaf) for c in cfg.classes if c.lossless}
        return set()

    def pausable_class(self, priority: int) -> ClassConfig | None:
        return next((c for c in self.cfg.classes if c.priority == priority and c.pausable), None)

    # -- the data plane (raises OSError) -------------------------------------------------
    def send_pfc(self, priority: int, quanta: int) -> bool:
        """Send this port's prebuilt PAUSE (quanta) or RESUME (0) frame for `priority`;
        False when the port sends none."""
        if self.sockets is None or self.sockets.tx is None:
            return False
        return self.sockets.send(self.frames[(priority, quanta)])

    def set_paused(self, cls: ClassConfig, paused: bool) -> None:
        """As this port's transmitter: slow the class's TBF leaf to a near-zero rate (pause)
        or restore it, stop or restart the marker's virtual queue, and on resume kick the
        qdisc so it dequeues again."""
        rate = PAUSED_RATE_BPS if paused else tbf_running_rate_bps(self.cfg.rate_bps)
        self.route.change_tbf(self.cfg.ifindex, cls.leaf, cls.classid, rate_bps=rate,
                              burst_bytes=tbf_burst_bytes(self.cfg.mtu),
                              limit_bytes=cls.limit_bytes)
        if self.marker is not None:
            self.marker.set_paused(cls.name, paused)
        if not paused and self.sockets is not None:
            self.sockets.send_kick(self.cfg.mac)
