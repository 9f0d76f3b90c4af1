"""The simulator's packet trace (``--trace NODES``: sim/mix.tr, binary) decoded by its own
``analysis/trace_reader`` into the run folder's ``packets.csv``.

trace_reader (HPCC repository, ``analysis/``; build it as its README says) prints one line per
packet event (its ``print_trace``), every line starting
``time_ns n:node intf:queue``; then, by packet type:

data (``U``/``T``)  ``qlen event ecn:E sip dip sport dport U seq tx_ts pg size(payload)``
ACK/NACK (``A``/``N``)  ``qlen event ecn:E sip dip sport dport A 0xFLAGS pg seq tx_ts size``
PFC (``P``)  ``qlen event ecn:E sip dip P pause_time pfc_qlen pfc_queue size``
CNP (``C``)  ``qlen event ecn:E sip dip C fid queue ecn_bits seq size``
QP available  ``event sip dip sport dport`` (no queue length, no ECN)
other  ``qlen event ecn:E sip dip l3_protocol_hex size``

Events are Recv, Enqu, Dequ, Drop; ``qlen`` is the queue's bytes at the event; ``ecn`` the IP
ECN bits (3: congestion experienced); IPs are 8 hex digits (node = (ip >> 8) & 0xffff).
"""

from __future__ import annotations

import csv
import os
import subprocess
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wire.ecn import ECN_CE

from .outputs import ip_to_node

ENV_VAR = "KVFABRIC_TRACE_READER"
#: Where trace_reader sits relative to the simulator's simulation/ folder.
BESIDE_SIMULATION = Path("..") / "analysis" / "trace_reader"
PACKET_TYPES = {"U": "data", "T": "data", "A": "ack", "N": "nack", "P": "pfc", "C": "cnp"}
COLUMNS = ["time_ns", "t_s", "node", "interface", "peer", "queue", "queue_bytes", "event",
           "packet", "ecn", "src", "dst", "sport", "dport", "seq", "priority", "size_bytes",
           "payload_bytes", "ack_flags", "pause_time"]


class TraceLineError(ValueError):
    """A trace_reader line that is not in the documented format."""


def locate(explicit: str | None = None, simulation_root: Path | None = None
           ) -> tuple[Path | None, str]:
    """trace_reader from ``--trace-reader PATH``, ``$KVFABRIC_TRACE_READER`` or the
    simulator's checkout (``analysis/`` beside ``simulation/``); or None and why not."""
    given = explicit or os.environ.get(ENV_VAR)
    if given:
        path = Path(given).expanduser()
        if path.is_dir():
            path = path / "trace_reader"
        if path.is_file() and os.access(path, os.X_OK):
            return path.resolve(), str(path.resolve())
        return None, (f"{path} is not an executable trace_reader: build it in the simulator "
                      "repository's analysis/ folder (make trace_reader, as its README says) "
                      f"and pass --trace-reader PATH or set {ENV_VAR}")
    if simulation_root is not None:
        path = (simulation_root / BESIDE_SIMULATION).resolve()
        if path.is_file() and os.access(path, os.X_OK):
            return path, str(path)
        return None, (f"no {path}: build it in the simulator repository's analysis/ folder "
                      f"(make trace_reader, as its README says), or pass --trace-reader PATH "
                      f"or set {ENV_VAR}")
    return None, (f"no simulator to look beside; pass --trace-reader PATH or set {ENV_VAR}")


def parse_line(line: str) -> dict[str, Any]:
    """One trace_reader line as a row of packets.csv (node and hosts as numbers)."""
    parts = line.split()
    try:
        time_ns = int(parts[0])
        node = int(parts[1].removeprefix("n:"))
        intf, queue = (int(x) for x in parts[2].split(":"))
        row: dict[str, Any] = {"time_ns": time_ns, "node": node, "interface": intf,
                               "queue": queue}
        if not parts[3].isdigit():  # QP available: no queue length, no ECN
            event, sip, dip, sport, dport = parts[3:8]
            row.update(queue_bytes="", event=event, packet="qp_available", ecn="",
                       src=ip_to_node(sip), dst=ip_to_node(dip), sport=int(sport),
                       dport=int(dport))
            return row
        qlen, event, ecn, sip, dip = parts[3:8]
        if not ecn.startswith("ecn:"):
            raise TraceLineError(f"no ecn: field in {line!r}")
        row.update(queue_bytes=int(qlen), event=event, ecn=int(ecn[4:], 16),
                   src=ip_to_node(sip), dst=ip_to_node(dip))
        rest = parts[8:]
        if len(rest) >= 3 and rest[2] in ("U", "T"):
            sport, dport, _, seq, _ts, pg, sizes = rest[:7]
            size, payload = sizes.rstrip(")").split("(")
            row.update(packet="data", sport=int(sport), dport=int(dport), seq=int(seq),
                       priority=int(pg), size_bytes=int(size), payload_bytes=int(payload))
        elif len(rest) >= 3 and rest[2] in ("A", "N"):
            sport, dport, kind, flags, pg, seq, _ts, size = rest[:8]
            row.update(packet=PACKET_TYPES[kind], sport=int(sport), dport=int(dport),
                       ack_flags=int(flags, 16), priority=int(pg), seq=int(seq),
                       size_bytes=int(size))
        elif rest and rest[0] == "P":
            _, pause_time, _pfc_qlen, pfc_queue, size = rest[:5]
            row.update(packet="pfc", pause_time=int(pause_time), priority=int(pfc_queue),
                       size_bytes=int(size))
        elif rest and rest[0] == "C":
            _, _fid, cnp_queue, _ecn_bits, seq, size = rest[:6]
            row.update(packet="cnp", priority=int(cnp_queue), seq=int(seq),
                       size_bytes=int(size))
        else:
            row.update(packet=f"l3_0x{rest[0]}", size_bytes=int(rest[1]))
        return row
    except (IndexError, ValueError) as exc:
        raise TraceLineError(f"not a trace_reader line: {line!r} ({exc})") from exc


@dataclass
class DecodedTrace:
    rows: int
    summary: dict[str, Any]


def write_packets(lines: Iterable[str], out: Path, names: dict[int, str],
                  peers: dict[tuple[int, int], int], offset_ns: int) -> DecodedTrace:
    """packets.csv from trace_reader's lines (node and host names, ``t_s`` from the first
    flow's start like flows.csv), and its summary: rows, events, packet types, CE-marked
    data packets, drops, PFC frames."""
    events, packets, nodes = Counter(), Counter(), Counter()
    ce_data = rows = 0
    first = last = None
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, restval="")
        writer.writeheader()
        for line in lines:
            if not line.strip():
                continue
            row = parse_line(line)
            node = row["node"]
            row["t_s"] = f"{(row['time_ns'] - offset_ns) / 1e9:.9f}"
            row["peer"] = names.get(peers.get((node, row["interface"])), "")
            row["node"] = names.get(node, node)
            for key in ("src", "dst"):
                row[key] = names.get(row[key], row[key])
            writer.writerow(row)
            rows += 1
            events[row["event"]] += 1
            packets[row["packet"]] += 1
            nodes[row["node"]] += 1
            ce_data += row["packet"] == "data" and row["ecn"] == ECN_CE
            first = row["time_ns"] if first is None else first
            last = row["time_ns"]
    summary = {"decoded": True, "file": out.name, "rows": rows, "events": dict(events),
               "packets": dict(packets), "rows_per_node": dict(nodes),
               "data_ce_marked": ce_data, "drops": events.get("Drop", 0),
               "first_s": (first - offset_ns) / 1e9 if first is not None else None,
               "last_s": (last - offset_ns) / 1e9 if last is not None else None}
    return DecodedTrace(rows, summary)


def decode(reader: Path, trace_file: Path, out: Path, names: dict[int, str],
           peers: dict[tuple[int, int], int], offset_ns: int) -> DecodedTrace:
    """Run ``reader trace_file`` and stream its lines into ``out`` (packets.csv); its stderr
    goes to trace_reader.log beside the trace."""
    log = trace_file.with_name("trace_reader.log")
    with log.open("w") as err, subprocess.Popen([str(reader), str(trace_file)],
                                                stdout=subprocess.PIPE, stderr=err,
                                                text=True) as proc:
        try:
            decoded = write_packets(proc.stdout, out, names, peers, offset_ns)
        except TraceLineError:
            proc.kill()
            raise
    if proc.returncode != 0:
        tail = log.read_text().strip()[-300:]
        raise RuntimeError(f"{reader} exited with {proc.returncode}"
                           + (f": {tail}" if tail else f" (see sim/{log.name})"))
    decoded.summary["trace_reader"] = str(reader)
    return decoded
