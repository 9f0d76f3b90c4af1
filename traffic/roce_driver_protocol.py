"""What a RoCE sender and its driver say over stdin and stdout: the start time, and live posts.

A driver that starts many senders says when they start once they have all started up
(``--start-at stdin``); a driver that reacts to the fabric (the serving model) posts messages
while the sender runs and reads back each completion (``--posts stdin``).
"""

from __future__ import annotations

import argparse
import json
import os
import select
import sys
import time

from traffic.roce_requester import QpSender


def start_time(args: argparse.Namespace) -> float:
    """--start-at T, or with --start-at stdin: say ready, then read T from stdin (a driver
    starting many senders gives them one start time once they have all started up)."""
    if args.start_at == "stdin":
        print(json.dumps({"ready": True}), flush=True)
        line = sys.stdin.readline()
        if not line:
            raise SystemExit("no start time on stdin")
        return float(line)
    return float(args.start_at) if args.start_at is not None else time.monotonic()


class LivePosts:
    """``--posts stdin``: messages posted as a driver asks, and their completions reported.

    Each stdin line is ``QPN SIZE_BYTES TAG`` (post now) or ``end`` (no more posts); each
    completion is printed as a JSON line ``{"tag", "posted_s", "completed_s"}`` (CLOCK_MONOTONIC
    seconds), so a driver (the serving model) can react to what the fabric measured."""

    def __init__(self, by_qpn: dict[int, QpSender]) -> None:
        self.by_qpn = by_qpn
        self.ended = False
        self._buffer = b""
        self._tags: dict[tuple[int, int], str] = {}
        self._reported = {qpn: 0 for qpn in by_qpn}
        os.set_blocking(sys.stdin.fileno(), False)

    def start_time(self) -> float:
        """Say ready, then wait for the first line: the start time (CLOCK_MONOTONIC s)."""
        print(json.dumps({"ready": True}), flush=True)
        while b"\n" not in self._buffer:
            select.select([sys.stdin], [], [], 1.0)
            try:
                chunk = os.read(sys.stdin.fileno(), 65536)
            except BlockingIOError:
                continue
            if not chunk:
                raise SystemExit("no start time on stdin")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return float(line)

    def read(self, now: float) -> None:
        if self.ended:
            return
        try:
            chunk = os.read(sys.stdin.fileno(), 65536)
            if not chunk:
                self.ended = True
            self._buffer += chunk
        except BlockingIOError:
            pass
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            fields = line.decode().split()
            if fields == ["end"]:
                self.ended = True
            elif len(fields) == 3:
                qpn = int(fields[0], 0)
                msg_id = self.by_qpn[qpn].requester.post(int(fields[1]), now)
                self._tags[(qpn, msg_id)] = fields[2]

    def report(self) -> None:
        for qpn, qp in self.by_qpn.items():
            completions = qp.requester.completions
            for c in completions[self._reported[qpn]:]:
                print(json.dumps({"tag": self._tags.get((qpn, c.msg_id), ""),
                                  "posted_s": c.posted_s, "completed_s": c.completed_s}),
                      flush=True)
            self._reported[qpn] = len(completions)
