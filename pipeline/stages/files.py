"""Stage files: modules loaded from a Python file's source, and pickled as that source.

A class or function loaded from a stage file travels to worker processes and to other
machines as its file's source text, not its path: workers started by `spawn`, and Ray's nodes,
which may not see the file, load it again from that text. Such a file must therefore be
self-contained: it may import installed packages, not its neighbours.
"""

from __future__ import annotations

import copyreg
import hashlib
import re
import sys
import types
from pathlib import Path
from typing import Any

from ..errors import ConfigError, reraise_interrupt
from ..plan.outdir import read_regular

__all__ = ["FileModules"]


class FileModules:
    """Modules loaded from stage files, registered under a name derived from their source.

    Pickling an instance of one of their classes records the module's source text, so that
    unpickling loads the same module wherever it happens (a spawned worker, a Ray node).
    """

    PREFIX = "vidpipe_user_stage"

    @classmethod
    def load(cls, path: Path) -> types.ModuleType:
        try:
            # utf-8-sig, as Python reads a file it runs: a BOM first is no statement.
            source = read_regular(path).decode("utf-8-sig")
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
            # Stages, plain or not: classes of this file with a `process` method.
            stage_like = isinstance(value, type) and callable(getattr(value, "process", None))
            if stage_like and value.__module__ == name:
                copyreg.pickle(value, _reduce_file_stage)
        return module

    @classmethod
    def find(cls, source: str, filename: str, qualname: str) -> Any:
        """The class or function `qualname` of the stage file whose text is `source`, loaded
        here if it is not yet (unpickling in a spawned worker, on a Ray node)."""
        found: Any = cls.from_source(source, filename)
        for part in qualname.split("."):
            found = getattr(found, part)
        return found


def _reduce_file_stage(stage: Any) -> tuple[Any, ...]:
    module = sys.modules[type(stage).__module__]
    state = stage.__getstate__() or {}  # object's default: the __dict__, None when empty
    return (
        _rebuild_file_stage,
        (module.__vidpipe_source__, module.__file__, type(stage).__qualname__, state),
    )


def _rebuild_file_stage(source: str, filename: str, qualname: str, state: Any) -> Any:
    cls = FileModules.find(source, filename, qualname)
    stage = cls.__new__(cls)
    if hasattr(stage, "__setstate__"):
        stage.__setstate__(state)
    elif state:
        stage.__dict__.update(state)
    return stage
