"""Smoke check of the traffic classes: a short lossless incast with PFC loses nothing, pauses
are sent and received, and the 100 us telemetry is written."""

from __future__ import annotations

import json
import shutil

from kvfabric.smoke import smoke_check

from .core import run_quietly


@smoke_check("queues-pfc", area="queues", order=40)
def lossless_incast() -> str:
    """lossless_incast, 4 senders for 1.5 s: PFC loses nothing, pauses flow, telemetry kept."""
    outcome, root = run_quietly("lossless_incast", {
        "fabric.hosts_per_leaf": 3, "workload.senders": 4, "workload.duration": "1.5s",
        "workload.drain": "1s"})
    results = outcome.summary.get("results", {})
    queues = outcome.summary.get("queues") or {}
    telemetry = outcome.run_dir / "queues" / "telemetry.csv"
    problems = []
    if outcome.status != "ok":
        problems.append(f"status {outcome.status} ({outcome.summary.get('error')})")
    if results.get("loss_fraction") != 0:
        problems.append(f"loss {results.get('loss_fraction')}")
    if (queues.get("drops_by_class") or {}).get("lossless", 1) != 0:
        problems.append(f"lossless drops {queues.get('drops_by_class')}")
    if not queues.get("pause_frames_sent") or not queues.get("pause_frames_received"):
        problems.append("no PFC frames sent or received")
    if not telemetry.exists() or telemetry.stat().st_size < 100:
        problems.append("no telemetry")
    if problems:
        raise RuntimeError("; ".join(problems) + f"; kept {outcome.run_dir}")
    env = json.loads((outcome.run_dir / "env.json").read_text())
    shutil.rmtree(root)
    return (f"{results['packets_delivered']} packets, none lost; "
            f"{queues['pause_frames_sent']} PAUSE frames; ECN backend "
            f"{env.get('queues', {}).get('ecn_backend')}")
