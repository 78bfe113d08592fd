"""The thumbnails of stored videos: a JPEG still beside the video's file, in the same storage.

The relay worker's probe makes it (uploads/probe.py, in the time-limited child process, never in a
web request) and `lifecycle.record_media` keeps it here; uploads/removal.py removes it wherever
the stored file is removed (deletion, retention). Its name is the video's file name with
`.thumb.jpg` for the suffix (videos/<team>/2026/12/<id>.mp4 -> <id>.thumb.jpg), so it sorts beside
the video and a folder listing shows which video it belongs to. `Video.thumbnail` holds its
storage name, "" when there is none.

A thumbnail is never worth a failed relay: a storage error here is logged and leaves it empty.
"""

import logging
from pathlib import PurePosixPath

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from .models import Video

logger = logging.getLogger(__name__)
SUFFIX = ".thumb.jpg"


def name_for(video_name):
    """The thumbnail's storage name for the video stored as `video_name`."""
    return str(PurePosixPath(video_name).with_suffix(SUFFIX))


def keep(video_id, jpeg):
    """Store `jpeg` as the video's thumbnail, unless it has one already (a retry probes again) or
    has no stored file; its storage name, or "" when none was kept.

    The row is updated only while it still holds the same file and no thumbnail, so a video whose
    file was removed meanwhile (deleted while its probe ran) does not get one back: the still just
    stored is removed again."""
    if not jpeg:
        return ""
    row = Video.objects.filter(pk=video_id).values("file", "thumbnail").first()
    if not row or not row["file"] or row["thumbnail"]:
        return ""
    target = name_for(row["file"])
    try:
        # No row names a file at `target` (this video has no thumbnail): one there is left over
        # from a run that stopped before its row was updated, and is replaced.
        if default_storage.exists(target):
            default_storage.delete(target)
        name = default_storage.save(target, ContentFile(jpeg))
    except Exception as error:  # any storage's errors (OSError, botocore's): logged, never raised
        logger.warning("the thumbnail of video %s could not be stored (%s)", video_id, type(error).__name__)
        return ""
    if Video.objects.filter(pk=video_id, file=row["file"], thumbnail="").update(thumbnail=name):
        return name
    remove(name)
    return ""


def remove(name):
    """Delete a stored thumbnail; a storage error is logged (a thumbnail left behind is small)."""
    if not name:
        return
    try:
        default_storage.delete(name)
    except Exception as error:
        logger.warning("the thumbnail %s could not be removed (%s)", name, type(error).__name__)
