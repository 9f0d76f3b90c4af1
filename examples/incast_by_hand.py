"""A TCP incast driven from Python: build the shipped tcp_incast spec on a small leaf-spine,
ping across the fabric, run the spec's workload, and read the receiver's leaf port.

    sudo .venv/bin/python examples/incast_by_hand.py [--results DIR]

Prints one JSON line per step and, last, the run folder (the same layout as `kvfabric run`).
"""

from __future__ import annotations

import argparse
import json

import kvfabric

SMALL = {"fabric.spines": 1, "fabric.leaves": 2, "fabric.hosts_per_leaf": 2,
         "workload.senders": 3, "workload.rounds": 3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="results", help="results root")
    args = parser.parse_args()

    with kvfabric.Network("tcp_incast", overrides=SMALL, results_root=args.results) as net:
        receiver, sender = net["h1"], net["h4"]  # on different leaves: across the spine
        ping = sender.run(["ping", "-c", "2", "-W", "2", receiver.ip])
        print(json.dumps({"step": "ping", "from": sender.name, "to": receiver.ip,
                          "exit": ping.returncode}))

        downlink = net.port("l1", "h1")  # the incast bottleneck: the receiver's leaf port
        before = downlink.counters()
        net.run_workload()
        after = downlink.counters()
        print(json.dumps({"step": "workload", "port": downlink.port_id,
                          "rate_bps": downlink.rate_bps,
                          "tx_bytes": after["tx_bytes"] - before["tx_bytes"],
                          "drops": after["drops"] - before["drops"],
                          "queued_bytes": after["classes"]}))
    print(json.dumps({"step": "done", "status": net.outcome.status,
                      "run_dir": str(net.outcome.run_dir)}))


if __name__ == "__main__":
    main()
