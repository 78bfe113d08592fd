"""Background work: relaying videos to memories.ai, checking their status, deleting them there;
and the one place work is enqueued (perform/enqueue), for every entry point.

Arguments are JSON (video ids as strings). A task never sleeps waiting for a pacing slot: it
re-enqueues itself with run_after. A task may run twice or late; the conditional claims in
uploads/lifecycle.py make that harmless.
"""

import logging
import time
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.tasks import task
from django.utils import timezone

from . import actions, lifecycle, memories
from .crypto import ApiKeyDecryptionError
from .followups import CheckVideo, DeleteRemoteVideos, RelayVideo
from .models import ApiKey, Video

logger = logging.getLogger(__name__)
S = Video.Status
HEARTBEAT_EVERY_SECONDS = 2.0


def perform(action, *args, **kwargs):
    """Run an action and enqueue the work it returns, in one transaction; return its value."""
    with transaction.atomic():
        result = action(*args, **kwargs)
        enqueue(result.work)
    return result.value


def enqueue(work):
    """Turn follow-up work (uploads/followups.py) into task rows."""
    for item in work:
        match item:
            case RelayVideo(video_id=video_id, attempt=attempt, run_after=run_after):
                _later(relay_video, run_after).enqueue(video_id, attempt)
            case CheckVideo(video_id=video_id, run_after=run_after):
                _later(check_video, run_after).enqueue(video_id)
            case DeleteRemoteVideos(key_id=key_id, video_nos=video_nos, attempt=attempt, run_after=run_after):
                _later(delete_remote_videos, run_after).enqueue(key_id, list(video_nos), attempt)
            case _:
                raise TypeError(f"not follow-up work: {item!r}")


def _later(task_, run_after):
    return task_.using(run_after=run_after) if run_after is not None else task_


@task(queue_name="relay")
def relay_video(video_id: str, attempt: int):
    """Send one stored video to memories.ai, if it is still waiting for this attempt."""
    video = Video.objects.alive().select_related("team").filter(pk=video_id).first()
    if video is None or video.status != S.QUEUED or video.attempts != attempt:
        return "stale"
    now = timezone.now()
    if video.next_attempt_at and video.next_attempt_at > now:
        enqueue([RelayVideo(video_id, attempt, video.next_attempt_at)])
        return "not yet"
    key = video.team.usable_key()
    if key is None:
        # The video waits in `queued`; fixing the key resumes the team's queue.
        return "no usable key"
    claimed, retry_at = lifecycle.claim_slot_and_video(video, attempt, key)
    if retry_at is not None:
        enqueue([RelayVideo(video_id, attempt, retry_at)])
        return "paced"
    if not claimed:
        return "claimed elsewhere"

    last_beat = time.monotonic()

    def on_progress(sent):
        nonlocal last_beat
        if time.monotonic() - last_beat >= HEARTBEAT_EVERY_SECONDS:
            last_beat = time.monotonic()
            lifecycle.heartbeat(video.pk)

    try:
        raw_key = key.reveal()
        with video.file.open("rb") as fileobj:
            result = memories.upload(
                raw_key, fileobj, size=video.size, filename=video.original_name,
                content_type=video.content_type, callback_url=video.callback_url(), on_progress=on_progress,
            )
    except memories.MemoriesError as error:
        logger.info("relay of video %s failed: %s", video.pk, error)
        perform(actions.relay_failed, video.pk, error, api_key=key)
        return f"failed: {error.kind}"
    except ApiKeyDecryptionError as error:
        perform(actions.relay_failed, video.pk, memories.MemoriesError(memories.KEY, str(error)), api_key=key)
        return "key cannot be decrypted"
    except OSError as error:
        # The stored file cannot be read: retry (storage may be back later), bounded by attempts.
        logger.warning("relay of video %s could not read the stored file: %s", video.pk, error)
        perform(actions.relay_failed, video.pk,
                memories.MemoriesError(memories.RETRY, f"stored file unreadable: {error}"))
        return "storage error"
    key.mark_used()
    accepted = perform(actions.relay_accepted, video.pk, result)
    if accepted.deleted_at is None:
        lifecycle.apply_pending_callbacks(video.pk)
    return "sent"


@task(queue_name="default")
def check_video(video_id: str):
    """Ask memories.ai where a processing video stands; plan the next check if not final."""
    video = Video.objects.alive().select_related("team", "api_key").filter(pk=video_id).first()
    if video is None or video.status != S.PROCESSING or not video.video_no:
        return "nothing to check"
    key = lifecycle.key_for(video)
    if key is None:
        perform(actions.plan_next_check, video.pk)
        return "no key"
    Video.objects.filter(pk=video.pk).update(checks=video.checks + 1, last_checked_at=timezone.now())
    try:
        remote = memories.find_video(key.reveal(), video.video_no)
    except (memories.MemoriesError, ApiKeyDecryptionError) as error:
        logger.info("status check of video %s failed: %s", video.pk, error)
        perform(actions.plan_next_check, video.pk)
        return "check failed"
    if remote is not None:
        lifecycle.apply_remote_status(video.pk, remote.status, lifecycle.Source.STATUS_CHECK,
                                      f"status check: {remote.status}")
    perform(actions.plan_next_check, video.pk)
    return remote.status if remote else "unknown to memories.ai"


@task(queue_name="default")
def delete_remote_videos(key_id: int, video_nos: list[str], attempt: int):
    """Ask memories.ai to delete up to 100 videos; unknown numbers count as deleted."""
    key = ApiKey.objects.filter(pk=key_id).first()
    if key is None:
        logger.warning("cannot delete %d video(s) at memories.ai: their key was removed", len(video_nos))
        return "no key"
    try:
        memories.delete_videos(key.reveal(), video_nos)
    except (memories.MemoriesError, ApiKeyDecryptionError) as error:
        if attempt + 1 >= settings.MEMPORTAL_MAX_ATTEMPTS or getattr(error, "kind", "") == memories.REJECT:
            logger.error("gave up deleting %d video(s) at memories.ai: %s", len(video_nos), error)
            return "gave up"
        run_after = timezone.now() + timedelta(seconds=lifecycle.backoff_seconds(attempt + 1))
        enqueue([DeleteRemoteVideos(key_id, tuple(video_nos), attempt + 1, run_after)])
        return "will retry"
    Video.objects.filter(video_no__in=video_nos, deleted_at__isnull=False).update(remote_deleted_at=timezone.now())
    return f"deleted {len(video_nos)}"
