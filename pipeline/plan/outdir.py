"""The output folder (`--out DIR`): every path vidpipe writes there, in one place.

    DIR/compressed.mp4, DIR/rendered.mp4     task outputs
    DIR/<task>.checkpoint.json               checkpoints (the save thread's)
    DIR/thumbnails/<task>/frame_NNNNNN.jpg   thumbnails (the save thread's)
    DIR/report.json, DIR/trace.json          the report, and the trace with --trace
    DIR/.vidpipe/                            vidpipe's own folder: its manifest, its lock,
                                             unfinished pieces (pieces/<task>/), trace parts

Files are written whole or not at all (`atomic_write_bytes`, and outputs at `partial_path` until
complete); the temporary names carry vidpipe's name, so that what a killed writer leaves can be
told from the user's files (`temp_files`). What vidpipe owns in DIR, and how a run holds it:
`pipeline.plan.ownership`.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError

__all__ = [
    "PART_SUFFIX",
    "PIECE_NAMES",
    "TEMP_PREFIX",
    "THUMBNAILS",
    "TRACE_NAMES",
    "WORK",
    "OutDir",
    "absolute",
    "atomic_write_bytes",
    "link_to",
    "own_name",
    "partial_path",
    "read_regular",
    "remove_own_files",
    "temp_files",
    "thumbnail_name",
]

#: Temporary files vidpipe writes (and only those are swept): `.vidpipe-tmp-<name>.<random>.tmp`.
TEMP_PREFIX = ".vidpipe-tmp-"
#: What an output is called until it is complete: `.<name>.vidpipe.part`, beside it.
PART_SUFFIX = ".vidpipe.part"
#: vidpipe's own folder in DIR.
WORK = ".vidpipe"

_TEMP = r"\.vidpipe-tmp-[^/]+\.tmp"
#: The names of the files vidpipe writes in its own folder, by where they lie in it: its
#: manifest and lock; each task's pieces, their digests, partial pieces and the join's list;
#: the trace parts (one per process, named by its pid). vidpipe removes nothing else there: a
#: file of another name is someone else's, even inside `.vidpipe/`.
WORK_NAMES = re.compile(rf"manifest\.json|lock|{_TEMP}")
PIECE_NAMES = re.compile(
    rf"\d{{4,}}\.(?:mp4|digests)|\.\d{{4,}}\.mp4\.vidpipe\.part|join\.txt|{_TEMP}"
)
TRACE_NAMES = re.compile(rf"\d+\.json|{_TEMP}")


# mkstemp creates files readable by the owner only; outputs get the usual mode under the umask.
_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see either the old file or the whole new one.

    The temporary file beside it carries vidpipe's name (`TEMP_PREFIX`), so that what a killed
    writer leaves can be told from the user's files. An `OSError` (a full disk, say) names
    `path`.
    """
    try:
        fd, tmp = tempfile.mkstemp(
            prefix=f"{TEMP_PREFIX}{path.name}.", suffix=".tmp", dir=path.parent
        )
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(path)) from exc
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            os.fchmod(f.fileno(), 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise OSError(exc.errno, exc.strerror, str(path)) from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def link_to(path: Path) -> str:
    """What the symbolic link `path` leads to, for messages that refuse it: "a directory",
    "a file" or "nothing". A message says "a symbolic link" even when it leads to a
    directory: that is what is wrong with it where vidpipe wants a folder of its own."""
    return "a directory" if path.is_dir() else "a file" if path.exists() else "nothing"


def read_regular(path: Path) -> bytes:
    """The bytes of a file vidpipe was told about (a checkpoint, a manifest, a layout file).

    `FileNotFoundError` when there is none; `OSError` when it is not a regular file: a FIFO
    would block for ever waiting for a writer, a device never end.
    """
    st = path.stat()
    if not stat.S_ISREG(st.st_mode):
        raise OSError(f"{path} is not a regular file")
    return path.read_bytes()


def absolute(path: Path, what: str) -> Path:
    """`path` made absolute against the current folder, once, before any user code runs: a
    stage that changes the current folder must not move what vidpipe writes. `ConfigError`
    naming `what` (the option) when the current folder no longer exists."""
    if path.is_absolute():
        return path
    try:
        return Path(os.getcwd()) / path
    except FileNotFoundError:
        raise ConfigError(
            f"{what} {path}: the current folder no longer exists, so a relative path means "
            "nothing; cd to a folder that exists, or give an absolute path"
        ) from None


def own_name(rel: str) -> bool:
    """Whether `rel` (a path relative to DIR, `/`-separated) is where vidpipe writes a file of
    its own in `.vidpipe/` (`WORK_NAMES`, `PIECE_NAMES`, `TRACE_NAMES`)."""
    match rel.split("/"):
        case [top, name] if top == WORK:
            return WORK_NAMES.fullmatch(name) is not None
        case [top, "pieces", _task, name] if top == WORK:
            return PIECE_NAMES.fullmatch(name) is not None
        case [top, "trace", name] if top == WORK:
            return TRACE_NAMES.fullmatch(name) is not None
    return False


def remove_own_files(folder: Path, names: re.Pattern[str]) -> None:
    """Remove the files in `folder` named as vidpipe names its own (`names`), then the folder
    itself if that left it empty. Never a whole tree: what else is there is someone else's."""
    if not folder.is_dir() or folder.is_symlink():
        return
    for path in folder.iterdir():
        if names.fullmatch(path.name) and (path.is_symlink() or not path.is_dir()):
            path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # not empty: someone else's files are in it
        folder.rmdir()


def partial_path(path: Path) -> Path:
    """Where an output is written until it is complete."""
    return path.with_name(f".{path.name}{PART_SUFFIX}")


def temp_files(folder: Path) -> list[Path]:
    """vidpipe's temporary files in `folder` (what a killed save or encoder left)."""
    if not folder.is_dir():
        return []
    return [*folder.glob(f"{TEMP_PREFIX}*"), *folder.glob(f".*{PART_SUFFIX}")]


@dataclass(frozen=True)
class OutDir:
    """The paths of an output folder; nothing is created by asking for one."""

    root: Path

    def output(self, name: str) -> Path:
        """A task's output file (`compressed.mp4`)."""
        return self.root / name

    def checkpoint(self, task: str) -> Path:
        return self.root / f"{task}.checkpoint.json"

    def thumbnails(self, task: str) -> Path:
        return self.root / "thumbnails" / task

    def thumbnail(self, task: str, index: int) -> Path:
        return self.thumbnails(task) / thumbnail_name(index)

    @property
    def report(self) -> Path:
        return self.root / "report.json"

    @property
    def trace(self) -> Path:
        return self.root / "trace.json"

    @property
    def work(self) -> Path:
        """vidpipe's own folder."""
        return self.root / WORK

    @property
    def trace_parts(self) -> Path:
        """Where each process of a traced run leaves its events until they are merged."""
        return self.work / "trace"

    def pieces(self, task: str) -> Path:
        """Where a task's finished pieces wait until they are joined."""
        return self.work / "pieces" / task

    @property
    def manifest(self) -> Path:
        return self.work / "manifest.json"

    @property
    def lock(self) -> Path:
        return self.work / "lock"

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()


def thumbnail_name(index: int) -> str:
    """The file name of frame `index`'s thumbnail."""
    return f"frame_{index:06d}.jpg"


#: The names of a task's thumbnails, as a pattern (`Claim.patterns`).
THUMBNAILS = "frame_[0-9][0-9][0-9][0-9][0-9][0-9].jpg"
