"""Stages named on the command line or in a layout file: built-in, from a file, or from a module.

A stage reference is one of

* a built-in stage's name: `resize`, `animate`, ... (`vidpipe stages` lists them);
* `path/to/file.py:NAME`: a stage defined in a Python file;
* `package.module:NAME`: a stage in an importable module (the current directory is searched
  too, after the installed packages, so that a file there cannot shadow one).

`NAME` is a subclass of `Stage`, any class with a `process(frame, index)` method, or a function
`f(frame, index)` that returns the frame (`pipeline.stages.plain`). Options follow as
`key=value` pairs, separated by commas, passed to the class, or to the function with every
frame, as keyword arguments; a function's `frame_independent=false` says that it carries state
from frame to frame. A value is read as a TOML value when it is one (`3`, `0.5`, `true`,
`"a,b"`, `[1, 2]`) and as a plain string otherwise (`mode=fast`).

A stage from a file travels to worker processes and to other machines as its file's source
text (`pipeline.stages.files`), so such a file must be self-contained: it may import installed
packages, not its neighbours.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
import tomllib
import types
from pathlib import Path
from typing import Any

from ..config.settings import StageSpec
from ..errors import ConfigError, did_you_mean, reraise_interrupt
from .base import Stage
from .files import FileModules
from .plain import FunctionStage, PlainStage

__all__ = ["StageSpec", "build_stage", "load_stage_class", "parse_stage_spec", "parse_task_stage"]


def _parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _parse_options(text: str, where: str) -> tuple[tuple[str, Any], ...]:
    options: list[tuple[str, Any]] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise ConfigError(f"{where}: options must be key=value, got '{item}'")
        options.append((key.strip(), _parse_value(value.strip())))
    return tuple(options)


def parse_stage_spec(text: str, where: str = "stage") -> StageSpec:
    """Parse `REF[:key=value,...]`; `where` names the source of `text` in errors."""
    from . import BUILTIN_STAGES

    head, _, rest = text.partition(":")
    if head in BUILTIN_STAGES:
        return StageSpec(head, _parse_options(rest, where))
    source, sep, rest = text.partition(":")
    class_name, _, options = rest.partition(":")
    # `resiz:height=3` is a misspelt built-in stage with options, not MODULE:CLASS.
    named = all(part.isidentifier() for part in class_name.split("."))
    if not sep or not source or not named:
        known = ", ".join(BUILTIN_STAGES)
        raise ConfigError(
            f"{where}: '{text}' is neither a built-in stage ({known}) nor "
            f"FILE.py:CLASS or MODULE:CLASS{did_you_mean(head, BUILTIN_STAGES)}"
        )
    return StageSpec(f"{source}:{class_name}", _parse_options(options, where))


def parse_task_stage(text: str) -> tuple[str, StageSpec]:
    """Parse a `--stage` value, `TASK:REF[:key=value,...]`, into the task's name and the spec."""
    task, sep, rest = text.partition(":")
    if not sep or not task or not rest:
        raise ConfigError(f"--stage '{text}': expected TASK:STAGE, e.g. render:blur.py:Blur")
    return task, parse_stage_spec(rest, f"--stage '{text}'")


def _import_module(name: str) -> types.ModuleType:
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        # Last, not first: a stage module in the current folder is found, but a file there
        # named like an installed package (cv2.py) does not shadow it. Spawned workers
        # inherit sys.path.
        sys.path.append(cwd)
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        raise ConfigError(f"stage module '{name}': cannot import it ({exc})") from exc
    except BaseException as exc:
        reraise_interrupt(exc)
        raise ConfigError(f"stage module '{name}': {type(exc).__name__}: {exc}") from exc


#: What a stage reference must name, for errors that say so.
WHAT_A_STAGE_IS = (
    "a stage is a class with a process(frame, index) method (a subclass of "
    "pipeline.stages.Stage, or any class), or a function f(frame, index) returning the frame"
)


def load_stage_class(ref: str) -> Any:
    """The stage a reference names: a `Stage` subclass, a plain class with `process`, or a
    function; `ConfigError` when it cannot be loaded or is none of these."""
    from . import BUILTIN_STAGES

    if ref in BUILTIN_STAGES:
        return BUILTIN_STAGES[ref]
    source, _, name = ref.rpartition(":")
    if source.endswith(".py") or os.sep in source:
        path = Path(source)
        if not path.is_file():
            # A FIFO would block its import for ever; a folder is no module either.
            what = "not a regular file" if path.exists() else "no such file"
            raise ConfigError(f"stage file {source}: {what}")
        module = FileModules.load(path)
    else:
        module = _import_module(source)
    found = getattr(module, name, None)
    if found is None:
        raise ConfigError(f"stage {ref}: {source} has no class or function '{name}'")
    if isinstance(found, type) and issubclass(found, Stage) and inspect.isabstract(found):
        missing = ", ".join(sorted(found.__abstractmethods__))
        raise ConfigError(f"stage {ref}: '{name}' does not implement {missing}")
    plain_class = isinstance(found, type) and callable(getattr(found, "process", None))
    if not (plain_class or inspect.isfunction(found)):
        raise ConfigError(f"stage {ref}: '{name}' is not a stage: {WHAT_A_STAGE_IS}")
    return found


def build_stage(spec: StageSpec) -> Stage:
    """Load the stage `spec` names and build it with its options, as a `Stage` (plain classes
    and functions wrapped, `pipeline.stages.plain`); `ConfigError` when the options do not fit
    its constructor (or function) or it rejects them."""
    found = load_stage_class(spec.ref)
    options = dict(spec.options)
    if inspect.isfunction(found):
        return _function_stage(spec.ref, found, options)
    try:
        inspect.signature(found).bind(**options)
    except TypeError as exc:
        raise ConfigError(f"stage {spec.ref}: {exc}") from exc
    try:
        built = found(**options)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"stage {spec.ref}: {exc}") from exc
    except BaseException as exc:  # the stage's own code failed building it
        reraise_interrupt(exc)
        raise ConfigError(
            f"stage {spec.ref}: building it raised {type(exc).__name__}: {exc}"
        ) from exc
    return built if isinstance(built, Stage) else PlainStage(built)


def _function_stage(ref: str, function: Any, options: dict[str, Any]) -> FunctionStage:
    """A function's stage: `frame_independent` is the stage's, the other options its own."""
    independent = options.pop("frame_independent", None)
    if independent is not None and not isinstance(independent, bool):
        raise ConfigError(f"stage {ref}: frame_independent must be true or false")
    try:
        inspect.signature(function).bind(None, 0, **options)
    except TypeError as exc:
        raise ConfigError(
            f"stage {ref}: {exc} (a stage function is called as f(frame, index, **options))"
        ) from exc
    return FunctionStage(function, options, independent)
