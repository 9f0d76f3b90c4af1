"""Matplotlib set-up shared by every plot: headless backend, one size and style.

Matplotlib is imported at the first plot, not with this module: every `kvfabric` command
imports the workloads (and so this module) to validate specs, and most of them never plot.
"""

from __future__ import annotations

from pathlib import Path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def new_figure(ncols: int = 1, nrows: int = 1, width: float = 7.0, height: float = 4.0):
    fig, axes = _pyplot().subplots(nrows, ncols, figsize=(width, height), squeeze=True)
    return fig, axes


def save_figure(fig, path: Path) -> None:
    for ax in fig.axes:
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
