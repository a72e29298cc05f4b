"""Media I/O through the bundled ffmpeg: probing, decoding, encoding.

The decoder and encoder are imported on first use (PEP 562): probing an input, the first thing
a run does, needs no numpy. (`probe` is imported here at once: the function shares its name
with its module, which an import would otherwise put in its place.)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .probe import MediaInfo, count_decoded_frames, probe

if TYPE_CHECKING:
    from .sink import Encoder
    from .source import Decoder

__all__ = ["Decoder", "Encoder", "MediaInfo", "count_decoded_frames", "probe"]

_WHERE = {"Decoder": ".source", "Encoder": ".sink"}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)
