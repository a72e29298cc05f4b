"""What a comparison measured: each run of each layout, and the medians per layout.

`vidpipe compare` (`pipeline.lab.compare`) turns each run's report into a `Run` and each
layout's runs into a `LayoutSummary`; its table (`pipeline.lab.comparetable`), its charts and
`results.json` read these.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..report.results import CPU_PHASES, TaskResult

__all__ = ["LayoutSummary", "Run", "gil_wait", "summarize", "to_run"]


@dataclass(frozen=True)
class Run:
    """One run of one layout, as measured by its report."""

    layout: str
    round: int
    wall_seconds: float
    frames: int
    cpu_seconds: float
    peak_rss_bytes: int
    digests: dict[str, str]
    bottlenecks: dict[str, tuple[str, float]]
    traced: bool
    out_dir: str
    #: Where each task's time went, in words (`TaskResult.verdict`).
    verdicts: dict[str, str] = field(default_factory=dict)
    #: The share of all stages' time (every task's) spent blocked: waiting for the GIL.
    gil_wait: float = 0.0
    #: Tasks whose frames the layout ran in order where it would have spread them, and why.
    in_order: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LayoutSummary:
    """Medians over a layout's runs, and how they compare with serial."""

    layout: str
    runs: int
    wall_seconds: float
    frames_per_second: float
    speedup: float
    cpu_percent: float
    peak_rss_bytes: int
    efficiency: float
    bottlenecks: dict[str, tuple[str, float]] = field(default_factory=dict)
    verdicts: dict[str, str] = field(default_factory=dict)
    gil_wait: float = 0.0
    #: The model's speedup from serial's run (`compare --predict`); None when not predicted.
    predicted_speedup: float | None = None
    #: What the model says limits the layout, and why.
    predicted_limit: str | None = None
    #: Tasks whose frames differ from serial's in some run: the speedup compares other work.
    frames_differ: list[str] = field(default_factory=list)
    #: Tasks whose frames the layout ran in order where it would have spread them, and why.
    in_order: dict[str, str] = field(default_factory=dict)

    @property
    def prediction_error(self) -> float | None:
        """(predicted - measured) / measured speedup, when predicted."""
        if self.predicted_speedup is None:
            return None
        return (self.predicted_speedup - self.speedup) / self.speedup


def gil_wait(tasks: Iterable[TaskResult]) -> float:
    """The share of every stage's time, summed over tasks, spent blocked (`CpuBreakdown`)."""
    stages = [
        spent for t in tasks for name, spent in t.cpu_breakdown.items() if name not in CPU_PHASES
    ]
    wall = sum(s.wall for s in stages)
    return sum(s.blocked for s in stages) / wall if wall > 0 else 0.0


def to_run(layout: str, round_: int, report: dict[str, Any], traced: bool, out: Path) -> Run:
    tasks = {name: TaskResult.from_dict(name, data) for name, data in report["tasks"].items()}
    return Run(
        layout=layout,
        round=round_,
        wall_seconds=report["wall_seconds"],
        frames=sum(t.frames for t in tasks.values()),
        cpu_seconds=sum(p["cpu_seconds"] for p in report["processes"]),
        peak_rss_bytes=report["peak_rss_bytes_total"],
        digests={name: t.frame_digest for name, t in tasks.items()},
        bottlenecks={name: t.bottleneck() for name, t in tasks.items()},
        verdicts={name: t.verdict() for name, t in tasks.items()},
        gil_wait=gil_wait(tasks.values()),
        in_order={name: t.in_order for name, t in tasks.items() if t.in_order},
        traced=traced,
        out_dir=str(out),
    )


def summarize(runs: list[Run], cores: int) -> list[LayoutSummary]:
    by_layout: dict[str, list[Run]] = {}
    for run in runs:
        by_layout.setdefault(run.layout, []).append(run)
    serial_wall = statistics.median(r.wall_seconds for r in by_layout["serial"])
    reference = by_layout["serial"][0].digests
    out = []
    for layout, rs in by_layout.items():
        wall = statistics.median(r.wall_seconds for r in rs)
        speedup = serial_wall / wall
        median_run = min(rs, key=lambda r: abs(r.wall_seconds - wall))
        out.append(
            LayoutSummary(
                layout=layout,
                runs=len(rs),
                wall_seconds=wall,
                frames_per_second=statistics.median(r.frames / r.wall_seconds for r in rs),
                speedup=speedup,
                cpu_percent=statistics.median(
                    100 * r.cpu_seconds / (r.wall_seconds * cores) for r in rs
                ),
                peak_rss_bytes=int(statistics.median(r.peak_rss_bytes for r in rs)),
                efficiency=speedup / cores,
                bottlenecks=median_run.bottlenecks,
                verdicts=median_run.verdicts,
                gil_wait=statistics.median(r.gil_wait for r in rs),
                frames_differ=sorted(
                    {t for r in rs for t, digest in r.digests.items() if digest != reference.get(t)}
                ),
                in_order={t: why for r in rs for t, why in r.in_order.items()},
            )
        )
    return out
