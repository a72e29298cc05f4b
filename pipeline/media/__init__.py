"""Media I/O through the bundled ffmpeg: probing, decoding, encoding."""

from .probe import MediaInfo, count_decoded_frames, probe
from .sink import Encoder
from .source import Decoder

__all__ = ["Decoder", "Encoder", "MediaInfo", "count_decoded_frames", "probe"]
