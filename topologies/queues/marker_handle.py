"""A handle on one attached eBPF ECN marker, through its maps: configure its classes, pause
them for PFC, resync and read their virtual queues, read counters and telemetry, detach."""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from fabriccore.naming import BPF_PIN_DIR
from topologies.queues.bpf_syscall import BPF_F_LOCK, BpfMap
from topologies.queues.bpf_tc import remove_filter
from topologies.queues.marker_layout import (
    ADJ,
    CFG_ECN,
    CFG_ENABLED,
    CFG_PAUSED,
    CLASS_CFG,
    COUNTERS,
    FP_ONE,
    HIST_BUCKETS,
    MAP_NAMES,
    MAX_CLASSES,
    VALUE_SIZES,
    VQ_STATE,
    pack_class_cfg,
    sum_counters,
)
from topologies.queues.marker_pins import pin_dir_for, remove_pins
from topologies.queues.marker_readings import ClassCounters, TimelineBin
from topologies.queues.marker_timeline import TimelineRing
from topologies.queues.spec import PortQueues


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
        for name, size in VALUE_SIZES.items():
            if maps[name].info.value_size != size:
                raise MarkerError(f"map {name} value is {maps[name].info.value_size} B, "
                                  f"Python expects {size} B: layouts out of sync")
        self._timeline = TimelineRing(maps["kvf_tl"])

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
        fields = list(CLASS_CFG.unpack(cfg_map.lookup(index)))
        fields[8] = fields[8] | CFG_PAUSED if paused else fields[8] & ~CFG_PAUSED
        cfg_map.update(index, CLASS_CFG.pack(*fields))

    def set_ecn(self, name: str, on: bool) -> bool:
        """Turn the program's ECN marking of class `name` on or off (its ramp stays in the
        map); returns whether it was on."""
        index = self._index(name)
        cfg_map = self.maps["kvf_cfg"]
        fields = list(CLASS_CFG.unpack(cfg_map.lookup(index)))
        was_on = bool(fields[8] & CFG_ECN)
        fields[8] = fields[8] | CFG_ECN if on else fields[8] & ~CFG_ECN
        cfg_map.update(index, CLASS_CFG.pack(*fields))
        return was_on

    def map_ids(self) -> dict[str, int]:
        """Kernel ids of the maps: another process opens them by id from any namespace."""
        return {name: m.info.map_id for name, m in self.maps.items()}

    def read_timeline(self) -> list[TimelineBin]:
        """Bins completed since the last call, every enabled class, oldest first. Bins older
        than TL_SLOTS x TL_BIN_NS (410 ms) are overwritten: call at least every ~200 ms."""
        return self._timeline.read([bool(r) for r in self._rate_fp], self.class_names)

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
            cfg_map.update(index, CLASS_CFG.pack(*[0] * 10))  # disable while the map changes
        for dscp, index in enumerate(queues.dscp_class_indices()):
            dscp_map.update(dscp, struct.pack("=I", index))
        if reset:
            self.reset()
        for index, cls in enumerate(queues.classes):
            rate_bps = rates.get(cls.name, queues.rate_bps)
            cfg_map.update(index, pack_class_cfg(cls, rate_bps, burst_bytes, hist_bucket_bytes,
                                                 (skb_priority or {}).get(cls.name),
                                                 timeline=timeline, ecn=ecn))
            self.class_names[index] = cls.name
        self._load_rates()

    def reset(self) -> None:
        """Zero every virtual queue and counter."""
        zero_cnt = bytes(COUNTERS.size)
        for index in range(MAX_CLASSES):
            # Corrections first: a packet in between then sees adj == adj_applied == 0 soon.
            self.maps["kvf_adj"].update(index, ADJ.pack(0))
            self.maps["kvf_vq"].update(index, VQ_STATE.pack(0, 0, 0, 0, 0), BPF_F_LOCK)
            self.maps["kvf_cnt"].update(index, zero_cnt)

    def _load_rates(self) -> None:
        for index in range(MAX_CLASSES):
            fields = CLASS_CFG.unpack(self.maps["kvf_cfg"].lookup(index))
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
        _, _, count, last_ns, applied = VQ_STATE.unpack(
            self.maps["kvf_vq"].lookup(index, BPF_F_LOCK))
        pending = ADJ.unpack(self.maps["kvf_adj"].lookup(index))[0] - applied
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
        total = ADJ.unpack(adj_map.lookup(index))[0] + round(delta_bytes)
        adj_map.update(index, ADJ.pack(total))

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
            v = sum_counters(self.maps["kvf_cnt"].lookup_per_cpu(index))
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

    def _close_and_unpin(self) -> None:
        self._timeline.close()
        for bpf_map in self.maps.values():
            bpf_map.close()
        if self.owner:  # a reader's pins are the owner's
            remove_pins(self.pin_dir)

    def release(self) -> None:
        """Close our descriptors and remove the pins, leaving the tc filter: for teardown,
        where the interface (and its filter) is about to be deleted anyway."""
        if self._detached:
            return
        self._detached = True
        self._close_and_unpin()

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
        self._close_and_unpin()
        if errors:
            raise errors[0]
