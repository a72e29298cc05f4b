"""What the background-save thread writes: JPEG thumbnails and checkpoint files, each atomically."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..plan.outdir import atomic_write_bytes
from ..stages.base import PixelFormat

__all__ = ["save_thumbnail", "write_checkpoint"]


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
