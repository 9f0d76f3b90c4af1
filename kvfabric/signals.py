"""SIGINT and SIGTERM during a command that owns a fabric or a results folder.

A `SignalGuard` owns both signals for as long as it is entered. Inside `interruptible()` (the
fabric bring-up and the workload) the first signal unwinds the code with `Interrupted`, so
teardown runs; everywhere else (teardown, analysis, writing summary.json and report.md) a
signal is only recorded, so that nothing the run has measured is lost and a second signal
cannot kill the process half-way through a write. The command then exits 130 if any signal
arrived.

A handler's exception lands wherever the main thread is; inside a weakref callback or a
``__del__`` Python cannot propagate it, prints "Exception ignored" with a traceback and goes
on, and the interruption would be lost (seen once in 64 killed runs). The guard's
``sys.unraisablehook`` catches that case and sends the signal again a millisecond later, to
the main thread, so that it unwinds from an ordinary line instead; if the main thread is still
inside the hook when it comes (a loaded host can deschedule it for longer than that), the
handler sends it again rather than raise where it would be lost once more.

`Interrupted` is a KeyboardInterrupt for the same reason: an asyncio event loop (pyroute2 runs
one for every netlink call) catches any other BaseException raised in a callback, logs it and
goes on, so the signal was lost and the run hung waiting for the netlink reply the callback
was reading (seen once in about 190 killed runs). asyncio lets KeyboardInterrupt and
SystemExit through. Code that handles Ctrl-C (the shell) must let `Interrupted` pass first.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator

HANDLED = (signal.SIGINT, signal.SIGTERM)
EXIT_INTERRUPTED = 130


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGINT arrived; unwinds like (and as) KeyboardInterrupt so teardown runs.
    Its text is the signal's name."""


class SignalGuard:
    RESEND_DELAY_S = 0.001  # after the hook: the main thread is usually out of it by then
    RETRY_DELAY_S = 0.01  # when it was not (a handler in the hook must not recurse into it)

    def __init__(self) -> None:
        self.received: list[str] = []
        self._interruptible = False
        self._in_block = False
        self._redelivering = False
        self._owner = os.getpid()
        self._previous: dict[int, object] = {}
        self._previous_hook = sys.unraisablehook

    def __enter__(self) -> SignalGuard:
        self._previous = {s: signal.signal(s, self._handle) for s in HANDLED}
        self._previous_hook, sys.unraisablehook = sys.unraisablehook, self._unraisable
        return self

    def __exit__(self, *_exc) -> None:
        for sig, old in self._previous.items():
            signal.signal(sig, old)
        sys.unraisablehook = self._previous_hook

    def _handle(self, signum: int, frame) -> None:
        # pyroute2's NetNS forks helper processes that inherit this handler; they must die
        # as they would by default, not unwind the runner's code a second time.
        if os.getpid() != self._owner:
            os._exit(128 + signum)
        name = signal.Signals(signum).name
        if self._redelivering:
            if _runs_inside(frame, self._unraisable):
                self._resend(name, self.RETRY_DELAY_S)  # a raise here would be lost again
                return
            self._redelivering = False  # recorded when it first arrived
        else:
            self.received.append(name)
        if self._interruptible:
            self._interruptible = False  # one unwinding: later signals are only recorded
            raise Interrupted(name)

    def _unraisable(self, unraisable) -> None:
        """An Interrupted that Python could not propagate: deliver its signal again."""
        exc = unraisable.exc_value
        if isinstance(exc, Interrupted) and self._in_block and os.getpid() == self._owner:
            self._interruptible = self._redelivering = True
            self._resend(str(exc), self.RESEND_DELAY_S)
            return
        self._previous_hook(unraisable)

    def _resend(self, name: str, delay_s: float) -> None:
        """Send signal ``name`` to the main thread again, from another thread, in delay_s."""
        resend = threading.Timer(delay_s, signal.pthread_kill,
                                 (threading.main_thread().ident, signal.Signals[name]))
        resend.daemon = True
        resend.start()

    @contextlib.contextmanager
    def interruptible(self) -> Iterator[None]:
        """The block is cut short by a signal (also by one that arrived before it)."""
        if self.received:
            raise Interrupted(self.received[0])
        self._interruptible = self._in_block = True
        try:
            yield
        finally:
            self._interruptible = self._in_block = False

    @property
    def interrupted(self) -> bool:
        return bool(self.received)


def _runs_inside(frame, method) -> bool:
    """Whether ``method`` (a bound method) is on the stack that ``frame`` ends."""
    code = method.__func__.__code__
    while frame is not None:
        if frame.f_code is code:
            return True
        frame = frame.f_back
    return False
