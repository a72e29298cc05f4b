"""Raw frames with their presentation times, as a Matroska stream ffmpeg reads from a pipe.

Raw video through a pipe (`-f rawvideo`) carries no timestamps: ffmpeg counts the frames at one
rate, which loses a variable frame rate and a video's start after its audio. Matroska carries
a timestamp per frame and uncompressed video (`V_UNCOMPRESSED`, pixel format as a FourCC), and
ffmpeg reads it from a pipe, so the encoder gets each frame with its time. What is written is
the smallest stream ffmpeg takes: a header naming one video track, then one cluster per frame
(a cluster's own timestamp, so that no frame is limited to the 16-bit offset a block has
within its cluster). Times are in microseconds, ffmpeg's own resolution.
"""

from __future__ import annotations

from fractions import Fraction

from ..stages.base import PixelFormat, StreamSpec

__all__ = ["MICROSECONDS", "frame_header", "stream_header"]

#: Units of a second the stream's timestamps count (Matroska's TimestampScale: 1000 ns).
MICROSECONDS = 1_000_000

_FOURCC = {PixelFormat.BGR24: b"BGR\x18", PixelFormat.YUV420P: b"I420"}
_UNKNOWN_SIZE = b"\x01\xff\xff\xff\xff\xff\xff\xff"  # the Segment ends with the stream


def _size(n: int) -> bytes:
    """An element's size as an 8-byte EBML variable-length integer."""
    return ((1 << 56) | n).to_bytes(8, "big")


def _element(element_id: bytes, payload: bytes) -> bytes:
    return element_id + _size(len(payload)) + payload


def _uint(element_id: bytes, value: int) -> bytes:
    return _element(element_id, value.to_bytes(8, "big"))


def stream_header(spec: StreamSpec) -> bytes:
    """The bytes that open a stream of `spec` frames: EBML header, Segment, Info, Tracks.

    The track's default frame duration is one frame at `spec.fps` (what ffmpeg takes as the
    stream's rate, and the last frame's duration).
    """
    ebml = _element(
        b"\x1a\x45\xdf\xa3",
        _element(b"\x42\x82", b"matroska") + _uint(b"\x42\x87", 4) + _uint(b"\x42\x85", 2),
    )
    info = _element(b"\x15\x49\xa9\x66", _uint(b"\x2a\xd7\xb1", 1_000_000_000 // MICROSECONDS))
    video = _element(
        b"\xe0",
        _uint(b"\xb0", spec.width)
        + _uint(b"\xba", spec.height)
        + _element(b"\x2e\xb5\x24", _FOURCC[spec.pix_fmt]),
    )
    frame_ns = round(Fraction(1_000_000_000) / spec.fps)
    track = _element(
        b"\xae",
        _uint(b"\xd7", 1)  # TrackNumber
        + _uint(b"\x73\xc5", 1)  # TrackUID
        + _uint(b"\x83", 1)  # TrackType: video
        + _element(b"\x86", b"V_UNCOMPRESSED")
        + _uint(b"\x23\xe3\x83", frame_ns)  # DefaultDuration
        + video,
    )
    return ebml + b"\x18\x53\x80\x67" + _UNKNOWN_SIZE + info + _element(b"\x16\x54\xae\x6b", track)


def frame_header(microseconds: int, frame_bytes: int) -> bytes:
    """The bytes before one frame of `frame_bytes` shown at `microseconds`: a Cluster with its
    Timestamp and a SimpleBlock (track 1, offset 0, keyframe) whose payload is the frame."""
    stamp = _uint(b"\xe7", microseconds)
    block = b"\xa3" + _size(4 + frame_bytes) + b"\x81\x00\x00\x80"
    return b"\x1f\x43\xb6\x75" + _size(len(stamp) + len(block) + frame_bytes) + stamp + block
