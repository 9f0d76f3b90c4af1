"""Run live RoCE endpoints over one bottleneck of a real fabric; shared by the integration tests.

:func:`run_flows` builds, under the fabric lock, an L3 :class:`~topologies.fabric.Fabric` of
the one-switch :class:`~topologies.leafspine.Bottleneck` topology (:func:`bottleneck_fabric`):

* senders h1..hN, each on its own link at the senders' line rate to the switch ``l1`` (a
  router in namespace ``kvf-l1``), and the receiver h(N+1) on a link at ``bottleneck_bps``;
  every host sits on its own /24 of the fabric's address plan (``fabric.host_ips``);
* ``l1``'s port towards the receiver (``fabric.port("l1", receiver)``) is the bottleneck:
  its counters are ``FlowRun.bottleneck`` (``Port.stats``: the HTB root's sent bytes and
  packets, drops and backlog), its eBPF marker's per-class counters ``FlowRun.marks``, and
  the capture (``capture=True``) is tcpdump on that interface;
* with an ECN ``ramp``, every port has the fabric's traffic classes without PFC
  (``QueueSettings(pfc=False)``): the lossless class (DSCP 26) with ``buffer_bytes`` of
  tail-drop buffer, which the switch ports mark on ``ramp`` with the eBPF marker (forced, not
  kernel RED, so that its counters count the marks); CNPs (DSCP 48) strict; everything else
  lossy, also ``buffer_bytes``; host NICs do not mark. ``ramp=None``: every port is one FIFO
  (HTB at the link rate over a bfifo of ``buffer_bytes``, a host NIC its transmit queue), no
  marker, no queue agent.

Everything is named ``kvf-*`` and removed by the fabric's teardown (``kvfabric clean`` after a
crash).
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from kvfabric.dilation import Scale, emulate_params
from kvfabric.lock import fabric_lock
from topologies.fabric import Fabric
from topologies.leafspine import Bottleneck
from topologies.queues.settings import QueueSettings
from topologies.queues.spec import EcnRamp
from traffic.cnp import PAPER_CNP_INTERVAL_S
from traffic.dcqcn import REFERENCE_LINK_RATE_BPS, DcqcnParams

DEFAULT_RAMP = EcnRamp(15_000, 60_000, 0.2)
SWITCH = "l1"


@dataclass
class FlowRun:
    senders: list[dict]
    receiver: dict
    arrivals: list[dict]
    bottleneck: dict
    marks: dict
    out_dir: Path
    pcap: Path | None = None
    extra: dict = field(default_factory=dict)

    def qp_throughput_bps(self, t_from: float, t_to: float, message_bytes: int) -> list[float]:
        """Per-flow goodput from the receiver's message arrivals in [t_from, t_to)."""
        counts: dict[int, int] = {}
        for row in self.arrivals:
            counts.setdefault(int(row["qpn"]), 0)
            if t_from <= float(row["t_s"]) < t_to:
                counts[int(row["qpn"])] += 1
        return [8 * n * message_bytes / (t_to - t_from) for _, n in sorted(counts.items())]


def bottleneck_fabric(flows: int, bottleneck_bps: int, line_bps: float, buffer_bytes: int,
                      ramp: EcnRamp | None) -> Fabric:
    """The fabric run_flows runs on, not yet built (see the module's docstring)."""
    topo = Bottleneck(senders=flows, bottleneck_rate_bps=bottleneck_bps,
                      host_rate_bps=round(line_bps), buffer_bytes=buffer_bytes)
    if ramp is None:
        return Fabric(topo, "l3")
    queues = QueueSettings(pfc=False, kmin_bytes=ramp.kmin_bytes, kmax_bytes=ramp.kmax_bytes,
                           pmax=ramp.pmax, lossless_buffer_bytes=buffer_bytes,
                           lossy_buffer_bytes=buffer_bytes, telemetry=False)
    return Fabric(topo, "l3", queues=queues, ecn_backend="ebpf")


def run_flows(out_dir: Path, *, flows: int, bottleneck_bps: int, line_bps: float,
              messages: int, message_bytes: int, buffer_bytes: int = 150_000,
              ramp: EcnRamp | None = DEFAULT_RAMP, cc: str = "dcqcn",
              dilation: float | None = None, profile: str = "paper",
              sender_args: list[str] = (),
              receiver_args: list[str] = (), capture: bool = False,
              timeout_s: float = 180.0) -> FlowRun:
    """The flows run a target fabric ``dilation`` times faster than ``line_bps`` (default: a
    25 Gbit/s target): DCQCN's ``profile`` preset at the target rate and the paper's CNP
    interval, emulated by the dilation rule (kvfabric/dilation.py)."""
    d = dilation or REFERENCE_LINK_RATE_BPS / line_bps
    scale = Scale(d, line_bps * d, line_bps * d)
    params = emulate_params(DcqcnParams.preset(profile, scale.target_host_rate_bps), scale)
    sender_args = ["--dcqcn-params", json.dumps(params.__dict__), *sender_args]
    receiver_args = ["--cnp-interval-s", repr(scale.emulated_s(PAPER_CNP_INTERVAL_S)),
                     *receiver_args]
    py = sys.executable
    with fabric_lock("pytest: roce flows"), bottleneck_fabric(
            flows, bottleneck_bps, line_bps, buffer_bytes, ramp) as fabric:
        receiver = fabric.topo.receiver
        senders = [f"h{i + 1}" for i in range(flows)]
        port = fabric.port(SWITCH, receiver)
        extra: dict = {"bottleneck_port": port.port_id}
        cap = None
        pcap = out_dir / "roce.pcap" if capture else None
        if capture:
            cap = fabric.popen_at(
                port.netns, ["tcpdump", "-i", port.ifname, "-w", str(pcap), "-s", "256",
                             "-B", "16384", "--immediate-mode", "udp port 4791"],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            time.sleep(1.0)
        rx_argv = [py, "-m", "traffic.roce_endpoint", "recv", "--bind",
                   fabric.host_ips[receiver], "--name", receiver, "--out-dir", str(out_dir),
                   *receiver_args]
        for i, sender in enumerate(senders):
            rx_argv += ["--qp", f"{fabric.host_ips[sender]}:{0x200 + i}:{0x100 + i}"]
        start = time.monotonic() + 2.0
        rx_argv += ["--time-zero", repr(start)]
        rx = fabric.popen(receiver, rx_argv, stdout=subprocess.PIPE, text=True)
        assert rx.stdout.readline(), "receiver did not start"
        procs = []
        for i, sender in enumerate(senders):
            argv = [py, "-m", "traffic.roce_endpoint", "send",
                    "--qp", f"{fabric.host_ips[receiver]}:{0x100 + i}:{0x200 + i}",
                    "--name", sender, "--out-dir", str(out_dir),
                    "--messages", str(messages), "--message-bytes", str(message_bytes),
                    "--line-rate-bps", repr(line_bps), "--start-at", repr(start),
                    "--time-zero", repr(start), "--cc", cc,
                    "--max-duration-s", repr(timeout_s), *sender_args]
            procs.append(fabric.popen(sender, argv, stdout=subprocess.PIPE, text=True))
        # A sender that overruns is stopped with everything else by the fabric's teardown.
        results = [json.loads(proc.communicate(timeout=timeout_s + 30)[0]
                              .strip().splitlines()[-1]) for proc in procs]
        time.sleep(0.3)
        if cap is not None:
            time.sleep(0.5)
            fabric.stop_processes(grace_s=30, only=[cap])
            extra["tcpdump"] = cap.communicate(timeout=30)[1]
        fabric.stop_processes(grace_s=30, only=[rx])  # it writes its files on SIGTERM
        rx.communicate(timeout=30)
        receiver_stats = json.loads((out_dir / f"roce_receiver_{receiver}.json").read_text())
        bottleneck = port.stats()
        marks = {row["class"]: vars(row["counters"]) for row in port.marker_counters()}
        extra["bottleneck_classes"] = fabric.queue_stats([port])
    with (out_dir / f"roce_arrivals_{receiver}.csv").open() as f:
        arrivals = list(csv.DictReader(f))
    return FlowRun(results, receiver_stats, arrivals, bottleneck, marks, out_dir, pcap, extra)
