"""The serving model driven by KV transfers measured on the emulated fabric.

The model (``serving.cluster``) decides when each prefill ends and which decode instance takes
the KV; every transfer it starts is posted, as one RDMA WRITE, to the RoCE sender of its
prefill host (``traffic.roce_endpoint send --posts stdin``), and the completion the sender
measures comes back through :class:`serving.transfer.ExternalTransfer`, converted to target
time: arrival = the model's start + measured completion time / D.

The fabric only has to run while a transfer is in flight. While none is, nothing on it can
change what the model does next, so the driver runs the model straight to its next event
(the idle stretches of a trace cost no wall time); while transfers are in flight the model's
clock follows the wall clock divided by D, so transfers that overlap in target time overlap
on the fabric.
"""

from __future__ import annotations

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
    fct_emulated_s: float = math.nan
    arrived_s: float = math.nan  # start_s + fct_emulated_s / D


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
    wall_of_target = {"target": 0.0, "wall": time.monotonic()}

    def now_target() -> float:
        return wall_of_target["target"] + (time.monotonic() - wall_of_target["wall"]) / dilation

    def post(transfer: KvTransfer) -> None:
        src, dst = host_of[transfer.src], host_of[transfer.dst]
        size = nic_bytes(transfer.tokens)
        record = MeasuredTransfer(transfer.request_index, src, dst, size, loop.now_s,
                                  max(0.0, now_target() - loop.now_s))
        measured[transfer.request_index] = record
        if size == 0:  # nothing to move: the decode instance holds every block
            record.fct_emulated_s, record.arrived_s = 0.0, loop.now_s
            port.complete(transfer.request_index, loop.now_s)
            return
        proc = senders[src]
        proc.stdin.write(f"{qpn(src, dst)} {size} {transfer.request_index}\n")
        proc.stdin.flush()

    port = ExternalTransfer(post=post)
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
                record = measured[int(done["tag"])]
                record.fct_emulated_s = done["completed_s"] - done["posted_s"]
                record.arrived_s = record.start_s + record.fct_emulated_s / dilation
                port.complete(record.request_index, record.arrived_s)
        if len(measured) != reported:
            reported = len(measured)
            on_progress(f"{reported}/{len(requests)} KV transfers posted, "
                        f"{len(port.in_flight)} in flight")
    return LiveRun(cluster.records, [measured[i] for i in sorted(measured)], port.late_s)
