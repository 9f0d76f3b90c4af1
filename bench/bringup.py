"""Bring-up and teardown times of a 2-spine, 4-leaf, 4-hosts-per-leaf fabric: kvfabric's l3 and
openflow modes beside plain Mininet building the same Topo, in one run. Run as root:
``make bench`` (or ``.venv/bin/python bench/bringup.py [--repeat N]``).

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

SHAPE = {"spines": 2, "leaves": 4, "hosts_per_leaf": 4}


def time_kvfabric(mode: str, backends: Backends) -> tuple[float, float]:
    fabric = Fabric(LeafSpine(**SHAPE), mode, backends=backends)
    start = time.perf_counter()
    fabric.build()
    up = time.perf_counter() - start
    start = time.perf_counter()
    fabric.teardown()
    return up, time.perf_counter() - start


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


def time_mininet(has_netem: bool, errors: _MininetErrors) -> tuple[float, float]:
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
        net = Mininet(topo=LeafSpine(**SHAPE, stp=False), switch=switch, link=BaselineLink,
                      controller=None, autoSetMacs=True)
        net.start()
        up = time.perf_counter() - start
        start = time.perf_counter()
        net.stop()
        return up, time.perf_counter() - start
    finally:
        lg.removeHandler(errors)
        for handler in console:
            lg.addHandler(handler)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    backends = probe_host().backends
    has_netem = backends.delay == "netem"
    errors = _MininetErrors()
    runs = {"kvfabric l3": lambda: time_kvfabric("l3", backends),
            "kvfabric openflow": lambda: time_kvfabric("openflow", backends),
            "plain Mininet (OVS user, TCLink)": lambda: time_mininet(has_netem, errors)}
    with fabric_lock("bench/bringup.py"):
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
            print(f"plain Mininet logged {len(errors.messages)} lines as errors over "
                  f"{args.repeat} runs (tc output; {len(distinct)} distinct), first: "
                  f"{distinct[0][:200]}")


if __name__ == "__main__":
    main()
