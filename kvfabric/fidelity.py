"""How faithful a run was: the dilation it ran at and whether the host kept up with it.

``scale_and_fidelity_lines`` renders summary.json's ``scale`` and ``fidelity`` for
``kvfabric show`` and report.md.
"""

from __future__ import annotations

from typing import Any


def scale_and_fidelity_lines(summary: dict[str, Any]) -> list[str]:
    lines = []
    scale = summary.get("scale") or {}
    if scale:
        d = scale["dilation"]
        lines.append(f"Target fabric {scale['target_rate_bps'] / 1e9:g} Gbit/s host links"
                     + (f", {scale['target_fabric_rate_bps'] / 1e9:g} Gbit/s fabric links"
                        if scale.get("target_fabric_rate_bps") != scale["target_rate_bps"]
                        else "")
                     + f", emulated {d:g} times slower (at "
                     f"{scale['emulated_rate_bps'] / 1e6:g} Mbit/s); durations and rates "
                     "in the results are the target's." if d != 1 else
                     f"Fabric at {scale['target_rate_bps'] / 1e6:g} Mbit/s in real time "
                     "(dilation 1).")
    fidelity = summary.get("fidelity") or {}
    if fidelity:
        lines.append(f"Fidelity: {fidelity.get('status', '?')}"
                     + "".join(f"; {r}" for r in fidelity.get("reasons", [])))
    return lines
