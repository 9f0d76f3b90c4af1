"""How a RoCE endpoint's command line names a QP, and the UDP source port the QP sends from."""

from __future__ import annotations


def parse_qp(text: str) -> tuple[str, int, int]:
    """A ``--qp`` PEER_IP:LOCAL_QPN:REMOTE_QPN as (peer IP, local QPN, remote QPN)."""
    ip, local, remote = text.rsplit(":", 2)
    return ip, int(local, 0), int(remote, 0)


def entropy_port(qpn: int) -> int:
    """UDP source port of a QP: in the dynamic range, from the QPN (flow entropy for ECMP)."""
    return 49152 + (qpn * 2654435761) % 16384
