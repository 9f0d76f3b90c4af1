"""How a traffic endpoint's process ends when the other side has gone away.

Teardown stops a run's endpoints one after the other, so a sender can outlive its receiver by a
few milliseconds (and a receiver the runner reading its stdout): its next write then fails with
EPIPE or ECONNRESET. That is the end of the endpoint's work, not a crash: the endpoint exits
with status 1 and no traceback on the user's terminal. Whatever it measured is judged by its
peer (a block that never arrived is counted there) and by the runner. SIGTERM and SIGINT ask
an endpoint's loop to stop (:class:`StopOnSignal`): it then writes what it measured and exits.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable

PEER_GONE = (BrokenPipeError, ConnectionResetError)
EXIT_PEER_GONE = 1


def run_endpoint(main: Callable[[], int]) -> int:
    """``main()``'s exit status, or EXIT_PEER_GONE if a peer or stdout's reader went away."""
    try:
        return main()
    except PEER_GONE:
        # stdout's reader may be the one that left: point stdout at /dev/null so the
        # interpreter's final flush cannot raise again (the CPython docs' SIGPIPE recipe).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_PEER_GONE


class StopOnSignal:
    """``requested`` turns true on SIGTERM or SIGINT: the loop that polls it ends its run."""

    def __init__(self) -> None:
        self.requested = False
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handler)

    def _handler(self, *_: object) -> None:
        self.requested = True
