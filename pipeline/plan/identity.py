"""A job's identity: what makes two runs the same job, so that `--resume` continues only its own.

Taken once, when the job is planned, and carried from there (`RunPlan.jobs`): a checkpoint
records it, and nothing rereads the input or the stages' code while the job runs. It covers

* the input: its resolved path, size, modification time and a digest of its content (the
  whole file when small, else its first and last MiB), so that a file replaced by another of
  the same size and time (`cp -p`, `rsync -t`, `touch -r`) is another job;
* each stage's name and options (`Stage.describe`), and the code of a user's stage: the text
  of its stage file, or the source file of its module (`MODULE:CLASS`); vidpipe's own
  stages are its version's;
* the encoder's settings and the output's name.

A report records each task's too (`TaskResult.job`), so that `predict --from` takes only a run
of the same job; `changed` names what differs, for both.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..stages.base import Stage
from ..stages.plain import defined_by
from .tasks import Task

__all__ = ["changed", "input_changed", "input_identity", "job_key", "stage_code"]

#: How much of each end of a large input is hashed: a digest costs the same for any length.
_END_BYTES = 1 << 20


def input_identity(path: Path) -> dict[str, Any]:
    """The input as a job knows it: path, size, modification time and content digest.

    Raises `InputError` naming the input when it cannot be read."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as f:
            st = os.fstat(f.fileno())
            if st.st_size <= 2 * _END_BYTES:
                digest.update(f.read())
            else:
                digest.update(f.read(_END_BYTES))
                f.seek(-_END_BYTES, os.SEEK_END)
                digest.update(f.read(_END_BYTES))
        resolved = str(path.resolve())
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    return {
        "input": resolved,
        "input_bytes": st.st_size,
        "input_mtime_ns": st.st_mtime_ns,
        "input_content": f"sha256:{digest.hexdigest()}",
    }


def input_changed(task: str, path: str, source: dict[str, Any]) -> InputError | None:
    """The error to raise when task `task`'s input `path` is gone, unreadable or replaced
    (another size or time than its identity `source` says) since the job started; None when
    it is as it was (or `source` is empty: only gone or unreadable then)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        what = "was removed"
    except OSError as exc:
        what = f"cannot be read any more ({exc.strerror or exc})"
    else:
        now = (st.st_size, st.st_mtime_ns)
        if not source or now == (source["input_bytes"], source["input_mtime_ns"]):
            return None
        what = "was replaced"
    return InputError(
        f"task '{task}': the input {path} {what} during the run; put it back as it was and run "
        "again with --resume, or run without --resume to start over"
    )


def stage_code(stage: Stage) -> tuple[str, str] | None:
    """(file, digest of its text) of the user's code that defines `stage`: its stage file, or
    its module's source file; None for vidpipe's own stages and for code without a file."""
    module = sys.modules.get(getattr(defined_by(stage), "__module__", None) or "")
    if module is None:
        return None
    filename = getattr(module, "__file__", None)
    text: str | None = getattr(module, "__vidpipe_source__", None)  # a stage file, as loaded
    if text is not None:
        return str(filename), f"sha256:{hashlib.sha256(text.encode()).hexdigest()}"
    if filename is None or module.__name__.partition(".")[0] == __name__.partition(".")[0]:
        return None
    try:
        data = Path(filename).read_bytes()
    except OSError:
        return None  # imported, so readable a moment ago; a module's loader may hide it
    return filename, f"sha256:{hashlib.sha256(data).hexdigest()}"


def job_key(task: Task, source: dict[str, Any]) -> dict[str, Any]:
    """What makes two runs of `task` on the input `source` (`input_identity`) the same job."""
    codes = [stage_code(stage) for stage in task.stages]
    return {
        **source,
        "stages": [stage.describe() for stage in task.stages],
        "stage_code": [code and code[1] for code in codes],
        "encoder": [task.encoder.preset, task.encoder.crf],
        "output": task.output,
        "frame_digest": "xxh3_128",  # pieces' digests of another kind cannot be combined
    }


#: The parts of an encoder's settings in a job's identity, in `job_key`'s order.
_ENCODER = ("preset", "crf")


def changed(
    recorded: Any, key: dict[str, Any], task: Task, *, ignore: frozenset[str] = frozenset()
) -> str | None:
    """What differs between the job `recorded` (by a checkpoint, or a report) and `key`, in
    words naming the option, the stage file or the input; None when they are the same job.
    The parts of the identity in `ignore` are left out (`predict` takes a copy of the input
    elsewhere, of another path and time, for the same video)."""
    if not isinstance(recorded, dict):
        return "it names no job"
    if not key.keys() <= recorded.keys():
        return "it was recorded by another version of vidpipe"
    differs = [k for k, v in key.items() if k not in ignore and recorded[k] != v]
    if not differs:
        return None
    if differs[0].startswith("input"):
        if recorded["input"] == key["input"]:
            return f"the input {key['input']} changed since"
        return f"the input {key['input']} is not the video {recorded['input']} was"
    if differs[0] == "stages":
        return _stages_changed(recorded["stages"], key["stages"])
    if differs[0] == "stage_code":
        return _code_changed(recorded["stage_code"], key["stage_code"], task)
    if differs[0] == "encoder" and _fits(recorded["encoder"], key["encoder"]):
        name, before, now = next(
            (n, b, a)
            for n, b, a in zip(_ENCODER, recorded["encoder"], key["encoder"], strict=True)
            if b != a
        )
        return f"the x264 {name} was {before}, these options give {now}"
    return f"its {differs[0]} was {recorded[differs[0]]}, these options give {key[differs[0]]}"


def _stages_changed(recorded: Any, now: list[str]) -> str:
    """The first stage that differs, or both chains when they are of other lengths."""
    if _fits(recorded, now):
        before, given = next((b, a) for b, a in zip(recorded, now, strict=True) if b != a)
        return f"its stage was {before}, these options give {given}"
    return f"its stages were {recorded}, these options give {now}"


def _fits(recorded: Any, now: list[Any]) -> bool:
    return isinstance(recorded, list) and len(recorded) == len(now)


def _code_changed(recorded: Any, now: list[str | None], task: Task) -> str:
    """Which stage's code differs from the digests `recorded`, naming its file."""
    if _fits(recorded, now):
        for stage, before, digest in zip(task.stages, recorded, now, strict=True):
            code = stage_code(stage) if before != digest else None
            if code is not None:
                return f"the code of stage '{stage.name}' changed since: {code[0]} was edited"
    return "the code of its stages changed since"
