"""Matplotlib set-up shared by every plot: headless backend, one size and style."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)


def new_figure(ncols: int = 1, nrows: int = 1, width: float = 7.0, height: float = 4.0):
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), squeeze=True)
    return fig, axes


def save_figure(fig, path: Path) -> None:
    for ax in fig.axes:
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
