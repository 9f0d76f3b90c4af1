"""Where an attached marker's maps are pinned: /sys/fs/bpf/kvfabric/<netns>/<ifname>/, never
tc's shared globals, so another process (the queue agent, a workload) can open them."""

from __future__ import annotations

from pathlib import Path

from fabriccore.naming import BPF_PIN_DIR
from topologies.queues.marker_layout import MAP_NAMES


def pin_dir_for(ifname: str, netns: str | None, pin_root: Path = BPF_PIN_DIR) -> Path:
    """/sys/fs/bpf/kvfabric/<netns or 'root'>/<ifname>: one directory per attached marker."""
    for part in (ifname, netns or "root"):
        if not part or "/" in part or part.startswith("."):
            raise ValueError(f"unsafe name for a pin path: {part!r}")
    return pin_root / (netns or "root") / ifname


def remove_pins(pin_dir: Path) -> None:
    """Unlink our map pins and the now-empty per-interface and per-netns directories.

    The kvfabric root stays: another marker may be pinning into it right now."""
    for name in MAP_NAMES:
        (pin_dir / name).unlink(missing_ok=True)
    for directory in (pin_dir, pin_dir.parent):
        try:
            directory.rmdir()
        except OSError:
            break  # missing, or still used by another interface's marker
