"""The memories.ai API as seen from outside: its paths, a remote video, and its answers' shapes.

Owns the vocabulary the emulator's core works in, as plain data and pure functions with no
state: the documented paths of both API families and the call each serves (``Route``),
``RemoteVideo`` (a video as memories.ai holds it), which uploads it refuses before looking at
any state, the namespace a call names, and how an accepted upload, a listed video and one
video's metadata are written back (times in milliseconds, as documented, or in seconds;
status words as each family spells them). What the emulator decides with its state lives in
``core`` and ``store``.

The two families, served side by side on one port (constructor keyword: default path):

- older, "v1.1" (what the portal was specified from): ``upload_path``:
  ``POST /serve/api/video/upload``; ``list_path``: ``POST /serve/api/video/list_videos``;
  ``older_delete_path``: ``POST /serve/api/video/delete_videos`` (not confirmed by the docs).
  It knows no namespaces: every call means "default", whatever ``unique_id`` it carries.
- newer, "v1": ``v1_upload_path``: ``POST /serve/api/v1/upload`` (form field ``unique_id``);
  ``v1_list_path``: ``POST /serve/api/v1/list_videos`` (``unique_id`` in the JSON body);
  ``metadata_path``: ``GET /serve/api/v1/get_metadata?video_no=&unique_id=``;
  ``delete_path``: ``POST /serve/api/v1/delete_videos?unique_id=`` (the one documented delete,
  and the emulator's ``delete_path`` before the families were told apart). A missing or empty
  ``unique_id`` means "default". Its list and metadata answers spell a failed video ``FAILED``
  (callbacks, in both families, keep ``FAIL``).

Beyond upload (served by ``understanding``; keyword: default path): ``search_path``:
``POST /serve/api/video/search`` (older); ``chat_path``: ``POST /serve/api/video/chat`` (older,
streamed with ``Accept: text/event-stream``); and v1's ``v1_search_path``,
``transcript_search_path``, ``v1_chat_path``, ``chat_stream_path``, ``sessions_path``,
``session_detail_path``, ``video_transcription_path``, ``audio_transcription_path``,
``summary_path`` (``/serve/api/v1/search``, ``search_audio_transcripts``, ``chat``,
``chat_stream``, ``list_sessions``, ``get_session_detail``, ``get_video_transcription``,
``get_audio_transcription``, ``generate_summary``).

A path moved off its default wins over another call's default path; two calls moved onto one
path are refused.
"""

from __future__ import annotations

import os.path
from dataclasses import dataclass, field
from typing import Any

from memories_emulator.bodies import MultipartBody, envelope

V1_1, V1 = "v1.1", "v1"  # the API families: older, newer
DEFAULT_NAMESPACE = "default"


@dataclass(frozen=True)
class Route:
    """The call a path serves."""

    endpoint: str  # "upload", "list", "delete", "metadata", "search", ...: also what faults are injected for
    family: str  # V1_1 or V1
    method: str = "POST"


# The constructor's path keywords: keyword -> (default path, the call served there).
PATHS: dict[str, tuple[str, Route]] = {
    "upload_path": ("/serve/api/video/upload", Route("upload", V1_1)),
    "list_path": ("/serve/api/video/list_videos", Route("list", V1_1)),
    "older_delete_path": ("/serve/api/video/delete_videos", Route("delete", V1_1)),
    "v1_upload_path": ("/serve/api/v1/upload", Route("upload", V1)),
    "v1_list_path": ("/serve/api/v1/list_videos", Route("list", V1)),
    "metadata_path": ("/serve/api/v1/get_metadata", Route("metadata", V1, "GET")),
    "delete_path": ("/serve/api/v1/delete_videos", Route("delete", V1)),
    # Beyond upload (memories_emulator.understanding).
    "search_path": ("/serve/api/video/search", Route("search", V1_1)),
    "chat_path": ("/serve/api/video/chat", Route("chat", V1_1)),
    "v1_search_path": ("/serve/api/v1/search", Route("search", V1)),
    "transcript_search_path": ("/serve/api/v1/search_audio_transcripts", Route("transcript_search", V1, "GET")),
    "v1_chat_path": ("/serve/api/v1/chat", Route("chat", V1)),
    "chat_stream_path": ("/serve/api/v1/chat_stream", Route("chat_stream", V1)),
    "sessions_path": ("/serve/api/v1/list_sessions", Route("sessions", V1, "GET")),
    "session_detail_path": ("/serve/api/v1/get_session_detail", Route("session_detail", V1, "GET")),
    "video_transcription_path": ("/serve/api/v1/get_video_transcription", Route("video_transcription", V1, "GET")),
    "audio_transcription_path": ("/serve/api/v1/get_audio_transcription", Route("audio_transcription", V1, "GET")),
    "summary_path": ("/serve/api/v1/generate_summary", Route("summary", V1, "GET")),
}

VIDEO_EXTENSIONS = {".mp4", ".avi", ".mkv", ".mov"}
# How answers may write an upload's time: milliseconds since the epoch (documented), or seconds.
UPLOAD_TIME_UNITS = {"ms": 1, "s": 1000}  # unit -> milliseconds per unit
MAX_DELETE = 100


@dataclass
class RemoteVideo:
    """A video as memories.ai holds it for one account (key)."""

    video_no: str
    video_name: str
    status: str
    size: int
    create_time: int  # ms since the epoch
    callback: str | None
    key: str = field(repr=False)  # the raw key: kept in memory only, never shown
    deleted: bool = False
    client_id: str = ""
    unique_id: str = DEFAULT_NAMESPACE  # the namespace inside the account (v1 family)
    # What the upload carried (its file's name and the SHA-256 of its bytes): what the emulator
    # "understood" of the video, its transcript, is looked up by them (memories_emulator.content).
    filename: str = ""
    sha256: str | None = None


def route_table(paths: dict[str, str]) -> dict[str, Route]:
    """path -> Route for the constructor's path keywords (see PATHS and the module docstring)."""
    table, moved = {}, {}
    for name, path in paths.items():
        default, route = PATHS[name]
        if path == default:
            table[path] = route
        elif path in moved:
            raise ValueError(f"two calls configured at one path: {path!r}")
        else:
            moved[path] = route
    return {**table, **moved}


def namespace(family: str, given: Any) -> str:
    """The namespace a call names; raises ValueError for a unique_id that is not a string.

    The v1 family's ``unique_id`` is case-sensitive, and "default" when absent or empty; the
    older family knows only "default".
    """
    if family != V1 or given is None or given == "":
        return DEFAULT_NAMESPACE
    if not isinstance(given, str):
        raise ValueError("unique_id must be a string")
    return given


def shown_status(status: str, family: str) -> str:
    """A status as the family's list and metadata answers spell it: v1 says FAILED for FAIL."""
    return "FAILED" if family == V1 and status == "FAIL" else status


def split_filename(filename: str) -> tuple[str, str]:
    """(video name, extension) of an uploaded file's name, Windows paths included."""
    return os.path.splitext(os.path.basename(filename.replace("\\", "/")))


def upload_refusal(body: MultipartBody) -> dict[str, Any] | None:
    """The answer to an upload refused for its body alone, or None when the body will do."""
    record = body.record
    if body.error:
        return envelope("0003", msg=body.error)
    if record.filename is None:
        return envelope("0003", msg="file is required")
    _, ext = split_filename(record.filename)
    is_video = (record.content_type or "").lower().startswith("video/")
    if not is_video or ext.lower() not in VIDEO_EXTENSIONS:
        return envelope("0001", msg="file type not supported")
    return None


def shown_time(millis: int, unit: str = "ms") -> str:
    """A time kept in ms since the epoch, as an answer writes it in `unit` (see UPLOAD_TIME_UNITS)."""
    return str(millis // UPLOAD_TIME_UNITS[unit])


def upload_answer(video_no: str, video_name: str, upload_time: int, unit: str = "ms") -> dict[str, Any]:
    """An accepted upload's answer (the upload endpoint's own envelope, with success/failed).

    `upload_time` is in ms since the epoch; the answer writes it in `unit`.
    """
    return {"code": "0000", "msg": "success", "success": True, "failed": False,
            "data": {"videoNo": video_no, "videoName": video_name,
                     "videoStatus": "UNPARSE", "uploadTime": shown_time(upload_time, unit)}}


def listed(video: RemoteVideo, unit: str = "ms", family: str = V1_1) -> dict[str, str]:
    """A video as list_videos shows it. Strings on purpose: the real API sends numbers as strings."""
    return {"video_no": video.video_no, "video_name": video.video_name,
            "status": shown_status(video.status, family), "duration": "12", "size": str(video.size),
            "create_time": shown_time(video.create_time, unit)}


def described(video: RemoteVideo, unit: str = "ms") -> dict[str, str]:
    """A video as get_metadata (v1 family only) shows it: what list_videos shows, and its namespace."""
    return {**listed(video, unit, V1), "unique_id": video.unique_id}


def lookalike(endpoint: str, video_no: str, millis: int, unit: str = "ms") -> dict[str, Any]:
    """A success-shaped answer of `endpoint` naming a made-up video ("wrong_content_type" fault)."""
    if endpoint == "upload":
        return upload_answer(video_no, "video", millis, unit)
    if endpoint == "list":
        return envelope("0000", {"videos": [], "current_page": 1, "page_size": 20, "total_count": 0})
    if endpoint == "metadata":
        made_up = RemoteVideo(video_no=video_no, video_name="video", status="UNPARSE", size=0,
                              create_time=millis, callback=None, key="")
        return envelope("0000", described(made_up, unit))
    return envelope("0000")
