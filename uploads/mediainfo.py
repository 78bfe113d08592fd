"""What a probe of a video file finds (`MediaInfo`) and says (`ProbeError` and its sentences for
the user), and memories.ai's rule on it (`refusal`). Part of uploads/probe.py, which callers use:
it re-exports all of this. Plain data: no Django and no other uploads module (the container
checks and the child process build on it, never the other way round).
"""

from __future__ import annotations

import dataclasses

# FFmpeg's codec name -> the name people know it by.
ACCEPTED_CODECS: dict[str, str] = {"h264": "H.264", "hevc": "H.265/HEVC", "vp9": "VP9"}
ACCEPTED_CONTAINERS: dict[str, str] = {"mp4": "MP4", "mov": "MOV", "mkv": "MKV", "avi": "AVI"}

UNREADABLE = "the file is not a video that can be read (it may be truncated or damaged)"
CUT_SHORT = "the file is cut short (it may not have been uploaded completely)"
NO_VIDEO = "the file has no video track"
NOT_A_CONTAINER = "the file is not an MP4, MOV, MKV or AVI video"

# The widest a thumbnail is made (narrower videos keep their width); its height keeps the aspect.
THUMBNAIL_WIDTH = 320

# Common names of refused video codecs; any other is named by FFmpeg's long name.
_CODEC_NAMES = {
    **ACCEPTED_CODECS,
    "mjpeg": "MJPEG",
    "mpeg4": "MPEG-4 Part 2",
    "av1": "AV1",
    "vp8": "VP8",
    "mpeg1video": "MPEG-1",
    "mpeg2video": "MPEG-2",
    "h263": "H.263",
    "msmpeg4v2": "Microsoft MPEG-4 v2",
    "msmpeg4v3": "Microsoft MPEG-4 v3",
    "wmv1": "WMV7",
    "wmv2": "WMV8",
    "wmv3": "WMV9",
    "vc1": "VC-1",
    "prores": "ProRes",
    "dnxhd": "DNxHD",
    "theora": "Theora",
    "ffv1": "FFV1",
    "rawvideo": "uncompressed",
    "png": "PNG",
    "gif": "GIF",
    "cinepak": "Cinepak",
    "dvvideo": "DV",
}


class ProbeError(Exception):
    """The file cannot be read as a video, or is refused. `str()` is the user's sentence;
    `detail` is for operators (FFmpeg's words, an exit code), never shown to the user."""

    def __init__(self, message: str, detail: str = ""):
        super().__init__(message)
        self.message = message
        self.detail = detail


class ProbeTimeout(ProbeError):
    # The probe did not finish (its time ran out, or its process died): no verdict on the file.
    """The probe was stopped at its time limit."""


@dataclasses.dataclass(frozen=True)
class MediaInfo:
    container: str  # "mp4", "mov", "mkv" or "avi"
    duration_seconds: float | None  # as the container says; None when it does not
    video_codec: str  # FFmpeg's codec name: "h264", "hevc", "vp9", "mjpeg", "mpeg4", ...
    width: int
    height: int
    has_audio: bool
    audio_codec: str | None  # FFmpeg's codec name of the first audio track: "aac", "opus", ...
    # A JPEG still (uploads/probe_child.py: at 10 % of the duration, at most THUMBNAIL_WIDTH px
    # wide), or None: not asked for, or none could be made in time. Not part of what the file
    # holds: left out of comparisons and of the repr.
    thumbnail: bytes | None = dataclasses.field(default=None, compare=False, repr=False)

    @property
    def video_codec_name(self) -> str:
        return codec_name(self.video_codec)


def codec_name(ffmpeg_name: str) -> str:
    """The name people know a video codec by: "h264" -> "H.264"."""
    if ffmpeg_name in _CODEC_NAMES:
        return _CODEC_NAMES[ffmpeg_name]
    try:
        import av

        return av.codec.Codec(ffmpeg_name, "r").long_name or ffmpeg_name
    except Exception:
        return ffmpeg_name


def accepted_words(names) -> str:
    """"H.264, H.265/HEVC and VP9": names in a sentence."""
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def refusal(info: MediaInfo) -> str | None:
    """Why memories.ai would refuse this video, in the user's words; None if it accepts it.
    An audio track is not required (memories.ai needs one only to transcribe)."""
    if info.container not in ACCEPTED_CONTAINERS:
        return NOT_A_CONTAINER
    if info.video_codec not in ACCEPTED_CODECS:
        accepted = accepted_words(ACCEPTED_CODECS.values())
        return f"{info.video_codec_name} video; memories.ai accepts {accepted}"
    return None
