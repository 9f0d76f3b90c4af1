"""Live RoCEv2 endpoints over a real bottleneck: DCQCN reacts to CE marks (CNPs sent, rates
cut) and every message still completes; competing flows converge to fair shares; a capture
of a run decodes in tshark as RoCE with the right opcodes, QPs, PSNs and DSCP/ECN; the
roce_incast experiment runs end to end on a fabric.

The first two run on a fabric of one switch (roce_flows.py): its port towards the receiver is
the bottleneck, with the fabric's traffic classes without PFC and the eBPF ECN marker on the
lossless class (DSCP 26).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter, defaultdict

import pytest
from roce_flows import run_flows

from wire.dscp import LOSSLESS

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces, tc and bpf(2)"),
    pytest.mark.skipif(shutil.which("clang") is None, reason="clang builds the ECN marker"),
]

DATA_OPCODES = {0x06, 0x07, 0x08, 0x0A}
ACK, CNP = 0x11, 0x81
MESSAGE_BYTES = 65536
MTU_PAYLOAD = 1024


def test_dcqcn_cuts_rates_on_cnps_and_every_message_completes_in_a_clean_capture(tmp_path,
                                                                                 nothing_left):
    messages = 30
    run = run_flows(tmp_path, flows=2, bottleneck_bps=20_000_000, line_bps=100e6,
                    messages=messages, message_bytes=MESSAGE_BYTES, capture=True)
    for sender in run.senders:
        (qp,) = sender["qps"]
        assert qp["messages_completed"] == messages, sender
        assert qp["cnps_received"] > 0 and qp["rate_cuts"] > 0, sender
        assert qp["min_rate_bps"] < 0.5 * 100e6, "the rate was never cut below half"
    for qp in run.receiver["qps"]:
        assert qp["messages"] == messages
        assert qp["ce_packets"] > 0
        assert 0 < qp["cnps_sent"] <= qp["ce_packets"]
    assert run.marks[LOSSLESS]["marks"] > 0
    assert "\n0 packets dropped by kernel" in run.extra["tcpdump"], run.extra["tcpdump"]
    nothing_left()
    _assert_capture_decodes(run.pcap, flows=2,
                            packets_per_qp=messages * MESSAGE_BYTES // MTU_PAYLOAD)


def _assert_capture_decodes(pcap, flows: int, packets_per_qp: int) -> None:
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed")
    fields = ["frame.number", "ip.dsfield.dscp", "ip.dsfield.ecn", "infiniband.bth.opcode",
              "infiniband.bth.destqp", "infiniband.bth.psn", "_ws.malformed"]
    argv = ["tshark", "-r", str(pcap), "-T", "fields", "-E", "separator=,"]
    for f in fields:
        argv += ["-e", f]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    rows = [line.split(",") for line in out.splitlines()]
    assert len(rows) > flows * packets_per_qp
    malformed = [r for r in rows if r[6]]
    assert not malformed, f"{len(malformed)} malformed frames, e.g. {malformed[:3]}"
    opcodes = Counter(int(r[3]) for r in rows)
    assert set(opcodes) <= DATA_OPCODES | {ACK, CNP}, opcodes
    assert opcodes[CNP] > 0 and opcodes[ACK] > 0
    psns = defaultdict(set)
    for _, dscp, ecn, opcode, destqp, psn, _ in rows:
        opcode, dscp, ecn, qp = int(opcode), int(dscp), int(ecn), int(destqp, 16)
        if opcode in DATA_OPCODES:
            assert dscp == 26 and ecn in (2, 3), (dscp, ecn)
            assert qp in {0x200 + i for i in range(flows)}
            psns[qp].add(int(psn))
        elif opcode == CNP:
            assert dscp == 48 and qp in {0x100 + i for i in range(flows)}
        else:
            assert qp in {0x100 + i for i in range(flows)}
    for qp, seen in psns.items():
        # Every PSN of the transfer crossed the bottleneck (go-back-N fills any gap).
        assert seen == set(range(packets_per_qp)), f"QP {qp:#x}: PSNs missing"


def jain(values: list[float]) -> float:
    return sum(values) ** 2 / (len(values) * sum(v * v for v in values))


def test_four_dcqcn_flows_on_one_bottleneck_converge_to_fair_shares(tmp_path, nothing_left):
    """A 2.5 Gbit/s target dilated 25 times (timers 25x the paper's, rates / 25), so
    convergence fits in a test of about 15 s."""
    message_bytes = 32768
    run = run_flows(tmp_path, flows=4, bottleneck_bps=40_000_000, line_bps=100e6,
                    messages=400, message_bytes=message_bytes, dilation=25)
    assert all(s["qps"][0]["messages_completed"] == 400 for s in run.senders)
    # The middle of the run, while all four flows are still sending.
    last = min(max(float(a["t_s"]) for a in run.arrivals if int(a["qpn"]) == 0x200 + i)
               for i in range(4))
    rates = run.qp_throughput_bps(last * 0.25, last * 0.9, message_bytes)
    assert jain(rates) >= 0.95, [round(r / 1e6, 2) for r in rates]
    assert sum(rates) > 0.5 * 40e6, "the flows left most of the bottleneck idle"
    assert all(s["qps"][0]["rate_cuts"] > 0 for s in run.senders)
    nothing_left()


def test_roce_incast_experiment_runs_both_transports_on_a_fabric(tmp_path, nothing_left):
    proc = subprocess.run(
        [sys.executable, "-m", "kvfabric.cli", "run", "roce_incast", "--results", str(tmp_path),
         "--set", "workload.blocks=3", "--set", "workload.transports=roce-dcqcn,tcp-cubic"],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = (tmp_path / "roce_incast").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "ok"
    results = summary["results"]
    assert results["all_blocks_completed"]
    roce, tcp = results["transports"]["roce-dcqcn"], results["transports"]["tcp-cubic"]
    # 7 senders: a round of 7 x 256 KiB builds a queue well past HPCC's Kmin of 100 KB at the
    # 25G target (3 senders barely reach it, as on a real 25G fabric).
    assert roce["blocks_completed"] == tcp["blocks_completed"] == 21
    assert roce["fct_p99_ms"] > 0 and tcp["fct_p99_ms"] > 0
    assert roce["ce_marked_packets"] > 0 and roce["cnps_sent"] > 0 and roce["rate_cuts"] > 0
    # The fabric's own lossless class (ECN marker, PFC) carried it: RoCE lost nothing anywhere.
    assert summary["facts"]["ecn_marker"]["owner"] == "fabric"
    assert roce["roce_class_drops_all_ports"] == 0
    assert roce["bottleneck_drops"] == 0
    for name in ("transports.csv", "roce_incast.png", "roce-dcqcn/roce_messages_h2.csv",
                 "roce-dcqcn/phase.json", "tcp-cubic/tcp_messages.csv"):
        assert (run_dir / name).stat().st_size > 0, name
    assert any("eBPF" in a or "red" in a for a in summary["approximations"])
    nothing_left()


def test_roce_incast_states_the_target_link_delay_beside_the_measured_rtt(tmp_path,
                                                                          nothing_left):
    """fabric.link_delay is not added on the links: the run says so, and puts the target's
    propagation RTT (hops x 2 x link delay) beside the path RTT it measured."""
    proc = subprocess.run(
        [sys.executable, "-m", "kvfabric.cli", "run", "roce_incast", "--results", str(tmp_path),
         "--set", "workload.blocks=1", "--set", "workload.transports=roce-dcqcn",
         "--set", "fabric.link_delay=2us"],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = (tmp_path / "roce_incast").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "ok"
    d = summary["scale"]["dilation"]
    delay = summary["facts"]["link_delay"]
    assert delay["applied"] is False and delay["target_us"] == pytest.approx(2.0)
    assert delay["emulated_us"] == pytest.approx(2.0 * d)
    env = json.loads((run_dir / "env.json").read_text())
    assert delay["netem"] == (env["capabilities"]["backends"]["delay"] == "netem")
    rtt = summary["facts"]["path_rtt"]
    assert rtt["rtt_avg_target_us"] > 0 and rtt["hops"] in (2, 4)  # same leaf or across
    assert rtt["target_propagation_rtt_us"] == pytest.approx(rtt["hops"] * 2 * 2.0)
    notes = summary["approximations"]
    assert any(n.startswith("link delay not emulated: the target's 2 us") for n in notes)
    assert any("of propagation over its" in n for n in notes)
    nothing_left()


def test_kv_trace_experiment_completes_every_planned_transfer(tmp_path, nothing_left):
    proc = subprocess.run(
        [sys.executable, "-m", "kvfabric.cli", "run", "kv_trace", "--results", str(tmp_path),
         "--set", "workload.duration=8ms", "--set", "workload.prefill=2"],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = (tmp_path / "kv_trace").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    results = summary["results"]
    assert summary["status"] == "ok" and results["all_transfers_completed"]
    with (run_dir / "plan.csv").open() as f:
        assert results["blocks_completed"] == len(f.readlines()) - 1 > 0
    for name in ("plan.csv", "kv_trace.png", "roce/roce_receiver_h1.json"):
        assert (run_dir / name).stat().st_size > 0, name
    nothing_left()
