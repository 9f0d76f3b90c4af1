"""ECN marking at dequeue for the receiver's downlink, decided by the responder.

HPCC's ns-3 switch marks a packet when it leaves the queue, against the depth it leaves
behind, so the mark reaches the receiver at once. Linux (and kvfabric's eBPF marker) marks at
enqueue, against the depth the packet finds, so the mark then waits out the queue it measured:
the control loop sees the queue one queueing delay late, and a deep queue makes itself deeper.

On the last hop the packet a receiver gets is the one that just left the switch port facing
it (a veth adds no delay). So the responder can mark it as a dequeuing switch would: it reads
that port's virtual queue (the eBPF marker's maps, opened by id from any namespace) and
draws the RED ramp against its depth now; the workload turns the port's own marking off for
the run. Other ports still mark at enqueue.
"""

from __future__ import annotations

import random
import struct
import time
from collections.abc import Callable

from topologies.queues.bpf_syscall import BPF_F_LOCK, BpfMap, map_fd_by_id

# Layouts of ecn_marker.bpf.c (as in topologies/queues/marker_layout.py).
_CFG = struct.Struct("=8QII")
_VQ = struct.Struct("=IIqQq")
_ADJ = struct.Struct("=q")
_CFG_PAUSED = 1 << 3
_FP_ONE = 1 << 32


def ramp_marks(depth_bytes: float, kmin_bytes: int, kmax_bytes: int, pmax: float,
               u: float) -> bool:
    """The marker's RED ramp: never at or below Kmin, with probability rising linearly to
    Pmax at Kmax, always above Kmax; ``u`` is a uniform draw in [0, 1)."""
    if depth_bytes <= kmin_bytes:
        return False
    if depth_bytes > kmax_bytes:
        return True
    return u < pmax * (depth_bytes - kmin_bytes) / (kmax_bytes - kmin_bytes)


class DequeueMarker:
    """Reads one class's virtual queue of a switch port's marker and draws marks on its ramp.

    ``spec`` is ``VQ_ID:ADJ_ID:CFG_ID:CLASS_INDEX`` (BPF map ids and the class's index)."""

    def __init__(self, spec: str, seed: int = 1) -> None:
        vq_id, adj_id, cfg_id, index = (int(x) for x in spec.split(":"))
        self._vq = BpfMap(map_fd_by_id(vq_id))
        self._adj = BpfMap(map_fd_by_id(adj_id))
        self._cfg = BpfMap(map_fd_by_id(cfg_id))
        self._index = index
        fields = _CFG.unpack(self._cfg.lookup(index))
        self._rate_fp, self._burst = fields[0], fields[3]
        self.kmin_bytes, self.kmax_bytes = fields[4], fields[5]
        self.pmax = fields[6] / _FP_ONE
        self._rng = random.Random(seed)
        self.decisions = 0
        self.marks = 0

    def depth_bytes(self) -> float:
        """The virtual queue's depth now, as the program would compute it at its next packet."""
        flags = _CFG.unpack(self._cfg.lookup(self._index))[8]
        _, _, count, last_ns, applied = _VQ.unpack(self._vq.lookup(self._index, BPF_F_LOCK))
        pending = _ADJ.unpack(self._adj.lookup(self._index))[0] - applied
        drained = 0.0
        if not flags & _CFG_PAUSED:
            drained = max(0, time.monotonic_ns() - last_ns) * self._rate_fp / _FP_ONE
        return max(0.0, count + pending - drained)

    def mark(self, depth_bytes: float) -> bool:
        self.decisions += 1
        marked = ramp_marks(depth_bytes, self.kmin_bytes, self.kmax_bytes, self.pmax,
                            self._rng.random())
        self.marks += marked
        return marked

    def close(self) -> None:
        for bpf_map in (self._vq, self._adj, self._cfg):
            bpf_map.close()


class DepthCache:
    """A depth read at most once per ``refresh_s`` (pure, clock-injected: ``depth(now_s)``).

    The packets a receiver handles within a few microseconds of each other left the queue
    together and share a read; as time moves on the depth is read again. (A read per wake-up
    is not enough: a busy receiver can go a whole run without finding its socket empty, and
    would mark every packet against the first depth it saw.)"""

    def __init__(self, read: Callable[[], float], refresh_s: float) -> None:
        self._read = read
        self.refresh_s = refresh_s
        self._value = 0.0
        self._read_at: float | None = None
        self.reads = 0

    def depth(self, now_s: float) -> float:
        if self._read_at is None or now_s - self._read_at >= self.refresh_s:
            self._value = self._read()
            self._read_at = now_s
            self.reads += 1
        return self._value

