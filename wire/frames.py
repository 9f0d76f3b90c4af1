"""Header sizes of the frames on the fabric, and the frame sizes derived from an IP MTU.

A link's MTU (``fabric.mtu``) counts the IP packet; the queues, shapers and buffers count
whole Ethernet frames, so they add `ETH_HEADER_BYTES`. RoCEv2 packets carry IPv4, UDP, BTH,
optionally RETH or AETH, and an ICRC around their payload (IBTA Annex A17).
"""

from __future__ import annotations

ETH_HEADER_BYTES = 14      # destination, source, ethertype (no FCS: veth carries none)
VLAN_TAG_BYTES = 4         # one 802.1Q tag
IPV4_HEADER_BYTES = 20     # without options
UDP_HEADER_BYTES = 8
BTH_BYTES = 12             # RoCE base transport header
RETH_BYTES = 16            # RDMA extended transport header (WRITE FIRST and ONLY)
AETH_BYTES = 4             # ACK extended transport header (ACK, NAK)
ICRC_BYTES = 4             # RoCEv2 invariant CRC
#: What a real Ethernet wire adds to each frame: FCS 4, preamble and SFD 8, gap 12.
ETH_WIRE_EXTRA_BYTES = 4 + 8 + 12

#: IP-level bytes a RoCEv2 packet adds to its payload, worst case (a WRITE with RETH): what
#: `mtu_payload` + this must fit in the IP MTU.
ROCE_IP_OVERHEAD_BYTES = (IPV4_HEADER_BYTES + UDP_HEADER_BYTES + BTH_BYTES + RETH_BYTES
                          + ICRC_BYTES)
#: Bytes on a real Ethernet wire around the payload of a RoCEv2 WRITE MIDDLE packet.
ROCE_MIDDLE_WIRE_OVERHEAD_BYTES = (ETH_HEADER_BYTES + IPV4_HEADER_BYTES + UDP_HEADER_BYTES
                                   + BTH_BYTES + ICRC_BYTES + ETH_WIRE_EXTRA_BYTES)


def frame_bytes(mtu: int) -> int:
    """The largest Ethernet frame (without FCS) of a link with IP MTU `mtu`: what a queue
    holds and a shaper's quantum counts."""
    return mtu + ETH_HEADER_BYTES
