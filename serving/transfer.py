"""Where KV transfer times come from: the model never assumes one.

A :class:`TransferPort` is handed each transfer and calls ``done()`` on the event loop when it
has arrived. A layer-by-layer transfer (``layerwise``) starts when the prefill starts, its
layers leaving as they are computed: the port is told, chunk by chunk, which of its tokens
are computed when (:meth:`TransferPort.layers`), and when the last layer is ready
(:meth:`TransferPort.source_ready`); it must not report arrival before that.

The emulation's port (:class:`ExternalTransfer`) posts the transfer to the RoCE endpoints and
reports the completion they measure; offline studies and tests use the other ports, which
compute the time from a fixed value, a formula, or durations recorded in an earlier run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from .events import EventLoop


@dataclass(frozen=True)
class KvTransfer:
    """``size_bytes`` of request ``request_index``'s KV from ``src`` to ``dst`` instance."""

    request_index: int
    src: str
    dst: str
    tokens: int
    size_bytes: int
    layerwise: bool = False
    layers: int = 1


class TransferPort(Protocol):
    def start(self, loop: EventLoop, transfer: KvTransfer, done: Callable[[], None]) -> None:
        """Begin ``transfer`` at ``loop.now_s``; schedule ``done`` when it has arrived."""

    def layers(self, loop: EventLoop, transfer: KvTransfer, tokens: int, start_s: float,
               duration_s: float) -> None:
        """``tokens`` more of a layerwise ``transfer``'s tokens are computed layer by layer
        from ``start_s`` over ``duration_s``: layer l's share is ready at ``start_s + (l + 1)
        x duration_s / transfer.layers`` (a duration of 0: ready at ``start_s``, e.g. tokens
        held in the prefill's prefix cache). The calls' tokens sum to ``transfer.tokens``;
        :meth:`source_ready` comes after the last."""

    def source_ready(self, loop: EventLoop, transfer: KvTransfer) -> None:
        """A layerwise ``transfer``'s last layer is computed (called once, at ``now_s``)."""


class _AfterSource:
    """Layerwise bookkeeping for ports that compute an arrival time: ``done`` is scheduled
    at the later of the port's own time and what :meth:`_arrival_s` says once the source is
    ready."""

    def __init__(self) -> None:
        self._waiting: dict[int, tuple[float, Callable[[], None]]] = {}

    def _finish(self, loop: EventLoop, transfer: KvTransfer, at_s: float,
                done: Callable[[], None]) -> None:
        if transfer.layerwise:
            self._waiting[transfer.request_index] = (at_s, done)
        else:
            loop.schedule(at_s, done)

    def _arrival_s(self, loop: EventLoop, transfer: KvTransfer, own_s: float) -> float:
        return max(own_s, loop.now_s)

    def layers(self, loop: EventLoop, transfer: KvTransfer, tokens: int, start_s: float,
               duration_s: float) -> None:
        pass  # these ports compute one arrival per transfer (see _arrival_s)

    def source_ready(self, loop: EventLoop, transfer: KvTransfer) -> None:
        own_s, done = self._waiting.pop(transfer.request_index)
        loop.schedule(self._arrival_s(loop, transfer, own_s), done)


class FixedTransfer(_AfterSource):
    """Every transfer takes ``seconds`` (a test double); a layerwise one arrives no earlier
    than its source is ready."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def start(self, loop: EventLoop, transfer: KvTransfer, done: Callable[[], None]) -> None:
        self._finish(loop, transfer, loop.now_s + self.seconds, done)


class LinkFormulaTransfer(_AfterSource):
    """``latency_s`` + bytes / ``rate_bps``, one transfer at a time per sending and per
    receiving instance (each instance's NIC is a FIFO; no congestion beyond that). A layerwise
    transfer ends no earlier than its last layer's share after the source is ready. A formula
    for tests and first estimates, not a fabric: the emulation measures that."""

    def __init__(self, rate_bps: float, latency_s: float = 0.0) -> None:
        if rate_bps <= 0:
            raise ValueError("rate_bps must be positive")
        super().__init__()
        self.rate_bps, self.latency_s = rate_bps, latency_s
        self._free_at: dict[str, float] = {}

    def _wire_s(self, transfer: KvTransfer) -> float:
        return 8 * transfer.size_bytes / self.rate_bps

    def start(self, loop: EventLoop, transfer: KvTransfer, done: Callable[[], None]) -> None:
        begin = max(loop.now_s, self._free_at.get("tx:" + transfer.src, 0.0),
                    self._free_at.get("rx:" + transfer.dst, 0.0))
        end = begin + self.latency_s + self._wire_s(transfer)
        self._free_at["tx:" + transfer.src] = self._free_at["rx:" + transfer.dst] = end
        self._finish(loop, transfer, end, done)

    def _arrival_s(self, loop: EventLoop, transfer: KvTransfer, own_s: float) -> float:
        last_layer_s = self.latency_s + self._wire_s(transfer) / transfer.layers
        return max(own_s, loop.now_s + last_layer_s)


class RecordedTransfer(_AfterSource):
    """Durations measured in an emulation run, by request index (``default_s`` for others)."""

    def __init__(self, durations_s: Mapping[int, float], default_s: float | None = None) -> None:
        super().__init__()
        self.durations_s, self.default_s = dict(durations_s), default_s

    def start(self, loop: EventLoop, transfer: KvTransfer, done: Callable[[], None]) -> None:
        seconds = self.durations_s.get(transfer.request_index, self.default_s)
        if seconds is None:
            raise KeyError(f"no measured transfer time for request {transfer.request_index}")
        self._finish(loop, transfer, loop.now_s + seconds, done)


class ExternalTransfer:
    """Transfers carried by someone else (the emulated fabric): :meth:`start` hands each to
    ``post`` (a layerwise one's computed layers to ``layers_hook``, its end of computing to
    ``source_ready_hook``) and :meth:`complete` reports its arrival. A real-time driver
    runs the loop up to the present (``loop.run(until_s=now)``) between reports; a transfer
    not yet reported arrives in the future, so no event already run could depend on it. A
    report that comes late (after the loop passed ``arrived_s``) is applied at the loop's
    present, and the lag is kept in :attr:`late_s` so a run can say how much it cost."""

    def __init__(self, post: Callable[[KvTransfer], None] = lambda transfer: None,
                 source_ready_hook: Callable[[KvTransfer], None] = lambda transfer: None,
                 layers_hook: Callable[[KvTransfer, int, float, float], None]
                 = lambda transfer, tokens, start_s, duration_s: None) -> None:
        self.post, self.source_ready_hook = post, source_ready_hook
        self.layers_hook = layers_hook
        self.in_flight: dict[int, tuple[EventLoop, Callable[[], None]]] = {}
        self.late_s: list[float] = []

    def start(self, loop: EventLoop, transfer: KvTransfer, done: Callable[[], None]) -> None:
        self.in_flight[transfer.request_index] = (loop, done)
        self.post(transfer)

    def layers(self, loop: EventLoop, transfer: KvTransfer, tokens: int, start_s: float,
               duration_s: float) -> None:
        self.layers_hook(transfer, tokens, start_s, duration_s)

    def source_ready(self, loop: EventLoop, transfer: KvTransfer) -> None:
        self.source_ready_hook(transfer)  # no more layers: the transfer ends with the last

    def complete(self, request_index: int, arrived_s: float) -> None:
        loop, done = self.in_flight.pop(request_index)
        if arrived_s < loop.now_s:
            self.late_s.append(loop.now_s - arrived_s)
        loop.schedule(max(arrived_s, loop.now_s), done)
