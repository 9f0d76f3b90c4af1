"""Time dilation: the one rule that turns the target fabric's parameters into emulated ones.

A spec describes the fabric under study (the *target*, e.g. 25 Gbit/s links, 1 us of
propagation, a 100 KB ECN threshold, DCQCN's 55 us timers) in the target's own units. The
emulation runs that fabric D times slower than real (D, the *dilation factor*: Gupta et al.,
"To Infinity and Beyond: Time-Warped Network Emulation", NSDI 2006), which is an exact
slow-motion copy when

    rates are divided by D, durations multiplied by D, bytes left unchanged.

This module is the only place that applies the rule: to every field of a resolved spec by its
kind (``emulate_section``), to a dataclass of model parameters by the unit in each field's name
(``emulate_params``: ``*_bps`` rates, ``*_s`` durations, ``*_bytes`` sizes), and to single
values (``Scale``). Results go the other way with ``Scale.target_s`` / ``Scale.target_bps``.

A few durations are guards on the run itself (give up after this long), not parameters of the
fabric: they are wall-clock and listed in ``WALL_CLOCK_FIELDS``. A few numbers of kind
``float`` are per-second rates (request arrivals, prefill tokens): ``PER_SECOND_FIELDS``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

#: The emulated host rate the default dilation aims at: what a 2-core host's Python endpoints
#: and HTB shapers carry for a few dozen links at once (see docs/roce.md).
DEFAULT_EMULATED_RATE_BPS = 100e6

#: Emulated link rates the fabric can build (HTB on veth): the same bounds the spec had for
#: the link rates it emulated before dilation.
MIN_EMULATED_RATE_BPS = 1e5
MAX_EMULATED_RATE_BPS = 10e9

#: Durations that bound the run in wall-clock time rather than describe the target fabric.
WALL_CLOCK_FIELDS = frozenset({
    ("workload", "timeout"), ("workload", "round_timeout"), ("workload", "probe_timeout"),
    ("workload", "drain"),
})

#: Fields of kind "float" that are events per second (scaled like rates: divided by D).
PER_SECOND_FIELDS = frozenset({("workload", "rate"), ("workload", "prefill_tokens_per_s")})

#: The spec's target link rates and the emulated link rates derived from them.
TARGET_RATE_KEYS = {"target_rate": "host_rate", "target_fabric_rate": "fabric_rate"}


@dataclass(frozen=True)
class Scale:
    """The dilation of one run: D, and the target and emulated link rates per tier."""

    dilation: float
    target_host_rate_bps: float
    target_fabric_rate_bps: float

    def __post_init__(self) -> None:
        if not (self.dilation > 0 and math.isfinite(self.dilation)):
            raise ValueError(f"dilation must be a positive number, got {self.dilation!r}")

    @classmethod
    def for_fabric(cls, fabric: dict[str, Any]) -> Scale:
        """D from ``fabric.dilation``, or with 0 the factor that brings the fastest target
        tier down to ``DEFAULT_EMULATED_RATE_BPS`` (never below 1: no speed-up)."""
        host = fabric["target_rate"]
        tier = fabric.get("target_fabric_rate") or host
        dilation = fabric.get("dilation") or max(1.0, max(host, tier) / DEFAULT_EMULATED_RATE_BPS)
        return cls(float(dilation), float(host), float(tier))

    # -- the rule, one value at a time -----------------------------------------------------
    def emulated_bps(self, target_bps: float) -> float:
        return target_bps / self.dilation

    def emulated_s(self, target_s: float) -> float:
        return target_s * self.dilation

    def target_bps(self, emulated_bps: float) -> float:
        return emulated_bps * self.dilation

    def target_s(self, emulated_s: float) -> float:
        return emulated_s / self.dilation

    @property
    def emulated_host_rate_bps(self) -> float:
        return self.emulated_bps(self.target_host_rate_bps)

    @property
    def emulated_fabric_rate_bps(self) -> float:
        return self.emulated_bps(self.target_fabric_rate_bps)

    def to_summary(self) -> dict[str, Any]:
        """summary.json's ``scale``: D and the rates of both tiers, target and emulated."""
        return {"dilation": self.dilation,
                "target_rate_bps": self.target_host_rate_bps,
                "emulated_rate_bps": self.emulated_host_rate_bps,
                "target_fabric_rate_bps": self.target_fabric_rate_bps,
                "emulated_fabric_rate_bps": self.emulated_fabric_rate_bps}

    def check(self) -> list[tuple[str, str, str]]:
        """(field, problem, fix) when an emulated link rate is outside what can be built."""
        problems = []
        for name, rate in (("target_rate", self.emulated_host_rate_bps),
                           ("target_fabric_rate", self.emulated_fabric_rate_bps)):
            if not MIN_EMULATED_RATE_BPS <= rate <= MAX_EMULATED_RATE_BPS:
                problems.append((
                    f"fabric.{name}", f"emulated at {rate:g} bit/s (target / dilation "
                    f"{self.dilation:g}), outside {MIN_EMULATED_RATE_BPS:g}.."
                    f"{MAX_EMULATED_RATE_BPS:g} bit/s",
                    "set fabric.dilation = 0 (automatic) or one that brings the target "
                    "rate near 100 Mbit/s"))
        return problems


def field_kind(section: str, name: str, kind: str) -> str:
    """How a field scales: "rate" (/D), "duration" (xD) or "same" (bytes, counts, choices)."""
    if (section, name) in WALL_CLOCK_FIELDS:
        return "same"
    if kind == "rate" or (kind == "float" and (section, name) in PER_SECOND_FIELDS):
        return "rate"
    if kind == "duration":
        return "duration"
    return "same"


def emulate_section(section: str, kinds: dict[str, str], table: dict[str, Any],
                    scale: Scale) -> dict[str, Any]:
    """A resolved section in emulated units. ``kinds`` maps each field to its schema kind.
    In [fabric], ``target_rate``/``target_fabric_rate`` become the emulated link rates
    ``host_rate``/``fabric_rate`` (what the topology builds)."""
    out: dict[str, Any] = {}
    for name, value in table.items():
        how = field_kind(section, name, kinds.get(name, ""))
        if value is None or how == "same":
            out[name] = value
        elif how == "rate":
            out[name] = scale.emulated_bps(value)
        else:
            out[name] = scale.emulated_s(value)
    if section == "fabric":
        out["host_rate"] = int(round(scale.emulated_host_rate_bps))
        out["fabric_rate"] = int(round(scale.emulated_fabric_rate_bps))
        out["dilation"] = scale.dilation
    return out


def emulate_params(params: Any, scale: Scale) -> Any:
    """A frozen dataclass of model parameters in emulated units, by the unit in each field's
    name: ``*_bps`` divided by D, ``*_s`` multiplied by D, everything else unchanged."""
    changes = {}
    for f in dataclasses.fields(params):
        value = getattr(params, f.name)
        if f.name.endswith("_bps"):
            changes[f.name] = scale.emulated_bps(value)
        elif f.name.endswith("_s"):
            changes[f.name] = scale.emulated_s(value)
    return dataclasses.replace(params, **changes)
