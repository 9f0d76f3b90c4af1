"""`kvfabric spec-doc`: the spec reference page, generated from the schema's Field definitions.

Sections are discovered, not listed: ``kvfabric.spec_fields.SECTIONS`` (section -> Field
list) when it exists, else every Field list ``validate`` (kvfabric/spec_validate.py) resolves
(``resolve_section("queues", QUEUE_FIELDS, ...)``) and any other ``<SECTION>_FIELDS`` list in
``kvfabric.spec_fields``; every workload kind in ``WORKLOADS``; and free-form sections
described in ``kvfabric.spec_fields.SECTION_DOCS`` (section -> Markdown). A new section or
workload appears on the page when it is regenerated, and tests/unit/test_specdoc.py fails
until the committed page is.
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
from pathlib import Path
from typing import Any

from fabriccore.units import format_rate, format_size

from .schema import Field

REFERENCE_PATH = Path(__file__).resolve().parent.parent / "docs" / "spec-reference.md"
REGENERATE = ".venv/bin/kvfabric spec-doc --write"

_KIND_TEXT = {
    "int": "integer", "float": "number", "str": "string", "bool": "true/false",
    "rate": "rate", "size": "size", "duration": "duration", "choice": "one of",
    "name": "name",
}
_FIRST = ("experiment", "fabric")


def spec_sections() -> dict[str, list[Field]]:
    """Section name -> fields, for every top-level section kvfabric.spec_fields defines."""
    from . import spec_fields, spec_validate

    declared = getattr(spec_fields, "SECTIONS", None)
    if isinstance(declared, dict):
        found = {name: list(fields) for name, fields in declared.items()
                 if _is_field_list(fields)}
    else:
        # The section names validate() resolves each Field list under, read from its source
        # (QUEUE_FIELDS is the [queues] section), then any other <NAME>_FIELDS list.
        found, listed = {}, set()
        for name, attr in re.findall(r'resolve_section\(\s*"(\w+)",\s*(\w+)',
                                     inspect.getsource(spec_validate)):
            if _is_field_list(getattr(spec_fields, attr, None)):
                found[name] = list(getattr(spec_fields, attr))
                listed.add(attr)
        for attr, value in vars(spec_fields).items():
            name = attr[: -len("_FIELDS")].lower()
            if attr.endswith("_FIELDS") and attr not in listed and _is_field_list(value) \
                    and name not in found:
                found[name] = list(value)
    order = [s for s in _FIRST if s in found] + sorted(s for s in found if s not in _FIRST)
    return {name: found[name] for name in order}


def free_form_sections() -> dict[str, str]:
    """Sections that are not a list of Field (e.g. [tenants]: name -> hosts), documented by
    Markdown text in ``kvfabric.spec_fields.SECTION_DOCS``."""
    from . import spec_fields

    docs = getattr(spec_fields, "SECTION_DOCS", None)
    return dict(sorted(docs.items())) if isinstance(docs, dict) else {}


def workload_sections() -> dict[str, tuple[str, list[Field]]]:
    """Workload kind -> (one-line description, fields)."""
    from .workloads import WORKLOADS

    out = {}
    for kind, module in sorted(WORKLOADS.items()):
        doc = (module.__doc__ or "").strip().splitlines()
        out[kind] = (doc[0] if doc else "", list(module.FIELDS))
    return out


def _is_field_list(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and bool(value) and all(
        isinstance(f, Field) for f in value)


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _default(field: Field) -> str:
    if field.default is None:
        # experiment.name defaults to the spec file's name (load_spec); others mean "unset".
        return "the file's name" if field.kind == "name" else "unset"
    if isinstance(field.default, bool):
        return f"`{str(field.default).lower()}`"
    if isinstance(field.default, str):
        return f'`"{field.default}"`' if field.default else '`""`'
    return f"`{field.default}`"


def _bound(value: float | None, field: Field) -> str:
    if value is None:
        return ""
    if field.kind == "rate" and value > 0:
        return format_rate(value)
    if field.kind == "size" and value >= 1024:
        return format_size(value)
    if field.kind == "duration" and 0 < value < 1:
        return f"{value * 1e3:g} ms"
    if field.kind == "duration":
        return f"{value:g} s"
    return f"{value:g}"


def _allowed(field: Field) -> str:
    if field.kind == "choice":
        return ", ".join(f"`{c}`" for c in field.choices)
    low, high = _bound(field.minimum, field), _bound(field.maximum, field)
    if low and high:
        return f"{low} … {high}"
    if low:
        return f"≥ {low}"
    if high:
        return f"≤ {high}"
    if field.kind == "name":
        return "letters, digits, `-`, `_`"
    return ""


def _table(section: str, fields: list[Field]) -> list[str]:
    lines = ["| field | type | unit | default | allowed | meaning |",
             "| --- | --- | --- | --- | --- | --- |"]
    for field in fields:
        lines.append("| " + " | ".join(_cell(c) for c in (
            f"`{section}.{field.name}`", _KIND_TEXT.get(field.kind, field.kind),
            field.unit, _default(field), _allowed(field), field.help)) + " |")
    return lines


def render() -> str:
    """The whole reference page as Markdown."""
    out = [
        "# Experiment spec reference",
        "",
        f"<!-- Generated from the schema by `kvfabric spec-doc`; do not edit by hand. "
        f"Regenerate with `{REGENERATE}`. -->",
        "",
        "An experiment spec is a TOML file with the sections below (`kvfabric run FILE.toml`, "
        "or a shipped name from `kvfabric list`). Any field can be overridden on the command "
        "line with `--set SECTION.FIELD=VALUE`. Omitted fields take their default.",
        "",
        "## Values with units",
        "",
        "Write values the way you would say them; kvfabric converts them once, when the spec "
        "is loaded, to one unit (the **unit** column), and the resolved `spec.toml` in each "
        "run folder holds those canonical numbers.",
        "",
        "| type | canonical unit | forms accepted (case-insensitive unless noted) |",
        "| --- | --- | --- |",
        "| rate | bit/s | `100Mbit`, `100Mbit/s`, `100Mbps`, `100Mb/s`, `100M`, `25G`, "
        "`1.5Gbit`, `25e9`; a capital `B` means bytes: `125MB/s` = 1 Gbit/s |",
        "| size | bytes | `64KiB`, `64Ki`, `1MiB`, `256KB` (= 256000), `256K`, `9000B`, `1500`, "
        "`1_000_000` |",
        "| duration | s | `50us`, `50µs`, `200ms`, `1.5s`, `10sec`, `2min`, `500ns`, `1.5` |",
        "",
        "Bare numbers are in the canonical unit. Negative values are rejected.",
        "",
        "## Validation",
        "",
        "`kvfabric run` and `kvfabric sweep` validate the whole spec before anything is "
        "built and report every problem at once, each naming the field and the fix, then "
        "exit with status 2. Rejected: unknown sections and fields, values of the wrong type "
        "or outside the allowed range, and impossible combinations (a buffer smaller than one "
        "frame at the MTU, more senders than hosts besides the receiver, a receiver that is "
        "not a host of the fabric, ...).",
        "",
    ]
    for section, fields in spec_sections().items():
        out += [f"## [{section}]", "", *_table(section, fields), ""]
    for section, text in free_form_sections().items():
        out += [f"## [{section}]", "", text.strip(), ""]
    out += ["## [workload]", "",
            "`workload.kind` chooses the workload; the other fields depend on it.", ""]
    for kind, (doc, fields) in workload_sections().items():
        out += [f"### kind = \"{kind}\"", ""]
        if doc:
            out += [doc, ""]
        kind_field = Field("kind", "choice", kind, "selects this workload", choices=(kind,))
        out += [*_table("workload", [kind_field, *fields]), ""]
    return "\n".join(out).rstrip() + "\n"


def add_parser(sub) -> None:
    p = sub.add_parser("spec-doc", help="print (or --write) the spec reference page, "
                       "generated from the schema")
    p.add_argument("--write", nargs="?", const=str(REFERENCE_PATH), metavar="PATH",
                   help="write it to PATH (default: docs/spec-reference.md in the repo)")
    p.add_argument("--check", action="store_true",
                   help="exit 1 if the committed page is out of date")
    p.set_defaults(func=_cmd)


def _cmd(args: argparse.Namespace) -> int:
    text = render()
    if args.check:
        current = REFERENCE_PATH.read_text() if REFERENCE_PATH.exists() else ""
        if current != text:
            print(f"{REFERENCE_PATH} is out of date: run {REGENERATE}", file=sys.stderr)
            return 1
        print(f"{REFERENCE_PATH} is up to date")
        return 0
    if args.write:
        path = Path(args.write)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        except OSError as exc:
            from .schema import SpecError, SpecIssue

            raise SpecError([SpecIssue(f"--write {args.write}", f"cannot be written "
                                       f"({exc.strerror or exc})", "give a file you can "
                                       "write, or no PATH for docs/spec-reference.md")],
                            header="bad output file") from exc
        print(f"wrote {path}")
        return 0
    sys.stdout.write(text)
    return 0
