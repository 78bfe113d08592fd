"""What memories.ai reports about a video (callbacks, status checks), and the check chain.

Every status memories.ai reports goes through apply_remote_status(), under the video's lock, in
the same way as the portal's own transitions (uploads/lifecycle.py): a duplicate or late report
finds the video already moved and changes nothing, and `ready` never moves back. A callback that
arrives before the relay's answer is decided `pending` under that lock, so the answer (which
takes the same lock) finds it and applies it; reconcile settles any that a relay ending otherwise,
a deletion or a dying process left pending.

One check chain per processing video: each check carries the video's `check_token`; asking again
("Check now", reconcile) replaces the token, and a superseded check does nothing.
"""

import logging
import traceback
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .lifecycle import AWAITING_ANSWER, Source, locked, record
from .memories import FAILED_WORDS, PARSED_WORDS, UNPARSED_WORDS
from .models import CallbackRecord, Video, new_work_token

logger = logging.getLogger(__name__)
S = Video.Status
Outcome = CallbackRecord.Outcome


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


def apply_remote_status(video_id, remote_status, source, message="", video_no=None, check_token=None):
    """Apply a status memories.ai reported; return the outcome (applied/duplicate/stale).

    A status check names the copy it asked about and its token: an answer about another copy
    (the video was retried meanwhile), or from a superseded check, is stale."""
    with transaction.atomic():
        video = locked(video_id)
        if (video_no is not None and video.video_no != video_no) or (
                check_token is not None and video.check_token != check_token):
            return Outcome.STALE
        return _apply_locked(video, remote_status, source, message)


def _apply_locked(video, remote_status, source, message):
    settled = settled_outcome(video, remote_status)
    if settled is not None:
        return settled
    before, target = video.status, target_state(remote_status)
    if video.status == S.PROCESSING and target in (S.READY, S.FAILED):
        video.status = target
        video.remote_status = remote_status
        video.next_check_at = None
        video.check_token = ""
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
    cb = CallbackRecord.objects.get(pk=record_id)
    return apply_stored_callback(cb, cb.video_id)


def apply_stored_callback(cb, video_id):
    """Decide and apply a stored callback under the video's lock; its outcome is written in the
    same transaction. A failure leaves an `error` record with the traceback (an operator can
    replay it)."""
    try:
        with transaction.atomic():
            video = locked(video_id)
            if video.deleted_at is not None:
                outcome, detail = Outcome.STALE, "the video was deleted"
            elif video.video_no == "" and video.status in AWAITING_ANSWER:
                outcome, detail = Outcome.PENDING, "arrived before the relay's answer; applied when it comes"
            elif cb.video_no != video.video_no:
                outcome, detail = Outcome.REFUSED, f"names {cb.video_no}, the video is {video.video_no or 'unnumbered'}"
            else:
                outcome = _apply_locked(video, cb.remote_status, Source.CALLBACK, f"callback: {cb.remote_status}")
                detail = ""
            CallbackRecord.objects.filter(pk=cb.pk).update(outcome=outcome, detail=detail)
        return outcome
    except Exception:
        logger.exception("callback %s could not be applied", cb.pk)
        CallbackRecord.objects.filter(pk=cb.pk).update(outcome=Outcome.ERROR, detail=traceback.format_exc()[-4000:])
        return Outcome.ERROR


def apply_pending_callbacks(video_id=None):
    """Callbacks that arrived before the relay's answer, applied now that it has come; with no
    video, every pending record whose video no longer waits for an answer (reconcile: the relay
    ended otherwise, the video was deleted, or a process died between the answer and this)."""
    pending = CallbackRecord.objects.filter(outcome=Outcome.PENDING, video__isnull=False)
    if video_id is not None:
        pending = pending.filter(video_id=video_id)
    else:
        pending = pending.exclude(video__video_no="", video__status__in=AWAITING_ANSWER,
                                  video__deleted_at__isnull=True)
    applied = 0
    for record_ in pending.order_by("pk"):
        applied += apply_stored_callback(record_, record_.video_id) != Outcome.PENDING
    return applied


# --- The check chain ----------------------------------------------------------------------

def plan_next_check(video_id, token):
    """After a check carrying `token`: the next one, at a growing interval, until
    MEMPORTAL_STATUS_MAX_AGE after the video entered processing (the portal's own clock, never
    memories.ai's uploadTime). Returns (new token, due) or None when the chain ends here."""
    with transaction.atomic():
        video = locked(video_id)
        if video.status != S.PROCESSING or video.deleted_at is not None or video.check_token != token:
            return None
        delay = min(settings.MEMPORTAL_STATUS_FIRST_CHECK_SECONDS * (2 ** video.checks),
                    settings.MEMPORTAL_STATUS_MAX_INTERVAL_SECONDS)
        next_at = timezone.now() + timedelta(seconds=delay)
        if next_at > video.status_changed_at + timedelta(seconds=settings.MEMPORTAL_STATUS_MAX_AGE):
            video.next_check_at = None
            video.check_token = ""
            video.save(update_fields=["next_check_at", "check_token", "updated_at"])
            return None
        video.next_check_at = next_at
        video.check_token = new_work_token()
        video.save(update_fields=["next_check_at", "check_token", "updated_at"])
        return video.check_token, next_at


def start_check(video_id, actor=None, source=None):
    """A check now, as the video's one chain: its token replaces any other, so an older check
    row finds itself superseded. With a source, the request is in the timeline ("Check now").
    Returns the new token, or None when the video is not processing."""
    with transaction.atomic():
        video = locked(video_id)
        if video.status != S.PROCESSING or video.deleted_at is not None:
            return None
        video.next_check_at = timezone.now()
        video.check_token = new_work_token()
        video.save(update_fields=["next_check_at", "check_token", "updated_at"])
        if source is not None:
            record(video, source, video.status, video.status, "status check requested", actor=actor)
    return video.check_token
