"""Processes a run starts outside the hosts' namespaces must not outlive it.

`kvfabric clean` finds a crashed run's processes by the namespaces they run in; a process in
the root namespace (the controller, the queue agent, a sender driving many hosts) is not
found that way. Each one asks the kernel to SIGTERM it when the process that started it dies,
even by SIGKILL.
"""

from __future__ import annotations

import ctypes
import signal

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """SIGTERM this process when its parent dies (also usable as a Popen preexec_fn)."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
