"""Stages named on the command line or in a layout file: built-in, from a file, or from a module.

A stage reference is one of

* a built-in stage's name: `resize`, `animate`, ... (`vidpipe stages` lists them);
* `path/to/file.py:ClassName`: a class defined in a Python file;
* `package.module:ClassName`: a class in an importable module (the current directory is
  searched too, after the installed packages, so that a file there cannot shadow one).

Options follow as `key=value` pairs, separated by commas, passed to the class as keyword
arguments. A value is read as a TOML value when it is one (`3`, `0.5`, `true`, `"a,b"`, `[1, 2]`)
and as a plain string otherwise (`mode=fast`).

A class loaded from a file travels to worker processes and to other machines as its file's
source text, not its path (see `_FileModules`): workers started by `spawn`, and Ray's nodes,
which may not see the file, load it again from that text. Such a file must therefore be
self-contained: it may import installed packages, not its neighbours.
"""

from __future__ import annotations

import copyreg
import hashlib
import importlib
import inspect
import os
import re
import sys
import tomllib
import types
from pathlib import Path
from typing import Any

from ..config.settings import StageSpec
from ..errors import ConfigError, reraise_interrupt
from ..plan.outdir import read_regular
from .base import Stage

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
    if not sep or not source or not class_name:
        known = ", ".join(BUILTIN_STAGES)
        raise ConfigError(
            f"{where}: '{text}' is neither a built-in stage ({known}) nor "
            "FILE.py:CLASS or MODULE:CLASS"
        )
    return StageSpec(f"{source}:{class_name}", _parse_options(options, where))


def parse_task_stage(text: str) -> tuple[str, StageSpec]:
    """Parse a `--stage` value, `TASK:REF[:key=value,...]`, into the task's name and the spec."""
    task, sep, rest = text.partition(":")
    if not sep or not task or not rest:
        raise ConfigError(f"--stage '{text}': expected TASK:STAGE, e.g. render:blur.py:Blur")
    return task, parse_stage_spec(rest, f"--stage '{text}'")


class _FileModules:
    """Modules loaded from stage files, registered under a name derived from their source.

    Pickling an instance of one of their classes records the module's source text, so that
    unpickling loads the same module wherever it happens (a spawned worker, a Ray node).
    """

    PREFIX = "vidpipe_user_stage"

    @classmethod
    def load(cls, path: Path) -> types.ModuleType:
        try:
            source = read_regular(path).decode("utf-8")
        except OSError as exc:
            why = exc.strerror or str(exc)
            raise ConfigError(f"stage file {path}: cannot read it ({why})") from exc
        except UnicodeDecodeError as exc:
            raise ConfigError(f"stage file {path}: not UTF-8 text ({exc.reason})") from exc
        return cls.from_source(source, str(path))

    @classmethod
    def from_source(cls, source: str, filename: str) -> types.ModuleType:
        digest = hashlib.sha256(source.encode()).hexdigest()[:16]
        stem = re.sub(r"\W", "_", Path(filename).stem)
        name = f"{cls.PREFIX}_{stem}_{digest}"
        module = sys.modules.get(name)
        if module is None:
            module = types.ModuleType(name)
            module.__file__ = filename
            sys.modules[name] = module  # before exec: dataclasses and pickle look it up
            try:
                exec(compile(source, filename, "exec"), module.__dict__)
            except BaseException as exc:
                reraise_interrupt(exc)
                del sys.modules[name]
                line = getattr(exc, "lineno", None)
                at = f", line {line}" if line else ""
                raise ConfigError(
                    f"stage file {filename}{at}: {type(exc).__name__}: {exc}"
                ) from exc
            module.__vidpipe_source__ = source  # type: ignore[attr-defined]
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, Stage) and value.__module__ == name:
                copyreg.pickle(value, _reduce_file_stage)
        return module


def _reduce_file_stage(stage: Any) -> tuple[Any, ...]:
    module = sys.modules[type(stage).__module__]
    state = stage.__getstate__() or {}  # object's default: the __dict__, None when empty
    return (
        _rebuild_file_stage,
        (module.__vidpipe_source__, module.__file__, type(stage).__qualname__, state),
    )


def _rebuild_file_stage(source: str, filename: str, qualname: str, state: Any) -> Any:
    module = _FileModules.from_source(source, filename)
    cls: Any = module
    for part in qualname.split("."):
        cls = getattr(cls, part)
    stage = cls.__new__(cls)
    if hasattr(stage, "__setstate__"):
        stage.__setstate__(state)
    elif state:
        stage.__dict__.update(state)
    return stage


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


def load_stage_class(ref: str) -> type[Stage]:
    """The class a stage reference names; `ConfigError` when it cannot be loaded or is not a
    stage (a subclass of `pipeline.stages.Stage`)."""
    from . import BUILTIN_STAGES

    if ref in BUILTIN_STAGES:
        return BUILTIN_STAGES[ref]
    source, _, class_name = ref.rpartition(":")
    if source.endswith(".py") or os.sep in source:
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"stage file {source}: no such file")
        module = _FileModules.load(path)
    else:
        module = _import_module(source)
    found = getattr(module, class_name, None)
    if found is None:
        raise ConfigError(f"stage {ref}: {source} has no class '{class_name}'")
    if not (isinstance(found, type) and issubclass(found, Stage)):
        raise ConfigError(
            f"stage {ref}: '{class_name}' is not a stage (a subclass of pipeline.stages.Stage)"
        )
    if inspect.isabstract(found):
        missing = ", ".join(sorted(found.__abstractmethods__))
        raise ConfigError(f"stage {ref}: '{class_name}' does not implement {missing}")
    return found


def build_stage(spec: StageSpec) -> Stage:
    """Load the stage class `spec` names and build it with its options; `ConfigError` when the
    options do not fit its constructor or it rejects them."""
    cls = load_stage_class(spec.ref)
    options = dict(spec.options)
    try:
        inspect.signature(cls).bind(**options)
    except TypeError as exc:
        raise ConfigError(f"stage {spec.ref}: {exc}") from exc
    try:
        return cls(**options)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"stage {spec.ref}: {exc}") from exc
    except BaseException as exc:  # the stage's own code failed building it
        reraise_interrupt(exc)
        raise ConfigError(
            f"stage {spec.ref}: building it raised {type(exc).__name__}: {exc}"
        ) from exc
