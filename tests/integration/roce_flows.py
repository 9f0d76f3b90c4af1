"""Run live RoCE endpoints over a private bottleneck (topologies/bottleneck.py); shared by the
integration tests. Namespaces are ``kvfrt-*`` (never ``kvf-*``), all deleted afterwards."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from fabriccore.commands import netns_argv
from kvfabric.dilation import Scale, emulate_params
from kvfabric.lock import fabric_lock
from topologies.bottleneck import Bottleneck
from topologies.queues.spec import EcnRamp
from traffic.cnp import PAPER_CNP_INTERVAL_S
from traffic.dcqcn import REFERENCE_LINK_RATE_BPS, DcqcnParams

PREFIX = "kvfrt"
DEFAULT_RAMP = EcnRamp(15_000, 60_000, 0.2)


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
    with fabric_lock("pytest: roce flows"), Bottleneck(PREFIX, flows, bottleneck_bps,
                                                       buffer_bytes, ecn=ramp) as net:
        cap = None
        pcap = out_dir / "roce.pcap" if capture else None
        procs: list[subprocess.Popen] = []
        extra: dict = {}
        try:
            if capture:
                cap = subprocess.Popen(
                    ["ip", "netns", "exec", net.router_ns, "tcpdump", "-i", "d0", "-w",
                     str(pcap), "-s", "256", "-B", "16384", "--immediate-mode",
                     "udp port 4791"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                procs.append(cap)
                time.sleep(1.0)
            qps = [f"{ip}:{0x200 + i}:{0x100 + i}" for i, ip in enumerate(net.sender_ips)]
            rx_argv = [py, "-m", "traffic.roce_endpoint", "recv", "--bind", net.receiver_ip,
                       "--name", "d", "--out-dir", str(out_dir), *receiver_args]
            for qp in qps:
                rx_argv += ["--qp", qp]
            start = time.monotonic() + 2.0
            rx_argv += ["--time-zero", repr(start)]
            rx = subprocess.Popen(netns_argv(net.receiver_ns, rx_argv), stdout=subprocess.PIPE,
                                  text=True)
            procs.append(rx)
            assert rx.stdout.readline(), "receiver did not start"
            senders = []
            for i in range(flows):
                argv = [py, "-m", "traffic.roce_endpoint", "send",
                        "--qp", f"{net.receiver_ip}:{0x100 + i}:{0x200 + i}",
                        "--name", f"s{i + 1}", "--out-dir", str(out_dir),
                        "--messages", str(messages), "--message-bytes", str(message_bytes),
                        "--line-rate-bps", repr(line_bps), "--start-at", repr(start),
                        "--time-zero", repr(start), "--cc", cc,
                        "--max-duration-s", repr(timeout_s), *sender_args]
                proc = subprocess.Popen(netns_argv(net.sender_ns(i), argv),
                                        stdout=subprocess.PIPE, text=True)
                procs.append(proc)
                senders.append(proc)
            results = []
            for proc in senders:
                out, _ = proc.communicate(timeout=timeout_s + 30)
                results.append(json.loads(out.strip().splitlines()[-1]))
            time.sleep(0.3)
            if cap is not None:
                time.sleep(0.5)
                cap.terminate()
                extra["tcpdump"] = cap.communicate(timeout=30)[1]
            rx.terminate()
            receiver = json.loads(rx.communicate(timeout=30)[0].strip().splitlines()[-1])
            bottleneck = net.bottleneck_stats()
            marks = {name: vars(c) for name, c in net.marker_counters().items()}
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.terminate()
                    try:
                        proc.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
    with (out_dir / "roce_arrivals_d.csv").open() as f:
        arrivals = list(csv.DictReader(f))
    return FlowRun(results, receiver, arrivals, bottleneck, marks, out_dir, pcap, extra)
