"""A live one-line progress display on a terminal; plain timestamped lines elsewhere."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, stream: TextIO | None = None, min_interval_s: float = 1.0):
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()
        self.started = time.monotonic()
        self.phase = ""
        self.min_interval_s = min_interval_s
        self._last_plain = 0.0

    def update(self, phase: str, detail: str = "") -> None:
        elapsed = time.monotonic() - self.started
        text = f"[{elapsed:6.1f}s] {phase}" + (f": {detail}" if detail else "")
        if self.live:
            self.stream.write("\r\033[2K" + text)
            self.stream.flush()
        elif phase != self.phase or time.monotonic() - self._last_plain >= self.min_interval_s:
            self.stream.write(text + "\n")
            self.stream.flush()
            self._last_plain = time.monotonic()
        self.phase = phase

    def done(self, message: str) -> None:
        if self.live:
            self.stream.write("\r\033[2K")
        self.stream.write(message + "\n")
        self.stream.flush()
