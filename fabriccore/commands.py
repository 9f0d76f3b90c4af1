"""Run external commands as argv lists, in one place, and fail loudly with the command shown."""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Sequence


class CommandError(RuntimeError):
    """An external command failed; carries the exact argv, exit code and stderr."""

    def __init__(self, argv: Sequence[str], returncode: int, stderr: str):
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = stderr.strip()
        super().__init__(
            f"command failed (exit {returncode}): {shlex.join(self.argv)}"
            + (f"\n  {self.stderr}" if self.stderr else "")
        )


def run(argv: Sequence[str], *, check: bool = True, timeout_s: float = 30.0,
        input_text: str | None = None) -> subprocess.CompletedProcess:
    """Run argv (never through a shell); raise CommandError on a non-zero exit when check."""
    argv = [str(a) for a in argv]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s,
                              input=input_text, check=False)
    except FileNotFoundError as exc:
        raise CommandError(argv, 127, f"{argv[0]}: not found") from exc
    except subprocess.TimeoutExpired as exc:
        raise CommandError(argv, -1, f"timed out after {timeout_s:g} s") from exc
    if check and proc.returncode != 0:
        raise CommandError(argv, proc.returncode, proc.stderr)
    return proc


def netns_argv(netns: str, argv: Sequence[str]) -> list[str]:
    """argv that runs argv inside the named network namespace."""
    return ["ip", "netns", "exec", netns, *[str(a) for a in argv]]
