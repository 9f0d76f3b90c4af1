"""The simulator's packet trace: trace_reader's lines (the formats of its print_trace, in a
hand-written fixture) parsed into packets.csv, and `kvfabric sim --trace` decoding sim/mix.tr
through trace_reader, or saying plainly that it could not."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest
from kvfabric_command import kvfabric, usage_error

from kvfabric.engines.hpcc_ns3 import trace
from kvfabric.engines.hpcc_ns3.trace import TraceLineError, parse_line, write_packets

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = Path(__file__).parent / "fixtures" / "hpcc_ns3" / "trace" / "trace_reader.txt"
INCAST = ROOT / "bench" / "fidelity_incast.toml"
LINES = FIXTURE.read_text().splitlines()


def test_each_packet_type_parses_into_its_fields():
    data, marked, ack, nack, pfc, cnp, qp, other = (parse_line(line) for line in LINES)
    assert data == {"time_ns": 2_000_000_000, "node": 9, "interface": 1, "queue": 3,
                    "queue_bytes": 0, "event": "Dequ", "ecn": 0, "src": 9, "dst": 0,
                    "packet": "data", "sport": 10000, "dport": 100, "seq": 0, "priority": 3,
                    "size_bytes": 1048, "payload_bytes": 1000}
    assert marked["ecn"] == trace.ECN_CE and marked["seq"] == 2000 and marked["src"] == 2
    assert (ack["packet"], ack["sport"], ack["dport"], ack["seq"], ack["size_bytes"],
            ack["ack_flags"]) == ("ack", 100, 10000, 1000, 60, 0)
    assert (nack["packet"], nack["ack_flags"], nack["seq"]) == ("nack", 4, 3000)
    assert (pfc["packet"], pfc["node"], pfc["interface"], pfc["queue_bytes"],
            pfc["pause_time"], pfc["priority"], pfc["size_bytes"]) == (
        "pfc", 10, 2, 5000, 65535, 3, 64)
    assert (cnp["packet"], cnp["priority"], cnp["seq"], cnp["dst"]) == ("cnp", 3, 4000, 3)
    assert (qp["packet"], qp["event"], qp["queue_bytes"], qp["src"], qp["sport"]) == (
        "qp_available", "Recv", "", 2, 10001)
    assert (other["packet"], other["event"], other["size_bytes"]) == ("l3_0x1", "Drop", 1048)


def test_a_line_in_another_format_is_refused_with_the_line():
    with pytest.raises(TraceLineError, match="not a trace_reader line: 'Usage"):
        parse_line("Usage: ./trace_reader <trace_file> [filter_expr]")


def test_packets_csv_names_nodes_and_ports_and_counts_what_matters(tmp_path):
    names = {0: "h1", 2: "h3", 3: "h4", 9: "h10", 10: "l1"}
    peers = {(9, 1): 10, (0, 1): 10, (10, 2): 0}
    decoded = write_packets(LINES, tmp_path / "packets.csv", names, peers, 2_000_000_000)
    rows = list(csv.DictReader((tmp_path / "packets.csv").open()))
    assert decoded.rows == len(rows) == len(LINES)
    assert rows[0]["node"] == "h10" and rows[0]["peer"] == "l1" and rows[0]["dst"] == "h1"
    assert rows[1]["t_s"] == "0.000008030"
    assert rows[4]["node"] == "l1" and rows[4]["peer"] == "h1"
    s = decoded.summary
    assert s["data_ce_marked"] == 1 and s["drops"] == 1
    assert s["packets"] == {"data": 2, "ack": 1, "nack": 1, "pfc": 1, "cnp": 1,
                            "qp_available": 1, "l3_0x1": 1}


FAKE_SIMULATOR = """#!{python}
# Stands in for scratch/third: every flow of flow.txt finishes in {fct_ns} ns; an opaque mix.tr.
lines = open("flow.txt").read().split("\\n")[1:]
with open("fct.txt", "w") as out:
    for k, line in enumerate(l for l in lines if l.strip()):
        src, dst, _pg, dport, size, start = line.split()
        ip = lambda n: 0x0b000001 + int(n) * 0x100
        out.write(f"{{ip(src):08x}} {{ip(dst):08x}} {{10000 + k}} {{dport}} {{size}} "
                  f"{{round(float(start) * 1e9)}} {fct_ns} 340000\\n")
for name in ("pfc.txt", "qlen.txt"):
    open(name, "w").close()
open("mix.tr", "wb").write(b"binary")
"""


def _fake_checkout(tmp_path: Path, with_reader: bool, fct_ns: int = 3_000_000) -> Path:
    binary = tmp_path / "hpcc" / "simulation" / "build" / "scratch" / "third"
    binary.parent.mkdir(parents=True)
    binary.write_text(FAKE_SIMULATOR.format(python=sys.executable, fct_ns=fct_ns))
    binary.chmod(0o755)
    if with_reader:  # prints the fixture whatever the trace file holds
        reader = tmp_path / "hpcc" / "analysis" / "trace_reader"
        reader.parent.mkdir()
        reader.write_text(f"#!/bin/sh\n[ -f \"$1\" ] && cat {FIXTURE}\n")
        reader.chmod(0o755)
    return binary.parents[2]


def _sim(tmp_path: Path, simulation: Path, *extra: str):
    return kvfabric("sim", INCAST, "--ns3", simulation, "--results", tmp_path / "results",
                    "--trace", "h1,l1", *extra, env={trace.ENV_VAR: None})


def _summary(tmp_path: Path) -> tuple[Path, dict]:
    (run_dir,) = (tmp_path / "results" / "fidelity_incast").iterdir()
    return run_dir, json.loads((run_dir / "summary.json").read_text())


def test_sim_decodes_the_trace_with_the_trace_reader_beside_the_simulator(tmp_path):
    proc = _sim(tmp_path, _fake_checkout(tmp_path, with_reader=True))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"packet trace          {len(LINES)} rows in packets.csv" in proc.stdout
    run_dir, summary = _summary(tmp_path)
    assert summary["packet_trace"]["decoded"] is True
    assert summary["packet_trace"]["rows"] == len(LINES)
    assert summary["packet_trace"]["data_ce_marked"] == 1
    assert len((run_dir / "packets.csv").read_text().splitlines()) == len(LINES) + 1


def test_without_trace_reader_the_run_says_so_and_keeps_the_binary_trace(tmp_path):
    proc = _sim(tmp_path, _fake_checkout(tmp_path, with_reader=False))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "packet trace NOT decoded: trace_reader not found" in proc.stdout
    assert "make trace_reader" in proc.stdout and "sim/mix.tr" in proc.stdout
    run_dir, summary = _summary(tmp_path)
    assert summary["packet_trace"]["decoded"] is False
    assert "--trace-reader PATH" in summary["packet_trace"]["why"]
    assert (run_dir / "sim" / "mix.tr").exists() and not (run_dir / "packets.csv").exists()


def test_a_trace_reader_path_that_is_not_one_is_refused_before_running(tmp_path):
    simulation = _fake_checkout(tmp_path, with_reader=False)
    err = usage_error(_sim(tmp_path, simulation, "--trace-reader", tmp_path / "nowhere"))
    assert "--trace-reader" in err and "make trace_reader" in err
    assert not (tmp_path / "results").exists()


def test_a_trace_reader_that_fails_is_said_with_its_error(tmp_path):
    simulation = _fake_checkout(tmp_path, with_reader=True)
    reader = simulation.parent / "analysis" / "trace_reader"
    reader.write_text("#!/bin/sh\necho 'trace_reader: Assertion ret != 0 failed' >&2\nexit 134\n")
    proc = _sim(tmp_path, simulation)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ("packet trace NOT decoded: trace_reader failed: " in proc.stdout
            and "exited with 134: trace_reader: Assertion ret != 0 failed" in proc.stdout)
    _, summary = _summary(tmp_path)
    assert summary["packet_trace"]["decoded"] is False


def test_trace_reader_without_trace_nodes_is_refused(tmp_path):
    err = usage_error(kvfabric("sim", INCAST, "--trace-reader", tmp_path, "--export-only",
                               tmp_path / "in"))
    assert "--trace NODES" in err and not (tmp_path / "in").exists()
