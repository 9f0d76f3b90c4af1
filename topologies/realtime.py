"""Real-time scheduling for the processes that stand in for hardware: the queue agent (a
switch's PFC logic) and the RoCE receiver (a NIC's responder). On a busy 2-core machine a
normally scheduled process wakes tens of milliseconds late; SCHED_FIFO puts it first."""

from __future__ import annotations

import os


def run_fifo(priority: int) -> str | None:
    """Run this process SCHED_FIFO at ``priority``; what it now runs under ("SCHED_FIFO N"),
    or None when the kernel refuses (no CAP_SYS_NICE, as in an unprivileged container)."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except (OSError, AttributeError):
        return None
    return f"SCHED_FIFO {priority}"
