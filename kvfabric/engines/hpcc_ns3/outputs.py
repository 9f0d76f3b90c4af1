"""Parsers of HPCC ns-3's outputs (formats as scratch/third.cc writes them).

fct.txt   ``sip dip sport dport size start_ns fct_ns standalone_ns`` per finished flow, IPs as
          8 hex digits (node id = (ip >> 8) & 0xffff)
pfc.txt   ``time_ns node node_type ifindex type`` per PFC frame received (1 pause, 0 resume;
          the node is the one that was paused)
qlen.txt  blocks of ``time: T`` then ``switch port n0 n1 ...`` where n_k counts the 100 ns
          samples at which the port's egress queue held k KB (floor of bytes / 1000),
          cumulative from QLEN_MON_START
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

QLEN_SAMPLE_NS = 100


@dataclass(frozen=True)
class FlowRecord:
    src_node: int
    dst_node: int
    sport: int
    dport: int
    size_bytes: int
    start_ns: int
    fct_ns: int
    standalone_ns: int


@dataclass(frozen=True)
class PfcRecord:
    time_ns: int
    node: int
    node_type: int  # 0 host, 1 switch
    ifindex: int
    pause: bool


def ip_to_node(hex_ip: str) -> int:
    return (int(hex_ip, 16) >> 8) & 0xFFFF


def parse_fct(path: Path) -> list[FlowRecord]:
    out = []
    for line in _lines(path):
        sip, dip, sport, dport, size, start, fct, alone = line.split()
        out.append(FlowRecord(ip_to_node(sip), ip_to_node(dip), int(sport), int(dport),
                              int(size), int(start), int(fct), int(alone)))
    return out


def parse_pfc(path: Path) -> list[PfcRecord]:
    out = []
    for line in _lines(path):
        time_ns, node, node_type, ifindex, kind = line.split()
        out.append(PfcRecord(int(time_ns), int(node), int(node_type), int(ifindex),
                             kind == "1"))
    return out


def parse_qlen(path: Path) -> tuple[int | None, dict[tuple[int, int], list[int]]]:
    """The last dump: (its time in ns, {(switch, port): samples per KB}), cumulative."""
    last_time, current = None, {}
    for line in _lines(path):
        if line.startswith("time:"):
            last_time, current = int(line.split()[1]), {}
            continue
        parts = [int(x) for x in line.split()]
        current[(parts[0], parts[1])] = parts[2:]
    return last_time, current


def histogram_stats(counts: list[int], span_samples: int | None = None) -> dict[str, float]:
    """Queue figures of one port's histogram in bytes (each sample counted at its KB floor):
    max, p50/p99 over the samples, mean over ``span_samples`` (e.g. the transfer's span;
    samples outside it hold an empty queue) or over all samples."""
    total = sum(counts)
    if not total:
        return {"samples": 0}
    busy = [kb for kb, n in enumerate(counts) if n and kb]
    weighted = sum(kb * n for kb, n in enumerate(counts)) * 1000

    def quantile(q: float) -> int:
        seen, goal = 0, q * total
        for kb, n in enumerate(counts):
            seen += n
            if seen >= goal:
                return kb * 1000
        return (len(counts) - 1) * 1000

    span = span_samples if span_samples else total
    return {"samples": total, "max_bytes": (max(busy) if busy else 0) * 1000,
            "p50_bytes": quantile(0.5), "p99_bytes": quantile(0.99),
            "mean_bytes": weighted / max(span, 1)}


def _lines(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
