"""A signal whose Interrupted lands inside a weakref callback (which Python cannot propagate
out of: it prints "Exception ignored" and goes on) is delivered again, so the block is still
interrupted and no traceback reaches the user's terminal."""

from __future__ import annotations

import os
import signal
import time
import weakref

import pytest

from kvfabric.signals import Interrupted, SignalGuard


class _Thing:
    pass


def _signal_inside_a_weakref_callback() -> None:
    def callback(_ref):
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):  # the handler runs here, inside the callback
            pass

    thing = _Thing()
    ref = weakref.ref(thing, callback)
    del thing  # the callback runs now
    assert ref() is None


def test_an_interrupt_swallowed_by_a_weakref_callback_still_interrupts(capsys):
    with SignalGuard() as guard:
        with pytest.raises(Interrupted, match="SIGINT"):
            with guard.interruptible():
                _signal_inside_a_weakref_callback()
                time.sleep(5)  # the signal sent again unwinds from here
        assert guard.received == ["SIGINT"]
    assert "Exception ignored" not in capsys.readouterr().err


def test_outside_an_interruptible_block_the_signal_is_only_recorded(capsys):
    with SignalGuard() as guard:
        _signal_inside_a_weakref_callback()
        time.sleep(0.05)  # nothing is sent again, and nothing unwinds
        assert guard.received == ["SIGINT"]
    assert "Exception ignored" not in capsys.readouterr().err


def test_an_interrupt_inside_an_asyncio_callback_unwinds_the_loop(capsys):
    """pyroute2 runs an asyncio loop for each netlink call; asyncio logs and swallows any
    BaseException from a callback but KeyboardInterrupt and SystemExit. Interrupted must get
    out of run_until_complete, not leave the loop waiting for a reply that was never read."""
    import asyncio

    loop = asyncio.new_event_loop()
    try:
        reply = loop.create_future()

        def read_ready():  # stands for the transport's callback that reads the reply
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):  # the handler runs here, inside the callback
                pass

        loop.call_soon(read_ready)
        loop.call_later(2.0, reply.set_result, "the signal was swallowed")
        with SignalGuard() as guard:
            with pytest.raises(Interrupted, match="SIGTERM"):
                with guard.interruptible():
                    loop.run_until_complete(reply)
            assert not reply.done()
            assert guard.received == ["SIGTERM"]
    finally:
        loop.close()
    assert "Exception in callback" not in capsys.readouterr().err


def test_a_resent_signal_that_finds_the_hook_still_running_is_sent_again(monkeypatch, capsys):
    """The resend can fire while the main thread is still inside the unraisable hook (a
    loaded host deschedules it for longer than the delay; with no delay it always does): a
    raise there would be lost as well, so the handler sends it again instead."""
    monkeypatch.setattr(SignalGuard, "RESEND_DELAY_S", 0.0)
    with SignalGuard() as guard:
        started = time.monotonic()
        with pytest.raises(Interrupted, match="SIGINT"):
            with guard.interruptible():
                _signal_inside_a_weakref_callback()
                time.sleep(5)
        assert time.monotonic() - started < 2.0
        assert guard.received == ["SIGINT"]
    assert "Exception ignored" not in capsys.readouterr().err
