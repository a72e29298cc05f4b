"""What `vidpipe run` prints: what `--resume` found, and a finished run's summary."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..plan.planner import RunPlan
    from ..report.results import RunReport

__all__ = ["megabytes", "print_report", "resume_notes"]


def megabytes(n: int) -> str:
    return f"{n / 1e6:.2f} MB"


def resume_notes(plan: RunPlan) -> list[str]:
    """What `--resume` found for each task, one line each."""
    from ..plan.pieces import piece_frames

    notes = [f"{name}: finished by an earlier run, kept" for name in plan.finished]
    for task in plan.tasks:
        pieces = plan.pieces[task.name]
        if pieces.done:
            frames = sum(piece_frames(s) for s in pieces.segments if s.number in pieces.done)
            notes.append(
                f"{task.name}: resuming after {len(pieces.done)} of {len(pieces.segments)} "
                f"pieces ({frames} frames)"
            )
        else:
            notes.append(f"{task.name}: nothing to resume, starting from the beginning")
    return notes


def print_report(report: RunReport) -> None:
    """What a run did, in a few lines: the run, each task, each node, where time went."""
    print(
        f"layout {report.layout}: {report.wall_seconds:.2f} s wall, "
        f"peak memory {megabytes(report.peak_rss_bytes_total)} over the processes alive "
        f"together ({len(report.processes)} processes in all)"
    )
    print(f"{'task':<10} {'frames':>6} {'seconds':>8} {'fps':>7}  {'output':<16} size")
    for name, t in report.tasks.items():
        fps = t.frames / t.seconds if t.seconds else 0.0
        print(
            f"{name:<10} {t.frames:>6} {t.seconds:>8.2f} {fps:>7.1f}  {t.output:<16} "
            f"{megabytes(t.input_bytes)} -> {megabytes(t.output_bytes)} "
            f"(ratio {t.compression_ratio:.2f})"
        )
        if t.size_fix:
            print(f"{'':<10} note: {t.size_fix}")
        if t.in_order:
            print(f"{'':<10} note: {t.in_order}")
        listed = report.input["video"]["packets"]
        if t.frames < listed:
            print(
                f"{'':<10} note: the input lists {listed} frames; {listed - t.frames} could "
                "not be decoded (damaged input) and were skipped"
            )
    for node, work in report.nodes.items():
        print(
            f"node {node}: {work.segments} segments, {work.frames} frames, "
            f"{work.busy_seconds:.2f} s busy, {megabytes(work.bytes_in)} in, "
            f"{megabytes(work.bytes_out)} out"
        )
    for name, t in report.tasks.items():
        verdict = t.verdict()
        if verdict:
            print(f"{name}: {verdict}")
