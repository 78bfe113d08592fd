"""The memories.ai API as seen from outside: its paths, a remote video, and its answers' shapes.

Owns the vocabulary the emulator's core works in, as plain data and pure functions with no
state: the documented paths, ``RemoteVideo`` (a video as memories.ai holds it), which
uploads it refuses before looking at any state, and how an accepted upload and a listed
video are written back. What the emulator decides with its state lives in ``core``.
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


def upload_answer(video_no: str, video_name: str, upload_time: int) -> dict[str, Any]:
    """An accepted upload's answer (the upload endpoint's own envelope, with success/failed)."""
    return {"code": "0000", "msg": "success", "success": True, "failed": False,
            "data": {"videoNo": video_no, "videoName": video_name,
                     "videoStatus": "UNPARSE", "uploadTime": str(upload_time)}}


def listed(video: RemoteVideo) -> dict[str, str]:
    """A video as list_videos shows it. Strings on purpose: the real API sends numbers as strings."""
    return {"video_no": video.video_no, "video_name": video.video_name, "status": video.status,
            "duration": "12", "size": str(video.size), "create_time": str(video.create_time)}
