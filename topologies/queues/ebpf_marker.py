"""Attach, configure and read the eBPF ECN marker (ebpf/ecn_marker.bpf.c) on clsact egress.

This is the ECN backend for kernels without the `red` qdisc: the program keeps a virtual copy
of each class queue, drained at the class rate, and marks ECT packets on the class's RED ramp.
A telemetry loop that reads the real qdisc backlog can `resync` the virtual queue to it, which
removes the drift a shaper running late on a busy host would otherwise add.
tc loads the object (argv, inside the interface's netns); we then find the program by id,
pin its maps under /sys/fs/bpf/kvfabric/<netns>/<ifname>/ (never tc's shared globals) and
read them with bpf(2) directly, which costs microseconds instead of a bpftool process.
"""

from __future__ import annotations

import math
import mmap
import os
import struct
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from fabriccore.naming import BPF_PIN_DIR
from topologies.queues.bpf_syscall import (
    BPF_F_LOCK,
    BpfMap,
    map_fd_by_id,
    prog_fd_by_id,
    prog_map_ids,
)
from topologies.queues.bpf_tc import (
    cache_dir,
    compile_bpf,
    ensure_bpffs,
    filters,
    has_clsact,
    remove_filter,
    tc,
)
from topologies.queues.spec import PortQueues

SOURCE_PATH = Path(__file__).with_name("ebpf") / "ecn_marker.bpf.c"
SECTION = "tc"
DEFAULT_PREF = 49152  # high pref number = runs after other filters a fabric may add

# Must match ecn_marker.bpf.c.
MAX_CLASSES = 8
HIST_BUCKETS = 16
CFG_ENABLED = 1 << 0
CFG_ECN = 1 << 1
CFG_SET_PRIORITY = 1 << 2
CFG_PAUSED = 1 << 3
CFG_TIMELINE = 1 << 4
TL_BIN_NS = 100_000
TL_SLOTS = 4096
FP_ONE = 1 << 32
_CFG = struct.Struct("=8QII")          # struct class_cfg
_VQ = struct.Struct("=IIqQq")  # struct vq_state: spin lock, pad, bytes, last_ns, adj_applied
_ADJ = struct.Struct("=q")
_CNT = struct.Struct(f"={7 + 3 * HIST_BUCKETS}Q")  # struct class_counters
_TL = struct.Struct("=4Q4I")  # struct tl_slot
_TL_DTYPE = [("bin", "<u8"), ("max_depth", "<u8"), ("last_depth", "<u8"), ("bytes", "<u8"),
             ("packets", "<u4"), ("marks", "<u4"), ("drops", "<u4"), ("ect", "<u4")]
MAP_NAMES = ("kvf_dscp", "kvf_cfg", "kvf_vq", "kvf_adj", "kvf_cnt", "kvf_tl")
_VALUE_SIZES = {"kvf_dscp": 4, "kvf_cfg": _CFG.size, "kvf_vq": _VQ.size, "kvf_adj": _ADJ.size,
                "kvf_cnt": _CNT.size, "kvf_tl": _TL.size}
# Largest buffer for which elapsed * rate_fp cannot overflow 64 bits in the program.
_MAX_LIMIT_BYTES = 1 << 31


def compile_marker(clang: str = "clang", cache: Path | None = None) -> Path:
    """The marker's object file, compiled once per source and clang into `cache`."""
    return compile_bpf(SOURCE_PATH, clang, cache)


# ---- counters ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class ClassCounters:
    """One class's counters, summed over CPUs, plus its current virtual-queue depth."""

    name: str
    packets: int
    bytes: int
    ect_packets: int
    marks: int
    ce_in: int
    vq_drops: int
    depth_sum_bytes: int
    hist_bucket_bytes: int
    hist_packets: tuple[int, ...]
    hist_ect: tuple[int, ...]
    hist_marks: tuple[int, ...]
    vq_depth_bytes: float

    @property
    def mean_depth_bytes(self) -> float:
        return self.depth_sum_bytes / self.packets if self.packets else 0.0

    @property
    def mark_fraction(self) -> float:
        return self.marks / self.ect_packets if self.ect_packets else 0.0


def _sum_counters(slots: list[bytes]) -> list[int]:
    totals = [0] * (_CNT.size // 8)
    for slot in slots:
        for i, v in enumerate(_CNT.unpack(slot)):
            totals[i] += v
    return totals


@dataclass(frozen=True)
class TimelineBin:
    """One class's packets in one TL_BIN_NS bin, as the program saw them at enqueue."""

    class_name: str
    bin: int                # CLOCK_MONOTONIC ns // TL_BIN_NS
    max_depth_bytes: int
    last_depth_bytes: int
    bytes: int
    packets: int
    marks: int
    drops: int
    ect_packets: int

    @property
    def start_ns(self) -> int:
        return self.bin * TL_BIN_NS


# ---- the handle --------------------------------------------------------------------------------

class MarkerError(RuntimeError):
    """The marker could not be attached or read."""


class MarkerHandle:
    """An attached marker: configure classes, read counters and depths, detach.

    Use as a context manager or call `detach()`; detach removes the tc filter, the clsact
    qdisc if we added it and nothing else uses it, and the pins.
    """

    def __init__(self, ifname: str, netns: str | None, pref: int, pin_dir: Path,
                 maps: dict[str, BpfMap], *, owner: bool, created_clsact: bool = False,
                 prog_id: int | None = None):
        self.ifname = ifname
        self.netns = netns
        self.pref = pref
        self.pin_dir = pin_dir
        self.maps = maps
        self.owner = owner
        self.created_clsact = created_clsact
        self.prog_id = prog_id
        self.class_names: list[str] = [f"class{i}" for i in range(MAX_CLASSES)]
        self._rate_fp = [0] * MAX_CLASSES
        self._burst_bytes = [0] * MAX_CLASSES
        self._hist_bucket_bytes = [0] * MAX_CLASSES
        self._detached = False
        self._flags = [0] * MAX_CLASSES
        self._timeline: mmap.mmap | None = None
        self._timeline_next_bin = [0] * MAX_CLASSES
        for name, size in _VALUE_SIZES.items():
            if maps[name].info.value_size != size:
                raise MarkerError(f"map {name} value is {maps[name].info.value_size} B, "
                                  f"Python expects {size} B: layouts out of sync")

    @classmethod
    def open_pinned(cls, ifname: str, netns: str | None, queues: PortQueues | None = None,
                    pin_root: Path = BPF_PIN_DIR) -> MarkerHandle:
        """A read-only view of a marker another process attached (telemetry); its detach
        only closes our file descriptors."""
        pin_dir = pin_dir_for(ifname, netns, pin_root)
        maps = {name: BpfMap.from_pin(pin_dir / name) for name in MAP_NAMES}
        handle = cls(ifname, netns, 0, pin_dir, maps, owner=False)
        if queues is not None:
            handle.class_names[:len(queues.classes)] = [c.name for c in queues.classes]
        handle._load_rates()
        return handle

    # -- PFC and telemetry

    def set_paused(self, name: str, paused: bool) -> None:
        """Tell the program that PFC paused (or resumed) class `name`, so its virtual queue
        stops (or restarts) draining."""
        index = self._index(name)
        cfg_map = self.maps["kvf_cfg"]
        fields = list(_CFG.unpack(cfg_map.lookup(index)))
        fields[8] = fields[8] | CFG_PAUSED if paused else fields[8] & ~CFG_PAUSED
        cfg_map.update(index, _CFG.pack(*fields))

    def set_ecn(self, name: str, on: bool) -> bool:
        """Turn the program's ECN marking of class `name` on or off (its ramp stays in the
        map); returns whether it was on."""
        index = self._index(name)
        cfg_map = self.maps["kvf_cfg"]
        fields = list(_CFG.unpack(cfg_map.lookup(index)))
        was_on = bool(fields[8] & CFG_ECN)
        fields[8] = fields[8] | CFG_ECN if on else fields[8] & ~CFG_ECN
        cfg_map.update(index, _CFG.pack(*fields))
        return was_on

    def map_ids(self) -> dict[str, int]:
        """Kernel ids of the maps: another process opens them by id from any namespace."""
        return {name: m.info.map_id for name, m in self.maps.items()}

    def read_timeline(self) -> list[TimelineBin]:
        """Bins completed since the last call, every enabled class, oldest first. Bins older
        than TL_SLOTS x TL_BIN_NS (410 ms) are overwritten: call at least every ~200 ms."""
        import numpy as np

        if self._timeline is None:
            tl_map = self.maps["kvf_tl"]
            self._timeline = mmap.mmap(tl_map.fd, _TL.size * MAX_CLASSES * TL_SLOTS,
                                       flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)
            now_bin = time.monotonic_ns() // TL_BIN_NS
            self._timeline_next_bin = [now_bin - TL_SLOTS + 1] * MAX_CLASSES
        current = time.monotonic_ns() // TL_BIN_NS  # still filling: left for the next call
        slots = np.frombuffer(self._timeline, dtype=_TL_DTYPE).reshape(MAX_CLASSES, TL_SLOTS)
        out: list[TimelineBin] = []
        for index in range(MAX_CLASSES):
            if not self._rate_fp[index]:
                continue
            first = max(self._timeline_next_bin[index], current - TL_SLOTS + 1)
            self._timeline_next_bin[index] = current
            # Copy only the slots of the bins wanted (fancy indexing copies).
            ring = slots[index][np.arange(first, current) % TL_SLOTS]
            keep = (ring["bin"] >= first) & (ring["bin"] < current) & (ring["packets"] > 0)
            name = self.class_names[index]
            for row in ring[keep].tolist():
                out.append(TimelineBin(name, *row))
        out.sort(key=lambda t: t.bin)
        return out

    def __enter__(self) -> MarkerHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.detach()

    # -- configuration

    def configure(self, queues: PortQueues, *, drain_rates_bps: Mapping[str, int] | None = None,
                  burst_bytes: int = 0, hist_bucket_bytes: int | None = None,
                  skb_priority: Mapping[str, int] | None = None, reset: bool = True,
                  timeline: bool = False, ecn: bool = True) -> None:
        """Write the DSCP map and per-class config for `queues`.

        Each class's virtual queue drains at `drain_rates_bps[name]`, default the port rate:
        exact for a class alone on the link or with HTB rate == ceil, an underestimate of the
        real queue while weighted classes compete (pass their shares then). `burst_bytes` is
        the shaper's bucket (HTB `burst`): after idle time that many bytes pass the real queue
        at once, so the virtual one banks the same credit. The histogram
        spans the class buffer unless `hist_bucket_bytes` is given. `skb_priority` maps class
        names to an skb->priority to set (an HTB classid such as 0x1000a for 1:10), so HTB
        can classify by the same DSCP map. `reset` zeroes virtual queues and counters.
        `timeline` records 100 us telemetry bins (read_timeline); `ecn=False` leaves marking
        to another backend (kernel RED) and keeps classification and counters.
        """
        rates = dict(drain_rates_bps or {})
        unknown = set(rates) | set(skb_priority or {})
        unknown -= {c.name for c in queues.classes}
        if unknown:
            raise ValueError(f"unknown classes {sorted(unknown)}")
        dscp_map, cfg_map = self.maps["kvf_dscp"], self.maps["kvf_cfg"]
        for index in range(MAX_CLASSES):
            cfg_map.update(index, _CFG.pack(*[0] * 10))  # disable while the map changes
        for dscp, index in enumerate(queues.dscp_class_indices()):
            dscp_map.update(dscp, struct.pack("=I", index))
        if reset:
            self.reset()
        for index, cls in enumerate(queues.classes):
            rate_bps = rates.get(cls.name, queues.rate_bps)
            cfg_map.update(index, _pack_cfg(cls, rate_bps, burst_bytes, hist_bucket_bytes,
                                            (skb_priority or {}).get(cls.name),
                                            timeline=timeline, ecn=ecn))
            self.class_names[index] = cls.name
        self._load_rates()

    def reset(self) -> None:
        """Zero every virtual queue and counter."""
        zero_cnt = bytes(_CNT.size)
        for index in range(MAX_CLASSES):
            # Corrections first: a packet in between then sees adj == adj_applied == 0 soon.
            self.maps["kvf_adj"].update(index, _ADJ.pack(0))
            self.maps["kvf_vq"].update(index, _VQ.pack(0, 0, 0, 0, 0), BPF_F_LOCK)
            self.maps["kvf_cnt"].update(index, zero_cnt)

    def _load_rates(self) -> None:
        for index in range(MAX_CLASSES):
            fields = _CFG.unpack(self.maps["kvf_cfg"].lookup(index))
            self._flags[index] = fields[8]
            self._rate_fp[index] = fields[0] if fields[8] & CFG_ENABLED else 0
            self._burst_bytes[index] = fields[3]
            self._hist_bucket_bytes[index] = fields[7]

    # -- reading

    def _index(self, name: str) -> int:
        try:
            return self.class_names.index(name)
        except ValueError:
            raise KeyError(name) from None

    def _vq_raw_bytes(self, index: int) -> float:
        """The program's count as it would be now: stored bytes plus corrections it has not
        applied yet, less what drained since its last packet; negative = shaper credit."""
        _, _, count, last_ns, applied = _VQ.unpack(self.maps["kvf_vq"].lookup(index, BPF_F_LOCK))
        pending = _ADJ.unpack(self.maps["kvf_adj"].lookup(index))[0] - applied
        now_ns = time.monotonic_ns()  # the clock of bpf_ktime_get_ns
        drained = max(0, now_ns - last_ns) * self._rate_fp[index] / FP_ONE
        return max(count + pending - drained, -self._burst_bytes[index])

    def vq_depth_bytes(self, name: str) -> float:
        """Virtual-queue depth of class `name` now (the program itself only updates it when
        a packet passes, so the drain since then is applied here)."""
        return max(0.0, self._vq_raw_bytes(self._index(name)))

    def correct(self, name: str, delta_bytes: float) -> None:
        """Add `delta_bytes` to the virtual queue of `name`; the program folds it in at its
        next packet. Keep one corrector per marker: the map holds a running total."""
        index = self._index(name)
        adj_map = self.maps["kvf_adj"]
        total = _ADJ.unpack(adj_map.lookup(index))[0] + round(delta_bytes)
        adj_map.update(index, _ADJ.pack(total))

    def resync(self, name: str, read_backlog_bytes: Callable[[], int]) -> float:
        """Pull the virtual queue of `name` onto the real backlog and return the correction.

        HTB on a busy host runs under its rate when its softirq runs late (we measured 0-4 %
        at 20 Mbit/s on a shared 2-core VM, with stalls of tens of ms), so a virtual queue
        left alone drifts low for as long as the real one stays backlogged. Calling this
        every few ms to tens of ms bounds that drift. The real backlog is read between two
        virtual reads and compared with their mean; call it from one thread per marker.
        """
        index = self._index(name)
        before = self._vq_raw_bytes(index)
        real = read_backlog_bytes()
        after = self._vq_raw_bytes(index)
        virtual = (before + after) / 2
        if real <= 0 and virtual <= 0:
            return 0.0  # both idle: keep the shaper credit
        self.correct(name, real - virtual)
        return real - virtual

    def read_counters(self) -> dict[str, ClassCounters]:
        """Counters of every enabled class, keyed by class name."""
        out: dict[str, ClassCounters] = {}
        for index in range(MAX_CLASSES):
            if not self._rate_fp[index]:
                continue
            name = self.class_names[index]
            v = _sum_counters(self.maps["kvf_cnt"].lookup_per_cpu(index))
            h0, h1, h2 = 7, 7 + HIST_BUCKETS, 7 + 2 * HIST_BUCKETS
            out[name] = ClassCounters(
                name=name, packets=v[0], bytes=v[1], ect_packets=v[2], marks=v[3], ce_in=v[4],
                vq_drops=v[5], depth_sum_bytes=v[6],
                hist_bucket_bytes=self._hist_bucket_bytes[index],
                hist_packets=tuple(v[h0:h1]), hist_ect=tuple(v[h1:h2]),
                hist_marks=tuple(v[h2:h2 + HIST_BUCKETS]),
                vq_depth_bytes=self.vq_depth_bytes(name))
        return out

    # -- teardown

    def release(self) -> None:
        """Close our descriptors and remove the pins, leaving the tc filter: for teardown,
        where the interface (and its filter) is about to be deleted anyway."""
        if self._detached:
            return
        self._detached = True
        if self._timeline is not None:
            self._timeline.close()
            self._timeline = None
        for bpf_map in self.maps.values():
            bpf_map.close()
        if self.owner:
            remove_pins(self.pin_dir)

    def detach(self) -> None:
        """Remove filter, our clsact (if unused) and pins; safe to call twice, and after the
        namespace is gone. Raises the first real tc error after cleaning all it can. On a
        read-only view (`open_pinned`) it only closes our descriptors."""
        if self._detached:
            return
        self._detached = True
        errors: list[Exception] = []
        if self.owner:
            errors += remove_filter(self.netns, self.ifname, self.pref, self.created_clsact)
        if self._timeline is not None:
            self._timeline.close()
            self._timeline = None
        for bpf_map in self.maps.values():
            bpf_map.close()
        if self.owner:  # a reader's pins are the owner's
            remove_pins(self.pin_dir)
        if errors:
            raise errors[0]


def _pack_cfg(cls, rate_bps: int, burst_bytes: int, hist_bucket_bytes: int | None,
              skb_priority: int | None, *, timeline: bool = False, ecn: bool = True) -> bytes:
    if rate_bps <= 0:
        raise ValueError(f"class {cls.name}: drain rate must be positive, got {rate_bps}")
    if cls.buffer_bytes >= _MAX_LIMIT_BYTES or not 0 <= burst_bytes < _MAX_LIMIT_BYTES:
        raise ValueError(f"class {cls.name}: buffer {cls.buffer_bytes} B and burst "
                         f"{burst_bytes} B must each be in 0..2 GiB")
    rate_bytes_per_ns = rate_bps / 8 / 1e9
    rate_fp = max(1, round(rate_bytes_per_ns * FP_ONE))
    drain_all_ns = math.ceil((cls.buffer_bytes + burst_bytes) / rate_bytes_per_ns) + 1
    bucket = hist_bucket_bytes or max(1, math.ceil(cls.buffer_bytes / HIST_BUCKETS))
    flags = CFG_ENABLED
    kmin = kmax = pmax_fp = 0
    if timeline:
        flags |= CFG_TIMELINE
    if cls.ecn is not None and ecn:
        flags |= CFG_ECN
        kmin, kmax = cls.ecn.kmin_bytes, cls.ecn.kmax_bytes
        pmax_fp = round(cls.ecn.pmax * FP_ONE)
    if skb_priority is not None:
        flags |= CFG_SET_PRIORITY
    return _CFG.pack(rate_fp, drain_all_ns, cls.buffer_bytes, burst_bytes, kmin, kmax, pmax_fp,
                     bucket, flags, skb_priority or 0)


def pin_dir_for(ifname: str, netns: str | None, pin_root: Path = BPF_PIN_DIR) -> Path:
    """/sys/fs/bpf/kvfabric/<netns or 'root'>/<ifname>: one directory per attached marker."""
    for part in (ifname, netns or "root"):
        if not part or "/" in part or part.startswith("."):
            raise ValueError(f"unsafe name for a pin path: {part!r}")
    return pin_root / (netns or "root") / ifname


def remove_pins(pin_dir: Path) -> None:
    """Unlink our map pins and the now-empty per-interface and per-netns directories.

    The kvfabric root stays: another marker may be pinning into it right now."""
    for name in MAP_NAMES:
        (pin_dir / name).unlink(missing_ok=True)
    for directory in (pin_dir, pin_dir.parent):
        try:
            directory.rmdir()
        except OSError:
            break  # missing, or still used by another interface's marker


def attach_marker(ifname: str, netns: str | None = None, *,
                  queues: PortQueues | None = None, pref: int = DEFAULT_PREF,
                  clang: str = "clang", cache: Path | None = None,
                  pin_root: Path = BPF_PIN_DIR) -> MarkerHandle:
    """Compile (cached in `cache`, default `cache_dir()`), attach at clsact egress of `ifname`
    in `netns`, pin the maps, and configure `queues` if given. Anything half-done is undone
    if a step fails."""
    obj = compile_marker(clang, cache)
    ensure_bpffs(pin_root)
    pin_dir = pin_dir_for(ifname, netns, pin_root)
    remove_pins(pin_dir)  # leftovers of a crashed run at our own path
    created_clsact = False
    attached = False
    maps: dict[str, BpfMap] = {}
    try:
        if not has_clsact(netns, ifname):
            tc(netns, ["qdisc", "add", "dev", ifname, "clsact"])
            created_clsact = True
        tc(netns, ["filter", "add", "dev", ifname, "egress", "pref", str(pref), "handle", "1",
                    "bpf", "direct-action", "obj", str(obj), "sec", SECTION])
        attached = True
        prog_ids = [f["options"]["prog"]["id"] for f in filters(netns, ifname, "egress", pref)
                    if "prog" in f.get("options", {})]
        if len(prog_ids) != 1:
            raise MarkerError(f"expected one program at {ifname} egress pref {pref}, "
                              f"found {prog_ids}")
        prog_fd = prog_fd_by_id(prog_ids[0])
        try:
            for map_id in prog_map_ids(prog_fd):
                bpf_map = BpfMap(map_fd_by_id(map_id))
                if bpf_map.info.name in MAP_NAMES:
                    maps[bpf_map.info.name] = bpf_map
                else:
                    bpf_map.close()  # e.g. .rodata/.bss that libbpf may add
        finally:
            os.close(prog_fd)
        missing = set(MAP_NAMES) - set(maps)
        if missing:
            raise MarkerError(f"program {prog_ids[0]} lacks maps {sorted(missing)}")
        pin_dir.mkdir(parents=True, exist_ok=True)
        for name, bpf_map in maps.items():
            bpf_map.pin(pin_dir / name)
        handle = MarkerHandle(ifname, netns, pref, pin_dir, maps, owner=True,
                              created_clsact=created_clsact, prog_id=prog_ids[0])
        if queues is not None:
            handle.configure(queues)
        return handle
    except BaseException:
        for bpf_map in maps.values():
            bpf_map.close()
        remove_pins(pin_dir)
        if attached or created_clsact:
            remove_filter(netns, ifname, pref, created_clsact)
        raise


__all__ = [
    "ClassCounters",
    "MarkerError",
    "MarkerHandle",
    "TimelineBin",
    "attach_marker",
    "cache_dir",
    "compile_marker",
    "ensure_bpffs",
    "pin_dir_for",
    "remove_pins",
]
