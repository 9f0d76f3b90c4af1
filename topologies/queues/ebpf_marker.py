"""Attach the eBPF ECN marker (ebpf/ecn_marker.bpf.c) on clsact egress.

This is the ECN backend for kernels without the `red` qdisc: the program keeps a virtual copy
of each class queue, drained at the class rate, and marks ECT packets on the class's RED ramp.
A telemetry loop that reads the real qdisc backlog can `resync` the virtual queue to it, which
removes the drift a shaper running late on a busy host would otherwise add.
tc loads the object (argv, inside the interface's netns; the clsact qdisc and the lookup of
the program's id go over netlink in-process); we then find the program by id,
pin its maps under /sys/fs/bpf/kvfabric/<netns>/<ifname>/ (marker_pins; never tc's shared
globals) and read them with bpf(2) directly (marker_handle), which costs microseconds instead
of a bpftool process. The maps' layouts are in marker_layout.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from fabriccore.naming import BPF_PIN_DIR
from fabriccore.netns import in_namespace
from topologies.queues.bpf_syscall import BpfMap, map_fd_by_id, prog_fd_by_id, prog_map_ids
from topologies.queues.bpf_tc import compile_bpf, ensure_bpffs, remove_filter, tc
from topologies.queues.marker_handle import MarkerError, MarkerHandle
from topologies.queues.marker_layout import MAP_NAMES
from topologies.queues.marker_pins import pin_dir_for, remove_pins
from topologies.queues.spec import PortQueues
from topologies.queues.tc_netlink import RouteSocket

SOURCE_PATH = Path(__file__).with_name("ebpf") / "ecn_marker.bpf.c"
SECTION = "tc"
DEFAULT_PREF = 49152  # high pref number = runs after other filters a fabric may add


def compile_marker(clang: str = "clang", cache: Path | None = None) -> Path:
    """The marker's object file, compiled once per source and clang into `cache`."""
    return compile_bpf(SOURCE_PATH, clang, cache)


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
        with in_namespace(netns):
            ifindex = socket.if_nametoindex(ifname)
        with RouteSocket(netns) as route:
            if not route.has_qdisc(ifindex, "clsact"):
                route.add_clsact(ifindex)
                created_clsact = True
            tc(netns, ["filter", "add", "dev", ifname, "egress", "pref", str(pref), "handle",
                       "1", "bpf", "direct-action", "obj", str(obj), "sec", SECTION])
            attached = True
            prog_ids = route.egress_bpf_prog_ids(ifindex, pref)
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
