"""Stages: the protocol and the built-in stages, registered by name."""

from __future__ import annotations

from .animation import Animate
from .base import PixelFormat, Stage, StreamSpec
from .geometry import EvenCrop, Resize

__all__ = ["BUILTIN_STAGES", "Animate", "EvenCrop", "PixelFormat", "Resize", "Stage", "StreamSpec"]

#: Built-in stages by name.
BUILTIN_STAGES: dict[str, type[Stage]] = {cls.name: cls for cls in (Resize, EvenCrop, Animate)}
