"""What a report records about the machine and the libraries, so figures can be compared."""

from __future__ import annotations

import os
import platform
import sys
from typing import Any

from ..config.options import RunOptions
from ..config.settings import usable_cores
from ..media.ffmpeg import ffmpeg_version

__all__ = ["collect_environment", "configure_process", "usable_cores"]


def configure_process(options: RunOptions) -> None:
    """Apply per-process settings (OpenCV's thread count) in every process that runs stages."""
    if options.opencv_threads is not None:
        import cv2  # here, not at the top: planning a run needs no OpenCV

        cv2.setNumThreads(options.opencv_threads)


def collect_environment(options: RunOptions) -> dict[str, Any]:
    """Python build, cores, and the versions and thread settings of ffmpeg, OpenCV and numpy."""
    import cv2
    import numpy as np

    gil_check = getattr(sys, "_is_gil_enabled", None)
    return {
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "gil_enabled": gil_check() if gil_check else True,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "usable_cores": usable_cores(),
        "ffmpeg": ffmpeg_version(),
        "opencv": cv2.__version__,
        "opencv_threads": cv2.getNumThreads(),
        "numpy": np.__version__,
        "start_method": options.start_method.value,
        "encoder_threads": options.encoder.threads,
    }
