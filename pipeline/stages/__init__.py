"""Stages: the protocol and the built-in stages, registered by name."""

from __future__ import annotations

from .animation import Animate
from .base import PixelFormat, Stage, StreamSpec
from .color import ToBGR, ToI420
from .geometry import EvenCrop, Resize

__all__ = [
    "BUILTIN_STAGES",
    "Animate",
    "EvenCrop",
    "PixelFormat",
    "Resize",
    "Stage",
    "StreamSpec",
    "ToBGR",
    "ToI420",
]

#: Built-in stages by name. The colour conversions are among them because every report names
#: them (the planner puts them into chains, `pipeline.plan.tasks`), so that `vidpipe stages`
#: explains them and `check-stage` measures them.
BUILTIN_STAGES: dict[str, type[Stage]] = {
    cls.name: cls for cls in (Resize, EvenCrop, Animate, ToBGR, ToI420)
}
