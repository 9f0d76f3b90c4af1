"""KV-cache incast: N prefill senders write KV blocks to one decode receiver, over RoCEv2 with
DCQCN and over TCP, one transport after the other on the same fabric, in one run.

Block k of every sender is posted at ``start + k x interval`` (all senders at once: a
synchronized many-to-one burst per round). A block is one KV-cache block of a model preset
(``traffic/kvcache.py``): ``block_tokens`` tokens, the shard one of ``tp_size`` ranks holds.
Raw files per transport under ``<transport>/``; summary and plot by
``roce_incast_analysis.analyse`` from those files alone.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

from topologies.leafspine import FabricTopo
from traffic.dcqcn import PROFILES, DcqcnParams
from traffic.kvcache import MODEL_PRESETS, preset
from traffic.roce_requester import DEFAULT_QUANTUM_S
from traffic.tcp_kv import available_congestion_controls
from wire.frames import ROCE_IP_OVERHEAD_BYTES

from ..dilation import emulate_params
from ..schema import Field, SpecIssue
from .ecn_port import bottleneck_ecn, dequeue_marking
from .hosts import check_receiver_and_senders
from .path_rtt import measure_path_rtt, path_rtt_note
from .roce_incast_analysis import analyse  # noqa: F401  (part of the workload interface)
from .tcp_incast import choose_senders, set_rto_min

#: Linux caps a route's rto_min at TCP_RTO_MAX.
MAX_RTO_MIN_S = 120.0

ROCE_TRANSPORTS = ("roce-dcqcn", "roce-none")
START_DELAY_S = 0.3  # from the last sender saying ready to the first post
#: The notification point's CNP spacing per profile, target seconds (Zhu et al.: 50 us;
#: NVIDIA min_time_between_cnps: 4 us; HPCC's ns-3 echoes ECN on every ACK: none).
PROFILE_CNP_INTERVAL_S = {"paper": 50e-6, "mellanox": 4e-6, "hpcc": 0.0}
#: Profiles whose notification point echoes ECN on the ACKs (BTH BECN), not in CNPs: in HPCC's
#: ns-3 the echo rides on the per-packet ACKs, with no separate CNP (docs/roce.md).
PROFILES_ECHO_ON_ACK = frozenset({"hpcc"})

FIELDS = [
    Field("senders", "int", 7, "prefill hosts sending KV blocks", minimum=1, maximum=256),
    Field("receiver", "str", "h1", "the decode host receiving them"),
    Field("model", "choice", "llama-3-8b", "KV-cache model preset (traffic/kvcache.py)",
          choices=tuple(sorted(MODEL_PRESETS))),
    Field("block_tokens", "int", 16, "tokens per KV block (vLLM: 16)", minimum=1,
          maximum=65536),
    Field("tp_size", "int", 8, "tensor-parallel ranks; each NIC carries one rank's shard",
          minimum=1, maximum=64),
    Field("block_bytes", "size", 0, "bytes per block (one RDMA WRITE); 0 = one KV block of "
          "the model preset (block_tokens x bytes per token of one tp rank)", minimum=0,
          maximum=1 << 34),
    Field("blocks", "int", 20, "blocks (rounds) per sender", minimum=1, maximum=100_000),
    Field("interval", "duration", "1ms", "time between rounds (0: all blocks at once)",
          minimum=0, maximum=60),
    Field("transports", "str", "roce-dcqcn,tcp-cubic",
          "comma-separated, run in this order: roce-dcqcn, roce-none, tcp-<cc>"),
    Field("mtu_payload", "int", 1024, "RoCE payload bytes per packet (IB MTU)",
          minimum=256, maximum=4096),
    Field("window", "int", 32, "RoCE packets in flight per QP", minimum=1, maximum=4096),
    Field("retransmit_timeout", "duration", "4ms", "RoCE transport timer (go-back-N); "
          "longer than a PFC pause, or paused packets time out and are sent again",
          minimum=1e-6, maximum=10),
    Field("ack_coalesce", "int", 4, "RoCE responder: ACK every N packets (and every message's "
          "last); with 1 the Python responder's ACKs cost enough CPU on 2 cores to slow "
          "the transfer (measured p50 256 ms vs 192 ms)", minimum=1, maximum=1024),
    Field("dcqcn_profile", "choice", "paper", "DCQCN reaction point and timers: paper, "
          "mellanox or hpcc (HPCC's ns-3 CC_MODE 1; see docs/roce.md)",
          choices=PROFILES),
    Field("ecn_marking", "choice", "enqueue", "where the receiver's downlink marks ECN: "
          "enqueue (the depth a packet finds, as Linux red does) or dequeue (the depth it "
          "leaves, as HPCC's ns-3 switch does; eBPF backend, that port only)",
          choices=("enqueue", "dequeue")),
    Field("cnp_interval", "duration", None,
          "notification point: at most one CNP per QP per interval; unset: the profile's "
          "(paper 50 us, mellanox 4 us, hpcc 0: an echo for every marked packet)",
          minimum=0, maximum=1),
    Field("tcp_rto_min", "duration", None, "TCP baseline: minimum RTO on every route of the "
          "senders and the receiver, in target time (dilated like every duration; with "
          "quickack, no delayed ACKs); unset: the kernel's 200 ms of wall time, undilated",
          minimum=1e-4, maximum=120),
    Field("pacing_quantum", "duration", "1us", "RoCE senders' rate limiter: frames due "
          "within this long leave together (target time: 3 frames at 25 Gbit/s line rate, "
          "less than one at a fair share of an 8-to-1 incast; emulated at least 20 us, the "
          "sender loop's own granularity)", minimum=1e-9, maximum=1e-3),
    Field("receiver_rt_priority", "int", 15, "run the RoCE receiver SCHED_FIFO at this "
          "priority (below the queue agent's 20), at most half a core, so that its ACKs and "
          "ECN echoes, the congestion control's feedback, do not wait behind the senders "
          "(a NIC answers in hardware); 0: normal scheduling", minimum=0, maximum=19),
    Field("endpoint_rt_priority", "int", 0, "run the RoCE endpoints SCHED_FIFO at this "
          "priority (below the queue agent's 20) so they wake on time on a busy host; 0: "
          "normal scheduling", minimum=0, maximum=19),
    Field("sender_processes", "choice", "per-host", "per-host: one RoCE sender process in "
          "each sender's namespace; shared: one process drives every sender's QPs on one "
          "clock (its sockets still in each sender's namespace): an experiment for loaded "
          "hosts at a low D, measured in docs/roce.md", choices=("per-host", "shared")),
    Field("tcp_port", "int", 5201, "TCP baseline port on the receiver", minimum=1024,
          maximum=65535),
    Field("timeout", "duration", "120s", "give up a transport's phase after this long",
          minimum=1, maximum=3600),
]


#: The RoCE transport's fields, which every workload carried by the RoCE endpoints offers.
ROCE_TRANSPORT_FIELDS = [f for f in FIELDS if f.name in {
    "mtu_payload", "window", "retransmit_timeout", "ack_coalesce", "dcqcn_profile",
    "cnp_interval", "pacing_quantum", "receiver_rt_priority", "timeout"}]

def transports(workload: dict[str, Any]) -> list[str]:
    return [t.strip() for t in workload["transports"].split(",") if t.strip()]


def block_bytes(workload: dict[str, Any]) -> int:
    if workload.get("block_bytes"):
        return workload["block_bytes"]
    model = preset(workload["model"])
    return workload["block_tokens"] * model.bytes_per_token_per_rank(workload["tp_size"])


def check(workload: dict[str, Any], topo: FabricTopo, issues: list[SpecIssue]) -> None:
    check_receiver_and_senders(workload, topo, issues)
    names = transports(workload)
    ccs = available_congestion_controls()
    bad = [t for t in names if t not in ROCE_TRANSPORTS
           and not (t.startswith("tcp-") and t[4:] in ccs)]
    if not names or bad or len(set(names)) != len(names):
        offered = ", ".join([*ROCE_TRANSPORTS, *(f"tcp-{cc}" for cc in ccs)])
        issues.append(SpecIssue("workload.transports",
                                f"{bad or 'empty or repeated'}: not transports this host "
                                "runs (TCP congestion controls are those in "
                                "/proc/sys/net/ipv4/tcp_available_congestion_control)",
                                f"use distinct items from: {offered}"))
    if (workload.get("tcp_rto_min") or 0) > MAX_RTO_MIN_S:
        issues.append(SpecIssue("workload.tcp_rto_min", f"{workload['tcp_rto_min']:g} s once "
                                f"dilated, above Linux's limit of {MAX_RTO_MIN_S:g} s",
                                "lower workload.tcp_rto_min or fabric.dilation"))
    frame_ip_bytes = workload["mtu_payload"] + ROCE_IP_OVERHEAD_BYTES
    if frame_ip_bytes > topo.mtu:
        issues.append(SpecIssue("workload.mtu_payload", f"{workload['mtu_payload']} B of "
                                f"payload need an IP MTU of {frame_ip_bytes}, the fabric has "
                                f"{topo.mtu}", "lower workload.mtu_payload (1024) or raise "
                                "fabric.mtu (e.g. 4200)"))


def run(ctx) -> None:
    spec, fabric, workload = ctx.spec, ctx.fabric, ctx.spec.workload
    senders = choose_senders(fabric.topo, workload["receiver"], workload["senders"],
                             spec.experiment["seed"])
    size = block_bytes(workload)
    ctx.record("senders", senders)
    ctx.record("block_bytes", size)
    scale = spec.scale
    rtt = measure_path_rtt(fabric, senders[0], workload["receiver"], scale.dilation,
                           spec.target["fabric"]["link_delay"])
    ctx.record("path_rtt", rtt)
    notes = [
        "RoCE endpoints are Python processes (traffic/roce_endpoint.py): frames are real "
        "RoCEv2 on the wire, but the NIC's transport runs in software; pacing releases frames "
        "in quanta of 20 us and after a late wake-up makes good at most 10 ms (capped at one "
        "DCQCN rate-increase period) of lost time, as a burst (emulated times)",
        f"time dilation {scale.dilation:g}: the {scale.target_host_rate_bps / 1e9:g} Gbit/s "
        f"target runs at {scale.emulated_host_rate_bps / 1e6:g} Mbit/s, every duration "
        "(DCQCN timers, CNP interval, retransmission timer, rounds) x D, bytes unchanged; "
        "results are in target units",
        path_rtt_note(rtt),
    ]
    if any(t.startswith("tcp-") for t in transports(workload)):
        if workload["tcp_rto_min"] is not None:
            for host in [workload["receiver"], *senders]:
                set_rto_min(fabric, host, workload["tcp_rto_min"], quickack=True)
            ctx.record("tcp_rto_min_emulated_s", workload["tcp_rto_min"])
            notes.append(f"kernel TCP: rto_min {workload['tcp_rto_min'] * 1e3:g} ms on every "
                         f"route (the target's {workload['tcp_rto_min'] / scale.dilation * 1e3:g}"
                         " ms, dilated) and quickack (no delayed ACKs: the kernel's 40 ms "
                         "delayed-ACK timer cannot be dilated); the rest of TCP (pacing, "
                         "RTT estimation, timer granularity of a jiffy) runs in real time")
        else:
            notes.append("kernel TCP does not dilate: its timers (RTOmin 200 ms, delayed ACKs "
                         "40 ms) run in real time, so in target terms they are D times "
                         "shorter than the kernel's; the TCP baseline is a real-time TCP on a "
                         f"fabric {scale.dilation:g}x slower, not TCP at the target rate "
                         "(set workload.tcp_rto_min to dilate its minimum RTO)")
    with bottleneck_ecn(fabric, workload["receiver"], spec.fabric["mtu"],
                        scale.dilation, spec.dscp_map()) as ecn:
        ctx.record("ecn_marker", ecn.describe())
        ctx.record("dcqcn_params", dcqcn_target_params(spec).__dict__)
        ctx.facts.setdefault("approximations", []).extend(
            notes + ([ecn.approximation] if ecn.approximation else []))
        for transport in transports(workload):
            out_dir = ctx.run_dir / transport
            out_dir.mkdir(exist_ok=True)
            ctx.progress.update(transport, f"{len(senders)} senders x {workload['blocks']} "
                                f"blocks of {size} B -> {workload['receiver']}")
            before = ecn.counters()
            ports_before = _drops(fabric)
            started = time.monotonic()
            if transport.startswith("roce") and workload["ecn_marking"] == "dequeue":
                with dequeue_marking(ecn) as maps:
                    if maps is None:
                        raise RuntimeError("workload.ecn_marking = dequeue needs the eBPF "
                                           "ECN marker on the receiver's downlink")
                    _run_roce(ctx, transport, senders, size, out_dir, ["--dequeue-ecn", maps])
            elif transport.startswith("roce"):
                _run_roce(ctx, transport, senders, size, out_dir)
            else:
                _run_tcp(ctx, transport[4:], senders, size, out_dir)
            _write_phase(out_dir, transport, time.monotonic() - started, before,
                         ecn.counters(), ports_before, _drops(fabric), ecn)
            fabric.stop_processes()
            time.sleep(0.5)  # let the queues drain before the next transport


def dcqcn_target_params(spec) -> DcqcnParams:
    """The profile's published parameters at the target host rate (target units)."""
    return DcqcnParams.preset(spec.workload["dcqcn_profile"], spec.scale.target_host_rate_bps)


def endpoint_python(workload: dict[str, Any]) -> list[str]:
    """The interpreter command of the RoCE endpoints, under chrt with a real-time priority."""
    prio = workload.get("endpoint_rt_priority") or 0
    return (["chrt", "-f", str(prio)] if prio else []) + [sys.executable]


def sender_cc_args(spec) -> list[str]:
    """The senders' DCQCN parameters and rate limiter quantum, emulated by the dilation
    rule, as endpoint arguments."""
    params = emulate_params(dcqcn_target_params(spec), spec.scale)
    # A quantum shorter than the sender loop's own granularity cannot be kept (docs/roce.md).
    quantum = max(spec.workload["pacing_quantum"], DEFAULT_QUANTUM_S)
    return ["--dcqcn-params", json.dumps(params.__dict__), "--pacing-quantum-s", repr(quantum)]


def receiver_cc_args(spec) -> list[str]:
    """The responder's ACK coalescing and CNP spacing (emulated seconds)."""
    workload = spec.workload
    interval = workload["cnp_interval"]
    echo = []
    if interval is None:
        profile = workload["dcqcn_profile"]
        interval = spec.scale.emulated_s(PROFILE_CNP_INTERVAL_S[profile])
        if profile in PROFILES_ECHO_ON_ACK:
            echo = ["--ecn-echo", "ack"]
    return ["--ack-coalesce", str(workload["ack_coalesce"]), *echo,
            "--rt-priority", str(workload["receiver_rt_priority"]),
            "--cnp-interval-s", repr(interval)]


def sender_dscp_args(spec) -> list[str]:
    """The DSCP a RoCE sender marks its data with: the spec's lossless class."""
    return ["--dscp", str(spec.dscp_map().lossless_dscp)]


def receiver_dscp_args(spec) -> list[str]:
    """The DSCPs of a RoCE responder's ACKs (the QP's lossless class) and CNPs."""
    dscp = spec.dscp_map()
    return ["--dscp", str(dscp.lossless_dscp), "--cnp-dscp", str(dscp.cnp_dscp)]


def _qpns(index: int) -> tuple[int, int]:
    """(sender QPN, receiver QPN) of sender ``index``'s connection."""
    return 0x100 + index, 0x200 + index


def _run_roce(ctx, transport: str, senders: list[str], size: int, out_dir,
              receiver_args: list[str] = ()) -> None:
    fabric, workload = ctx.fabric, ctx.spec.workload
    receiver = workload["receiver"]
    line = ctx.spec.fabric["host_rate"]
    python = endpoint_python(workload)
    rx_argv = [*python, "-m", "traffic.roce_endpoint", "recv", "--bind",
               fabric.host_ips[receiver], "--name", receiver, "--out-dir", str(out_dir),
               *receiver_cc_args(ctx.spec), *receiver_dscp_args(ctx.spec), *receiver_args]
    for i, sender in enumerate(senders):
        s_qpn, r_qpn = _qpns(i)
        rx_argv += ["--qp", f"{fabric.host_ips[sender]}:{r_qpn}:{s_qpn}"]
    rx = fabric.popen(receiver, rx_argv, stdout=subprocess.PIPE, text=True)
    ready = rx.stdout.readline()
    if not ready:
        raise RuntimeError(f"RoCE receiver on {receiver} exited with {rx.wait()}")
    common = ["--out-dir", str(out_dir), "--messages", str(workload["blocks"]),
              "--message-bytes", str(size), "--interval-s", repr(workload["interval"]),
              "--start-at", "stdin", "--line-rate-bps", str(line),
              "--mtu-payload", str(workload["mtu_payload"]),
              "--window", str(workload["window"]),
              "--timeout-s", repr(workload["retransmit_timeout"]),
              "--cc", "dcqcn" if transport == "roce-dcqcn" else "none",
              *sender_cc_args(ctx.spec), *sender_dscp_args(ctx.spec),
              "--max-duration-s", repr(workload["timeout"])]
    send = [*python, "-m", "traffic.roce_endpoint", "send"]
    qp_of = {sender: f"{fabric.host_ips[receiver]}:{_qpns(i)[0]}:{_qpns(i)[1]}"
             for i, sender in enumerate(senders)}
    procs = []
    if workload["sender_processes"] == "shared":
        hosts = out_dir / f"senders-{transport}.json"
        hosts.write_text(json.dumps([{"name": s, "netns": fabric.netns(s), "qp": [qp_of[s]]}
                                     for s in senders]))
        name = f"{senders[0]}..{senders[-1]}" if len(senders) > 1 else senders[0]
        procs.append((name, fabric.popen_at(None, [*send, "--hosts", str(hosts), *common],
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                            text=True)))
    else:
        for sender in senders:
            argv = [*send, "--qp", qp_of[sender], "--name", sender, *common]
            procs.append((sender, fabric.popen(sender, argv, stdin=subprocess.PIPE,
                                               stdout=subprocess.PIPE, text=True)))
    _start_together(procs)
    failed = _wait_all(ctx, procs, workload["timeout"] + START_DELAY_S + 10)
    rx.terminate()
    rx.communicate(timeout=30)
    if failed:
        raise RuntimeError(f"{transport}: senders {failed} did not complete every block "
                           f"(see {out_dir.name}/roce_sender_*.json)")


def _run_tcp(ctx, cc: str, senders: list[str], size: int, out_dir) -> None:
    fabric, workload = ctx.fabric, ctx.spec.workload
    receiver = workload["receiver"]
    python = sys.executable
    expect = len(senders) * workload["blocks"]
    rx = fabric.popen(receiver, [python, "-m", "traffic.tcp_kv", "serve",
                                 "--port", str(workload["tcp_port"]), "--expect", str(expect),
                                 "--out", str(out_dir / "tcp_messages.csv"),
                                 "--cc-label", cc,
                                 "--timeout-s", repr(workload["timeout"] + 30)])
    procs = []
    for sender in senders:
        argv = [python, "-m", "traffic.tcp_kv", "send",
                "--dst", f"{fabric.host_ips[receiver]}:{workload['tcp_port']}", "--cc", cc,
                "--name", sender, "--blocks", str(workload["blocks"]),
                "--block-bytes", str(size), "--interval-s", repr(workload["interval"]),
                "--start-at", "stdin"]
        procs.append((sender, fabric.popen(sender, argv, stdin=subprocess.PIPE,
                                           stdout=subprocess.PIPE, text=True)))
    _start_together(procs)
    failed = _wait_all(ctx, procs, workload["timeout"] + START_DELAY_S + 10)
    code = rx.wait(timeout=30)
    if failed or code != 0:
        raise RuntimeError(f"tcp-{cc}: senders {failed} failed or the receiver got fewer "
                           f"than {expect} blocks (exit {code})")


def _start_together(procs) -> None:
    """Wait until every sender has started up (imports, routes, frames, connections), then
    give them all one start time."""
    for name, proc in procs:
        if not proc.stdout.readline():
            raise RuntimeError(f"sender on {name} exited with {proc.wait()} before starting")
    start = repr(time.monotonic() + START_DELAY_S)
    for _, proc in procs:
        proc.stdin.write(start + "\n")
        proc.stdin.flush()


def _wait_all(ctx, procs, timeout_s: float) -> list[str]:
    deadline = time.monotonic() + timeout_s
    failed = []
    for done, (name, proc) in enumerate(procs, 1):
        try:
            proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
        if proc.returncode != 0:
            failed.append(name)
        ctx.progress.update(f"{done}/{len(procs)} senders finished", "")
    return failed


def _drops(fabric) -> dict[tuple[str, str, str], int]:
    """Drops so far per (node, ifname, class): per traffic class where the fabric has them,
    else the port's single FIFO as class "all"."""
    if fabric.has_classes:
        return {(r["node"], r["ifname"], r["class"]): r["drops"] for r in fabric.queue_stats()}
    return {(r["node"], r["ifname"], "all"): r["drops"] for r in fabric.port_stats()}


def _write_phase(out_dir, transport: str, duration_s: float, before, after, drops_before,
                 drops_after, ecn) -> None:
    """Per-phase queue facts: marks at the receiver's downlink, drops there and fabric-wide."""
    port, roce = ecn.port, ecn.roce_class
    delta = {k: v - drops_before.get(k, 0) for k, v in drops_after.items()}
    here = {k[2]: v for k, v in delta.items() if (k[0], k[1]) == (port.node, port.ifname)}
    phase = {"transport": transport, "duration_s": duration_s,
             "bottleneck": f"{port.node}:{port.ifname}", "roce_class": roce,
             "bottleneck_drops": sum(here.values()),
             "roce_class_drops_bottleneck": here.get(roce, here.get("all")),
             "roce_class_drops_all_ports": sum(v for k, v in delta.items() if k[2] == roce)
             if roce in {k[2] for k in delta} else None,
             "roce_class_marks": after.get(roce, {}).get("marks", 0)
             - before.get(roce, {}).get("marks", 0)}
    for name, counts in after.items():
        prev = before.get(name, {})
        for key, value in counts.items():
            phase[f"{name}_{key}"] = value - prev.get(key, 0)
    (out_dir / "phase.json").write_text(json.dumps(phase, indent=1))
