"""How faithful a run was: whether the host kept up with the emulated fabric.

An emulation is only a slow-motion copy of its target while the host carries every emulated
rate on time. Like Mininet-HiFi (Handigol et al., CoNEXT 2012) each run checks invariants and
says `fidelity: "ok"` or `"degraded"` with the reasons and the figures behind them:

- links: each busy port's achieved rate (bytes its qdisc sent between samples that found it
  backlogged and not paused, over at least 0.1 s) against its configured rate
  (``queues/queue_samples.csv``, ``links.csv``);
- the queue agent's sweep lag (``queues/agent.json``) against the PFC reaction the headroom
  was sized for; it is also reported in target microseconds;
- the senders' pacing lag (how late frames left after their release time,
  ``roce_sender_*.json``) against a few frame times at the host rate;
- CPU saturation over the workload (``fidelity_cpu.csv``, written by ``CpuSampler``).

``assess`` reads the run folder only. ``scale_and_fidelity_lines`` renders summary.json's
``scale`` and ``fidelity`` for ``kvfabric show`` and report.md.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from . import results

#: A busy link delivering less than this share of its configured rate is degraded.
MIN_LINK_RATE_SHARE = 0.90
#: Backlogged time (emulated s) below which a port's achieved rate is not judged.
MIN_BUSY_S = 0.1
#: A backlog of at least this many bytes counts as busy (two full frames).
BUSY_BACKLOG_BYTES = 3000
#: CPU busy share over the workload at or above which the host is saturated.
MAX_CPU_BUSY = 0.95
#: Pacing lag (p99) above this many frame times at the emulated host rate is degraded.
MAX_PACING_LAG_FRAMES = 16
FRAME_BYTES = 1500
CPU_FILE = "fidelity_cpu.csv"
PROC_FILE = "fidelity_endpoints.csv"
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _endpoint_name(argv: list[bytes]) -> str | None:
    """'recv h1' / 'send h2' for a RoCE endpoint's command line, else None."""
    if b"traffic.roce_endpoint" not in argv:
        return None
    role = argv[argv.index(b"traffic.roce_endpoint") + 1].decode() if len(argv) > 3 else "?"
    name = argv[argv.index(b"--name") + 1].decode() if b"--name" in argv else "?"
    return f"{role} {name}"


class CpuSampler:
    """Samples the host's CPU busy share (/proc/stat) every ``period_s`` in a thread while
    the workload runs, into ``run_dir/fidelity_cpu.csv``."""

    def __init__(self, run_dir: Path, period_s: float = 0.05) -> None:
        self.path = run_dir / CPU_FILE
        self.period_s = period_s
        self._stop = threading.Event()
        self._rows: list[dict[str, Any]] = []
        self._thread = threading.Thread(target=self._loop, name="kvf-cpu", daemon=True)
        self._names: dict[str, str | None] = {}
        self._procs: dict[str, dict[str, Any]] = {}

    def __enter__(self) -> CpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        results.write_csv(self.path, self._rows or [{"t_s": 0.0, "busy": None, "cpus": None}])
        if self._procs:
            results.write_csv(self.path.with_name(PROC_FILE), list(self._procs.values()))

    def _loop(self) -> None:
        start = time.monotonic()
        prev = _cpu_times()
        while not self._stop.wait(self.period_s):
            now = _cpu_times()
            total = now[0] - prev[0]
            busy = (total - (now[1] - prev[1])) / total if total > 0 else 0.0
            self._rows.append({"t_s": round(time.monotonic() - start, 3),
                               "busy": round(busy, 4), "cpus": now[2]})
            prev = now
            self._sample_endpoints(time.monotonic() - start)

    def _sample_endpoints(self, t_s: float) -> None:
        """CPU seconds of every RoCE endpoint process so far (what limits a low dilation)."""
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            if pid not in self._names:
                try:
                    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                except OSError:
                    continue
                self._names[pid] = _endpoint_name(argv)
            if self._names[pid] is None:
                continue
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            cpu_s = (int(fields[11]) + int(fields[12])) / _CLK_TCK
            first = self._procs.get(pid, {}).get("first_s", t_s)
            self._procs[pid] = {"pid": pid, "endpoint": self._names[pid],
                                "cpu_s": round(cpu_s, 3), "first_s": round(first, 3),
                                "last_s": round(t_s, 3)}


def _cpu_times() -> tuple[int, int, int]:
    """(total jiffies, idle + iowait jiffies, CPUs) from /proc/stat."""
    with open("/proc/stat") as f:
        lines = f.read().splitlines()
    fields = [int(x) for x in lines[0].split()[1:]]
    cpus = sum(1 for ln in lines if ln.startswith("cpu") and ln[3:4].isdigit())
    return sum(fields[:8]), fields[3] + fields[4], cpus


def assess(run_dir: Path, spec) -> dict[str, Any]:
    """The run's fidelity from its folder: status, reasons and figures."""
    d = spec.scale.dilation if spec.scale else 1.0
    reasons: list[str] = []
    figures: dict[str, Any] = {}
    _check_cpu(run_dir, reasons, figures)
    _endpoint_cpu(run_dir, figures)
    _check_links(run_dir, reasons, figures)
    settings = spec.queue_settings()
    if settings is not None:
        _check_agent(run_dir, settings.reaction_s, d, reasons, figures)
    _check_pacing(run_dir, spec.fabric["host_rate"], d, reasons, figures)
    return {"status": "degraded" if reasons else "ok", "reasons": reasons,
            "figures": figures}


def _check_cpu(run_dir: Path, reasons: list[str], figures: dict[str, Any]) -> None:
    path = run_dir / CPU_FILE
    if not path.exists():
        return
    busy = [float(r["busy"]) for r in results.read_csv(path) if r["busy"] not in ("", None)]
    if not busy:
        return
    mean = sum(busy) / len(busy)
    saturated = sum(b >= 0.98 for b in busy) / len(busy)
    figures["cpu_busy_mean"] = round(mean, 3)
    figures["cpu_saturated_share"] = round(saturated, 3)
    if mean >= MAX_CPU_BUSY:
        reasons.append(f"CPU saturated: {mean:.0%} busy on average over the workload "
                       f"({saturated:.0%} of samples at 98 % or more)")


def _endpoint_cpu(run_dir: Path, figures: dict[str, Any]) -> None:
    """The share of one core each RoCE endpoint used while it ran: the receiver, which
    handles every data packet and sends every ACK and CNP, is the first to run out."""
    path = run_dir / PROC_FILE
    if not path.exists():
        return
    shares: dict[str, float] = {}
    for r in results.read_csv(path):
        span = float(r["last_s"]) - float(r["first_s"])
        if span > 0.2:
            shares[r["endpoint"]] = round(float(r["cpu_s"]) / span, 3)
    if shares:
        figures["endpoint_core_share"] = shares


def _check_links(run_dir: Path, reasons: list[str], figures: dict[str, Any]) -> None:
    samples, links = run_dir / "queues" / "queue_samples.csv", run_dir / "links.csv"
    if not samples.exists() or not links.exists():
        figures["links"] = "not measured (no queue samples)"
        return
    rates = {(r["node"], r["ifname"]): float(r["rate_bps"]) for r in results.read_csv(links)}
    series: dict[tuple[str, str, str], list[tuple[float, int, int, bool]]] = {}
    for r in results.read_csv(samples):
        series.setdefault((r["node"], r["port"], r["class"]), []).append(
            (float(r["t_s"]), int(r["backlog_bytes"]), int(r["sent_bytes"]),
             r.get("paused") == "1"))
    worst = []
    for (node, port, cls), points in series.items():
        points.sort()
        busy_s = sent = 0.0
        for (t0, b0, s0, p0), (t1, b1, s1, p1) in zip(points, points[1:]):
            # Busy and unpaused at both ends (a pause between samples is not seen otherwise).
            if b0 >= BUSY_BACKLOG_BYTES and b1 >= BUSY_BACKLOG_BYTES and not (p0 or p1):
                busy_s += t1 - t0
                sent += s1 - s0
        rate = rates.get((node, port))
        if busy_s < MIN_BUSY_S or not rate:
            continue
        share = 8 * sent / busy_s / rate
        worst.append((share, f"{node}:{port} {cls}", busy_s))
    worst.sort()
    figures["busy_links"] = [{"port": name, "achieved_share": round(share, 3),
                              "busy_s_emulated": round(busy, 3)} for share, name, busy in worst]
    for share, name, _ in worst:
        if share < MIN_LINK_RATE_SHARE:
            reasons.append(f"link {name} carried {share:.0%} of its configured rate while "
                           f"backlogged (minimum {MIN_LINK_RATE_SHARE:.0%})")


def _check_agent(run_dir: Path, reaction_s: float, d: float, reasons: list[str],
                 figures: dict[str, Any]) -> None:
    path = run_dir / "queues" / "agent.json"
    if not path.exists():
        return
    agent = json.loads(path.read_text())
    p99, top = agent.get("sweep_period_p99_s"), agent.get("sweep_period_max_s")
    if p99 is None:
        return
    figures["pfc_agent_sweep_p99_s"] = p99
    figures["pfc_agent_sweep_max_s"] = top
    figures["pfc_agent_reaction_p99_target_us"] = round(p99 / d * 1e6, 3)
    figures["pfc_headroom_reaction_target_us"] = round(reaction_s / d * 1e6, 3)
    if p99 > reaction_s:
        reasons.append(f"queue agent sweep p99 {p99 * 1e3:.1f} ms is longer than the "
                       f"{reaction_s * 1e3:.0f} ms PFC reaction the headroom covers")


def _check_pacing(run_dir: Path, host_rate_bps: float, d: float, reasons: list[str],
                  figures: dict[str, Any]) -> None:
    lags = []
    for path in sorted(run_dir.rglob("roce_sender_*.json")):
        for qp in json.loads(path.read_text()).get("qps", []):
            if qp.get("pacing_lag_p99_s") is not None:
                lags.append((qp["pacing_lag_p99_s"], qp.get("pacing_lag_max_s"),
                             f"{path.parent.name}/{path.stem[12:]}"))
    if not lags:
        return
    worst = max(lags)
    limit = MAX_PACING_LAG_FRAMES * 8 * FRAME_BYTES / host_rate_bps
    figures["pacing_lag_p99_s_worst"] = round(worst[0], 6)
    figures["pacing_lag_max_s_worst"] = worst[1]
    figures["pacing_lag_p99_target_us_worst"] = round(worst[0] / d * 1e6, 3)
    if worst[0] > limit:
        reasons.append(f"sender {worst[2]} paced frames {worst[0] * 1e3:.2f} ms late (p99), "
                       f"more than {MAX_PACING_LAG_FRAMES} frame times at the host rate "
                       f"({limit * 1e3:.2f} ms)")


def scale_and_fidelity_lines(summary: dict[str, Any]) -> list[str]:
    lines = []
    scale = summary.get("scale") or {}
    if scale:
        d = scale["dilation"]
        lines.append(f"Target fabric {scale['target_rate_bps'] / 1e9:g} Gbit/s host links"
                     + (f", {scale['target_fabric_rate_bps'] / 1e9:g} Gbit/s fabric links"
                        if scale.get("target_fabric_rate_bps") != scale["target_rate_bps"]
                        else "")
                     + f", emulated {d:g} times slower (at "
                     f"{scale['emulated_rate_bps'] / 1e6:g} Mbit/s); durations and rates "
                     "in the results are the target's." if d != 1 else
                     f"Fabric at {scale['target_rate_bps'] / 1e6:g} Mbit/s in real time "
                     "(dilation 1).")
    fidelity = summary.get("fidelity") or {}
    if fidelity:
        lines.append(f"Fidelity: {fidelity.get('status', '?')}"
                     + "".join(f"; {r}" for r in fidelity.get("reasons", [])))
    return lines
