"""Parse the unit-bearing values people write ("100Mbit", "64KiB", "50us") into one unit each.

Rates become bits per second, sizes bytes, durations seconds. Parsing happens once, at the edge
(spec loading); everything inside kvfabric carries plain numbers with the unit in the name.
"""

from __future__ import annotations

import math
import re

_NUMBER = r"(?P<num>-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?)\s*(?P<unit>[A-Za-z/]*)"

_RATE_PREFIXES = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}
# "100Mbit", "100Mbps", "100Mb/s", "100Mbit/s", "100M" (tc's bare prefix), "25G".
_RATE_UNITS = {
    prefix + suffix: scale
    for prefix, scale in _RATE_PREFIXES.items()
    for suffix in ("bit", "bps", "b/s", "bit/s", "bits", "bits/s")
} | {prefix: scale for prefix, scale in _RATE_PREFIXES.items()}
_SIZE_UNITS = {
    "": 1, "b": 1, "byte": 1, "bytes": 1,
    "k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9,
    "ki": 1024, "kib": 1024, "mi": 1024**2, "mib": 1024**2, "gi": 1024**3, "gib": 1024**3,
}
_TIME_UNITS = {
    "": 1, "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
    "ms": 1e-3, "msec": 1e-3, "us": 1e-6, "usec": 1e-6, "µs": 1e-6, "ns": 1e-9, "nsec": 1e-9,
    "min": 60,
}


class UnitError(ValueError):
    """A value that does not parse; the message says which forms are accepted."""


def _parse(value: object, table: dict[str, float], what: str, examples: str) -> float:
    if isinstance(value, bool):
        raise UnitError(f"expected a {what} such as {examples}, got {value!r}")
    if isinstance(value, (int, float)):
        number = float(value) if isinstance(value, float) or abs(value) < 1 << 63 \
            else math.inf
    elif isinstance(value, str):
        # "1_000_000" and "1,000" are how people group digits; "µ" and "μ" both mean micro.
        text = value.strip().replace("µ", "u").replace("μ", "u").replace("_", "")
        match = re.fullmatch(_NUMBER, text.replace(",", ""))
        unit = match.group("unit").lower() if match else None
        if match is None or unit not in table:
            raise UnitError(f"expected a {what} such as {examples}, got {value!r}")
        number = float(match.group("num")) * table[unit]
    else:
        raise UnitError(f"expected a {what} such as {examples}, got {value!r}")
    if not math.isfinite(number):
        raise UnitError(f"a {what} must be a finite number, got {value!r}; write e.g. "
                        f"{examples}")
    if number < 0:
        raise UnitError(f"a {what} cannot be negative, got {value!r}; write e.g. {examples}")
    return number


#: Bytes per second, written with a capital B: "125MB/s", "1GBps". Lowercase b is bits.
_BYTE_RATE = re.compile(r"(?P<rest>.*?[0-9.\s])(?P<prefix>[kKmMgGtT]?)B(?:/s|ps)")


def parse_rate_bps(value: object) -> int:
    """'100Mbit' -> 100_000_000; '125MB/s' -> 1e9 (capital B is bytes). Bare numbers are
    bits per second."""
    if isinstance(value, str):
        match = _BYTE_RATE.fullmatch(value.strip())
        if match:
            bits = _parse(match["rest"] + match["prefix"] + "bit", _RATE_UNITS, "rate", "")
            return int(round(8 * bits))
    return int(round(_parse(value, _RATE_UNITS, "rate", "'100Mbit', '1Gbit' or 25e9")))


def parse_size_bytes(value: object) -> int:
    """'64KiB' -> 65536, '256KB' -> 256000. Bare numbers are bytes."""
    return int(round(_parse(value, _SIZE_UNITS, "size", "'64KiB', '256KB', '1MiB' or 1500")))


def parse_duration_s(value: object) -> float:
    """'50us' -> 5e-05. Bare numbers are seconds."""
    return _parse(value, _TIME_UNITS, "duration", "'50us', '200ms' or 1.5")


def format_rate(rate_bps: float) -> str:
    for unit, scale in (("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3)):
        if rate_bps >= scale:
            return f"{rate_bps / scale:.3g} {unit}"
    return f"{rate_bps:.3g} bit/s"


def format_size(size_bytes: float) -> str:
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size_bytes >= scale:
            return f"{size_bytes / scale:.3g} {unit}"
    return f"{size_bytes:.0f} B"
