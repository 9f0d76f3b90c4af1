"""802.1Qbb PFC frames: exact bytes, quanta arithmetic, and an independent decode by tshark."""

from __future__ import annotations

import shutil

import pytest
from scapy.layers.l2 import Ether
from scapy.utils import wrpcap

from fabriccore.commands import run
from topologies.queues.pfc_frames import (
    MAX_QUANTA,
    duration_for_quanta,
    parse_pfc,
    pause_frame,
    pfc_frame,
    quanta_for_duration,
    resume_frame,
)

SRC = "02:00:00:00:00:01"
# dst 01:80:c2:00:00:01, src, ethertype 0x8808, opcode 0x0101, class-enable vector 0x0008
# (priority 3), pause times c0..c7 with c3 = 0xffff, zero padding to the 60-byte minimum.
GOLDEN_PAUSE_P3 = bytes.fromhex(
    "0180c2000001" "020000000001" "8808" "0101" "0008"
    "0000" "0000" "0000" "ffff" "0000" "0000" "0000" "0000") + bytes(26)


def test_pause_frame_golden_bytes():
    frame = pause_frame(SRC, 3, MAX_QUANTA)
    assert frame == GOLDEN_PAUSE_P3
    assert len(frame) == 60


def test_resume_enables_the_class_with_zero_time():
    frame = resume_frame(SRC, 6)
    assert frame[14:18] == bytes.fromhex("0101" "0040")
    assert frame[18:34] == bytes(16)
    assert parse_pfc(frame) == {6: 0}


def test_multi_priority_frame_round_trips():
    frame = pfc_frame(SRC, {0: 10, 7: 65535})
    assert frame[16:18] == bytes.fromhex("0081")
    assert parse_pfc(frame) == {0: 10, 7: 65535}


def test_parse_pfc_ignores_other_frames():
    assert parse_pfc(bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src=SRC, type=0x0800) / bytes(46))) \
        is None


@pytest.mark.parametrize("priority, quanta", [(8, 1), (-1, 1), (3, 65536), (3, -1), (3, 1.5)])
def test_bad_priority_or_quanta_rejected(priority, quanta):
    with pytest.raises(ValueError):
        pause_frame(SRC, priority, quanta)


def test_pfc_frame_needs_a_priority():
    with pytest.raises(ValueError):
        pfc_frame(SRC, {})


def test_quanta_arithmetic():
    # One quantum is 512 bit times: 20.48 ns at 25 Gbit/s.
    assert quanta_for_duration(20.48e-9, 25e9) == 1
    assert quanta_for_duration(20.49e-9, 25e9) == 2          # rounds up: pause long enough
    assert quanta_for_duration(0, 25e9) == 0
    assert quanta_for_duration(1.0, 100e9) == MAX_QUANTA     # capped
    assert duration_for_quanta(MAX_QUANTA, 100e9) == pytest.approx(335.5e-6, rel=1e-3)
    assert duration_for_quanta(quanta_for_duration(1e-3, 20e6), 20e6) >= 1e-3
    with pytest.raises(ValueError):
        quanta_for_duration(1e-6, 0)


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_tshark_decodes_pfc(tmp_path):
    """Wireshark's MAC Control dissector (fields macc.*) reads our frames as CBFC for the
    right priorities and quanta."""
    pcap = tmp_path / "pfc.pcap"
    wrpcap(str(pcap), [Ether(pause_frame(SRC, 3, 1234)), Ether(resume_frame(SRC, 6)),
                       Ether(pfc_frame(SRC, {0: 10, 7: 65535}))])
    fields = ["eth.dst", "eth.type", "macc.opcode", "macc.cbfc.enbv",
              *[f"macc.cbfc.pause_time.c{p}" for p in range(8)]]
    argv = ["tshark", "-r", str(pcap), "-T", "fields", "-E", "separator=,"]
    for f in fields:
        argv += ["-e", f]
    rows = [line.split(",") for line in run(argv).stdout.splitlines()]
    common = ["01:80:c2:00:00:01", "0x8808", "0x0101"]
    assert rows[0] == [*common, "0x0008", "0", "0", "0", "1234", "0", "0", "0", "0"]
    assert rows[1] == [*common, "0x0040", "0", "0", "0", "0", "0", "0", "0", "0"]
    assert rows[2] == [*common, "0x0081", "10", "0", "0", "0", "0", "0", "0", "65535"]
    verbose = run(["tshark", "-r", str(pcap), "-V", "-c", "1"]).stdout
    assert "Class Based Flow Control" in verbose and "C3: True" in verbose
