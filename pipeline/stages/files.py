"""Stage files: modules loaded from a Python file's source, and pickled as that source.

A class or function loaded from a stage file travels to worker processes and to other
machines as its file's source text, not its path: workers started by `spawn`, and Ray's nodes,
which may not see the file, load it again from that text. Such a file must therefore be
self-contained: it may import installed packages, not its neighbours.
"""

from __future__ import annotations

import contextlib
import copyreg
import hashlib
import pickle
import re
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from ..errors import ConfigError, reraise_interrupt
from ..plan.outdir import read_regular

__all__ = ["FileModules", "Unsendable"]


class Unsendable(pickle.PicklingError):
    """A stage file's class or function that a worker process could not find by its name."""


class FileModules:
    """Modules loaded from stage files, registered under a name derived from their source.

    Pickling an instance of one of their classes records the module's source text, so that
    unpickling loads the same module wherever it happens (a spawned worker, a Ray node).
    """

    PREFIX = "vidpipe_user_stage"
    #: Every module loaded from a stage file in this process, by name (`sys.modules` may
    #: hide them for a while: `as_in_a_new_process`).
    _loaded: ClassVar[dict[str, types.ModuleType]] = {}

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
        module = cls._loaded.get(name)
        if module is not None:
            sys.modules[name] = module  # where pickle finds the file's other classes
        else:
            module = cls._exec(name, source, filename)
        for value in vars(module).values():
            # Stages, plain or not: classes of this file with a `process` method.
            stage_like = isinstance(value, type) and callable(getattr(value, "process", None))
            if stage_like and value.__module__ == name:
                copyreg.pickle(value, _reduce_file_stage)
        return module

    @classmethod
    def _exec(cls, name: str, source: str, filename: str) -> types.ModuleType:
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
            raise ConfigError(f"stage file {filename}{at}: {type(exc).__name__}: {exc}") from exc
        module.__vidpipe_source__ = source  # type: ignore[attr-defined]
        cls._loaded[name] = module
        return module

    @classmethod
    def find(cls, source: str, filename: str, qualname: str) -> Any:
        """The class or function `qualname` of the stage file whose text is `source`, loaded
        here if it is not yet (unpickling in a spawned worker, on a Ray node)."""
        found: Any = cls.from_source(source, filename)
        for part in qualname.split("."):
            found = getattr(found, part)
        return found

    @classmethod
    def defined(cls, value: Any) -> bool:
        """Whether `value` (a class or function) comes from a stage file."""
        return getattr(value, "__module__", None) in cls._loaded

    @classmethod
    def where(cls, value: Any) -> tuple[str, str, str]:
        """(Source, file name, qualified name) by which `find` finds `value`, a class or
        function of a stage file, again; `Unsendable` saying why when it would not (a lambda,
        or what is defined inside a function, has no name to be found by)."""
        module = cls._loaded[value.__module__]
        qualname: str = value.__qualname__
        try:
            found: Any = module
            for part in qualname.split("."):
                found = getattr(found, part)
        except AttributeError:
            found = None
        if found is not value:
            raise Unsendable(_why_not_found(qualname, value.__module__, module.__file__))
        return module.__vidpipe_source__, str(module.__file__), qualname

    @classmethod
    @contextlib.contextmanager
    def as_in_a_new_process(cls) -> Iterator[None]:
        """Hide the stage files' modules from `sys.modules` in the block, as in a worker
        process that has not loaded them: there, unpickling a stage loads its file, and
        pickle finds the file's other classes only after that. Checking at plan time by
        unpickling in this block finds what a worker would not."""
        hidden = {name: sys.modules.pop(name) for name in cls._loaded if name in sys.modules}
        try:
            yield
        finally:
            sys.modules.update(hidden)


def _why_not_found(qualname: str, module: str, filename: str | None) -> str:
    if "<lambda>" in qualname:
        return (
            f"{filename}: '{qualname}' is a lambda, which has no name a worker process can "
            "import it by: write it as a def at the top level of the file"
        )
    if "<locals>" in qualname:
        return (
            f"{filename}: '{qualname}' is defined inside a function, so a worker process "
            "cannot import it by its name: write it as a def (or class) at the top level "
            "of the file"
        )
    return f"{filename}: '{qualname}' is not found under that name in the file ({module})"


def _reduce_file_stage(stage: Any) -> tuple[Any, ...]:
    """Pickle's protocol, with the class found again by its file's source: the state (a
    `__dict__`, `__slots__` values, or what `__getstate__` returns) is unpickled, and set by
    pickle (`__setstate__` or its default), after the file is loaded, so that the state may
    hold instances of the file's other classes."""
    return (_rebuild_file_stage, FileModules.where(type(stage)), stage.__getstate__())


def _rebuild_file_stage(source: str, filename: str, qualname: str) -> Any:
    cls = FileModules.find(source, filename, qualname)
    return cls.__new__(cls)
