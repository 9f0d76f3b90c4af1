"""Reading public request traces line by line, with every defect named by file and line.

The file is streamed (one line in memory at a time) as bytes and decoded per line, so a stray
Latin-1 byte costs one line, not the file. What is checked, and said, for each line:

- the file is not compressed (gzip, bzip2, xz, zstd, zip: "decompress it first");
- a UTF-8 byte-order mark on line 1 is dropped; a line that is not UTF-8 is an error;
- a line longer than ``MAX_LINE_BYTES`` is an error (it is read in pieces, never held);
- Mooncake JSONL: a JSON object with ``timestamp`` (finite, >= 0 ms), ``input_length`` and
  ``output_length`` (integers >= 0) and ``hash_ids`` (a list of integers); ``NaN`` and
  ``Infinity`` are refused;
- Azure CSV: each physical line is parsed alone, so an unterminated quote is reported on its
  own line and costs only that line (a file-wide CSV reader would swallow the lines up to the
  next quote); a field over the csv module's limit is an error; date-times must exist
  (2023-02-30 and hour 25 are errors, not rolled over).

:func:`raw_requests` yields one :class:`RawRequest` per good line and hands each bad line to
``on_bad(line_number, reason)``; the caller raises or counts (see :mod:`traffic.traces`).
"""

from __future__ import annotations

import calendar
import csv
import datetime
import json
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

FORMATS = ("mooncake", "azure")
TICKS_PER_S = {"mooncake": 1000, "azure": 10**9}  # ms stamps, ns stamps
MAX_LINE_BYTES = 1 << 20
AZURE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
_BOM = b"\xef\xbb\xbf"
_COMPRESSED = {b"\x1f\x8b": "gzip", b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz",
               b"\x28\xb5\x2f\xfd": "zstd", b"PK\x03\x04": "zip"}


class TraceError(ValueError):
    """A defect in a trace; the message names the file and the 1-based line number."""

    def __init__(self, path: str, line_number: int, reason: str) -> None:
        super().__init__(f"{path}:{line_number}: {reason}")
        self.path = path
        self.line_number = line_number
        self.reason = reason


@dataclass(frozen=True)
class RawRequest:
    """One good trace line: its stamp in the format's ticks (ms or ns) and its sizes."""

    line_number: int
    stamp: int | float
    input_tokens: int
    output_tokens: int
    block_ids: tuple[int, ...] = ()


BadLine = Callable[[int, str], None]


def _physical_lines(path: str, on_bad: BadLine) -> Iterator[tuple[int, str]]:
    """(line number, text without its line ending) of every decodable line."""
    with open(path, "rb") as handle:
        head = handle.read(8)
        for magic, kind in _COMPRESSED.items():
            if head.startswith(magic):
                raise TraceError(path, 1, f"{kind}-compressed file, not text: decompress "
                                 "it first")
        handle.seek(0)
        number = 0
        while True:
            raw = handle.readline(MAX_LINE_BYTES + 1)
            if not raw:
                return
            number += 1
            if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                while raw and not raw.endswith(b"\n"):  # drop the rest of the long line
                    raw = handle.readline(MAX_LINE_BYTES)
                on_bad(number, f"line longer than {MAX_LINE_BYTES} bytes")
                continue
            if number == 1 and raw.startswith(_BOM):
                raw = raw[len(_BOM):]
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                on_bad(number, f"not UTF-8: byte 0x{raw[exc.start]:02x} at column "
                       f"{exc.start + 1} (a Latin-1 file? convert it: iconv -f latin1 -t utf-8)")
                continue
            yield number, text.rstrip("\r\n")


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number")


def _count(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return value


def parse_mooncake_line(text: str, line_number: int = 0) -> RawRequest:
    """One Mooncake JSONL line; ``ValueError`` says what is wrong with it."""
    try:
        obj = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg})") from None
    if not isinstance(obj, dict):
        raise ValueError("expected a JSON object")
    missing = [k for k in ("timestamp", "input_length", "output_length") if k not in obj]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    stamp = obj["timestamp"]
    if isinstance(stamp, bool) or not isinstance(stamp, (int, float)) \
            or not math.isfinite(stamp) or stamp < 0:
        raise ValueError(f"timestamp must be a finite non-negative number of ms, got {stamp!r}")
    hash_ids = obj.get("hash_ids", [])
    if not isinstance(hash_ids, list) or not all(
            isinstance(h, int) and not isinstance(h, bool) for h in hash_ids):
        raise ValueError("hash_ids must be a list of integers")
    return RawRequest(line_number, stamp, _count(obj["input_length"], "input_length"),
                      _count(obj["output_length"], "output_length"), tuple(hash_ids))


_STAMP = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?"
    r"\s*(Z|[+-]\d{2}:?\d{2})?"
)


def parse_timestamp_ns(text: str) -> int:
    """Integer nanoseconds since the Unix epoch of ``2023-11-16 18:15:46.6805900`` (UTC unless
    an offset is given). Integers because a float epoch cannot hold 100 ns (Azure's digits).
    A date-time that does not exist (2023-02-30, hour 25) is a ``ValueError``."""
    match = _STAMP.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not a date-time: {text!r}")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    try:
        datetime.datetime(year, month, day, hour, minute, second)
    except ValueError as exc:
        raise ValueError(f"impossible date-time {text.strip()!r} ({exc})") from None
    whole_s = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    fraction_ns = int((match.group(7) or "")[:9].ljust(9, "0"))
    offset = match.group(8)
    if offset and offset != "Z":
        sign = -1 if offset[0] == "-" else 1
        hh, mm = int(offset[1:3]), int(offset[-2:])
        if hh > 23 or mm > 59:
            raise ValueError(f"impossible UTC offset {offset!r}")
        whole_s -= sign * (hh * 3600 + mm * 60)
    return whole_s * 10**9 + fraction_ns


def _csv_fields(text: str) -> list[str]:
    try:
        return next(csv.reader([text], strict=True))
    except csv.Error as exc:  # e.g. "field larger than field limit (131072)"
        reason = "unterminated quote" if "unexpected end of data" in str(exc) else str(exc)
        raise ValueError(f"bad CSV: {reason}") from None


def _azure_header(text: str) -> tuple[int, int, int]:
    header = [name.strip() for name in _csv_fields(text)]
    if any(column not in header for column in AZURE_COLUMNS):
        raise ValueError(f"header must contain {', '.join(AZURE_COLUMNS)}, got {header}")
    return tuple(header.index(column) for column in AZURE_COLUMNS)  # type: ignore[return-value]


def parse_azure_line(text: str, columns: tuple[int, int, int], width: int,
                     line_number: int = 0) -> RawRequest:
    """One Azure CSV data row (``columns``: indices of the three fields; ``width``: the
    header's field count)."""
    fields = _csv_fields(text)
    if len(fields) != width:
        raise ValueError(f"{'too few' if len(fields) < width else 'too many'} fields "
                         f"({len(fields)}, the header has {width})")
    stamp, context, generated = (fields[i] for i in columns)
    try:
        input_tokens, output_tokens = int(context), int(generated)
    except ValueError:
        raise ValueError(f"token counts must be integers: {context!r}, {generated!r}") from None
    if input_tokens < 0 or output_tokens < 0:
        raise ValueError("token counts cannot be negative")
    return RawRequest(line_number, parse_timestamp_ns(stamp), input_tokens, output_tokens)


def raw_requests(path: str | Path, trace_format: str, on_bad: BadLine) -> Iterator[RawRequest]:
    """Every good request line of ``path`` in file order; an empty or header-only file, or one
    with no good line, is a :class:`TraceError`."""
    if trace_format not in FORMATS:
        raise ValueError(f"trace_format must be one of {FORMATS}, got {trace_format!r}")
    name = str(path)
    header: tuple[tuple[int, int, int], int] | None = None
    last_line, good, bad = 0, 0, 0

    def count_bad(number: int, reason: str) -> None:
        nonlocal bad
        if trace_format == "azure" and header is None:  # no header: nothing else can be read
            raise TraceError(name, number, f"{reason}, before the header")
        bad += 1
        on_bad(number, reason)

    for number, text in _physical_lines(name, count_bad):
        last_line = number
        if not text.strip():
            continue
        if trace_format == "azure" and header is None:
            try:
                columns = _azure_header(text)
            except ValueError as exc:
                raise TraceError(name, number, str(exc)) from None
            header = (columns, len(_csv_fields(text)))
            continue
        try:
            if trace_format == "mooncake":
                request = parse_mooncake_line(text, number)
            else:
                request = parse_azure_line(text, header[0], header[1], number)
        except ValueError as exc:
            count_bad(number, str(exc))
            continue
        good += 1
        yield request
    if good == 0:
        if last_line == 0:
            reason = "empty file: no requests"
        elif bad:
            reason = f"no valid request: all {bad} request lines are malformed"
        elif header is not None:
            reason = "header only: no requests"
        else:
            reason = "only blank lines: no requests"
        raise TraceError(name, max(last_line, 1), reason)
