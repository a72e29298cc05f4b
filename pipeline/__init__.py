"""vidpipe: multiprocessing vs multithreading, measured on a real video pipeline.

The public API: `run()` a job with `RunOptions` on an input, `probe()` an input, write `Stage`s.
"""

from .config import RunOptions
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
from .report import RunReport, TaskResult
from .settings import AnimationSettings, EncoderSettings, StartMethod
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
