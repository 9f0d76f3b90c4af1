"""fabriccore.processes.stop_groups: the first signal reaches each process's whole group, what
ignores it is SIGKILLed at the shared deadline, and every process is reaped."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from fabriccore.processes import stop_groups

IGNORES_TERM = ("import signal, subprocess, sys, time\n"
                "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                "child = subprocess.Popen([sys.executable, '-c', 'import signal, time; "
                "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)'])\n"
                "print(child.pid, flush=True)\n"
                "time.sleep(60)\n")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_a_group_that_ignores_sigterm_is_killed_at_the_deadline_with_its_children():
    proc = subprocess.Popen([sys.executable, "-c", IGNORES_TERM], stdout=subprocess.PIPE,
                            text=True, start_new_session=True)
    child = int(proc.stdout.readline())
    started = time.monotonic()
    stop_groups([proc], grace_s=0.3)
    assert 0.3 <= time.monotonic() - started < 5
    assert proc.returncode == -signal.SIGKILL
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


def test_processes_that_obey_the_first_signal_are_reaped_without_waiting_for_the_deadline():
    # SIGINT's handler set explicitly: a child of a background job inherits SIGINT ignored,
    # and Python then keeps it ignored.
    obeys = ("import signal, time; signal.signal(signal.SIGINT, signal.default_int_handler); "
             "print(flush=True); time.sleep(60)")
    procs = [subprocess.Popen([sys.executable, "-c", obeys], stdout=subprocess.PIPE,
                              start_new_session=True) for _ in range(3)]
    for proc in procs:  # the handler is in place before the signal
        proc.stdout.readline()
    started = time.monotonic()
    stop_groups(procs, grace_s=30, first=signal.SIGINT)
    assert time.monotonic() - started < 10
    assert all(p.returncode is not None and p.returncode != -signal.SIGKILL for p in procs)


def test_a_process_that_already_exited_is_left_alone():
    proc = subprocess.Popen([sys.executable, "-c", "pass"], start_new_session=True)
    proc.wait()
    stop_groups([proc], grace_s=0.1)
    assert proc.returncode == 0
