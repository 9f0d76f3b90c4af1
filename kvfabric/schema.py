"""Declarative field specs for experiment specs: type, unit, default, bounds and help.

A section is a list of ``Field``; ``resolve_section`` turns a user's table into canonical
values (rates in bit/s, sizes in bytes, durations in s) or collects ``SpecIssue``s that name
the field and say how to fix it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from fabriccore.units import UnitError, parse_duration_s, parse_rate_bps, parse_size_bytes

KINDS = ("int", "float", "str", "bool", "rate", "size", "duration", "choice", "name")
_PARSERS = {"rate": parse_rate_bps, "size": parse_size_bytes, "duration": parse_duration_s}
#: Whole numbers beyond this are rejected before any arithmetic or formatting (2^63).
_LARGEST_INT = 1 << 63
_UNIT_OF = {"rate": "bit/s", "size": "bytes", "duration": "s"}


@dataclass(frozen=True)
class Field:
    name: str
    kind: str
    default: Any
    help: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()

    @property
    def unit(self) -> str:
        return _UNIT_OF.get(self.kind, "")


@dataclass(frozen=True)
class SpecIssue:
    field: str
    problem: str
    fix: str

    def __str__(self) -> str:
        return f"{self.field}: {self.problem}\n    fix: {self.fix}"


class SpecError(ValueError):
    """One or more problems with a spec (or another input: `header` says which); nothing was
    built."""

    def __init__(self, issues: list[SpecIssue], header: str = "invalid experiment spec"):
        self.issues = issues
        super().__init__(f"{header}:\n  " + "\n  ".join(map(str, issues)))


def _convert(field: Field, value: Any) -> Any:
    if field.kind in _PARSERS:
        return _PARSERS[field.kind](value)
    if field.kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise UnitError(f"expected a whole number, got {value!r}")
        if abs(value) > _LARGEST_INT:
            raise UnitError(f"a number of {len(str(abs(value)))} digits is too large")
        return value
    if field.kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UnitError(f"expected a number, got {value!r}")
        if isinstance(value, int) and abs(value) > _LARGEST_INT:
            raise UnitError(f"a number of {len(str(abs(value)))} digits is too large")
        if not math.isfinite(value):
            raise UnitError(f"must be a finite number, got {value!r}")
        return float(value)
    if field.kind == "bool":
        if not isinstance(value, bool):
            raise UnitError(f"expected true or false, got {value!r}")
        return value
    if not isinstance(value, str):
        raise UnitError(f"expected a string, got {value!r}")
    if field.kind == "choice" and value not in field.choices:
        raise UnitError(f"must be one of {', '.join(field.choices)}, got {value!r}")
    if field.kind == "name" and not (value.isascii() and value.replace("_", "").replace(
            "-", "").isalnum()):
        raise UnitError(f"use letters, digits, '-' and '_' only, got {value!r}")
    return value


#: A value of each kind that parses; an example is shown only if it is also in range.
_EXAMPLES = {"rate": "100Mbit", "size": "64KiB", "duration": "200ms", "int": 4, "float": 0.5,
             "bool": True, "str": "text", "name": "my_run"}
_KIND_WORDS = {"int": "an int", "float": "a number", "bool": "true or false",
               "str": "a string", "name": "a name", "rate": "a rate", "size": "a size",
               "duration": "a duration"}


def _problem_with(field: Field, value: Any) -> str | None:
    """Why value is not valid for field (None: it is)."""
    try:
        value = _convert(field, value)
    except UnitError as exc:
        return str(exc)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if field.minimum is not None and value < field.minimum:
            return f"{value:g} is below the minimum {field.minimum:g} {field.unit}".rstrip()
        if field.maximum is not None and value > field.maximum:
            return f"{value:g} is above the maximum {field.maximum:g} {field.unit}".rstrip()
    return None


def _example(field: Field) -> str:
    """A valid value to suggest: the default, else a typical value, else the minimum. A
    default of 0 for a quantity usually means "derive it", which teaches nothing."""
    default = field.default
    if default == 0 and field.kind in ("duration", "size", "rate"):
        default = None
    candidates = [default, _EXAMPLES[field.kind]]
    if field.minimum is not None:
        candidates.append(int(field.minimum) if field.kind in ("int", "rate", "size")
                          else field.minimum)
    for value in candidates:
        if value is not None and _problem_with(field, value) is None:
            return f"'{value}'" if isinstance(value, str) else _literal(value)
    return ""


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _fix_for(field: Field) -> str:
    if field.kind == "choice":
        return f"set {field.name} to one of: {', '.join(field.choices)}"
    bounds = []
    if field.minimum is not None:
        bounds.append(f">= {field.minimum:g}")
    if field.maximum is not None:
        bounds.append(f"<= {field.maximum:g}")
    where = f" ({' and '.join(bounds)} {field.unit})".replace(" )", ")") if bounds else ""
    example = _example(field)
    such_as = f" such as {example}" if example else ""
    return f"set {field.name} to {_KIND_WORDS[field.kind]}{such_as}{where}"


def resolve_section(section: str, fields: list[Field], table: Any,
                    issues: list[SpecIssue]) -> dict[str, Any]:
    """Canonical values for one section, defaults filled; problems appended to issues."""
    if table is None:
        table = {}
    if not isinstance(table, dict):
        issues.append(SpecIssue(section, "must be a table", f"write it as [{section}]"))
        return {}
    known = {f.name: f for f in fields}
    for key in table:
        if key not in known:
            issues.append(SpecIssue(f"{section}.{key}", "unknown field",
                                    f"remove it, or use one of: {', '.join(sorted(known))}"))
    resolved = {}
    for field in fields:
        path = f"{section}.{field.name}"
        value = table.get(field.name, field.default)
        if value is None:
            resolved[field.name] = None
            continue
        problem = _problem_with(field, value)
        if problem is not None:
            issues.append(SpecIssue(path, problem, _fix_for(field)))
            continue
        resolved[field.name] = _convert(field, value)
    return resolved
