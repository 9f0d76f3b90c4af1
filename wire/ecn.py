"""ECN codepoints: the low two bits of the IPv4 TOS byte / IPv6 traffic class (RFC 3168)."""

from __future__ import annotations

ECN_NOT_ECT = 0b00
ECN_ECT1 = 0b01
ECN_ECT0 = 0b10
ECN_CE = 0b11
#: The ECN bits of a TOS byte; the DSCP is the six bits above them.
ECN_MASK = 0b11
DSCP_SHIFT = 2

#: Codepoints by the names the command lines and specs use.
ECN_CODEPOINTS = {"notect": ECN_NOT_ECT, "ect1": ECN_ECT1, "ect0": ECN_ECT0, "ce": ECN_CE}


def tos_byte(dscp: int, ecn: int) -> int:
    """The TOS byte of a packet sent with `dscp` (0..63) and ECN codepoint `ecn` (0..3)."""
    if not 0 <= dscp < 64 or not 0 <= ecn <= ECN_MASK:
        raise ValueError(f"dscp must be 0..63 and ecn 0..3, got {dscp}, {ecn}")
    return (dscp << DSCP_SHIFT) | ecn


def ecn_of(tos: int) -> int:
    """The ECN codepoint of a TOS byte."""
    return tos & ECN_MASK


def dscp_of(tos: int) -> int:
    """The DSCP of a TOS byte."""
    return tos >> DSCP_SHIFT


def is_ce(tos: int) -> bool:
    """True if a TOS byte carries Congestion Experienced."""
    return tos & ECN_MASK == ECN_CE
