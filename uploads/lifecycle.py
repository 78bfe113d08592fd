"""Every change of a video's state, in one place.

The upload view, the relay and status-check tasks, the callback view, the reconciler and the
admin all move videos through these functions (most of them through uploads/actions.py, which
adds the work a change starts). Each transition runs in its own transaction, re-reads the row
under a lock, checks the state it starts from, and writes a VideoEvent; so a duplicate or late
arrival finds the video already moved and changes nothing. Nothing here enqueues a task: a
transition returns what its caller needs to decide the follow-up work.
"""

import logging
import random
import traceback
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from . import pacing
from .memories import FAILED_WORDS, KEY, PARSED_WORDS, REJECT, UNPARSED_WORDS
from .models import ApiKey, CallbackRecord, Team, Video, VideoEvent

logger = logging.getLogger(__name__)
S = Video.Status
Source = VideoEvent.Source
Outcome = CallbackRecord.Outcome

def record(video, source, from_status, to_status, message="", remote_status="", actor=None):
    if from_status != to_status:
        # Retention counts from here (uploads/removal.py).
        video.status_changed_at = timezone.now()
        Video.objects.filter(pk=video.pk).update(status_changed_at=video.status_changed_at)
    return VideoEvent.objects.create(
        video=video, source=source, from_status=from_status or "", to_status=to_status or "",
        message=message[:500], remote_status=remote_status[:40], actor=actor,
    )


def _locked(video_id):
    return Video.objects.select_for_update().select_related("team").get(pk=video_id)


# --- Upload -------------------------------------------------------------------------------

def add_video(video, actor):
    """A stored upload becomes a queued Video (the caller enqueues its relay in this transaction)."""
    with transaction.atomic():
        video.save()
        record(video, Source.UPLOAD, "", S.QUEUED, f"{video.original_name} stored ({video.size} bytes)",
               actor=actor)
    return video


# --- Relay --------------------------------------------------------------------------------

def claim_slot_and_video(video, attempt, api_key):
    """Take the team's slot and the video together: (claimed, when to try again if paced).

    One transaction, so another worker never sees the slot taken while this video still looks
    queued (it would count it as ahead of itself and wait one slot too long).
    """
    with transaction.atomic():
        slot_free_at = pacing.claim_team_slot(video.team_id)
        claimed = slot_free_at is None and claim_for_relay(video.pk, attempt, api_key)
    if slot_free_at is not None:
        return False, pacing.turn_of(video, slot_free_at)
    return claimed, None


def claim_for_relay(video_id, attempt, api_key):
    """queued -> sending, only if nobody else took this attempt (two task rows, one send)."""
    now = timezone.now()
    with transaction.atomic():
        claimed = Video.objects.filter(pk=video_id, status=S.QUEUED, attempts=attempt, deleted_at__isnull=True).update(
            status=S.SENDING, attempts=attempt + 1, heartbeat_at=now, next_attempt_at=None, api_key=api_key,
        )
        if claimed:
            video = Video.objects.get(pk=video_id)
            record(video, Source.RELAY, S.QUEUED, S.SENDING, f"attempt {attempt + 1}: sending with key {api_key.masked}")
    return bool(claimed)


def heartbeat(video_id):
    Video.objects.filter(pk=video_id, status=S.SENDING).update(heartbeat_at=timezone.now())


def accept_relay(video_id, result):
    """memories.ai answered 0000: sending -> processing. Returns the video, its first check planned."""
    with transaction.atomic():
        video = _locked(video_id)
        if video.status not in (S.SENDING, S.QUEUED):
            logger.warning("relay answer for video %s found it %s; recording only", video.pk, video.status)
        video.video_no = result.video_no
        video.video_name = result.video_name
        video.remote_status = result.status
        video.remote_uploaded_at = result.uploaded_at
        video.last_error = ""
        from_status = video.status
        # QUEUED: reconcile took this relay for dead while it still waited for the answer. The
        # answer wins, so the queued re-send finds the video moved and sends no second copy.
        if video.status in (S.SENDING, S.QUEUED):
            video.status = S.PROCESSING
            video.heartbeat_at = None
            video.next_attempt_at = None
        video.next_check_at = timezone.now() + timedelta(seconds=settings.MEMPORTAL_STATUS_FIRST_CHECK_SECONDS)
        video.save()
        Team.objects.filter(pk=video.team_id).update(upload_backoff_level=0)
        record(video, Source.RELAY, from_status, video.status,
               f"memories.ai accepted it as {result.video_no}", remote_status=result.status)
    return video


def apply_pending_callbacks(video_id):
    """Callbacks that arrived before the relay's answer, applied now that it has come."""
    for pending in CallbackRecord.objects.filter(video_id=video_id, outcome=Outcome.PENDING).order_by("pk"):
        apply_callback(pending.pk)


def backoff_seconds(attempt):
    base = settings.MEMPORTAL_RETRY_BASE_SECONDS * (2 ** max(attempt - 1, 0))
    return min(base, 3600) * random.uniform(0.8, 1.2)


def fail_relay(video_id, error, api_key=None):
    """Sort a failed relay: retry later, reject the video, or hold it while the key is fixed.

    Returns (video, when to try again): the time only when a retry is planned.
    """
    with transaction.atomic():
        video = _locked(video_id)
        if video.status != S.SENDING:
            return video, None
        video.heartbeat_at = None
        video.last_error = str(error)
        if error.kind == KEY:
            # Not the video's fault: the attempt does not count, the video waits for a new key.
            video.status = S.QUEUED
            video.attempts = max(video.attempts - 1, 0)
            video.save()
            if api_key is not None:
                api_key.mark_failing(str(error))
            record(video, Source.RELAY, S.SENDING, S.QUEUED,
                   f"waiting for a working API key: {error}", remote_status=error.code)
        elif error.kind == REJECT:
            video.status = S.REJECTED
            video.save()
            record(video, Source.RELAY, S.SENDING, S.REJECTED, str(error), remote_status=error.code)
        elif video.attempts >= settings.MEMPORTAL_MAX_ATTEMPTS:
            video.status = S.REJECTED
            video.last_error = f"Gave up after {video.attempts} attempts. Last error: {error}"
            video.save()
            record(video, Source.RELAY, S.SENDING, S.REJECTED, video.last_error, remote_status=error.code)
        else:
            run_after = timezone.now() + timedelta(seconds=backoff_seconds(video.attempts))
            if error.rate_limited:
                run_after = max(run_after, pacing.push_back_team_slot(video.team_id))
            video.status = S.QUEUED
            video.next_attempt_at = run_after
            video.save()
            record(video, Source.RELAY, S.SENDING, S.QUEUED,
                   f"will try again at {run_after:%H:%M:%S} UTC: {error}", remote_status=error.code)
            return video, run_after
    return video, None


def requeue_stale(video_id, stale_after, source=Source.RECONCILE):
    """A relay whose heartbeat stopped (worker killed): back to queued. Returns the video, or None."""
    stale_before = timezone.now() - timedelta(seconds=stale_after)
    with transaction.atomic():
        video = _locked(video_id)
        if video.status != S.SENDING or (video.heartbeat_at and video.heartbeat_at > stale_before):
            return None
        video.status = S.QUEUED
        video.heartbeat_at = None
        video.save()
        record(video, source, S.SENDING, S.QUEUED,
               "the relay stopped without an answer (worker stopped?); sending again. "
               "memories.ai may hold a second copy if the first one had arrived.")
    return video


# --- Remote status (callbacks and status checks) ------------------------------------------

def target_state(remote_status):
    """The portal's state for a status word of memories.ai (None for a word it does not know)."""
    if remote_status in PARSED_WORDS:
        return S.READY
    if remote_status in FAILED_WORDS:
        return S.FAILED
    if remote_status in UNPARSED_WORDS:
        return S.PROCESSING
    return None


def settled_outcome(video, remote_status):
    """The outcome when this status changes nothing, decided from a plain read: no lock, no
    transaction. That is a video that can no longer change (ready, cancelled, deleted), or a
    processing one told again what it already knows (memories.ai repeats itself). None when
    the status may move the video."""
    if video.deleted_at is not None or video.status == S.CANCELLED:
        return Outcome.STALE
    if video.status == S.READY:
        return Outcome.DUPLICATE if target_state(remote_status) == S.READY else Outcome.STALE
    if video.status == S.PROCESSING and video.remote_status == remote_status:
        return Outcome.DUPLICATE
    return None


def apply_remote_status(video_id, remote_status, source, message="", callback_id=None):
    """Apply a status memories.ai reported; return the outcome (applied/duplicate/stale).

    With callback_id, that record's outcome is written in the same transaction.
    """
    with transaction.atomic():
        video = _locked(video_id)
        outcome = _apply_locked(video, remote_status, source, message)
        if callback_id is not None:
            CallbackRecord.objects.filter(pk=callback_id).update(outcome=outcome, detail="")
    return outcome


def _apply_locked(video, remote_status, source, message):
    settled = settled_outcome(video, remote_status)
    if settled is not None:
        return settled
    before, target = video.status, target_state(remote_status)
    if video.status == S.PROCESSING and target in (S.READY, S.FAILED):
        video.status = target
        video.remote_status = remote_status
        video.next_check_at = None
        if target == S.FAILED:
            video.last_error = f"memories.ai could not process the video ({remote_status})."
        video.save()
        record(video, source, before, target, message, remote_status=remote_status)
        return Outcome.APPLIED
    if video.status == S.PROCESSING and video.remote_status != remote_status:
        # Still processing (or a status we do not know): keep the raw value, change nothing else.
        video.remote_status = remote_status
        video.save(update_fields=["remote_status", "updated_at"])
        record(video, source, before, before, message or f"memories.ai reports {remote_status}",
               remote_status=remote_status)
        return Outcome.APPLIED
    if video.status == target or (video.status == S.PROCESSING and video.remote_status == remote_status):
        return Outcome.DUPLICATE
    return Outcome.STALE


def apply_callback(record_id):
    """Apply one stored callback in its own transaction and write down what came of it."""
    cb = CallbackRecord.objects.select_related("video").get(pk=record_id)
    return apply_stored_callback(cb, cb.video)


def apply_stored_callback(cb, video):
    """apply_callback() for a record and video the caller already holds (the callback view)."""
    if video.video_no == "" and video.status in (S.QUEUED, S.SENDING):
        CallbackRecord.objects.filter(pk=cb.pk).update(
            outcome=Outcome.PENDING, detail="arrived before the relay's answer; applied when it comes")
        return Outcome.PENDING
    if cb.video_no != video.video_no:
        CallbackRecord.objects.filter(pk=cb.pk).update(
            outcome=Outcome.REFUSED, detail=f"names {cb.video_no}, the video is {video.video_no or 'unnumbered'}")
        return Outcome.REFUSED
    try:
        return apply_remote_status(video.pk, cb.remote_status, Source.CALLBACK,
                                   f"callback: {cb.remote_status}", callback_id=cb.pk)
    except Exception:
        logger.exception("callback %s could not be applied", cb.pk)
        CallbackRecord.objects.filter(pk=cb.pk).update(outcome=Outcome.ERROR, detail=traceback.format_exc()[-4000:])
        return Outcome.ERROR


def plan_next_check(video_id):
    """Plan the next status check at a growing interval, until MEMPORTAL_STATUS_MAX_AGE.

    Returns when it is due, or None when checks stop."""
    with transaction.atomic():
        video = _locked(video_id)
        if video.status != S.PROCESSING:
            return None
        since = video.remote_uploaded_at or video.created_at
        delay = min(settings.MEMPORTAL_STATUS_FIRST_CHECK_SECONDS * (2 ** video.checks),
                    settings.MEMPORTAL_STATUS_MAX_INTERVAL_SECONDS)
        next_at = timezone.now() + timedelta(seconds=delay)
        if next_at > since + timedelta(seconds=settings.MEMPORTAL_STATUS_MAX_AGE):
            video.next_check_at = None
            video.save(update_fields=["next_check_at", "updated_at"])
            return None
        video.next_check_at = next_at
        video.save(update_fields=["next_check_at", "updated_at"])
        return next_at


# --- People acting on videos --------------------------------------------------------------

def retry(video_id, actor, source=Source.USER):
    """failed/rejected -> queued for a first attempt again (the caller enqueues the relay)."""
    with transaction.atomic():
        video = _locked(video_id)
        if video.status not in (S.FAILED, S.REJECTED) or not video.file or video.deleted_at:
            return False
        before = video.status
        video.status = S.QUEUED
        video.attempts = 0
        video.next_attempt_at = None
        video.video_no = ""
        video.remote_status = ""
        video.last_error = ""
        video.save()
        record(video, source, before, S.QUEUED, "retry requested", actor=actor)
    return True


def cancel(video_id, actor, source=Source.USER):
    with transaction.atomic():
        video = _locked(video_id)
        if video.status != S.QUEUED or video.deleted_at:
            return False
        video.status = S.CANCELLED
        video.next_attempt_at = None
        video.save()
        record(video, source, S.QUEUED, S.CANCELLED, "cancelled", actor=actor)
    return True


def request_check(video_id, actor, source=Source.USER):
    """Someone asked to check a processing video now (its checks may have stopped)."""
    with transaction.atomic():
        video = _locked(video_id)
        if video.status != S.PROCESSING or video.deleted_at:
            return False
        video.next_check_at = timezone.now()
        video.save(update_fields=["next_check_at", "updated_at"])
        record(video, source, video.status, video.status, "status check requested", actor=actor)
    return True


def bring_check_forward(video_id):
    """reconcile found a check overdue (its task row was lost): it is due now."""
    Video.objects.filter(pk=video_id).update(next_check_at=timezone.now())


def key_for(video) -> ApiKey | None:
    """The key to ask memories.ai about an uploaded video: the one that uploaded it, if kept."""
    if video.api_key_id and ApiKey.objects.filter(pk=video.api_key_id).exists():
        return video.api_key
    return video.team.usable_key()
