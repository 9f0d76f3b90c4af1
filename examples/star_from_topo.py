"""A fabric from a Mininet-style Topo instead of a spec: a 3-host star, a ping, the switch
port's counters. Such a fabric runs in real time with one FIFO per port and has no workload.

    sudo .venv/bin/python examples/star_from_topo.py [--mode l3|openflow] [--results DIR]
"""

from __future__ import annotations

import argparse
import json

import kvfabric


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", default="l3", choices=("l3", "openflow"))
    parser.add_argument("--results", default="results", help="results root")
    args = parser.parse_args()

    topo = kvfabric.Star(hosts=3, host_rate_bps=50_000_000)
    with kvfabric.Network(topo, mode=args.mode, name="star_by_hand",
                          results_root=args.results) as net:
        switch = next(node for node in net.nodes if node.role != "host")
        ping = net["h1"].run(net.resolve(["ping", "-c", "3", "-i", "0.2", "h3"]))
        port = net.port(switch.name, "h3")
        print(json.dumps({"hosts": {h.name: h.ip for h in net.hosts},
                          "ping_exit": ping.returncode, "port": port.port_id,
                          "rate_bps": port.rate_bps, "counters": port.counters()}))
    print(json.dumps({"status": net.outcome.status, "run_dir": str(net.outcome.run_dir)}))


if __name__ == "__main__":
    main()
