"""Layouts, registered by name: where tasks, their frames and their helpers run.

Each layout is one module with `run(plan, reporter) -> RunReport` (`pipeline.layouts.base`).
Modules are imported only when their layout is used, so a layout whose engine is not installed
fails with a clear `ConfigError` naming the extra to install. This registry knows the layouts by
name only, so that planning can ask about them without importing any.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from types import ModuleType

from ..config.options import RunOptions
from ..config.settings import StartMethod
from ..errors import ConfigError, did_you_mean

__all__ = [
    "CUSTOM",
    "LAYOUTS",
    "LayoutInfo",
    "check_layout",
    "layout_info",
    "load_layout",
    "sends_stages",
]


@dataclass(frozen=True)
class LayoutInfo:
    """A registered layout: its module, what runs where, and the extra it needs, if any.

    A layout that `splits` runs each task as `--workers` segments side by side; the others
    encode a task's pieces one after the other (`--segment-frames`). One that `sends` runs
    stages in worker processes, to which they travel pickled (unless forked).
    """

    name: str
    module: str
    summary: str
    extra: str | None = None
    splits: bool = False
    sends: bool = False


LAYOUTS: dict[str, LayoutInfo] = {
    info.name: info
    for info in (
        LayoutInfo(
            "serial",
            "pipeline.layouts.serial",
            "one thread does everything: tasks one after the other, progress and saves inline "
            "(the baseline)",
        ),
        LayoutInfo(
            "threads",
            "pipeline.layouts.threads",
            "one process: a thread per task plus one progress and one save thread, all sharing "
            "memory and the GIL",
        ),
        LayoutInfo(
            "processes",
            "pipeline.layouts.processes",
            "a process per task (own memory, own GIL), each with its own progress and save "
            "threads; the parent gathers progress and results (default)",
            sends=True,
        ),
        LayoutInfo(
            "hybrid",
            "pipeline.layouts.hybrid",
            "a process per task, and in each a pool of --workers threads running the per-frame "
            "stages on several frames at once (scales where stages release the GIL)",
            sends=True,
        ),
        LayoutInfo(
            "pool",
            "pipeline.layouts.pool",
            "a process per task, and for each a pool of --workers processes running the "
            "per-frame stages; frames travel by --transport shm (slot numbers) or pickle",
            sends=True,
        ),
        LayoutInfo(
            "segments",
            "pipeline.layouts.segments",
            "each task's video cut at keyframes into --workers ranges, one process each "
            "(decode, stages, encode a piece); pieces joined without re-encoding",
            splits=True,
            sends=True,
        ),
        LayoutInfo(
            "ray",
            "pipeline.layouts.cluster",
            "segments as Ray tasks on the nodes of a cluster (a local Ray instance, or "
            "--ray-address): cuts travel through Ray's object store, pieces come back",
            extra="ray",
            splits=True,
            sends=True,
        ),
    )
}


#: What runs a layout file (`--layout path/to/layout.toml`, see `pipeline.config.layout_file`).
CUSTOM = LayoutInfo(
    "custom",
    "pipeline.layouts.custom",
    "a layout file: tasks placed as it says, each with the frame pool it names",
)


def layout_info(name: str) -> LayoutInfo:
    """The registered layout `name`, or `CUSTOM` for a layout file; `ConfigError` if unknown."""
    from ..config.layout_file import is_layout_file

    if is_layout_file(name):
        return CUSTOM
    info = LAYOUTS.get(name)
    if info is None:
        raise ConfigError(
            f"unknown layout '{name}'{did_you_mean(name, LAYOUTS)} (available: "
            f"{', '.join(LAYOUTS)}, or a layout file ending in .toml)"
        )
    return info


def check_layout(name: str) -> LayoutInfo:
    """`layout_info(name)`, after checking that what the layout needs is installed, without
    importing the layout (planning, before the input is probed, stays light); `ConfigError`
    if unknown or not installed."""
    info = layout_info(name)
    if info.extra is not None and importlib.util.find_spec(info.extra) is None:
        raise _not_installed(name, info.extra)
    return info


def _not_installed(name: str, extra: str) -> ConfigError:
    return ConfigError(f"layout '{name}' needs the '{extra}' extra: pip install 'vidpipe[{extra}]'")


def load_layout(name: str) -> ModuleType:
    """The module that runs layout `name` (a registered layout, or a layout file), a
    `pipeline.layouts.base.Layout`; `ConfigError` if unknown or not installed."""
    info = layout_info(name)
    try:
        module = importlib.import_module(info.module)
    except ImportError as exc:
        if info.extra is None:
            raise
        raise _not_installed(name, info.extra) from exc
    return module


def sends_stages(options: RunOptions) -> bool:
    """Whether the run pickles its stages to worker processes: a layout that runs them there
    (for a layout file: tasks in processes, or a process pool), under a start method that
    does not fork, or on a cluster."""
    from ..config.layout_file import FramePool, Placement

    info = layout_info(options.layout)
    if info.extra == "ray":
        return True
    if options.start_method is StartMethod.FORK:
        return False
    layout = options.layout_file
    if info is CUSTOM and layout is not None:
        pools = [layout.frames_for(task).pool for task in options.tasks]
        return layout.tasks is Placement.PROCESSES or FramePool.PROCESSES in pools
    return info.sends
