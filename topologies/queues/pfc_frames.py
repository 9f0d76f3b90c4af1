"""IEEE 802.1Qbb priority flow control (PFC) frames, declared with Scapy's MAC Control layer.

A PFC frame goes to 01:80:C2:00:00:01 with ethertype 0x8808, opcode 0x0101, a 16-bit
class-enable vector (low 8 bits used) and eight 16-bit pause times in quanta of 512 bit times;
an enabled class with time 0 means resume. Scapy builds the template; senders keep the bytes.
"""

from __future__ import annotations

import functools
import math
import struct
from collections.abc import Mapping

from scapy.contrib.mac_control import MACControl, MACControlClassBasedFlowControl
from scapy.layers.l2 import Ether

PFC_DST_MAC = "01:80:c2:00:00:01"
MAC_CONTROL_ETHERTYPE = 0x8808
PFC_OPCODE = MACControl.OP_CODE_CLASS_BASED_FLOW_CONTROL  # 0x0101
PFC_QUANTUM_BITS = 512
MAX_QUANTA = 0xFFFF


def quanta_for_duration(duration_s: float, rate_bps: float) -> int:
    """Pause quanta covering `duration_s` at `rate_bps`, rounded up, capped at 0xFFFF.

    One quantum is the time to send 512 bits at the link rate, so the same duration needs
    more quanta on a faster link (at 100 Gbit/s 0xFFFF quanta last only 335 us).
    """
    if duration_s < 0 or rate_bps <= 0:
        raise ValueError(f"need duration_s >= 0 and rate_bps > 0, got {duration_s}, {rate_bps}")
    return min(MAX_QUANTA, math.ceil(duration_s * rate_bps / PFC_QUANTUM_BITS))


def duration_for_quanta(quanta: int, rate_bps: float) -> float:
    """Seconds that `quanta` pause quanta last at `rate_bps`."""
    _check_quanta(quanta)
    return quanta * PFC_QUANTUM_BITS / rate_bps


def _check_quanta(quanta: int) -> None:
    if isinstance(quanta, bool) or not isinstance(quanta, int) or not 0 <= quanta <= MAX_QUANTA:
        raise ValueError(f"pause quanta must be an int in 0..65535, got {quanta!r}")


def pfc_frame(src_mac: str, pause_quanta: Mapping[int, int]) -> bytes:
    """One PFC frame enabling each priority in `pause_quanta` with its pause time (0 =
    resume); priorities not listed are left disabled, so the peer leaves them alone."""
    for priority, quanta in pause_quanta.items():
        if isinstance(priority, bool) or priority not in range(8):
            raise ValueError(f"priority must be 0..7, got {priority!r}")
        _check_quanta(quanta)
    if not pause_quanta:
        raise ValueError("a PFC frame needs at least one priority")
    try:
        src = bytes.fromhex(src_mac.replace(":", ""))
    except ValueError:
        src = b""
    if len(src) != 6:
        raise ValueError(f"source MAC must be six bytes (aa:bb:cc:dd:ee:ff), got {src_mac!r}")
    # Scapy builds each distinct set of pause times once (a millisecond each); a port's frame
    # is that template with its own source address.
    template = _frame_template(tuple(sorted(pause_quanta.items())))
    return template[:6] + src + template[12:]


@functools.lru_cache(maxsize=256)
def _frame_template(pause_quanta: tuple[tuple[int, int], ...]) -> bytes:
    fields: dict[str, int] = {}
    for priority, quanta in pause_quanta:
        fields[f"c{priority}_enabled"] = 1
        fields[f"c{priority}_pause_time"] = quanta
    frame = Ether(dst=PFC_DST_MAC, src="00:00:00:00:00:00", type=MAC_CONTROL_ETHERTYPE) \
        / MACControlClassBasedFlowControl(**fields)
    # MACControl.post_build pads to the 64-byte minimum (60 here, the FCS is the NIC's).
    return bytes(frame)


def pause_frame(src_mac: str, priority: int, quanta: int = MAX_QUANTA) -> bytes:
    """PAUSE `priority` for `quanta` x 512 bit times."""
    return pfc_frame(src_mac, {priority: quanta})


def resume_frame(src_mac: str, priority: int) -> bytes:
    """Resume `priority`: its class enabled with pause time zero."""
    return pfc_frame(src_mac, {priority: 0})


def parse_pfc(frame: bytes) -> dict[int, int] | None:
    """{priority: quanta} for the enabled classes of a PFC frame, None if not PFC."""
    pkt = Ether(frame)
    layer = pkt.getlayer(MACControlClassBasedFlowControl)
    if layer is None or pkt.dst.lower() != PFC_DST_MAC:
        return None
    return {p: getattr(layer, f"c{p}_pause_time") for p in range(8)
            if getattr(layer, f"c{p}_enabled")}


def parse_pfc_bytes(frame: bytes) -> dict[int, int] | None:
    """{priority: quanta} of a PFC frame, without Scapy (same result as parse_pfc), for
    the queue agent's receive path."""
    if len(frame) < 34 or frame[12:16] != b"\x88\x08\x01\x01":
        return None
    if frame[:6] != b"\x01\x80\xc2\x00\x00\x01":
        return None
    (enable,) = struct.unpack_from("!H", frame, 16)
    quanta = struct.unpack_from("!8H", frame, 18)
    return {p: quanta[p] for p in range(8) if enable & (1 << p)}
