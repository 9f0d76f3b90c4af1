"""KV plans written as RoCEv2 pcaps: every message segmented with continuous PSNs per QP, an
ACK after each message, time order, valid ICRCs, and tshark decodes it as RoCE."""

import shutil
import subprocess
from collections import defaultdict

from scapy.utils import RawPcapReader

from traffic import kv_patterns
from traffic.kv_pcap import write_pcap
from traffic.roce_packets import compute_icrc

BTH = 14 + 20 + 8


def test_incast_plan_becomes_segmented_messages_with_acks(tmp_path):
    plan = kv_patterns.incast(["a", "b", "c"], "d", 5000, rounds=2, round_interval_s=1e-3)
    path = tmp_path / "incast.pcap"
    assert write_pcap(str(path), plan, rate_bps=10e9, mtu=1024) == 6 * (5 + 1)
    times, psns, opcodes = [], defaultdict(list), []
    for data, meta in RawPcapReader(str(path)):
        times.append(meta.sec + meta.usec * 1e-9)
        assert data[-4:] == compute_icrc(data)
        opcode, qp = data[BTH], int.from_bytes(data[BTH + 5:BTH + 8], "big")
        opcodes.append(opcode)
        if opcode != 0x11:
            psns[qp].append(int.from_bytes(data[BTH + 9:BTH + 12], "big"))
    assert times == sorted(times)
    assert opcodes.count(0x11) == 6 and opcodes.count(0x06) == 6 and opcodes.count(0x08) == 6
    assert len(psns) == 3 and all(p == list(range(10)) for p in psns.values())


def test_tshark_decodes_a_kv_pcap_without_malformed_frames(tmp_path):
    if shutil.which("tshark") is None:
        return  # the golden-vector tests in test_roce_packets cover the bytes without it
    plan = kv_patterns.incast(["a", "b"], "c", 3000)
    path = tmp_path / "kv.pcap"
    write_pcap(str(path), plan, rate_bps=1e9)
    out = subprocess.run(["tshark", "-r", str(path), "-T", "fields", "-e",
                          "infiniband.bth.opcode", "-e", "_ws.malformed"],
                         capture_output=True, text=True, check=True).stdout.split("\n")
    rows = [line.split("\t") for line in out if line]
    assert sorted(int(r[0]) for r in rows) == [6, 6, 7, 7, 8, 8, 17, 17]
    assert not any(r[1] for r in rows)
