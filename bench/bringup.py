"""Bring-up and teardown times of a 2-spine, 4-leaf, 4-hosts-per-leaf fabric: kvfabric's l3 and
openflow modes beside plain Mininet building the same Topo, in one run. Run as root:
``make bench`` (or ``.venv/bin/python bench/bringup.py [--repeat N]``).

``--scale``: bring-up at scale. kvfabric's full bring-up as a run does it (l3, traffic classes,
an eBPF marker on every port, the queue agent) of 4-spine leaf-spines with 16, 64 and 128
hosts, beside plain Mininet's bare bring-up of the same shapes, with the phases and the cost
per node. Targets: at 64 hosts at most 0.8 of Mininet's time, and the cost linear in nodes
up to 128 hosts (the time per added node from 64 to 128 hosts at most 1.25 times that from
16 to 64).

The Mininet baseline uses only the TCLink features this kernel has: without netem, TCLink's
queue limit would fail on every port (an error line each, and a tc call that changes
nothing), so it is left out and the output says so; errors Mininet still logs are counted
and summarised in one line."""

from __future__ import annotations

import argparse
import logging
import statistics
import time

from fabriccore.backends import Backends
from fabriccore.capabilities import probe_host
from kvfabric.lock import fabric_lock
from topologies.fabric import Fabric
from topologies.leafspine import LeafSpine
from topologies.queues.settings import QueueSettings

SHAPE = {"spines": 2, "leaves": 4, "hosts_per_leaf": 4}


#: --scale: 4 spines, 8 hosts per leaf; 2, 8 and 16 leaves.
SCALE_SHAPES = [{"spines": 4, "leaves": n, "hosts_per_leaf": 8} for n in (2, 8, 16)]
TARGET_RATIO_AT_64 = 0.8
TARGET_MARGINAL_GROWTH = 1.25


def time_kvfabric(mode: str, backends: Backends, shape: dict = SHAPE,
                  queues: QueueSettings | None = None) -> tuple[float, float, dict]:
    fabric = Fabric(LeafSpine(**shape), mode, backends=backends, queues=queues)
    start = time.perf_counter()
    try:
        fabric.build()
        up = time.perf_counter() - start
    finally:
        start = time.perf_counter()
        fabric.teardown()
    return up, time.perf_counter() - start, dict(fabric.build_timings.phases_s)


def mininet_baseline(has_netem: bool) -> str:
    """What the plain-Mininet baseline shapes with on this host, for the bench's output."""
    if has_netem:
        return ("plain Mininet: userspace OVS (standalone), TCLink: HTB at the link rate over "
                "a netem queue limit of the port buffer in frames; no routes or flows")
    return ("plain Mininet: userspace OVS (standalone), TCLink: HTB at the link rate, no "
            "queue limit (this kernel has no netem, which TCLink needs for one; kvfabric "
            "adds a byte-limited FIFO per port); no routes or flows")


class _MininetErrors(logging.Handler):
    """Mininet's error lines, counted instead of printed (one per tc command that failed)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage().strip())


def time_mininet(has_netem: bool, errors: _MininetErrors,
                 shape: dict = SHAPE) -> tuple[float, float]:
    """Plain Mininet building the same Topo with the TCLink features this kernel has (see
    ``mininet_baseline``); its log's errors go to ``errors``, summarised by ``main``."""
    from functools import partial

    from mininet.link import TCLink
    from mininet.log import lg, setLogLevel
    from mininet.net import Mininet
    from mininet.node import OVSSwitch

    class BaselineLink(TCLink):
        def __init__(self, *args, **params):
            if not has_netem:  # TCLink implements max_queue_size with netem only
                params.pop("max_queue_size", None)
            super().__init__(*args, **params)

    setLogLevel("error")
    console = list(lg.handlers)
    for handler in console:
        lg.removeHandler(handler)
    lg.addHandler(errors)
    try:
        switch = partial(OVSSwitch, datapath="user", failMode="standalone")
        start = time.perf_counter()
        # stp=False: like kvfabric's fabric, the baseline's bridges run no spanning tree.
        net = Mininet(topo=LeafSpine(**shape, stp=False), switch=switch, link=BaselineLink,
                      controller=None, autoSetMacs=True)
        try:
            net.start()
        except SystemExit:  # Mininet exits on a failed switch start (is OVS running?)
            raise RuntimeError("plain Mininet could not start: " + "; ".join(
                errors.messages[-3:]) + " (start Open vSwitch: ovs-ctl start)") from None
        up = time.perf_counter() - start
        start = time.perf_counter()
        net.stop()
        return up, time.perf_counter() - start
    finally:
        lg.removeHandler(errors)
        for handler in console:
            lg.addHandler(handler)


def nodes(shape: dict) -> int:
    return shape["spines"] + shape["leaves"] * (1 + shape["hosts_per_leaf"])


def scale(backends: Backends, has_netem: bool, errors: _MininetErrors, repeat: int) -> bool:
    """The --scale table; True when both targets hold."""
    # As a run at the default target (25G emulated at 100 Mbit/s) sets up every port.
    queues = QueueSettings(dilation=250.0)
    print(f"full bring-up: l3, traffic classes, eBPF marker per port, queue agent; median of "
          f"{repeat}. {mininet_baseline(has_netem)}")
    print(f"{'hosts':>5} {'nodes':>5} {'kvfabric s':>10} {'ms/node':>7} {'Mininet s':>9} "
          f"{'ratio':>5}  phases (s)")
    rows = []
    for shape in SCALE_SHAPES:
        runs = [time_kvfabric("l3", backends, shape, queues) for _ in range(repeat)]
        up = statistics.median(r[0] for r in runs)
        phases = min(runs, key=lambda r: abs(r[0] - up))[2]
        mininet = statistics.median(time_mininet(has_netem, errors, shape)[0]
                                    for _ in range(repeat))
        hosts, n = shape["leaves"] * shape["hosts_per_leaf"], nodes(shape)
        rows.append((hosts, n, up, mininet))
        print(f"{hosts:5} {n:5} {up:10.2f} {1e3 * up / n:7.1f} {mininet:9.2f} "
              f"{up / mininet:5.2f}  " + ", ".join(f"{k} {v:.2f}" for k, v in phases.items()))
    (_, n16, t16, _), (_, n64, t64, m64), (_, n128, t128, _) = rows
    ratio = t64 / m64
    growth = ((t128 - t64) / (n128 - n64)) / ((t64 - t16) / (n64 - n16))
    ok_ratio, ok_growth = ratio <= TARGET_RATIO_AT_64, growth <= TARGET_MARGINAL_GROWTH
    print(f"64 hosts: {ratio:.2f} of plain Mininet (target <= {TARGET_RATIO_AT_64}): "
          f"{'holds' if ok_ratio else 'MISSED'}")
    print(f"cost per added node 64->128 hosts / 16->64 hosts: {growth:.2f} (target <= "
          f"{TARGET_MARGINAL_GROWTH}, linear): {'holds' if ok_growth else 'MISSED'}")
    return ok_ratio and ok_growth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--scale", action="store_true",
                        help="full bring-up at 16, 64 and 128 hosts against plain Mininet")
    args = parser.parse_args()
    backends = probe_host().backends
    has_netem = backends.delay == "netem"
    errors = _MininetErrors()
    runs = {"kvfabric l3": lambda: time_kvfabric("l3", backends)[:2],
            "kvfabric openflow": lambda: time_kvfabric("openflow", backends)[:2],
            "plain Mininet (OVS user, TCLink)": lambda: time_mininet(has_netem, errors)}
    held = True
    with fabric_lock("bench/bringup.py"):
        if args.scale:
            held = scale(backends, has_netem, errors, args.repeat)
        else:
            print(f"shape: {SHAPE} ({SHAPE['leaves'] * SHAPE['hosts_per_leaf']} hosts), "
                  f"median of {args.repeat}")
            print(mininet_baseline(has_netem))
            for name, func in runs.items():
                ups, downs = zip(*(func() for _ in range(args.repeat)))
                print(f"{name:34} bring-up {statistics.median(ups):6.2f} s   "
                      f"teardown {statistics.median(downs):6.2f} s   "
                      f"(bring-up min {min(ups):.2f} max {max(ups):.2f})")
        if errors.messages:
            distinct = sorted(set(errors.messages), key=errors.messages.index)
            print(f"plain Mininet logged {len(errors.messages)} lines as errors "
                  f"(tc output; {len(distinct)} distinct), first: {distinct[0][:200]}")
    raise SystemExit(0 if held else 1)


if __name__ == "__main__":
    main()
