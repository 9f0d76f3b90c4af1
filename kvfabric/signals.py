"""SIGINT and SIGTERM during a command that owns a fabric or a results folder.

A `SignalGuard` owns both signals for as long as it is entered. Inside `interruptible()` (the
fabric bring-up and the workload) the first signal unwinds the code with `Interrupted`, so
teardown runs; everywhere else (teardown, analysis, writing summary.json and report.md) a
signal is only recorded, so that nothing the run has measured is lost and a second signal
cannot kill the process half-way through a write. The command then exits 130 if any signal
arrived.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator

HANDLED = (signal.SIGINT, signal.SIGTERM)
EXIT_INTERRUPTED = 130


class Interrupted(BaseException):
    """SIGTERM or SIGINT arrived; unwinds like KeyboardInterrupt so teardown runs."""


class SignalGuard:
    def __init__(self) -> None:
        self.received: list[str] = []
        self._interruptible = False
        self._owner = os.getpid()
        self._previous: dict[int, object] = {}

    def __enter__(self) -> SignalGuard:
        self._previous = {s: signal.signal(s, self._handle) for s in HANDLED}
        return self

    def __exit__(self, *_exc) -> None:
        for sig, old in self._previous.items():
            signal.signal(sig, old)

    def _handle(self, signum: int, _frame) -> None:
        # pyroute2's NetNS forks helper processes that inherit this handler; they must die
        # as they would by default, not unwind the runner's code a second time.
        if os.getpid() != self._owner:
            os._exit(128 + signum)
        name = signal.Signals(signum).name
        self.received.append(name)
        if self._interruptible:
            self._interruptible = False  # one unwinding: later signals are only recorded
            raise Interrupted(name)

    @contextlib.contextmanager
    def interruptible(self) -> Iterator[None]:
        """The block is cut short by a signal (also by one that arrived before it)."""
        if self.received:
            raise Interrupted(self.received[0])
        self._interruptible = True
        try:
            yield
        finally:
            self._interruptible = False

    @property
    def interrupted(self) -> bool:
        return bool(self.received)
