"""Deleting videos, and the only code that removes stored files (with their thumbnails).

A deleted video leaves every list at once (its row stays, soft-deleted, for the audit trail), its
stored file is removed at once, and memories.ai is asked to delete it too, in batches of at most
100 per key. Retention (`manage.py purge_uploads`) removes the files of finished videos after
MEMPORTAL_RETENTION_DAYS; queued and rejected videos keep theirs so they can still be sent.
"""

import logging
from collections import defaultdict
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from . import thumbnails
from .followups import DeleteRemoteVideos, Result
from .lifecycle import Source, key_for, locked, record
from .models import Video

logger = logging.getLogger(__name__)
S = Video.Status
DELETE_BATCH = 100
RETAINED_UNTIL_PURGE = (S.READY, S.FAILED, S.CANCELLED)


def remove_stored_file(video, reason, source, actor=None, **still):
    """Delete the stored file of this video (if any) and its thumbnail, and note it on the video.

    The file is claimed first with a conditional UPDATE (the same name, and the conditions in
    `still`), so a video that moved meanwhile (a retry re-queued it) keeps its file. The row is
    locked while its thumbnail's name is read and cleared with the claim, so a thumbnail the
    relay's probe stores meanwhile is either read here or refused there (uploads/thumbnails.py).
    """
    name = video.file.name if video.file else ""
    if not name:
        return False
    with transaction.atomic():
        row = Video.objects.select_for_update(of=("self",)).only("thumbnail").filter(pk=video.pk).first()
        if row is None or not Video.objects.filter(pk=video.pk, file=name, **still).update(
                file="", thumbnail="", file_removed_at=timezone.now()):
            return False
    video.file.storage.delete(name)
    thumbnails.remove(row.thumbnail)
    video.thumbnail = ""
    record(video, source, video.status, video.status, f"stored file removed ({reason})", actor=actor)
    logger.info("removed stored file of video %s (%s)", video.pk, reason)
    return True


def delete_videos(video_ids, actor, source=Source.USER):
    """Soft-delete these videos and remove their files; the Result's work has memories.ai
    delete its copies.

    Each video in its own transaction, and the files removed outside any: the caller enqueues
    the work afterwards (uploads.tasks.enqueue), never holding a transaction across storage.
    """
    deleted = []
    for video_id in video_ids:
        with transaction.atomic():
            video = locked(video_id)
            if video.deleted_at is not None:
                continue
            video.deleted_at = timezone.now()
            video.next_check_at = None
            video.next_attempt_at = None
            video.relay_token = video.check_token = ""  # any task row still queued finds itself stale
            video.save(update_fields=["deleted_at", "next_check_at", "next_attempt_at", "relay_token",
                                      "check_token", "updated_at"])
            record(video, source, video.status, video.status, "deleted", actor=actor)
        remove_stored_file(video, "video deleted", source, actor)
        deleted.append(video)
    return Result(deleted, remote_deletions(deleted))


def remote_deletions(videos, video_nos=None):
    """memories.ai deletions for these videos (their video_no, or the copies named in video_nos),
    grouped by the key that can see each and the place they live in, 100 a call."""
    by_key = defaultdict(list)
    for video in videos:
        numbers = video_nos if video_nos is not None else [video.video_no]
        if video_nos is None and (not video.video_no or video.remote_deleted_at):
            continue
        key = key_for(video)
        if key is None:
            logger.warning("video %s (%s) cannot be deleted at memories.ai: its team has no key",
                           video.pk, ", ".join(numbers))
            continue
        by_key[key.pk, video.place].extend(numbers)
    return tuple(DeleteRemoteVideos(key_id, tuple(numbers[start:start + DELETE_BATCH]),
                                    family=place.family, namespace=place.namespace)
                 for (key_id, place), numbers in by_key.items() for start in range(0, len(numbers), DELETE_BATCH))


def purge_uploads(now=None):
    """Remove stored files of videos finished more than MEMPORTAL_RETENTION_DAYS ago."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.MEMPORTAL_RETENTION_DAYS)
    expired = (Video.objects.filter(status__in=RETAINED_UNTIL_PURGE, status_changed_at__lte=cutoff)
               .exclude(file=""))
    removed = 0
    for video in expired.iterator():
        removed += remove_stored_file(video, f"kept {settings.MEMPORTAL_RETENTION_DAYS} days", Source.RECONCILE,
                                      status__in=RETAINED_UNTIL_PURGE, status_changed_at__lte=cutoff)
    return removed
