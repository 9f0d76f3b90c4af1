"""The serving model driven by KV transfers measured on the emulated fabric.

The model (``serving.cluster``) decides when each prefill ends and which decode instance takes
the KV; every transfer it starts is posted to the RoCE sender of its prefill host
(``traffic.roce_endpoint send --posts stdin``), and the completion the sender measures comes
back through :class:`serving.transfer.ExternalTransfer`, converted to target time: arrival =
the time the model posted it + measured completion time / D.

A ``whole`` transfer is one RDMA WRITE, posted when the model starts it. A ``layerwise`` one
is one WRITE per layer of each prefill chunk, each posted when the model says that layer is
computed (``TransferPort.layers``; layers already computed when the transfer starts, and
tokens the prefill held in its prefix cache, go at once as one WRITE); it has arrived when
the last of them has, after the prefill's last layer. Bytes of a part are NIC 0's bytes for
the tokens up to its end less those up to its start.

The fabric only has to run while a transfer is in flight. While none is, nothing on it can
change what the model does next, so the driver runs the model straight to its next event
(the idle stretches of a trace cost no wall time); while transfers are in flight the model's
clock follows the wall clock divided by D, so transfers that overlap in target time overlap
on the fabric.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import select
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from serving.cluster import Cluster, ClusterConfig
from serving.events import EventLoop
from serving.metrics import RequestRecord
from serving.transfer import ExternalTransfer, KvTransfer
from traffic.traces import Request


@dataclass
class MeasuredTransfer:
    """One KV transfer as posted and measured; times in target s except ``fct_emulated_s``."""

    request_index: int
    src_host: str
    dst_host: str
    size_bytes: int
    start_s: float
    post_lag_s: float = 0.0  # how late (target s) the driver posted it after the model said
    fct_emulated_s: float = math.nan  # first post to last completion, emulated s
    arrived_s: float = math.nan  # when its last message arrived: posted + its FCT / D
    messages: int = 1  # RDMA WRITEs it was posted as (layerwise: one per computed layer)


@dataclass
class _Parts:
    """A transfer's messages: how many were handed out, how many completed, and whether
    the model will hand out more (a layerwise transfer until its prefill ends)."""

    expected: int = 0
    done: int = 0
    more_to_come: bool = False
    sent_tokens: int = 0
    first_posted_s: float = math.inf  # sender clock (emulated s)
    last_completed_s: float = -math.inf


@dataclass
class LiveRun:
    records: list[RequestRecord]
    transfers: list[MeasuredTransfer]
    late_s: list[float]


class _Lines:
    """Complete lines from a pipe read without blocking."""

    def __init__(self, fd: int) -> None:
        self.fd, self._buffer = fd, b""
        os.set_blocking(fd, False)

    def fileno(self) -> int:
        return self.fd

    def read(self) -> list[str]:
        try:
            chunk = os.read(self.fd, 65536)
        except BlockingIOError:
            return []
        self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        return [line.decode() for line in lines]


def drive(requests: Sequence[Request], config: ClusterConfig, *, senders: dict[str, object],
          host_of: dict[str, str], qpn: Callable[[str, str], int],
          nic_bytes: Callable[[int], int], dilation: float, timeout_s: float,
          on_progress: Callable[[str], None] = lambda text: None) -> LiveRun:
    """Serve ``requests`` disaggregated, with transfers on the fabric. ``senders``: the RoCE
    sender process of each prefill host (started, given their start time); ``host_of``:
    instance name -> fabric host; ``qpn(src_host, dst_host)``: the sender's QPN for that pair;
    ``nic_bytes(tokens)``: the bytes the emulated NIC carries for that many tokens."""
    loop = EventLoop()
    measured: dict[int, MeasuredTransfer] = {}
    parts: dict[int, _Parts] = {}
    due: dict[str, tuple[int, float]] = {}  # message tag -> (request, target s it was due)
    tags = itertools.count()
    wall_of_target = {"target": 0.0, "wall": time.monotonic()}

    def now_target() -> float:
        return wall_of_target["target"] + (time.monotonic() - wall_of_target["wall"]) / dilation

    def send(index: int, size: int) -> None:
        """Post one message of request ``index``'s transfer now (the model's present)."""
        record = measured[index]
        tag = f"{index}.{next(tags)}"
        due[tag] = (index, loop.now_s)
        record.post_lag_s = max(record.post_lag_s, now_target() - loop.now_s)
        proc = senders[record.src_host]
        proc.stdin.write(f"{qpn(record.src_host, record.dst_host)} {size} {tag}\n")
        proc.stdin.flush()

    def finish_if_done(index: int) -> None:
        record, state = measured[index], parts[index]
        if state.more_to_come or state.done < state.expected:
            return
        if state.expected == 0:  # nothing to move: the decode instance holds every block
            record.fct_emulated_s, record.arrived_s = 0.0, loop.now_s
        else:
            record.fct_emulated_s = state.last_completed_s - state.first_posted_s
        record.messages = state.expected
        port.complete(index, record.arrived_s)

    def post(transfer: KvTransfer) -> None:
        index = transfer.request_index
        src, dst = host_of[transfer.src], host_of[transfer.dst]
        size = nic_bytes(transfer.tokens)
        measured[index] = MeasuredTransfer(index, src, dst, size, loop.now_s, 0.0,
                                           arrived_s=loop.now_s)
        parts[index] = state = _Parts(more_to_come=transfer.layerwise)
        if not transfer.layerwise and size:
            state.expected = 1
            send(index, size)
        finish_if_done(index)

    def layers(transfer: KvTransfer, tokens: int, start_s: float, duration_s: float) -> None:
        """One message per layer of this chunk, each when the model computes it; layers
        already computed go together now."""
        index, state = transfer.request_index, parts[transfer.request_index]
        before = nic_bytes(state.sent_tokens)
        state.sent_tokens += tokens
        total = nic_bytes(state.sent_tokens) - before
        count = transfer.layers if duration_s > 0 else 1
        cuts = [total * k // count for k in range(count + 1)]
        times = [start_s + duration_s * (k + 1) / count for k in range(count)]
        now_bytes = sum(cuts[k + 1] - cuts[k] for k in range(count) if times[k] <= loop.now_s)
        if now_bytes:
            state.expected += 1
            send(index, now_bytes)
        for k in range(count):
            size = cuts[k + 1] - cuts[k]
            if times[k] > loop.now_s and size:
                state.expected += 1
                loop.schedule(times[k], lambda size=size: send(index, size))

    def source_ready(transfer: KvTransfer) -> None:
        parts[transfer.request_index].more_to_come = False
        finish_if_done(transfer.request_index)

    port = ExternalTransfer(post=post, layers_hook=layers, source_ready_hook=source_ready)
    cluster = Cluster("disaggregated", config, loop, port)
    for index, request in enumerate(requests):
        loop.schedule(request.arrival_s,
                      lambda index=index, request=request: cluster.arrive(index, request))
    readers = {_Lines(proc.stdout.fileno()): host for host, proc in senders.items()}
    deadline = time.monotonic() + timeout_s
    reported = 0
    while loop.pending or port.in_flight:
        if time.monotonic() > deadline:
            raise RuntimeError(f"serving did not finish in {timeout_s:g} s: "
                               f"{len(port.in_flight)} transfers in flight")
        if not port.in_flight:
            # an idle fabric: run the model to its next event, then follow the wall clock
            loop.run(until_s=loop.next_event_s)
            wall_of_target.update(target=loop.now_s, wall=time.monotonic())
            continue
        loop.run(until_s=now_target())
        wait_s = min(0.02, max(0.0, (loop.next_event_s - now_target()) * dilation))
        ready, _, _ = select.select(list(readers), [], [], wait_s)
        for reader in ready:
            for line in reader.read():
                if '"tag"' not in line:
                    continue
                done = json.loads(line)
                index, due_s = due.pop(done["tag"])
                record, state = measured[index], parts[index]
                state.done += 1
                state.first_posted_s = min(state.first_posted_s, done["posted_s"])
                state.last_completed_s = max(state.last_completed_s, done["completed_s"])
                record.arrived_s = max(record.arrived_s, due_s + (
                    done["completed_s"] - done["posted_s"]) / dilation)
                finish_if_done(index)
        if len(measured) != reported:
            reported = len(measured)
            on_progress(f"{reported}/{len(requests)} KV transfers posted, "
                        f"{len(port.in_flight)} in flight")
    return LiveRun(cluster.records, [measured[i] for i in sorted(measured)], port.late_s)
