"""What a run checks before it writes anything in its output folder.

The input must not lie where the run writes or removes files; no file may stand where the run
makes a folder; and vidpipe's own folder (`.vidpipe`) must hold no links and be vidpipe's.
Each refusal is a `ConfigError` (exit 2) naming the path.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path

from ..errors import ConfigError
from .outdir import PART_SUFFIX, TEMP_PREFIX, WORK, OutDir, own_name, partial_path

__all__ = ["check_folders", "check_input", "check_outside_managed", "check_work"]

#: The folder of an output folder that holds its thumbnails (`OutDir.thumbnails`).
_THUMBNAILS = "thumbnails"


def _inside(path: Path, folder: Path) -> bool:
    return folder == path or folder in path.parents


def _vidpipe_named(path: Path) -> bool:
    """Whether `path` is named like vidpipe's temporary files (swept after a failure)."""
    name = path.name
    return name.startswith(TEMP_PREFIX) or (name.startswith(".") and name.endswith(PART_SUFFIX))


def check_input(
    source: Path,
    out: OutDir,
    written: Iterable[Path],
    removed: Iterable[Path],
    within: Iterable[Path],
) -> None:
    """Refuse an input that lies where the run writes files (`written`), removes them (`removed`,
    files or folders), or in the folders it writes into (`within`)."""
    real = source.resolve()
    written = list(written)
    targets = [*written, *(partial_path(p) for p in written), *removed]
    for target in targets:
        resolved = target.resolve()
        same = resolved == real
        with contextlib.suppress(OSError):
            same = same or os.path.samefile(target, source)
        if same or (resolved.is_dir() and _inside(real, resolved)):
            raise ConfigError(
                f"{source}: the input is where this run writes or removes its output "
                f"({target}); choose another --out"
            )
    for folder in (*within, out.work):
        if _inside(real, folder.resolve()):
            raise ConfigError(
                f"{source}: the input lies in {folder}, a folder vidpipe writes into; move it "
                "or choose another --out"
            )
    if _vidpipe_named(real) and _inside(real, out.root.resolve()):
        raise ConfigError(
            f"{source}: the input is named like vidpipe's temporary files, which a failed run "
            "removes; rename it"
        )


def check_folders(out: OutDir, folders: Iterable[Path]) -> None:
    """Refuse a file or a link where the run makes or manages a folder (`thumbnails`,
    `thumbnails/<task>`, compare's `runs`), before it writes: vidpipe writes, and removes what
    it wrote, only in real folders under DIR, never through a link it did not make."""
    root = out.root
    for folder in sorted(folders):
        for at in (folder, *folder.parents):
            if at == root or root not in at.parents:
                break
            if at.is_symlink():
                raise ConfigError(
                    f"--out {root}: {at} is a link where vidpipe manages a folder of its own; "
                    "vidpipe never writes or removes through a link: replace it by a folder"
                )
            if at.exists() and not at.is_dir():
                raise ConfigError(
                    f"--out {root}: {at} is a file where vidpipe makes a folder; move it away"
                )


def check_outside_managed(root: Path) -> None:
    """Refuse an output folder inside a folder another output folder's run manages: its
    `.vidpipe/` (whose pieces and trace parts it removes) or its `thumbnails/`. Checked on the
    path as given (`..` folded) and with its links resolved, before anything is created."""
    for path in dict.fromkeys((Path(os.path.abspath(root)), root.resolve())):
        for at in (path, *path.parents):
            where = "is" if at == path else "lies in"
            if at.name == WORK:
                raise ConfigError(
                    f"--out {root}: {where} {at}, vidpipe's own folder of the output folder "
                    f"{at.parent}, whose files a run there removes; choose an --out outside it"
                )
            if at.name == _THUMBNAILS and (at.parent / WORK).is_dir():
                raise ConfigError(
                    f"--out {root}: {where} {at}, where vidpipe keeps the thumbnails of the "
                    f"output folder {at.parent}; choose an --out outside it"
                )


def check_work(out: OutDir) -> None:
    """vidpipe's own folder (checked under the lock) holds no links, so that what vidpipe
    removes there cannot reach the user's files through one; nothing but a regular file where
    vidpipe writes a file of its own (`own_name`: a folder named like a piece would block its
    run); and it is vidpipe's: it has a manifest, or nothing but a lock."""
    work = out.work
    for folder, dirs, files in os.walk(work):
        for name in (*dirs, *files):
            path = Path(folder) / name
            if path.is_symlink():
                raise ConfigError(
                    f"--out {out.root}: {path} is a link, and vidpipe's own "
                    "folder holds none; remove it"
                )
            # Where vidpipe writes (and removes) a file of its own, nothing else may stand.
            if own_name(out.relative(path)) and not path.is_file():
                raise ConfigError(
                    f"--out {out.root}: {path} is not a regular file where vidpipe writes one of "
                    "its own; move it away"
                )
    if not out.manifest.exists() and any(p.name != "lock" for p in work.iterdir()):
        raise ConfigError(
            f"--out {out.root}: {work} holds files that are not vidpipe's (no manifest); "
            "move it away"
        )
