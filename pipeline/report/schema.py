"""What a JSON file vidpipe reads back (`report.json`, a checkpoint's result) must hold: each
field of a dataclass checked against its annotation, so that a file of another shape is
refused in words (`ValueError`), whatever its shape, before anything reads it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = ["fits", "typed_fields"]


_SCALARS: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (int, float),
    "str": (str,),
    "bool": (bool,),
    "None": (type(None),),
}


def fits(value: Any, annotation: str) -> bool:
    """Whether `value` (from JSON) fits the type `annotation` names, as vidpipe's report
    dataclasses write them: scalars, `Any`, `X | None`, `list[X]`, `dict[str, X]`, and the
    dataclasses (as objects)."""
    if annotation == "Any":
        return True
    if " | " in annotation:
        return any(fits(value, part) for part in annotation.split(" | "))
    if annotation.startswith("list["):
        return isinstance(value, list) and all(fits(v, annotation[5:-1]) for v in value)
    if annotation.startswith("dict[str, "):
        inner = annotation[10:-1]
        return isinstance(value, dict) and all(fits(v, inner) for v in value.values())
    if annotation in _SCALARS:
        if isinstance(value, bool) and annotation in ("int", "float"):
            return False
        return isinstance(value, _SCALARS[annotation])
    return isinstance(value, dict)  # a dataclass, checked by its own typed_fields


def typed_fields(cls: type, data: Any, skip: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The fields of dataclass `cls` from `data`, each checked against its annotation;
    `ValueError` naming the first that is missing or of another type. Unknown keys are left."""
    if not isinstance(data, dict):
        raise ValueError(f"{cls.__name__} must be an object, got {type(data).__name__}")
    values = {}
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        if f.name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ValueError(f"{cls.__name__} has no '{f.name}'")
            continue
        if not fits(data[f.name], str(f.type)):
            raise ValueError(
                f"{cls.__name__}.{f.name} must be {f.type}, got {_shown(data[f.name])}"
            )
        values[f.name] = data[f.name]
    return values


def _shown(value: Any) -> str:
    """`value` as an error quotes it: its repr, cut short (a wrong value may be a whole table)."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."
