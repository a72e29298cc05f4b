"""What vidpipe owns in its output folder, and how a run holds the folder.

vidpipe touches only what it wrote. Its manifest (`pipeline.plan.manifest`) records every file a
run wrote, with its size and modification time when the run ended; a later run removes or
replaces a file only when the manifest records it unchanged (a file the user replaced is the
user's). A run claims what it will write before writing it; a claim left by a killed run covers
only the files written before its last heartbeat. A path vidpipe would write that holds a file it
did not write is refused (`OutputConflict`, exit 2) unless `force`, which overwrites exactly those
paths. Temporary files carry vidpipe's name (`pipeline.plan.outdir`); only those are swept.

A run holds an exclusive `flock` on `.vidpipe/lock` while it runs, and touches the file every
second (its heartbeat): a second run into the folder is refused, naming the first one's pid
(`FolderInUse`). The kernel releases the lock with the process: a killed run never blocks.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import fnmatch
import os
import stat
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, FolderInUse, OutputConflict
from .manifest import Manifest, Pending, stamp_of
from .outdir import (
    WORK,
    OutDir,
    atomic_write_bytes,
    link_to,
    own_name,
)
from .preflight import check_folders, check_input, check_outside_managed, check_work

__all__ = ["HEARTBEAT_SECONDS", "Claim", "Held", "check_untouched", "hold"]

#: How long after a killed run's last heartbeat its own processes may still have written a
#: file (workers die with their parent, within their stop grace).
_SLACK_NS = 3_000_000_000
#: How often a run touches its lock file, so that its last sign of life is known.
HEARTBEAT_SECONDS = 1.0


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

    def folders(self) -> set[Path]:
        """The folders the run writes files into."""
        return {p.parent for p in self.files} | {folder for folder, _ in self.patterns}


class Held:
    """An output folder held by a run: its lock (touched every `HEARTBEAT_SECONDS`), manifest."""

    def __init__(self, out: OutDir, lock_fd: int, *, heartbeat: bool) -> None:
        self.out = out
        self.manifest = Manifest()
        self._lock_fd = lock_fd
        self._stop = threading.Event()
        self._heartbeat = threading.Thread(target=self._beating, name="heartbeat", daemon=True)
        self._beats = heartbeat

    def beat(self) -> None:
        """A sign of life: the lock file's modification time becomes now."""
        with contextlib.suppress(OSError):
            os.utime(self._lock_fd)

    def _beating(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            self.beat()

    def owns(self, path: Path) -> bool:
        rel = self.out.relative(path)
        if rel.startswith(f"{WORK}/"):
            # vidpipe's own folder holds no links (`check_work`); of its files, only those
            # named as vidpipe names its own are: another name there is someone else's.
            return own_name(rel)
        stamp = stamp_of(path)
        if self.manifest.files.get(rel) == stamp:
            return True
        pending = self.manifest.pending
        return pending is not None and pending.covers(rel, stamp)

    def adopt(self, heartbeat_ns: int) -> None:
        """Settle what a killed run claimed: of its claimed files, those written before its
        last heartbeat (`heartbeat_ns`, plus a slack for its dying workers) were vidpipe's;
        any written since are not."""
        pending = self.manifest.pending
        if pending is None:
            return
        for path in self._pending_paths(pending):
            stamp = stamp_of(path)
            if stamp is not None and stamp[1] <= heartbeat_ns + _SLACK_NS:
                self.manifest.files[self.out.relative(path)] = stamp
        self.manifest.pending = None

    def _pending_paths(self, pending: Pending) -> list[Path]:
        paths = [self.out.root / rel for rel in pending.files]
        for claim in pending.claims:
            folder = self.out.root / claim.rpartition("/")[0]
            if folder.is_dir() and not folder.is_symlink():
                paths += [
                    p for p in folder.iterdir() if pending.covers(self.out.relative(p), stamp_of(p))
                ]
        return paths

    def conflicts(self, claim: Claim) -> list[Path]:
        """Files the run would write that vidpipe did not write."""
        found = [p for p in claim.files if p.is_symlink() or p.exists()]
        for folder, pattern in claim.patterns:
            if folder.is_dir():
                found += sorted(p for p in folder.iterdir() if fnmatch.fnmatchcase(p.name, pattern))
        return [p for p in found if not self.owns(p)]

    def remove_owned(self, paths: Iterable[Path]) -> None:
        """Remove the files among `paths` (and in the folders among them) that vidpipe wrote."""
        for top in paths:
            real_dir = top.is_dir() and not top.is_symlink()
            inside = sorted(top.rglob("*"), reverse=True) if real_dir else []
            for path in [*inside, top]:
                if path.is_dir() and not path.is_symlink():
                    with contextlib.suppress(OSError):  # not empty: the user's files
                        path.rmdir()
                elif (path.is_file() or path.is_symlink()) and self.owns(path):
                    path.unlink()
                    self.manifest.files.pop(self.out.relative(path), None)

    def record(self, claim: Claim, conflicts: list[Path]) -> None:
        """Claim what the run will write, before it writes it, and start the heartbeat."""
        pending = Pending(files=[self.out.relative(p) for p in claim.files])
        pending.claims = [f"{self.out.relative(f)}/{pattern}" for f, pattern in claim.patterns]
        for path in conflicts:  # forced: not vidpipe's until it writes them
            stamp = stamp_of(path)
            if stamp is not None and path not in claim.files:
                pending.foreign[self.out.relative(path)] = stamp
        self.manifest.pending = pending
        self.save()
        if self._beats:
            self._heartbeat.start()

    def settle(self) -> None:
        """Record each file this run claimed as it is now that the run has ended; leave the
        records of other files (another task's output, say) as they were."""
        pending = self.manifest.pending
        if pending is None:
            return
        files = self.manifest.files
        for rel in pending.files:
            files.pop(rel, None)
        for path in self._pending_paths(pending):
            stamp = stamp_of(path)
            if stamp is not None:
                files[self.out.relative(path)] = stamp
        self.manifest.pending = None
        self.save()

    def save(self) -> None:
        atomic_write_bytes(self.out.manifest, self.manifest.dump())

    def release(self) -> None:
        self._stop.set()
        if self._heartbeat.is_alive():
            self._heartbeat.join()
        os.close(self._lock_fd)


def _not_a_lock(path: Path, st: os.stat_result) -> ConfigError | None:
    """Why `st` (of `path`) is not vidpipe's lock file, or None when it may be."""
    if stat.S_ISLNK(st.st_mode):
        return ConfigError(f"--out: {path} is a link, and vidpipe's own folder holds none")
    if not stat.S_ISREG(st.st_mode):
        return ConfigError(
            f"--out: {path} is not vidpipe's lock (not a regular file); move it away"
        )
    if st.st_nlink > 1:
        # Another name of the same file, perhaps the user's: writing a pid into it would
        # change their file.
        return ConfigError(
            f"--out: {path} is not vidpipe's lock (a hard link: the file has other names); "
            "remove it"
        )
    return None


def _open_lock(path: Path) -> int:
    """Open (or create) the lock without following a link, blocking on a FIFO or taking a
    terminal; `ConfigError` when what is there is not a plain file of vidpipe's own."""
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.EISDIR, errno.ENXIO):
            raise
        refusal = _not_a_lock(path, path.lstat())
        raise refusal or ConfigError(f"--out: {path} cannot be opened ({exc.strerror})") from exc
    refusal = _not_a_lock(path, os.fstat(fd))
    if refusal is not None:
        os.close(fd)
        raise refusal
    os.set_blocking(fd, True)
    return fd


def _lock(path: Path) -> tuple[int, int]:
    """Take the folder's lock; (its descriptor, its last heartbeat before this run took it).
    `FolderInUse` naming the run that holds it."""
    fd = _open_lock(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip()
        os.close(fd)
        raise FolderInUse(path.parent.parent, int(holder) if holder.isdigit() else None) from None
    heartbeat = os.fstat(fd).st_mtime_ns
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd, heartbeat


def check_untouched(out_dir: Path) -> None:
    """What a run that finds nothing to do checks, writing nothing: the folder would be
    refused by a run that writes (`hold`) for where it lies, a link or a file where vidpipe's
    own folder or its lock should be, or something in that folder that is not vidpipe's.
    Refusing the same folders either way, `--resume` never calls a folder fine that a plain
    run refuses."""
    out = OutDir(out_dir)
    check_outside_managed(out.root)
    work = out.work
    _check_work_folder(out)
    if out.lock.is_symlink() or out.lock.exists():
        refusal = _not_a_lock(out.lock, out.lock.lstat())
        if refusal is not None:
            raise refusal
    if work.is_dir():
        check_work(out)


def _prepare_root(out: OutDir) -> bool:
    """Create DIR if needed and check it; True when this run created vidpipe's own folder."""
    root = out.root
    if root.is_symlink() and not root.is_dir():  # a link to a folder is the user's choice
        raise ConfigError(
            f"--out {root}: is a symbolic link (to {link_to(root)}), not a directory; give a "
            "folder, or a link to one"
        )
    if root.exists() and not root.is_dir():
        raise ConfigError(f"--out {root}: exists and is not a directory")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out {root}: cannot create it ({exc.strerror})") from exc
    if not os.access(root, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {root}: directory is not writable")
    _check_work_folder(out)
    work = out.work
    try:
        work.mkdir()  # at once: of two runs starting together, one creates it
    except FileExistsError:
        return False
    except OSError as exc:
        raise ConfigError(f"--out {root}: cannot create {work} ({exc.strerror})") from exc
    return True


def _check_work_folder(out: OutDir) -> None:
    """Refuse a link or a file where vidpipe's own folder goes."""
    root, work = out.root, out.work
    if work.is_symlink():
        raise ConfigError(
            f"--out {root}: {work} is a symbolic link (to {link_to(work)}), not vidpipe's "
            "folder; vidpipe never writes or removes through a link: remove the link"
        )
    if work.exists() and not work.is_dir():
        raise ConfigError(f"--out {root}: {work} is a file, not vidpipe's folder; move it away")


def _take(out: OutDir, heartbeat: bool) -> tuple[Held, int, bool]:
    """(The hold, the last heartbeat of the run before, whether this run made `.vidpipe`)."""
    for attempt in range(3):
        created = _prepare_root(out)
        try:
            fd, last = _lock(out.lock)
        except FileNotFoundError:  # a refused run removed the folder it had just made
            if attempt == 2:
                raise
            continue
        return Held(out, fd, heartbeat=heartbeat), last, created
    raise AssertionError("unreachable")


def _undo(out: OutDir, held: Held, created: bool) -> None:
    """A refused run leaves nothing: the folder it created goes again (its lock first)."""
    held.release()
    if created and not out.manifest.exists():
        out.lock.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # another run's files are in it now
            out.work.rmdir()


@contextlib.contextmanager
def hold(
    out_dir: Path,
    claim: Claim,
    *,
    source: Path | None = None,
    force: bool = False,
    heartbeat: bool = True,
) -> Iterator[Held]:
    """Hold the output folder for a run that writes what `claim` says.

    Before anything is written: refuses an input inside what the run writes (`ConfigError`),
    takes the folder's lock (`FolderInUse`), settles what a killed run claimed (`Held.adopt`),
    refuses a file where the run makes a folder, and files the run would overwrite that vidpipe
    did not write (`OutputConflict`, unless `force`); then removes what an earlier run left at
    `claim.fresh` and records the claim. With `heartbeat`, a thread touches the lock every
    second; without, the caller calls `Held.beat` (the run's watchdog does). On leaving, also
    after errors, every claimed file is recorded as it is and the lock is released.
    """
    out = OutDir(out_dir)
    check_outside_managed(out.root)
    if source is not None:
        check_input(source, out, claim.files, claim.fresh, claim.forbidden)
    held, last_beat, created = _take(out, heartbeat)
    try:
        check_work(out)
        held.manifest = Manifest.load(out.manifest)
        held.adopt(last_beat)
        check_folders(out, {*claim.folders(), *claim.forbidden, *(p.parent for p in claim.fresh)})
        conflicts = held.conflicts(claim)
        directories = [p for p in conflicts if p.is_dir() and not p.is_symlink()]
        if directories:
            raise OutputConflict(directories, forceable=False)
        if conflicts and not force:
            raise OutputConflict(conflicts, forceable=True)
    except BaseException:
        _undo(out, held, created)
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
