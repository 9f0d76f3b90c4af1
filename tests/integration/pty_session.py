"""Drive an interactive command in a pseudo-terminal, as a user at a terminal would: the
command is the session leader of its own pty, so Ctrl-C (\\x03) and Ctrl-D (\\x04) reach it
through the terminal's line discipline, not as signals sent by the test."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import time
from pathlib import Path

#: x86-64 system call numbers a shell blocks in: waiting for a key, for its child, or
#: between two refreshes.
READING = {0, 7, 23, 270, 271}  # read, poll, select, pselect6, ppoll
WAITING_FOR_CHILD = {61, 247}   # wait4, waitid
SLEEPING = {35, 230}            # nanosleep, clock_nanosleep


class PtySession:
    def __init__(self, argv: list[str], env: dict[str, str] | None = None):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: becomes argv, with the pty as its terminal
            try:
                os.execve(argv[0], argv, {**os.environ, **(env or {})})
            finally:
                os._exit(127)
        self.output = ""
        self._seen = 0
        self.returncode: int | None = None

    def send(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def expect(self, pattern: str, timeout_s: float = 60.0) -> re.Match:
        """Wait until pattern appears in the output after the previous match. The timeout
        only keeps a broken shell from hanging the test; it asserts nothing about speed."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout_s
        while True:
            match = regex.search(self.output, self._seen)
            if match:
                self._seen = match.end()
                return match
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._read(remaining):
                raise AssertionError(f"{pattern!r} did not appear; output so far:\n"
                                     f"{self.output[-3000:]}")

    def _read(self, timeout_s: float) -> bool:
        ready, _, _ = select.select([self.fd], [], [], timeout_s)
        if not ready:
            return False
        try:
            data = os.read(self.fd, 65536)
        except OSError:  # EIO: the command closed the terminal (it exited)
            return False
        if not data:
            return False
        self.output += data.decode(errors="replace").replace("\r\n", "\n")
        return True

    def wait_blocked_in(self, syscalls: set[int], timeout_s: float = 60.0) -> None:
        """Wait until the command sits in one of these system calls (x86-64 numbers, from
        /proc/PID/syscall). A key a user presses while the shell waits at its prompt or for a
        command arrives while it is blocked there; one sent the instant the prompt is written
        can land before the shell's select() starts, where CPython's readline loses the
        signal until the next key (a second Ctrl-C works). Tests press keys as users do."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                number = Path(f"/proc/{self.pid}/syscall").read_text().split()[0]
            except (OSError, IndexError):
                number = ""
            if number.isdigit() and int(number) in syscalls:
                return
            time.sleep(0.01)
        raise AssertionError(f"the command never blocked in {sorted(syscalls)}")

    def wait(self, timeout_s: float = 120.0) -> int:
        """Read the rest of the output and return the exit code (kill it after timeout_s)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self._read(0.2)
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                while self._read(0.1):
                    pass
                os.close(self.fd)
                self.returncode = os.waitstatus_to_exitcode(status)
                return self.returncode
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        os.close(self.fd)
        raise AssertionError(f"the command did not exit; output:\n{self.output[-3000:]}")

    def close(self) -> None:
        """Kill the command if a failed test left it running (its teardown still runs on
        SIGTERM)."""
        if self.returncode is None:
            try:
                os.kill(self.pid, signal.SIGTERM)
                self.wait()
            except (ProcessLookupError, ChildProcessError, AssertionError):
                pass
