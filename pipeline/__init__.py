"""vidpipe: multiprocessing vs multithreading, measured on a real video pipeline.

The public API: `run()` a job with `RunOptions` on an input, `probe()` an input, write `Stage`s.

The subpackages follow the flow of a run, so that each part is found by its folder's name:
`cli` (the command line) -> `config` (what was asked, validated once) -> `plan` (the input
probed, the tasks and their pieces, the output folder) -> `layouts` (where each part runs) ->
`engine` (the frame loop: source -> `stages` -> sink, through `media`'s ffmpeg processes) ->
`report` (what was measured). Beside the flow: `lab` (comparing layouts, checking stages) and
`instrument` (traces, process statistics, injected faults). Only the entry points (`job`) and
the errors stay at the top. One layer imports only those below it: no import circles.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config.options import RunOptions
    from .config.settings import AnimationSettings, EncoderSettings, StartMethod
    from .errors import (
        ConfigError,
        InputError,
        Interrupted,
        MediaError,
        PipelineError,
        SaveError,
        StageError,
        WorkerCrashed,
    )
    from .job import run
    from .media.probe import MediaInfo, probe
    from .report.results import RunReport, TaskResult
    from .stages import PixelFormat, Stage, StreamSpec

#: Where each name of the public API lives. Imported on first use (PEP 562), so that
#: `vidpipe layouts` and the other listing commands do not pay for numpy, OpenCV and the
#: engine they never touch.
_PUBLIC = {
    "RunOptions": ".config.options",
    "AnimationSettings": ".config.settings",
    "EncoderSettings": ".config.settings",
    "StartMethod": ".config.settings",
    "ConfigError": ".errors",
    "InputError": ".errors",
    "Interrupted": ".errors",
    "MediaError": ".errors",
    "PipelineError": ".errors",
    "SaveError": ".errors",
    "StageError": ".errors",
    "WorkerCrashed": ".errors",
    "run": ".job",
    "MediaInfo": ".media.probe",
    "probe": ".media.probe",
    "RunReport": ".report.results",
    "TaskResult": ".report.results",
    "PixelFormat": ".stages",
    "Stage": ".stages",
    "StreamSpec": ".stages",
}


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # once imported, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])


__all__ = [
    "AnimationSettings",
    "ConfigError",
    "EncoderSettings",
    "InputError",
    "Interrupted",
    "MediaError",
    "MediaInfo",
    "PipelineError",
    "PixelFormat",
    "RunOptions",
    "RunReport",
    "SaveError",
    "Stage",
    "StageError",
    "StartMethod",
    "StreamSpec",
    "TaskResult",
    "WorkerCrashed",
    "probe",
    "run",
]

__version__ = "0.1.0"
