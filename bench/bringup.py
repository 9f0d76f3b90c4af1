"""Bring-up and teardown times of a 2-spine, 4-leaf, 4-hosts-per-leaf fabric: kvfabric's l3 and
openflow modes beside plain Mininet building the same Topo, in one run. Run as root:
``make bench`` (or ``.venv/bin/python bench/bringup.py [--repeat N]``)."""

from __future__ import annotations

import argparse
import statistics
import time

from kvfabric.lock import fabric_lock
from topologies.fabric import Fabric
from topologies.leafspine import LeafSpine

SHAPE = {"spines": 2, "leaves": 4, "hosts_per_leaf": 4}


def time_kvfabric(mode: str) -> tuple[float, float]:
    fabric = Fabric(LeafSpine(**SHAPE), mode)
    start = time.perf_counter()
    fabric.build()
    up = time.perf_counter() - start
    start = time.perf_counter()
    fabric.teardown()
    return up, time.perf_counter() - start


def time_mininet() -> tuple[float, float]:
    """Plain Mininet building the same Topo: userspace OVS switches, TCLink shaping, no routes
    or flows. On kernels without netem, Mininet's TCLink prints errors for its netem queue
    limit and shapes with HTB alone; its timing is still what Mininet does."""
    from functools import partial

    from mininet.link import TCLink
    from mininet.log import setLogLevel
    from mininet.net import Mininet
    from mininet.node import OVSSwitch

    setLogLevel("error")
    switch = partial(OVSSwitch, datapath="user", failMode="standalone")
    start = time.perf_counter()
    net = Mininet(topo=LeafSpine(**SHAPE), switch=switch, link=TCLink, controller=None,
                  autoSetMacs=True)
    net.start()
    up = time.perf_counter() - start
    start = time.perf_counter()
    net.stop()
    return up, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    runs = {"kvfabric l3": lambda: time_kvfabric("l3"),
            "kvfabric openflow": lambda: time_kvfabric("openflow"),
            "plain Mininet (OVS user, TCLink)": time_mininet}
    with fabric_lock("bench/bringup.py"):
        print(f"shape: {SHAPE} ({SHAPE['leaves'] * SHAPE['hosts_per_leaf']} hosts), "
              f"median of {args.repeat}")
        for name, func in runs.items():
            ups, downs = zip(*(func() for _ in range(args.repeat)))
            print(f"{name:34} bring-up {statistics.median(ups):6.2f} s   "
                  f"teardown {statistics.median(downs):6.2f} s   "
                  f"(bring-up min {min(ups):.2f} max {max(ups):.2f})")


if __name__ == "__main__":
    main()
