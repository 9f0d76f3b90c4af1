"""PFC so far on a live fabric, counted from the queue agent's event log (pfc_events.csv,
which the agent flushes every 100 ms), so that readers need no channel into the agent."""

from __future__ import annotations

import csv
from pathlib import Path

#: The agent's event names, which are also its pfc_counters.csv columns.
EVENTS = ("pause_sent", "resume_sent", "pause_received", "resume_received", "pause_expired")


def count_events(path: Path, ports: set[tuple[str, str]] | None = None) -> list[dict]:
    """One row per (node, port, priority) with events: the count of each event and
    ``paused`` (a pause received and neither resumed nor expired since). ``ports``: only
    these (node, ifname) pairs."""
    rows: dict[tuple[str, str, int], dict] = {}
    try:
        with open(path, newline="") as f:
            for event in csv.DictReader(f):
                key = (event["node"], event["port"], int(event["priority"]))
                if ports is not None and key[:2] not in ports:
                    continue
                row = rows.setdefault(key, {"node": key[0], "ifname": key[1],
                                            "peer": event["peer"], "priority": key[2],
                                            **dict.fromkeys(EVENTS, 0), "paused": False})
                if event["event"] in EVENTS:
                    row[event["event"]] += 1
                if event["event"] == "pause_received":
                    row["paused"] = True
                elif event["event"] in ("resume_received", "pause_expired"):
                    row["paused"] = False
    except FileNotFoundError:
        return []
    except (ValueError, KeyError):
        pass  # a line being written: the rows before it stand
    return list(rows.values())
