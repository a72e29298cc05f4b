"""What the background-save thread writes: JPEG thumbnails and checkpoint files, each atomically."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .stages.base import PixelFormat

__all__ = ["atomic_write_bytes", "save_thumbnail", "thumbnail_path", "write_checkpoint"]

# mkstemp creates files readable by the owner only; outputs get the usual mode under the umask.
_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see either the old file or the whole new one.

    An `OSError` (a full disk, say) names `path`.
    """
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
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


def thumbnail_path(out_dir: Path, task: str, index: int) -> Path:
    """Where the thumbnail of frame `index` of `task` goes."""
    return out_dir / "thumbnails" / task / f"frame_{index:06d}.jpg"


def save_thumbnail(path: Path, frame: np.ndarray, pix_fmt: PixelFormat, width: int = 320) -> None:
    """Scale a frame to `width` pixels wide and write it as JPEG (BGR or I420 frames)."""
    bgr = cv2.cvtColor(frame, cv2.COLOR_YUV2BGR_I420) if pix_fmt is PixelFormat.YUV420P else frame
    h, w = bgr.shape[:2]
    if w > width:
        bgr = cv2.resize(bgr, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise OSError(f"could not encode thumbnail {path.name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, encoded.tobytes())


def write_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write a task's checkpoint (frames done, outputs so far) as JSON, atomically."""
    atomic_write_bytes(path, (json.dumps(state, indent=2) + "\n").encode())
