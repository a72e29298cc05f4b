"""The comparison as a Markdown table (`results.md`, and what `vidpipe compare` prints): the
medians per layout, what each column means, where a layout's frames differ or ran in order,
and the perfect layout's estimate, with why a layout measured above it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .summary import LayoutSummary

__all__ = ["results_markdown"]


def results_markdown(summaries: list[LayoutSummary], meta: dict[str, Any]) -> str:
    """The comparison as a Markdown table, with the setup it was measured in."""
    env = meta["environment"]
    predicted = any(s.predicted_speedup is not None for s in summaries)
    pins = ", ".join(f"{k} {v}" for k, v in meta["pinned"].items())
    lines = [
        f"# Layouts compared on `{Path(meta['input']).name}`",
        "",
        f"{meta['repeat']} run{'' if meta['repeat'] == 1 else 's'} per layout, interleaved; "
        f"medians. Machine: {env['cpu_count']} "
        f"CPUs ({env['usable_cores']} usable), Python {env['python']} "
        f"(GIL {'enabled' if env['gil_enabled'] else 'disabled'}), ffmpeg {env['ffmpeg']}, "
        f"OpenCV {env['opencv']}. Pinned: {pins}.",
        "",
        "| layout | wall s | frames/s | speedup | "
        + ("predicted | error | " if predicted else "")
        + "CPU % | peak MB | efficiency | GIL wait | where the time went |",
        "| --- " * (11 if predicted else 9) + "|",
    ]
    for s in summaries:
        verdicts = "; ".join(f"{task}: {verdict}" for task, verdict in s.verdicts.items())
        name = f"{s.layout} **(frames differ)**" if s.frames_differ else s.layout
        forecast = ""
        if predicted:
            error = s.prediction_error
            forecast = (
                "- | - | "
                if s.predicted_speedup is None or error is None
                else f"{s.predicted_speedup:.2f}x ({s.predicted_limit}) | {error:+.0%} | "
            )
        lines.append(
            f"| {name} | {s.wall_seconds:.2f} | {s.frames_per_second:.1f} | "
            f"{s.speedup:.2f}x | {forecast}{s.cpu_percent:.0f} | {s.peak_rss_bytes / 1e6:.0f} | "
            f"{s.efficiency:.0%} | {s.gil_wait:.0%} | {verdicts} |"
        )
    lines += [
        "",
        "speedup = serial's median wall time / the layout's; CPU % = CPU seconds of every "
        "process / (wall seconds x usable cores); efficiency = speedup / usable cores; "
        "peak MB = peak resident memory summed over the processes alive together; "
        "GIL wait = the share of the stages' time (every thread and process that ran them) "
        "spent blocked, not on a CPU nor waiting for one: waiting for the GIL; where the time "
        "went = each task's bottleneck, or the stage that waited for the GIL most of its time"
        + (
            "; predicted = the model's speedup from serial's run (`vidpipe predict`), with "
            "the limit it names; error = (predicted - measured) / measured."
            if predicted
            else "."
        ),
        "",
    ]
    lines += _explained(summaries)
    if "perfect" in meta:
        lines += [_perfect_line(summaries, meta), ""]
    return "\n".join(lines)


def _explained(summaries: list[LayoutSummary]) -> list[str]:
    """Lines under the table: layouts whose frames differ from serial's, and tasks a layout
    ran in order where it would have spread their frames."""
    lines = []
    for s in summaries:
        if s.frames_differ:
            lines.append(
                f"- **{s.layout}: frames differ from serial's** (task "
                f"{', '.join(repr(t) for t in s.frames_differ)}): its speedup compares other "
                "work. A stage that is not deterministic, not thread-safe, or not "
                "frame-independent while declaring it is the usual cause: run "
                "`vidpipe check-stage STAGE` on each of the task's stages."
            )
        for task, why in s.in_order.items():
            lines.append(f"- {s.layout}: task '{task}' {why}.")
    return [*lines, ""] if lines else []


def _perfect_line(summaries: list[LayoutSummary], meta: dict[str, Any]) -> str:
    """The perfect layout's estimate, and any layout measured above it, with why."""
    perfect = meta["perfect"]
    line = (
        f"Perfect layout (the model's estimate, not a bound): serial's work spread over "
        f"{perfect['cores']} cores with no start-up, copy or GIL, bounded by {perfect['limit']} "
        f"({perfect['why']}): {perfect['speedup']:.2f}x serial."
    )
    above = [s for s in summaries if s.speedup > perfect["speedup"] * 1.02]
    if above:
        cores = meta["environment"]["usable_cores"]
        serial = next(s for s in summaries if s.layout == "serial")
        line += " Measured above it: " + "; ".join(_why_above(s, serial, cores) for s in above)
        line += "."
    return line


def _why_above(s: LayoutSummary, serial: LayoutSummary, cores: int) -> str:
    """Why a layout's measured speedup exceeds the estimate built from serial's work."""

    def cpu(x: LayoutSummary) -> float:
        return x.cpu_percent / 100 * x.wall_seconds * cores

    if cpu(s) < cpu(serial) * 0.97:
        return (
            f"{s.layout} {s.speedup:.2f}x, which spent less CPU than serial ({cpu(s):.1f} CPU-s "
            f"against {cpu(serial):.1f}), and the estimate spreads serial's work"
        )
    return (
        f"{s.layout} {s.speedup:.2f}x, with as much CPU work as serial: the estimate left "
        f"something out, or noise moved serial's median (see docs/case-study.md)"
    )
