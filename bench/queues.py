"""Cost of the traffic classes and their telemetry, and what the queue agent achieves.

In one run, on the same l3 fabric shape (h1 -> l1 -> s1 -> l2 -> h2, every link shaped), one
iperf3 TCP flow in the lossy class, for each of: queues off (one FIFO per port, the old
shaping), queues on with telemetry off, queues on with telemetry on. Also prints the queue
agent's sweep period (how often PFC sees the real backlogs) and the telemetry bin width.
Run as root: ``make bench`` or ``.venv/bin/python bench/queues.py [--rate 200Mbit]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from fabriccore.units import parse_rate_bps
from kvfabric.lock import fabric_lock
from topologies.fabric import Fabric
from topologies.leafspine import LeafSpine
from topologies.queues.settings import QueueSettings


def throughput_bps(fabric: Fabric, seconds: float) -> float:
    fabric.popen("h2", ["iperf3", "-s", "-1", "-p", "5301"], stdout=subprocess.DEVNULL)
    time.sleep(0.3)
    out = fabric.run("h1", ["iperf3", "-c", fabric.host_ips["h2"], "-p", "5301", "-t",
                            str(seconds), "-O", "1", "-J"], timeout_s=seconds + 30).stdout
    return json.loads(out)["end"]["sum_received"]["bits_per_second"]


def measure(label: str, rate: int, queues: QueueSettings | None, seconds: float,
            repeat: int) -> dict:
    values = []
    agent = {}
    for _ in range(repeat):
        topo = LeafSpine(spines=1, leaves=2, hosts_per_leaf=1, host_rate_bps=rate,
                         fabric_rate_bps=rate, buffer_bytes=512 * 1024)
        with tempfile.TemporaryDirectory() as tmp:
            fabric = Fabric(topo, "l3", queues=queues, queue_dir=Path(tmp) / "q")
            with fabric:
                values.append(throughput_bps(fabric, seconds))
            if queues is not None:
                agent = json.loads((Path(tmp) / "q" / "agent.json").read_text())
    return {"label": label, "median_bps": statistics.median(values), "runs_bps": values,
            "agent": agent}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", default="200Mbit")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rate = int(parse_rate_bps(args.rate))
    expected = rate * 1448 / 1514
    configs = [("queues off (one FIFO)", None),
               ("queues on, telemetry off", QueueSettings(telemetry=False)),
               ("queues on, telemetry on", QueueSettings(telemetry=True))]
    rows = []
    with fabric_lock("bench/queues.py", wait_s=1800):
        for _ in range(args.repeat):  # interleaved, so host load drifts hit every config
            for label, queues in configs:
                rows.append(measure(label, rate, queues, args.seconds, 1))
    print(f"TCP goodput over {args.rate} links (expected ~{expected / 1e6:.1f} Mbit/s), "
          f"median of {args.repeat}:")
    for label, _ in configs:
        mine = [r for r in rows if r["label"] == label]
        values = [r["median_bps"] for r in mine]
        print(f"  {label:28s} {statistics.median(values) / 1e6:7.1f} Mbit/s  "
              f"(runs: {', '.join(f'{v / 1e6:.1f}' for v in values)})")
    agents = [r["agent"] for r in rows if r["agent"]]
    sweeps = [a["sweep_period_median_s"] * 1e3 for a in agents]
    p99 = [a["sweep_period_p99_s"] * 1e3 for a in agents]
    print(f"queue agent sweep period (real backlog, PFC decisions): median "
          f"{statistics.median(sweeps):.2f} ms, p99 {statistics.median(p99):.2f} ms; "
          f"telemetry bins {agents[0]['telemetry_bin_s'] * 1e6:.0f} us "
          f"(scheduling: {agents[0].get('scheduling')})")


if __name__ == "__main__":
    main()
