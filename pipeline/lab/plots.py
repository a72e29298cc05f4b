"""Charts of a comparison: speedups against the ideal (timelines: `pipeline.lab.timeline`).

Needs matplotlib (the `plot` extra); it is imported only when a chart is drawn.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..plan.outdir import atomic_write_bytes
from .summary import LayoutSummary

__all__ = ["chart_text", "pyplot", "save_png", "speedup_chart"]


def pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ConfigError(
            "charts need matplotlib, a dependency of vidpipe that is missing here: "
            "pip install matplotlib (or install vidpipe again)"
        ) from exc
    return plt


def chart_text(text: str) -> str:
    """`text` as a chart can draw it: a name that is not UTF-8 (a layout file's, kept as its
    bytes by Python) gets U+FFFD where its bad bytes were; matplotlib refuses lone surrogates."""
    return os.fsencode(text).decode("utf-8", errors="replace")


def save_png(plt: Any, fig: Any, path: Path, dpi: int) -> None:
    """Write the figure as PNG, atomically: a chart is at `path` only once complete."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def speedup_chart(summaries: Sequence[LayoutSummary], cores: int, path: Path) -> None:
    """Bars of each layout's median speedup over serial, with the ideal (one per core) and,
    where the model predicted it (`compare --predict`), a marker at the predicted speedup."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    names = [chart_text(s.layout) for s in summaries]
    values = [s.speedup for s in summaries]
    bars = ax.bar(names, values, color="#4c72b0", label="measured")
    # Inside the bars: the prediction markers sit near their tops.
    ax.bar_label(bars, labels=[f"{v:.2f}x" for v in values], label_type="center", color="white")
    differ = [bar for bar, s in zip(bars, summaries, strict=True) if s.frames_differ]
    for bar in differ:  # its speedup compares other work: marked, not hidden
        bar.set(color="#bbbbbb", hatch="//", edgecolor="#c44e52")
    if differ:
        differ[0].set_label("frames differ from serial's")
    predicted = [
        (chart_text(s.layout), s.predicted_speedup) for s in summaries if s.predicted_speedup
    ]
    if predicted:
        ax.scatter(
            [name for name, _ in predicted],
            [value for _, value in predicted],
            marker="D",
            s=60,
            color="#dd8452",
            edgecolors="black",
            zorder=3,
            label="predicted",
        )
        values += [value for _, value in predicted]
    ax.axhline(cores, color="#c44e52", linestyle="--", label=f"ideal: {cores} cores")
    ax.axhline(1, color="#555555", linewidth=0.8, label="serial")
    ax.set_ylabel("speedup over serial (median wall time)")
    ax.set_ylim(0, max([cores, *values]) * 1.15)
    ax.set_title("Speedup by layout")
    ax.legend(loc="upper left")
    fig.tight_layout()
    save_png(plt, fig, path, dpi=110)
