"""The stored copy played in the browser, and its thumbnail, served only to people who may see the
video (`Video.objects.visible_to`: anyone else gets 404; signed out, the sign-in page). Never a
public URL: docs/playback.md.

What plays (`player_for`, from the probe's codec and the stored file's container): H.264 in MP4 or
MOV, served as video/mp4 (Chromium refuses video/quicktime but plays the same bytes as MP4), and
VP9 in MKV or MP4 (MKV as video/webm, the Matroska subset browsers name). HEVC, AVI and the rest
get the thumbnail, "This format does not play in the browser" and the download link. A video the
probe has not read yet is offered to the player if its container is one that can play.

How it is served (`media`): from S3, a 302 to a presigned URL that lives MEMPORTAL_MEDIA_URL_SECONDS
(6 h: longer than anyone watches); the browser then fetches its ranges from S3. From the local
folder, this view answers `Range: bytes=…` itself (Django does not) with 206 and at most
MEMPORTAL_MEDIA_RANGE_BYTES (4 MiB) per response: a browser's <video> always asks by range, comes
back for the next piece as it plays, and no response holds a web thread for longer than those
bytes take. A request without Range, and `?download=1` (Content-Disposition: attachment), get the
whole file, 200, streamed. A range past the end is 416.
"""

import os
import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from django.conf import settings
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.utils.cache import get_conditional_response, patch_cache_control
from django.utils.http import content_disposition_header, http_date, parse_http_date_safe
from django.views.decorators.http import require_safe

from .models import Video

# (codec as the probe names it, container) -> the type a browser plays it as.
PLAYABLE = {
    ("H.264", "mp4"): "video/mp4",
    ("H.264", "mov"): "video/mp4",
    ("VP9", "mkv"): "video/webm",
    ("VP9", "mp4"): "video/mp4",
}
CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "mkv", ".webm": "mkv", ".avi": "avi"}
THUMBNAIL_MAX_AGE = 3600
_RANGE = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$")


@dataclass(frozen=True)
class Player:
    """What the video page shows: "play" (a <video> of `media_type`), "fallback" (the thumbnail,
    and why it does not play), or "removed" (no stored copy any more)."""

    mode: str
    media_type: str = ""
    reason: str = ""


def container_of(video):
    return CONTAINERS.get(PurePosixPath(video.file.name).suffix.lower(), "") if video.file else ""


def player_for(video):
    if not video.file:
        return Player("removed")
    container = container_of(video)
    media_type = PLAYABLE.get((video.video_codec, container))
    if media_type:
        return Player("play", media_type)
    if not video.video_codec and container in ("mp4", "mov", "mkv"):  # not probed yet: let the browser try
        return Player("play", "video/webm" if container == "mkv" else "video/mp4")
    what = " in ".join(part for part in (video.video_codec, container.upper()) if part)
    return Player("fallback", reason=f"{what} video" if what else "")


def _visible(request, video_id):
    return get_object_or_404(Video.objects.visible_to(request.user).only(
        "id", "file", "thumbnail", "video_codec", "original_name", "content_type"), pk=video_id)


def _local_path(storage, name):
    """The stored file's path, or None for a storage without paths (S3)."""
    try:
        return storage.path(name)
    except NotImplementedError:
        return None


@require_safe
def media(request, video_id):
    video = _visible(request, video_id)
    if not video.file:
        raise Http404("the stored copy was removed")
    download = request.GET.get("download") == "1"
    player = player_for(video)
    # The type it plays as; a download, or a file that does not play, keeps its own type.
    media_type = player.media_type if player.mode == "play" and not download else video.content_type
    storage = video.file.storage
    path = _local_path(storage, video.file.name)
    if path is None:
        return _presigned(storage, video, media_type, download)
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        raise Http404("the stored file is missing") from None
    etag = f'"{stat.st_size:x}-{stat.st_mtime_ns:x}"'
    last_modified = int(stat.st_mtime)
    response = get_conditional_response(request, etag=etag, last_modified=last_modified)
    if response is None:
        wanted = None if download or not _if_range_holds(request, etag, last_modified) else request.headers.get("Range")
        response = _answer(path, stat.st_size, wanted, media_type)
        if response.status_code == 200:
            response["Content-Disposition"] = content_disposition_header(download, video.original_name)
    response["ETag"] = etag
    response["Last-Modified"] = http_date(last_modified)
    response["Accept-Ranges"] = "bytes"
    patch_cache_control(response, private=True)
    return response


def _if_range_holds(request, etag, last_modified):
    """Whether a Range may be answered: no If-Range, or one naming this very file (RFC 9110 13.1.5)."""
    if_range = request.headers.get("If-Range")
    if not if_range:
        return True
    if if_range.startswith('"'):
        return if_range == etag
    return parse_http_date_safe(if_range) == last_modified


def byte_range(header, size):
    """The first range of a `Range: bytes=…` header as (first, last) byte, both included, for a file
    of `size` bytes; None when the header is absent or not one this view reads (then the whole file
    is sent, as RFC 9110 allows), "unsatisfiable" when it names no byte of the file."""
    if not header or not header.strip().lower().startswith("bytes="):
        return None
    match = _RANGE.match(header.strip()[6:].split(",")[0])
    if not match or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if first == "":  # the last `last` bytes
        if int(last) == 0 or size == 0:
            return "unsatisfiable"
        return max(0, size - int(last)), size - 1
    first = int(first)
    if last != "" and int(last) < first:
        return None
    if first >= size:
        return "unsatisfiable"
    return first, size - 1 if last == "" else min(int(last), size - 1)


def _answer(path, size, range_header, media_type):
    wanted = byte_range(range_header, size)
    if wanted is None:
        return FileResponse(open(path, "rb"), content_type=media_type)
    if wanted == "unsatisfiable":
        response = HttpResponse(status=416)
        response["Content-Range"] = f"bytes */{size}"
        return response
    first, last = wanted
    last = min(last, first + settings.MEMPORTAL_MEDIA_RANGE_BYTES - 1)  # the rest is asked for next
    with open(path, "rb") as f:
        f.seek(first)
        data = f.read(last - first + 1)
    response = HttpResponse(data, status=206, content_type=media_type)
    response["Content-Range"] = f"bytes {first}-{first + len(data) - 1}/{size}"
    return response


def _presigned(storage, video, media_type, download, lifetime=None):
    """302 to a presigned S3 URL of the stored object, answered with this type and disposition."""
    lifetime = lifetime or settings.MEMPORTAL_MEDIA_URL_SECONDS
    parameters = {"ResponseContentType": media_type,
                  "ResponseContentDisposition": content_disposition_header(download, video.original_name)}
    response = HttpResponseRedirect(storage.url(video.file.name, parameters=parameters, expire=lifetime))
    patch_cache_control(response, private=True, no_store=True)
    return response


@require_safe
def thumbnail(request, video_id):
    video = _visible(request, video_id)
    if not video.thumbnail:
        raise Http404("no thumbnail")
    path = _local_path(default_storage, video.thumbnail)
    if path is None:  # S3: the browser fetches it there, and may reuse the redirect a while
        lifetime = settings.MEMPORTAL_MEDIA_URL_SECONDS
        response = HttpResponseRedirect(default_storage.url(video.thumbnail, expire=lifetime))
        patch_cache_control(response, private=True, max_age=min(THUMBNAIL_MAX_AGE, lifetime // 2))
        return response
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise Http404("the thumbnail is missing") from None
    response = HttpResponse(data, content_type="image/jpeg")
    patch_cache_control(response, private=True, max_age=THUMBNAIL_MAX_AGE)
    return response
