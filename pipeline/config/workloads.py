"""Named workloads: option presets that make one lesson one command away.

Each preset changes only the render task's animation, the background saves and, where the
lesson needs the encoder's share kept small, the x264 preset; every other option keeps its
value, and options given explicitly override the preset.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..errors import ConfigError, did_you_mean
from .options import RunOptions

__all__ = ["WORKLOADS", "Workload", "apply_workload", "find_workload"]


@dataclass(frozen=True)
class Workload:
    """A preset: what dominates its cost, and the settings that make it so."""

    name: str
    summary: str
    particles: int
    glow: int
    save_every: int | None = None
    samples: int = 1
    preset: str | None = None  # x264 preset; None: keep the run's


WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (
        Workload("default", "the demo: some pure-Python particles, some OpenCV glow", 300, 2),
        Workload(
            "gil-bound",
            "200 particles, each position averaged over 400 instants a frame in pure Python: "
            "work that holds the GIL dominates (x264 ultrafast keeps the encoders' share small)",
            200,
            0,
            samples=400,
            preset="ultrafast",
        ),
        Workload(
            "gil-free",
            "8 glow passes of Gaussian blur in OpenCV, which releases the GIL, dominate (x264 "
            "ultrafast keeps the encoders' share small)",
            0,
            8,
            preset="ultrafast",
        ),
        Workload(
            "io",
            "no animation; a thumbnail and a checkpoint every frame: encoding and saves dominate",
            0,
            0,
            save_every=1,
        ),
    )
}


def find_workload(name: str) -> Workload:
    """The preset `name`; `ConfigError` naming the presets (and a close one) if unknown."""
    workload = WORKLOADS.get(name)
    if workload is None:
        raise ConfigError(
            f"unknown workload '{name}'{did_you_mean(name, WORKLOADS)} (available: "
            f"{', '.join(WORKLOADS)})"
        )
    return workload


def apply_workload(options: RunOptions, name: str, explicit: set[str]) -> RunOptions:
    """`options` with the preset `name` applied, except for the settings in `explicit`;
    `ConfigError` if there is no such preset (`find_workload`)."""
    workload = find_workload(name)
    animation = options.animation
    if "particles" not in explicit:
        animation = replace(animation, particles=workload.particles)
    if "glow" not in explicit:
        animation = replace(animation, glow=workload.glow)
    if "samples" not in explicit:
        animation = replace(animation, samples=workload.samples)
    save_every = options.save_every
    if workload.save_every is not None and "save_every" not in explicit:
        save_every = workload.save_every
    encoder = options.encoder
    if workload.preset is not None and "preset" not in explicit:
        encoder = replace(encoder, preset=workload.preset)
    return replace(options, animation=animation, save_every=save_every, encoder=encoder)
