"""Read a spec or sweep file the user gave: bounded in size, UTF-8, valid TOML, or a SpecError
that names the file and the fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tomllib

from .schema import SpecError, SpecIssue

#: A spec is a few hundred bytes; a bigger file is a mistake (a log, a pcap) and parsing
#: megabytes of TOML takes seconds.
MAX_SPEC_BYTES = 1 << 20


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            data = f.read(MAX_SPEC_BYTES + 1)
    except OSError as exc:
        raise SpecError([SpecIssue(str(path), f"cannot be read ({exc.strerror})",
                                   "give a readable TOML file")]) from exc
    if len(data) > MAX_SPEC_BYTES:
        raise SpecError([SpecIssue(str(path), f"is larger than {MAX_SPEC_BYTES // 1024} KiB, "
                                   "the limit for a spec", "give the experiment's TOML spec "
                                   "(a few hundred bytes), not a data or log file")])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError([SpecIssue(str(path), f"is not UTF-8 text (byte {exc.start} is "
                                   f"{data[exc.start]:#04x})", "save the spec as UTF-8 TOML; "
                                   "is this the right file?")]) from exc
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError([SpecIssue(str(path), f"not valid TOML: {exc}",
                                   "fix the TOML syntax at the position shown")]) from exc
