"""Task checkpoints: what the background-save thread records, and what `--resume` reads back.

A checkpoint (`DIR/<task>.checkpoint.json`, written atomically) says how far a task got: frames
done, thumbnails, and, for a task encoded in pieces, its segment plan and which pieces are
finished. It also names the job it belongs to (`pipeline.plan.identity`: the input, the stages
and their code, the encoder), so that `--resume` never continues a different job's work. A
finished task's checkpoint carries its result, so that resuming a run whose other task failed
does not redo it.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..media.probe import MediaInfo
from ..report.results import TaskResult
from .identity import changed
from .manifest import Manifest, stamp_of
from .outdir import OutDir, read_regular
from .pieces import Pieces, Segment, cut_segments, digests_path
from .tasks import Task

__all__ = [
    "Previous",
    "checkpoint_state",
    "load_previous",
    "read_state",
    "thumbnails_in",
]


def thumbnails_in(first: int, frames: int, every: int) -> list[int]:
    """The frame indices in `first .. first + frames - 1` that get a thumbnail."""
    start = -(-first // every) * every
    return list(range(start, first + frames, every))


def checkpoint_state(
    task: Task,
    job: dict[str, Any],
    *,
    frames: int,
    thumbnails: int,
    latest: str | None,
    pieces: Pieces | None = None,
    result: TaskResult | None = None,
) -> dict[str, Any]:
    """What a task's checkpoint holds: `job` is the job's identity (`RunPlan.jobs`). With
    `result`, the task is complete.

    The thumbnails are summed up, not listed: a checkpoint's size stays the same however long
    the video, and so does the cost of writing it.
    """
    state: dict[str, Any] = {
        "task": task.name,
        "job": job,
        "frames_done": frames,
        "complete": result is not None,
        "output": task.output if result is not None else None,
        "thumbnails": {"folder": f"thumbnails/{task.name}", "count": thumbnails, "latest": latest},
        "updated_unix": time.time(),
    }
    if pieces is not None and not pieces.whole:
        state["segments"] = [[s.first_frame, s.frames] for s in pieces.segments]
        state["segments_done"] = sorted(pieces.done)
    if result is not None:
        state["result"] = result.to_dict()
    return state


@dataclass(frozen=True)
class Previous:
    """What an earlier run of the same job left for a task: finished pieces, or the whole task."""

    pieces: Pieces | None = None
    result: TaskResult | None = None


def _finished(segment: Segment) -> bool:
    digests = digests_path(segment)
    return segment.piece.is_file() and digests.is_file() and digests.stat().st_size > 0


def _check_state(state: Any) -> None:
    """`ValueError` saying what is wrong when `state` is not a checkpoint of this version."""
    if not isinstance(state, dict):
        raise ValueError(f"a checkpoint is an object, not {type(state).__name__}")
    if not isinstance(state.get("job"), dict) or not isinstance(state.get("complete"), bool):
        raise ValueError("'job' (an object) and 'complete' (true or false) are required")
    segments = state.get("segments", [])
    if not isinstance(segments, list) or not all(
        isinstance(s, list)
        and len(s) == 2
        and type(s[0]) is int
        and s[0] >= 0
        and (s[1] is None or (type(s[1]) is int and s[1] > 0))
        for s in segments
    ):
        raise ValueError("'segments' must be a list of [first frame, frames or null]")
    done = state.get("segments_done", [])
    if not isinstance(done, list) or not all(type(n) is int for n in done):
        raise ValueError("'segments_done' must be a list of piece numbers")
    if "result" in state:
        TaskResult.from_dict(str(state.get("task", "")), state["result"])


def read_state(path: Path) -> dict[str, Any] | None:
    """The checkpoint at `path`, its shape checked once, here; None when there is none.
    `ConfigError` ("cannot read checkpoint") when it cannot be read or is malformed."""
    try:
        state = json.loads(read_regular(path))
        _check_state(state)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, RecursionError) as exc:
        raise ConfigError(f"--resume: cannot read checkpoint {path} ({exc})") from exc
    return state  # type: ignore[no-any-return]


def _still_vidpipes(out: OutDir, path: Path) -> bool:
    """Whether `path` is as vidpipe wrote it, by its manifest: a file the user put in its
    place is not."""
    try:
        manifest = Manifest.load(out.manifest)
    except ConfigError:
        return False  # the run that takes the folder says why
    rel, stamp = out.relative(path), stamp_of(path)
    pending = manifest.pending  # a killed run's claim: its outputs are settled when it is taken
    if stamp is None or not path.is_file():
        return False
    return manifest.files.get(rel) == stamp or (pending is not None and pending.covers(rel, stamp))


def load_previous(
    task: Task, job: dict[str, Any], media: MediaInfo, out_dir: Path
) -> Previous | None:
    """What `--resume` can reuse of `task`, of the job `job`, in `out_dir`; None when nothing.

    A finished task is reused when its output is still the one vidpipe wrote; otherwise its
    finished pieces are, with the segment plan they were cut by. Raises `ConfigError` when the
    checkpoint is another job's (another input, stage code or settings): continuing would mix
    two jobs' frames, or when it cannot be read.
    """
    out = OutDir(out_dir)
    path = out.checkpoint(task.name)
    state = read_state(path)
    if state is None:
        return None
    why = changed(state.get("job"), job, task)
    if why is not None:
        raise ConfigError(
            f"--resume: {path} belongs to another job ({why}); run without --resume to start over"
        )
    finished = state.get("complete") and "result" in state
    if finished and _still_vidpipes(out, out.output(task.output)):
        result = TaskResult.from_dict(task.name, state["result"])
        return Previous(result=dataclasses.replace(result, resumed_frames=result.frames))
    if "segments" not in state:
        return None  # made in one piece: nothing of it can be reused
    starts = [first for first, _frames in state["segments"]]
    segments = cut_segments(media, starts, out_dir, task.name)
    if [[s.first_frame, s.frames] for s in segments] != state["segments"]:
        raise ConfigError(f"--resume: {path} does not match the input's keyframes")
    done = {
        n
        for n in state.get("segments_done", [])
        if 0 <= n < len(segments) and _finished(segments[n])
    }
    # Killed while joining: the last piece is made again, so that every task a run resumes
    # runs something and reports it like any other (the other pieces are reused).
    if len(done) == len(segments):
        done.discard(len(segments) - 1)
    return Previous(pieces=Pieces(tuple(segments), frozenset(done)))
