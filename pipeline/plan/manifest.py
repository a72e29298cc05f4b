"""vidpipe's manifest of an output folder (`.vidpipe/manifest.json`): what it wrote there.

Each file with its size and modification time when the run that wrote it ended, and what the
run holding the folder claimed before writing (`Pending`). Read and checked once, when a run
takes the folder (`pipeline.plan.ownership`).
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .outdir import WORK, OutDir, read_regular

__all__ = ["Manifest", "Pending", "Stamp", "foreign_files", "stamp_of"]

#: What the manifest's first key says (and its version).
_MAGIC = "vidpipe_manifest"

Stamp = tuple[int, int]  # (size, mtime_ns): a file as it was when a run ended


def stamp_of(path: Path) -> Stamp | None:
    try:
        st = path.lstat()
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns)


@dataclass
class Pending:
    """What a run claimed before writing: exact `files`, name patterns (`claims`, for files it
    cannot name in advance, such as thumbnails), and the `foreign` files that matched a pattern
    but were the user's when it was made (`--force`), with their stamps."""

    files: list[str] = field(default_factory=list)
    claims: list[str] = field(default_factory=list)
    foreign: dict[str, Stamp] = field(default_factory=dict)

    def covers(self, rel: str, stamp: Stamp | None) -> bool:
        if rel in self.files:
            return True
        if any(fnmatch.fnmatchcase(rel, claim) for claim in self.claims):
            return self.foreign.get(rel) != stamp
        return False


@dataclass
class Manifest:
    """What vidpipe wrote in an output folder.

    `files` maps a path (relative, `/`-separated) to its stamp when the run that wrote it
    ended. `pending` is what the run holding the folder claimed; one found when a run starts
    belongs to a run that was killed, and is settled then (`Held.adopt`).
    """

    files: dict[str, Stamp] = field(default_factory=dict)
    pending: Pending | None = None

    @classmethod
    def load(cls, path: Path) -> Manifest:
        """The manifest at `path` (an empty one when there is none); `ConfigError` when it
        cannot be read or is not vidpipe's."""
        try:
            data = json.loads(read_regular(path))
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError, RecursionError) as exc:
            raise ConfigError(f"--out: cannot read vidpipe's manifest {path} ({exc})") from exc
        try:
            return cls._parse(data)
        except (TypeError, ValueError, KeyError) as exc:
            raise ConfigError(
                f"--out: {path} is not a vidpipe manifest ({exc}); move it away"
            ) from exc

    @classmethod
    def _parse(cls, data: Any) -> Manifest:
        if not isinstance(data, dict) or data.get(_MAGIC) != 2:
            raise ValueError(f"no '{_MAGIC}: 2'")

        def stamp(value: Any) -> Stamp:
            if isinstance(value, list) and len(value) == 2 and all(type(v) is int for v in value):
                return (value[0], value[1])
            raise TypeError(f"a stamp must be [size, mtime_ns], got {value!r}")

        def inside(rel: Any) -> str:
            # Paths under --out only: a hand-edited absolute or `..` path must never reach
            # outside it (a pattern's `*` and `[...]` match within one folder).
            parts = str(rel).split("/")
            if not rel or str(rel).startswith("/") or ".." in parts or "" in parts:
                raise ValueError(f"{rel!r} is not a path inside the output folder")
            return str(rel)

        def names(value: Any, what: str) -> list[str]:
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                return [inside(v) for v in value]
            raise TypeError(f"'{what}' must be a list of paths")

        files, pending = data["files"], data["pending"]
        if not isinstance(files, dict) or not (pending is None or isinstance(pending, dict)):
            raise TypeError("'files' must be an object, 'pending' an object or null")
        manifest = cls(files={inside(k): stamp(v) for k, v in files.items()})
        if pending is not None:
            foreign = pending["foreign"]
            if not isinstance(foreign, dict):
                raise TypeError("'foreign' must be an object")
            manifest.pending = Pending(
                names(pending["files"], "files"),
                names(pending["claims"], "claims"),
                {inside(k): stamp(v) for k, v in foreign.items()},
            )
        return manifest

    def dump(self) -> bytes:
        pending = self.pending
        data = {
            _MAGIC: 2,
            "files": {k: list(v) for k, v in sorted(self.files.items())},
            "pending": pending
            and {
                "files": pending.files,
                "claims": pending.claims,
                "foreign": {k: list(v) for k, v in sorted(pending.foreign.items())},
            },
        }
        return (json.dumps(data, indent=1) + "\n").encode()


def foreign_files(folder: Path) -> list[Path]:
    """The files in `folder`, a run's output folder, that its manifest does not record as
    vidpipe's (without taking its lock: a look before asking a run to write there)."""
    out = OutDir(folder)
    if not folder.is_dir():
        return []
    try:
        manifest = Manifest.load(out.manifest)
    except ConfigError:
        manifest = Manifest()
    pending = manifest.pending
    found = []
    for path in sorted(folder.rglob("*")):
        rel = out.relative(path)
        if path.is_dir() or rel.startswith(f"{WORK}/"):
            continue
        stamp = stamp_of(path)
        if manifest.files.get(rel) != stamp and not (pending and pending.covers(rel, stamp)):
            found.append(path)
    return found
