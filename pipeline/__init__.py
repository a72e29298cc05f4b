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
