"""The queue agent's failed data-plane calls, counted per operation with the first failure, so
that a run whose PFC could not act fails and says why (agent.json ``dataplane_errors``)."""

from __future__ import annotations

from typing import Any

#: Failed calls that mean PFC did not act: a pause or resume frame not sent, a port's
#: lossless class not paused or resumed, the backlogs PFC decides on not read.
PFC_OPERATIONS = ("send_pfc", "set_paused", "dump_qdiscs")


class DataplaneErrors:
    """operation -> {"count", "first"}."""

    def __init__(self) -> None:
        self.by_operation: dict[str, dict[str, Any]] = {}

    def failed(self, operation: str, node: str, ifname: str, exc: Exception) -> None:
        """Count a failed call; the first one of each operation is kept, naming its port."""
        entry = self.by_operation.setdefault(operation, {"count": 0, "first": ""})
        entry["count"] += 1
        if not entry["first"]:
            entry["first"] = f"{node} {ifname}: {exc}"
