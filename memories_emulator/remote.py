"""The memories.ai API as seen from outside: its paths, a remote video, and its answers' shapes.

Owns the vocabulary the emulator's core works in, as plain data and pure functions with no
state: the documented paths, ``RemoteVideo`` (a video as memories.ai holds it), which
uploads it refuses before looking at any state, and how an accepted upload and a listed
video are written back (their times in milliseconds, as documented, or in seconds). What
the emulator decides with its state lives in ``core``.
"""

from __future__ import annotations

import os.path
from dataclasses import dataclass, field
from typing import Any

from memories_emulator.bodies import MultipartBody, envelope

UPLOAD_PATH = "/serve/api/video/upload"
LIST_PATH = "/serve/api/video/list_videos"
DELETE_PATH = "/serve/api/v1/delete_videos"
# The other documented path family, served too so either portal setting works.
PATH_ALIASES = {"/serve/api/v1/upload": "upload", "/serve/api/video/delete_videos": "delete"}

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


def listed(video: RemoteVideo, unit: str = "ms") -> dict[str, str]:
    """A video as list_videos shows it. Strings on purpose: the real API sends numbers as strings."""
    return {"video_no": video.video_no, "video_name": video.video_name, "status": video.status,
            "duration": "12", "size": str(video.size), "create_time": shown_time(video.create_time, unit)}
