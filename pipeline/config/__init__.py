"""Configuration: what a run is asked to do, validated once and then immutable.

`settings` holds the settings of the parts (encoder, animation, start method, transport, a
stage reference) and the limits options are checked against; `options` the whole run's
`RunOptions`; `layout_file` reads a layout described in TOML; `workloads` the named option
presets. Strings are parsed only at the edges (the command line, TOML files); everything else
works with these frozen dataclasses and enums.
"""

from .options import RunOptions, apply_layout_file
from .settings import (
    AnimationSettings,
    EncoderSettings,
    StageSpec,
    StartMethod,
    Transport,
    thread_limit,
    usable_cores,
)

__all__ = [
    "AnimationSettings",
    "EncoderSettings",
    "RunOptions",
    "StageSpec",
    "StartMethod",
    "Transport",
    "apply_layout_file",
    "thread_limit",
    "usable_cores",
]
