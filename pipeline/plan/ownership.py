"""What vidpipe owns in its output folder, and how a run holds the folder.

vidpipe touches only what it wrote. Its manifest (`.vidpipe/manifest.json`) records every file
a run wrote, with its size and modification time when the run ended; a later run removes or
replaces a file only when the manifest records it and it has not changed since (a file the user
replaced is the user's). A run claims the paths it will write before it writes them, so that
what a killed run leaves is known as vidpipe's too. A path vidpipe would write that holds a file
it did not write is refused (`OutputConflict`, exit 2), unless `force` is given, which
overwrites exactly those paths. Temporary files carry vidpipe's name (`pipeline.plan.outdir`), and
only those are swept after a failure.

A run holds an exclusive `flock` on `.vidpipe/lock` for its whole length: a second run into the
same folder is refused, naming the first one's pid (`FolderInUse`). The kernel releases the
lock with the process, so a killed run never leaves a stale lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import fnmatch
import json
import os
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, FolderInUse, OutputConflict
from .outdir import TEMP_PREFIX, WORK, OutDir, atomic_write_bytes, partial_path

__all__ = ["Claim", "Manifest", "hold"]

#: What the manifest's first key says (and its version).
_MAGIC = "vidpipe_manifest"

Stamp = tuple[int, int]  # (size, mtime_ns): a file as it was when a run ended


def _stamp(path: Path) -> Stamp | None:
    try:
        st = path.lstat()
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns)


@dataclass
class Manifest:
    """What vidpipe wrote in an output folder.

    `files` maps a path (relative, `/`-separated) to its stamp when the run that wrote it
    ended, or None while the run that claimed it has not ended (it may have been killed).
    `claims` are name patterns a run claimed before writing files it could not name in
    advance (thumbnails); `foreign` are the files that matched a claim but were not
    vidpipe's when it was made (`--force`), with their stamps.
    """

    files: dict[str, Stamp | None] = field(default_factory=dict)
    claims: list[str] = field(default_factory=list)
    foreign: dict[str, Stamp] = field(default_factory=dict)

    def owns(self, rel: str, stamp: Stamp | None) -> bool:
        """Whether the file `rel`, now as `stamp`, is vidpipe's."""
        if rel in self.files:
            recorded = self.files[rel]
            return recorded is None or recorded == stamp
        if any(fnmatch.fnmatchcase(rel, claim) for claim in self.claims):
            return self.foreign.get(rel) != stamp
        return False

    @classmethod
    def load(cls, path: Path) -> Manifest:
        """The manifest at `path` (an empty one when there is none); `ConfigError` when it
        cannot be read or is not vidpipe's."""
        try:
            data = json.loads(path.read_bytes())
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError) as exc:
            raise ConfigError(f"--out: cannot read vidpipe's manifest {path} ({exc})") from exc
        try:
            return cls._parse(data)
        except (TypeError, ValueError, KeyError) as exc:
            raise ConfigError(
                f"--out: {path} is not a vidpipe manifest ({exc}); move it away"
            ) from exc

    @classmethod
    def _parse(cls, data: Any) -> Manifest:
        if not isinstance(data, dict) or data.get(_MAGIC) != 1:
            raise ValueError(f"no '{_MAGIC}: 1'")

        def stamp(value: Any) -> Stamp | None:
            if value is None:
                return None
            if isinstance(value, list) and len(value) == 2 and all(type(v) is int for v in value):
                return (value[0], value[1])
            raise TypeError(f"a stamp must be [size, mtime_ns], got {value!r}")

        files, claims, foreign = data["files"], data["claims"], data["foreign"]
        if not (isinstance(files, dict) and isinstance(foreign, dict)):
            raise TypeError("'files' and 'foreign' must be objects")
        if not (isinstance(claims, list) and all(isinstance(c, str) for c in claims)):
            raise TypeError("'claims' must be a list of patterns")
        foreign_stamps = {str(k): stamp(v) for k, v in foreign.items()}
        return cls(
            files={str(k): stamp(v) for k, v in files.items()},
            claims=list(claims),
            foreign={k: v for k, v in foreign_stamps.items() if v is not None},
        )

    def dump(self) -> bytes:
        data = {
            _MAGIC: 1,
            "files": {k: list(v) if v else None for k, v in sorted(self.files.items())},
            "claims": self.claims,
            "foreign": {k: list(v) for k, v in sorted(self.foreign.items())},
        }
        return (json.dumps(data, indent=1) + "\n").encode()


@dataclass(frozen=True)
class Claim:
    """What a run will write in its output folder, and what it will start afresh.

    `files`: exact paths it writes. `patterns`: (folder, name pattern) pairs for files it
    cannot name in advance. `fresh`: paths (files or folders, under DIR) of an earlier run that
    the run removes first where vidpipe wrote them, so that nothing stale passes for its output.
    `forbidden`: folders the input may not lie in (vidpipe writes into them).
    """

    files: tuple[Path, ...] = ()
    patterns: tuple[tuple[Path, str], ...] = ()
    fresh: tuple[Path, ...] = ()
    forbidden: tuple[Path, ...] = ()


class _Held:
    """An output folder held by a run: its lock and its manifest."""

    def __init__(self, out: OutDir, manifest: Manifest, lock_fd: int) -> None:
        self.out = out
        self.manifest = manifest
        self._lock_fd = lock_fd

    def owns(self, path: Path) -> bool:
        rel = self.out.relative(path)
        if rel.startswith(f"{WORK}/"):
            return True  # vidpipe's own folder
        return self.manifest.owns(rel, _stamp(path))

    def conflicts(self, claim: Claim) -> list[Path]:
        """Files the run would write that vidpipe did not write."""
        found = [p for p in claim.files if p.is_symlink() or p.exists()]
        for folder, pattern in claim.patterns:
            if folder.is_dir():
                found += sorted(p for p in folder.iterdir() if fnmatch.fnmatchcase(p.name, pattern))
        return [p for p in found if not self.owns(p)]

    def remove_owned(self, paths: Iterable[Path]) -> None:
        """Remove the files among `paths` (and in the folders among them) that vidpipe wrote."""
        for path in paths:
            if path.is_dir() and not path.is_symlink():
                for child in sorted(path.rglob("*"), reverse=True):
                    if (child.is_file() or child.is_symlink()) and self.owns(child):
                        child.unlink()
                        self.manifest.files.pop(self.out.relative(child), None)
                    elif child.is_dir():
                        with contextlib.suppress(OSError):  # not empty: the user's files
                            child.rmdir()
            elif (path.is_file() or path.is_symlink()) and self.owns(path):
                path.unlink()
                self.manifest.files.pop(self.out.relative(path), None)

    def record(self, claim: Claim, conflicts: list[Path]) -> None:
        """Claim what the run will write, before it writes it."""
        for path in claim.files:
            self.manifest.files[self.out.relative(path)] = None
        for folder, pattern in claim.patterns:
            rel = f"{self.out.relative(folder)}/{pattern}"
            if rel not in self.manifest.claims:
                self.manifest.claims.append(rel)
        for path in conflicts:  # forced: not vidpipe's until it writes them
            stamp = _stamp(path)
            if stamp is not None and not any(path == p for p in claim.files):
                self.manifest.foreign[self.out.relative(path)] = stamp
        self.save()

    def settle(self) -> None:
        """Record each claimed file as it is now that the run has ended."""
        manifest = self.manifest
        for rel in list(manifest.files):
            stamp = _stamp(self.out.root / rel)
            if stamp is None:
                del manifest.files[rel]
            else:
                manifest.files[rel] = stamp
        for claim in manifest.claims:
            folder = self.out.root / claim.rpartition("/")[0]
            if not folder.is_dir():
                continue
            for path in folder.iterdir():
                rel = self.out.relative(path)
                if fnmatch.fnmatchcase(rel, claim) and manifest.owns(rel, _stamp(path)):
                    manifest.files[rel] = _stamp(path)
        manifest.claims.clear()
        manifest.foreign.clear()
        self.save()

    def save(self) -> None:
        atomic_write_bytes(self.out.manifest, self.manifest.dump())

    def release(self) -> None:
        os.close(self._lock_fd)


def _lock(path: Path) -> int:
    """Take the folder's lock, or raise `FolderInUse` naming the run that holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip()
        os.close(fd)
        raise FolderInUse(path.parent.parent, int(holder) if holder.isdigit() else None) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _check_input(source: Path, out: OutDir, claim: Claim) -> None:
    """Refuse an input that lies where the run writes or removes files."""
    real = source.resolve()
    targets = [*claim.files, *(partial_path(p) for p in claim.files), *claim.fresh]
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
    for folder in (*claim.forbidden, out.work):
        if _inside(real, folder.resolve()):
            raise ConfigError(
                f"{source}: the input lies in {folder}, a folder vidpipe writes into; move it "
                "or choose another --out"
            )
    if real.parent == out.root.resolve() and real.name.startswith(TEMP_PREFIX):
        raise ConfigError(f"{source}: the input is named like vidpipe's temporary files")


def _prepare_root(out: OutDir) -> bool:
    """Create DIR if needed and check it; True when vidpipe's own folder had to be created."""
    root = out.root
    if root.exists() and not root.is_dir():
        raise ConfigError(f"--out {root}: exists and is not a directory")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out {root}: cannot create it ({exc.strerror})") from exc
    if not os.access(root, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {root}: directory is not writable")
    work = out.work
    if work.is_symlink() or (work.exists() and not work.is_dir()):
        raise ConfigError(f"--out {root}: {work} is not vidpipe's folder (not a directory)")
    created = not work.exists()
    try:
        work.mkdir(exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out {root}: cannot create {work} ({exc.strerror})") from exc
    if (
        not created
        and not out.manifest.exists()
        and any(p.name not in ("lock", "manifest.json") for p in work.iterdir())
    ):
        raise ConfigError(
            f"--out {root}: {work} holds files that are not vidpipe's (no manifest); move it away"
        )
    return created


@contextlib.contextmanager
def hold(
    out_dir: Path, claim: Claim, *, source: Path | None = None, force: bool = False
) -> Iterator[_Held]:
    """Hold the output folder for a run that writes what `claim` says.

    Before anything is written: refuses an input inside what the run writes (`ConfigError`),
    takes the folder's lock (`FolderInUse`), refuses files the run would overwrite that vidpipe
    did not write (`OutputConflict`, unless `force`), then removes what an earlier run left
    at `claim.fresh` and records the claim. On leaving, also after errors, every claimed file
    is recorded as it is and the lock is released.
    """
    out = OutDir(out_dir)
    if source is not None:
        _check_input(source, out, claim)
    created = _prepare_root(out)
    try:
        fd = _lock(out.lock)
    except BaseException:
        if created:
            shutil.rmtree(out.work, ignore_errors=True)
        raise
    held = _Held(out, Manifest(), fd)
    try:
        held.manifest = Manifest.load(out.manifest)
        conflicts = held.conflicts(claim)
        directories = [p for p in conflicts if p.is_dir() and not p.is_symlink()]
        if directories:
            raise OutputConflict(directories, forceable=False)
        if conflicts and not force:
            raise OutputConflict(conflicts, forceable=True)
    except BaseException:
        held.release()
        if created:
            shutil.rmtree(out.work, ignore_errors=True)
        raise
    try:
        held.remove_owned(claim.fresh)
        held.record(claim, conflicts)
        yield held
    finally:
        try:
            held.settle()
        finally:
            held.release()
