"""The report's pictures, drawn with matplotlib (Agg, no display) into PNG bytes for inlining.

Figures are built with :class:`matplotlib.figure.Figure` directly rather than ``pyplot``, so nothing here
touches matplotlib's global state (backends, open figures) of the process that embeds pad-sdk.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure

if TYPE_CHECKING:  # the report model imports this module; avoid a cycle at run time
    from pad_sdk.reports.model import IpcEntry
    from pad_sdk.result import CondensedSet

# One colour per compared set, used by every figure and the HTML legend alike.
COLOURS = {"condensed": "#1f6feb", "full": "#2da44e", "random": "#d4a72c", "cost": "#cf222e"}
DPI = 110


def data_uri(png: bytes) -> str:
    """A ``data:`` URI for inlining PNG bytes in HTML (the report must work offline)."""
    return "data:image/png;base64," + base64.b64encode(png).decode()


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", facecolor="white")
    return buffer.getvalue()


def _stretch(image: np.ndarray) -> np.ndarray:
    """(C, H, W) -> (H, W, C) in [0, 1], stretched per image: synthetic pixels leave the data's range."""
    low, high = float(image.min()), float(image.max())
    scaled = (image - low) / (high - low) if high > low else np.zeros_like(image)
    return np.transpose(scaled, (1, 2, 0))


def condensed_grid_png(condensed: CondensedSet, per_class: int = 10, max_classes: int = 20) -> bytes:
    """A grid of the condensed images: one row per class (up to ``per_class`` images), class names on the left."""
    images = condensed.normalisation.invert(condensed.images.detach().cpu()).numpy()
    labels = condensed.labels.cpu().numpy()
    classes = list(range(min(len(condensed.class_names), max_classes)))
    columns = max(1, min(per_class, max((int((labels == k).sum()) for k in classes), default=1)))
    channels, height, width = images.shape[1:]
    pad = max(1, height // 8)
    mosaic = np.ones((len(classes) * (height + pad), columns * (width + pad), 3), dtype=np.float32)
    for row, k in enumerate(classes):
        for col, index in enumerate(np.flatnonzero(labels == k)[:columns]):
            tile = _stretch(images[index])
            tile = np.repeat(tile, 3, axis=2) if channels == 1 else tile[:, :, :3]
            top, left = row * (height + pad), col * (width + pad)
            mosaic[top:top + height, left:left + width] = tile
    cell = 0.42 if height <= 16 else 0.7
    fig = Figure(figsize=(max(2.5, columns * cell + 1.0), max(1.5, len(classes) * cell + 0.4)))
    ax = fig.add_subplot()
    ax.imshow(mosaic, interpolation="nearest")
    ax.set_yticks([row * (height + pad) + height / 2 for row in range(len(classes))])
    ax.set_yticklabels([condensed.class_names[k] for k in classes])
    ax.set_xticks([])
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    return _png(fig)


def recall_bars_png(entry: IpcEntry, class_names: Sequence[str]) -> bytes:
    """Per-class holdout recall: condensed vs full data vs random subset, grouped bars per class."""
    acc = entry.accuracy
    series = [(name, getattr(acc, name)) for name in ("condensed", "full", "random") if getattr(acc, name)]
    x = np.arange(len(class_names))
    step = 0.8 / max(1, len(series))
    fig = Figure(figsize=(max(6.0, 0.55 * len(class_names) + 2), 3.0))
    ax = fig.add_subplot()
    for i, (name, summary) in enumerate(series):
        values = [np.nan if v is None else 100 * v for v in summary.per_class_recall]
        ax.bar(x - 0.4 + step * (i + 0.5), values, step, label=f"{name} ({100 * summary.mean:.1f}%)",
               color=COLOURS[name])
    ax.set_xticks(x, [str(n) for n in class_names], rotation=0 if len(class_names) <= 12 else 60)
    ax.set_ylabel("recall on holdout (%)")
    ax.set_ylim(0, 105)
    ax.set_title(f"Per-class recall, IPC {entry.ipc}", fontsize=10)
    ax.legend(fontsize=8, ncols=3, loc="upper center", bbox_to_anchor=(0.5, -0.12), frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def loss_curves_png(entries: Sequence[IpcEntry]) -> bytes:
    """The distillation (trajectory-matching) loss per iteration, one line per IPC."""
    fig = Figure(figsize=(6.0, 3.0))
    ax = fig.add_subplot()
    palette = ["#1f6feb", "#8250df", "#cf222e", "#2da44e", "#d4a72c", "#0a3069"]
    for i, entry in enumerate(entries):
        if not entry.loss_history:
            continue
        steps = np.arange(len(entry.loss_history)) * entry.loss_stride + 1
        ax.plot(steps, entry.loss_history, lw=1.5, marker="o" if len(steps) < 30 else None, ms=3,
                color=palette[i % len(palette)], label=f"IPC {entry.ipc}")
    ax.set_xlabel("distillation iteration")
    ax.set_ylabel("matching loss")
    ax.set_title("Distillation loss (lower: the student follows the experts more closely)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)


def sweep_png(entries: Sequence[IpcEntry], currency: str, recommended: int | None) -> bytes:
    """Accuracy (condensed, random, full) and condensed storage cost against IPC, for a compression sweep."""
    ordered = sorted(entries, key=lambda e: e.ipc)
    ipcs = [e.ipc for e in ordered]
    fig = Figure(figsize=(6.5, 3.2))
    ax = fig.add_subplot()
    condensed = [e.accuracy.condensed for e in ordered]
    if all(c is not None for c in condensed):
        ax.errorbar(ipcs, [100 * c.mean for c in condensed if c], yerr=[100 * c.std for c in condensed if c],
                    color=COLOURS["condensed"], marker="o", capsize=3, label="condensed (PAD)")
    randoms = [e.accuracy.random for e in ordered]
    if all(r is not None for r in randoms):
        ax.plot(ipcs, [100 * r.mean for r in randoms if r], color=COLOURS["random"], marker="s", ls="--",
                label="random subset")
    full = next((e.accuracy.full for e in ordered if e.accuracy.full is not None), None)
    if full is not None:
        ax.axhline(100 * full.mean, color=COLOURS["full"], ls=":", label="full data")
    if recommended is not None:
        ax.axvline(recommended, color="#57606a", lw=0.8, ls="-.", label=f"recommended IPC {recommended}")
    ax.set_xscale("log")
    ax.set_xticks(ipcs, [str(i) for i in ipcs])
    ax.set_xlabel("images per class (IPC)")
    ax.set_ylabel("holdout accuracy (%)")
    ax.grid(alpha=0.3)
    cost_ax = ax.twinx()
    cost_ax.plot(ipcs, [e.cost.condensed_bytes / 1e3 for e in ordered], color=COLOURS["cost"], marker="^",
                 label="condensed size (kB)")
    cost_ax.set_ylabel("condensed export (kB)", color=COLOURS["cost"])
    handles, labels = ax.get_legend_handles_labels()
    more_handles, more_labels = cost_ax.get_legend_handles_labels()
    ax.legend(handles + more_handles, labels + more_labels, fontsize=7, loc="lower right")
    ax.set_title(f"Accuracy and size against IPC (storage {currency}/month scales with size)", fontsize=10)
    return _png(fig)
