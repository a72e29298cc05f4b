"""Stages written as plain Python: a class with `process(frame, index)`, or a function.

A learner's first stage is rarely a subclass of `Stage`. Two plain forms are taken as well, and
wrapped here into `Stage`s, so that every layout, `check-stage` and the reports treat them alike:

* `PlainStage`: an instance of any class with a `process(frame, index)` method. `setup` (taking
  the frame spec, or nothing), `teardown` and `output_spec` are optional; `name`,
  `frame_independent` and `accepts` default as for `Stage`, except that the name defaults to
  the class's name.
* `FunctionStage`: a function `f(frame, index, **options) -> frame`. Frame-independent unless
  the function's `frame_independent` attribute, or the `frame_independent` option of the stage
  reference, says otherwise; `name` and `accepts` may be set as attributes of the function.

Both pickle for the process layouts: a plain class's instance as any object (a class from a
stage file travels as its file's source, `pipeline.stages.files`), a function as a reference
to it, again as its file's source when it comes from one.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from .base import PixelFormat, Stage, StreamSpec
from .files import FileModules

if TYPE_CHECKING:
    import numpy as np

__all__ = ["FunctionStage", "PlainStage", "defined_by", "formats"]


def formats(declared: object, where: str) -> frozenset[PixelFormat]:
    """The pixel formats an `accepts` attribute names: `PixelFormat`s or their names."""
    if isinstance(declared, str) or not isinstance(declared, Iterable):
        declared = [declared]
    try:
        return frozenset(PixelFormat(str(value)) for value in declared)
    except ValueError as exc:
        known = ", ".join(f.value for f in PixelFormat)
        raise ConfigError(f"{where}: accepts must name pixel formats ({known}): {exc}") from exc


def _configuration(values: dict[str, Any]) -> str:
    return ", ".join(f"{key}={value!r}" for key, value in values.items() if key[0] != "_")


class PlainStage(Stage):
    """A `Stage` around an instance of a plain class with `process(frame, index)`."""

    def __init__(self, plain: Any) -> None:
        self._plain = plain
        what = type(plain).__name__
        self.name = str(getattr(plain, "name", what))  # type: ignore[misc]
        self.frame_independent = bool(getattr(plain, "frame_independent", True))  # type: ignore[misc]
        accepts = getattr(plain, "accepts", Stage.accepts)
        self.accepts = formats(accepts, f"stage {what}")  # type: ignore[misc]

    def output_spec(self, spec: StreamSpec) -> StreamSpec:
        method = getattr(self._plain, "output_spec", None)
        return spec if method is None else method(spec)

    def setup(self, spec: StreamSpec) -> None:
        method = getattr(self._plain, "setup", None)
        if method is not None:
            method(*([spec] if _takes_argument(method) else []))

    def process(self, frame: np.ndarray, index: int) -> np.ndarray:
        return self._plain.process(frame, index)  # type: ignore[no-any-return]

    def teardown(self) -> None:
        method = getattr(self._plain, "teardown", None)
        if method is not None:
            method()

    def describe(self) -> str:
        config = _configuration(vars(self._plain)) if hasattr(self._plain, "__dict__") else ""
        return f"{self.name}({config})" if config else self.name


def _takes_argument(method: Callable[..., Any]) -> bool:
    """Whether `setup` takes the frame spec: it has a parameter to take it."""
    try:
        parameters = inspect.signature(method).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.kind not in (p.KEYWORD_ONLY, p.VAR_KEYWORD) for p in parameters)


class FunctionStage(Stage):
    """A `Stage` around a function `f(frame, index, **options)` that returns the frame."""

    def __init__(
        self,
        function: Callable[..., Any],
        options: dict[str, Any],
        frame_independent: bool | None = None,
    ) -> None:
        self._function = function
        self._options = dict(options)
        self.name = str(getattr(function, "name", function.__name__))  # type: ignore[misc]
        if frame_independent is None:
            frame_independent = bool(getattr(function, "frame_independent", True))
        self.frame_independent = frame_independent  # type: ignore[misc]
        accepts = getattr(function, "accepts", Stage.accepts)
        self.accepts = formats(accepts, f"stage {function.__name__}")  # type: ignore[misc]

    def process(self, frame: np.ndarray, index: int) -> np.ndarray:
        return self._function(frame, index, **self._options)  # type: ignore[no-any-return]

    def describe(self) -> str:
        config = _configuration(self._options)
        return f"{self.name}({config})" if config else self.name

    def __deepcopy__(self, memo: dict[int, Any]) -> FunctionStage:
        """A copy for another thread of a frame pool: the same function (code is shared, and
        a lambda could not be found again by name), its own options."""
        options = copy.deepcopy(self._options, memo)
        return FunctionStage(self._function, options, self.frame_independent)

    def __reduce__(self) -> tuple[Any, ...]:
        if not FileModules.defined(self._function):  # an importable module's: by reference
            return (FunctionStage, (self._function, self._options, self.frame_independent))
        where = FileModules.where(self._function)  # a lambda: Unsendable, saying why
        return (_rebuild_file_function, (*where, self._options, self.frame_independent))


def _rebuild_file_function(
    source: str, filename: str, qualname: str, options: dict[str, Any], frame_independent: bool
) -> FunctionStage:
    """A `FunctionStage` around the function `qualname` of the stage file `source`."""
    return FunctionStage(FileModules.find(source, filename, qualname), options, frame_independent)


def defined_by(stage: Stage) -> Any:
    """The class or function whose code `stage` runs: the plain class or the function it wraps,
    else its own class (what tells jobs apart when that code is edited, `--resume`)."""
    if isinstance(stage, PlainStage):
        return type(stage._plain)
    if isinstance(stage, FunctionStage):
        return stage._function
    return type(stage)
