"""Layout files: a custom layout described in TOML, for `--layout path/to/layout.toml`.

```toml
summary = "compress inline; render's frames on a pool of processes"
tasks = "processes"        # where tasks run: "serial", "threads" or "processes"
start_method = "spawn"     # worker processes: "spawn", "forkserver" or "fork" (--start-method)
save_queue = 8             # saves waiting for each process's saver thread (8)

[frames]                   # every task's frame pool, unless its own [task.NAME] says otherwise
pool = "inline"            # who runs the stages: "inline" (the task's thread), "threads",
                           # or "processes"
workers = 2                # pool size (--workers, else the usable cores)
window = 4                 # frames in flight in the pool (2 x workers)
transport = "shm"          # process pools: "shm" or "pickle" (--transport)

[task.render]
frames = { pool = "processes", workers = 2 }
stages = [                 # added to the end of the task's chain
    "examples/stages/sepia.py:Sepia:strength=0.5",
    { stage = "resize", height = 240 },
]
builtin_stages = true      # false: leave out the task's built-in stages (render's animation)
```

Every key is optional. The file is read and checked once, when the job is planned
(`pipeline.config.options.apply_layout_file`); the `custom` layout module
(`pipeline.layouts.custom`) carries it out.
"""

from __future__ import annotations

import dataclasses
import enum
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, did_you_mean
from ..plan.outdir import read_regular
from .settings import StageSpec, StartMethod, Transport, thread_limit

__all__ = [
    "FramePool",
    "FramesPlan",
    "LayoutFile",
    "Placement",
    "TaskLayout",
    "is_layout_file",
    "read_layout_file",
]


#: The most saves that may wait for a saver thread: each holds a copy of a frame.
MAX_SAVE_QUEUE = 256


class Placement(enum.StrEnum):
    """Where a layout file's tasks run, as the layouts of the same names place them."""

    SERIAL = "serial"
    THREADS = "threads"
    PROCESSES = "processes"


class FramePool(enum.StrEnum):
    """Who runs a task's stages on its frames."""

    INLINE = "inline"
    THREADS = "threads"
    PROCESSES = "processes"


@dataclass(frozen=True)
class FramesPlan:
    """A task's frame pool: its kind, size (None: `--workers`), window and transport."""

    pool: FramePool = FramePool.INLINE
    workers: int | None = None
    window: int | None = None
    transport: Transport | None = None


@dataclass(frozen=True)
class TaskLayout:
    """What a layout file says of one task."""

    frames: FramesPlan | None = None
    stages: tuple[StageSpec, ...] = ()
    builtin_stages: bool = True


@dataclass(frozen=True)
class LayoutFile:
    """A layout file, read and checked."""

    path: str
    summary: str = ""
    tasks: Placement = Placement.PROCESSES
    start_method: StartMethod | None = None
    save_queue: int | None = None
    frames: FramesPlan = FramesPlan()
    per_task: tuple[tuple[str, TaskLayout], ...] = ()

    def task(self, name: str) -> TaskLayout:
        """What the file says of task `name` (nothing: the defaults)."""
        return dict(self.per_task).get(name, TaskLayout())

    def frames_for(self, name: str) -> FramesPlan:
        """Task `name`'s frame pool: its own, else the file's default."""
        return self.task(name).frames or self.frames


def is_layout_file(layout: str) -> bool:
    """True when `--layout` names a layout file rather than a registered layout."""
    return layout.endswith(".toml")


def _at(path: str, where: str) -> str:
    """The start of a message about the place `where` (a table header such as `[frames]`,
    then a key such as `stages[0]`, or "" for the whole file) in the file at `path`: a key
    is followed by a colon, a header alone by a space (`[frames] 'pool' must be ...`)."""
    if not where:
        return f"layout file {path}: "
    alone = where.startswith("[") and where.endswith("]") and "] " not in where
    return f"layout file {path}: {where}{' ' if alone else ': '}"


class _Table:
    """A TOML table being read: typed lookups, and an error for any key left unread.
    `where` names the table in errors (see `_at`); `what` is what it must be otherwise."""

    def __init__(self, data: Any, where: str, path: str, what: str = "a table") -> None:
        if not isinstance(data, dict):
            raise ConfigError(f"{_at(path, where)}must be {what}, got {data!r}")
        self._data = dict(data)
        self._where = where
        self._path = path

    def error(self, message: str) -> ConfigError:
        return ConfigError(f"{_at(self._path, self._where)}{message}")

    def take(self, key: str, kind: type, default: Any = None) -> Any:
        if key not in self._data:
            return default
        value = self._data.pop(key)
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
            names = {dict: "a table", list: "a list", str: "a string", int: "a whole number"}
            raise self.error(f"'{key}' must be {names.get(kind, kind.__name__)}, got {value!r}")
        return value

    def choice(self, key: str, enum_type: type[enum.StrEnum], default: Any = None) -> Any:
        value = self.take(key, str)
        if value is None:
            return default
        try:
            return enum_type(value)
        except ValueError:
            known = [m.value for m in enum_type]
            close = did_you_mean(value, known)
            raise self.error(
                f"'{key}' must be one of {', '.join(known)}, got '{value}'{close}"
            ) from None

    def positive(self, key: str, most: int) -> int | None:
        value = self.take(key, int)
        if value is not None and not 1 <= value <= most:
            raise self.error(f"'{key}' must be between 1 and {most}, got {value}")
        return value  # type: ignore[no-any-return]

    def rest(self) -> dict[str, Any]:
        """The keys not read yet, which are then read."""
        rest, self._data = self._data, {}
        return rest

    def finish(self) -> None:
        if self._data:
            raise self.error(f"unknown key '{next(iter(self._data))}'")


def _frames(table: _Table) -> FramesPlan:
    plan = FramesPlan(
        pool=table.choice("pool", FramePool, FramePool.INLINE),
        workers=table.positive("workers", thread_limit()),
        # Frames in flight: each is a frame in memory (two under `shm`).
        window=table.positive("window", 4 * thread_limit()),
        transport=table.choice("transport", Transport),
    )
    table.finish()
    return plan


def _stage(entry: Any, where: str, path: str) -> StageSpec:
    from ..stages.loader import parse_stage_spec

    # parse_stage_spec puts its own colon after where it was given.
    named = f"layout file {path}: {where}"
    if isinstance(entry, str):
        return parse_stage_spec(entry, named)
    table = _Table(entry, where, path, what="a stage reference (a string) or a table")
    ref = table.take("stage", str)
    if ref is None:
        raise table.error("a stage table needs 'stage' (a name, FILE.py:CLASS or MODULE:CLASS)")
    spec = parse_stage_spec(ref, named)
    return dataclasses.replace(spec, options=(*spec.options, *table.rest().items()))


def _task(name: str, data: Any, path: str) -> TaskLayout:
    where = f"[task.{name}]"
    table = _Table(data, where, path)
    frames = table.take("frames", dict)
    stages = table.take("stages", list, [])
    layout = TaskLayout(
        frames=_frames(_Table(frames, f"{where} frames", path)) if frames else None,
        stages=tuple(_stage(s, f"{where} stages[{i}]", path) for i, s in enumerate(stages)),
        builtin_stages=table.take("builtin_stages", bool, True),
    )
    table.finish()
    return layout


def read_layout_file(path: str | Path) -> LayoutFile:
    """Read and check the layout file at `path`; `ConfigError` naming the file and the problem
    (missing, not TOML, an unknown key or a bad value, a stage that cannot be parsed)."""
    name = str(path)
    try:
        # utf-8-sig: a BOM, which some editors write first, is no TOML statement.
        data = tomllib.loads(read_regular(Path(path)).decode("utf-8-sig"))
    except OSError as exc:
        why = exc.strerror or str(exc)
        raise ConfigError(f"layout file {name}: cannot read it ({why})") from exc
    except RecursionError as exc:
        raise ConfigError(f"layout file {name}: nested too deeply to read") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"layout file {name}: not UTF-8 text ({exc.reason})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"layout file {name}: not valid TOML ({exc})") from exc
    table = _Table(data, "", name)
    frames = table.take("frames", dict)
    per_task = table.take("task", dict, {})
    layout = LayoutFile(
        path=name,
        summary=table.take("summary", str, ""),
        tasks=table.choice("tasks", Placement, Placement.PROCESSES),
        start_method=table.choice("start_method", StartMethod),
        save_queue=table.positive("save_queue", MAX_SAVE_QUEUE),
        frames=_frames(_Table(frames, "[frames]", name)) if frames else FramesPlan(),
        per_task=tuple((task, _task(task, value, name)) for task, value in per_task.items()),
    )
    table.finish()
    return layout
