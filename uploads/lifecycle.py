"""Every change of a video's state on the portal's side, in one place (what memories.ai reports
is applied by uploads/reports.py, the same way).

The upload view, the relay and status-check tasks, the callback view, the reconciler and the
admin all move videos through these functions (most of them through uploads/actions.py, which
adds the work a change starts). Each transition runs in its own transaction, re-reads the row
under a lock, checks the state it starts from, and writes a VideoEvent; so a duplicate or late
arrival finds the video already moved and changes nothing. Nothing here enqueues a task: a
transition returns what its caller needs to decide the follow-up work.
"""

import logging
import random
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from . import pacing, thumbnails
from .clock import database_time
from .memories import CONFIG, KEY, REJECT, current_place
from .models import (
    ApiKey, AuditEvent, CallbackRecord, RelayHold, Video, VideoEvent, audit, new_work_token, token_digest,
)

logger = logging.getLogger(__name__)
S = Video.Status
Source = VideoEvent.Source
AWAITING_ANSWER = (S.QUEUED, S.SENDING)


def record(video, source, from_status, to_status, message="", remote_status="", actor=None):
    """Write the event of a change (the caller holds the video's lock). A video that stops
    waiting for the relay's answer without a number settles its early callbacks here: they
    were kept for an answer that will not come."""
    if from_status != to_status:
        # Retention counts from here (uploads/removal.py).
        video.status_changed_at = timezone.now()
        Video.objects.filter(pk=video.pk).update(status_changed_at=video.status_changed_at)
    if not video.video_no and (video.deleted_at is not None or to_status not in AWAITING_ANSWER):
        CallbackRecord.objects.filter(video=video, outcome=CallbackRecord.Outcome.PENDING).update(
            outcome=CallbackRecord.Outcome.STALE,
            detail=f"the video was {'deleted' if video.deleted_at else to_status} before memories.ai's answer")
    return VideoEvent.objects.create(
        video=video, source=source, from_status=from_status or "", to_status=to_status or "",
        message=message[:500], remote_status=remote_status[:40], actor=actor,
    )


def locked(video_id):
    """The video, re-read under a lock on its own row (of=self: never the team's row as well,
    so a claim that locks team then video and a cancel that locks video then team cannot
    deadlock)."""
    return Video.objects.select_for_update(of=("self",)).select_related("team").get(pk=video_id)


# --- Upload -------------------------------------------------------------------------------

def add_video(video, actor):
    """A stored upload becomes a queued Video (the caller enqueues its relay in this transaction)."""
    with transaction.atomic():
        video.relay_token = new_work_token()
        video.save()
        record(video, Source.UPLOAD, "", S.QUEUED, f"{video.original_name} stored ({video.size} bytes)",
               actor=actor)
    return video


# --- Relay --------------------------------------------------------------------------------

def claim_slot_and_video(video, attempt, token, api_key):
    """Take the slot of the key's memories.ai account and the video together: (claimed, when to
    try again if paced).

    One transaction, so another worker never sees the slot taken while this video still looks
    queued (it would count it as ahead of itself and wait one slot too long); and a slot taken
    for a video that another task claimed first is given back (rolled back with the claim).
    """
    account_id = api_key.pacing_account_id()
    with transaction.atomic():
        slot_free_at = pacing.claim_account_slot(account_id)
        claimed = slot_free_at is None and claim_for_relay(video.pk, attempt, token, api_key,
                                                           place_for_team(video.team_id))
        if slot_free_at is None and not claimed:
            transaction.set_rollback(True)
    if slot_free_at is not None:
        return False, pacing.turn_of(video, account_id, slot_free_at)
    return claimed, None


def place_for_team(team_id):
    """Where a team's next upload goes at memories.ai: the configured API family and, with v1,
    the team's namespace, derived from its primary key (stable across renames and slug changes)."""
    return current_place(f"{settings.MEMORIES_NAMESPACE_PREFIX}{team_id}")


def record_media(video_id, info):
    """What the stored file holds (uploads/probe.py MediaInfo) and its still, kept beside it."""
    Video.objects.filter(pk=video_id).update(media_checked_at=timezone.now(), duration_seconds=info.duration_seconds,
        video_codec=info.video_codec_name, width=info.width or None, height=info.height or None, has_audio=info.has_audio)
    thumbnails.keep(video_id, info.thumbnail)


def refuse_media(video_id, token, reason):
    """queued -> rejected before any slot is spent or byte sent: memories.ai would refuse the
    file (`reason`, in the user's words). Only for the current relay token; the stored file is
    kept as long as a rejected video's is (Retry probes it again)."""
    with transaction.atomic():
        video = locked(video_id)
        if video.status != S.QUEUED or video.relay_token != token or video.deleted_at is not None:
            return video
        video.status = S.REJECTED
        video.relay_token = ""
        video.next_attempt_at = None
        video.last_error = f"Not sent to memories.ai: {reason}."
        video.save()
        record(video, Source.RELAY, S.QUEUED, S.REJECTED, video.last_error)
    return video


def claim_for_relay(video_id, attempt, token, api_key, place):
    """queued -> sending, only for the current relay token and attempt (two task rows, one send),
    to be sent to `place` (memories.Place), which the video keeps for every later call.

    The callback URL's digest is set here, from the token derived for this video, so the URL
    given to memories.ai with this send is the one the callback view will find.
    """
    generation = Video.objects.values_list("callback_generation", flat=True).get(pk=video_id)
    digest = token_digest(Video(pk=video_id, callback_generation=generation).callback_token)
    with transaction.atomic():
        claimed = Video.objects.filter(
            pk=video_id, status=S.QUEUED, attempts=attempt, attempts__lt=settings.MEMPORTAL_MAX_ATTEMPTS,
            relay_token=token, deleted_at__isnull=True,
        ).update(status=S.SENDING, attempts=attempt + 1, heartbeat_at=database_time(), next_attempt_at=None, api_key=api_key,
                 callback_digest=digest, api_family=place.family, namespace=place.namespace)
        if claimed:
            video = Video.objects.get(pk=video_id)
            record(video, Source.RELAY, S.QUEUED, S.SENDING, f"attempt {attempt + 1}: sending with key {api_key.masked}")
    return bool(claimed)


def heartbeat(video_id, claimed):
    """The relay of claim number `claimed` is still sending (a relay taken for dead whose video
    was claimed again keeps quiet: its heartbeat must not make the new claim look alive). The
    database's clock, which reconcile compares it with."""
    Video.objects.filter(pk=video_id, status=S.SENDING, attempts=claimed).update(heartbeat_at=database_time())


def accept_relay(video_id, result):
    """memories.ai answered 0000. Returns (video, copies to delete at memories.ai, check planned).

    sending (or queued: reconcile took the relay for dead while it still waited for the answer)
    -> processing, with a new check chain. A second accepted copy (a relay re-sent after one
    taken for dead) never replaces the first: it is recorded and deleted there. A copy that
    arrives for a video that no longer wants it (cancelled, given up, deleted) is kept on the
    row and deleted there.
    """
    with transaction.atomic():
        video = locked(video_id)
        if video.video_no and video.video_no != result.video_no:
            record(video, Source.RELAY, video.status, video.status,
                   f"memories.ai accepted a second copy as {result.video_no}; keeping {video.video_no} "
                   "and deleting the second copy there", remote_status=result.status)
            return video, [result.video_no], False
        if video.video_no == result.video_no:
            return video, [], False
        wanted = video.status in (S.SENDING, S.QUEUED) and video.deleted_at is None
        if not wanted:
            logger.warning("relay answer for video %s found it %s; deleting the copy", video.pk, video.status)
            video.video_no = result.video_no
            video.save(update_fields=["video_no", "updated_at"])
            record(video, Source.RELAY, video.status, video.status,
                   f"memories.ai accepted it as {result.video_no} after it was {video.get_status_display().lower()}"
                   f"{' and deleted' if video.deleted_at else ''}; deleting that copy there",
                   remote_status=result.status)
            return video, [result.video_no], False
        video.video_no = result.video_no
        video.video_name = result.video_name
        video.remote_status = result.status
        video.remote_uploaded_at = result.uploaded_at
        video.last_error = ""
        from_status = video.status
        # QUEUED: the answer wins, so the queued re-send finds the video moved and sends no copy.
        video.status = S.PROCESSING
        video.heartbeat_at = None
        video.next_attempt_at = None
        video.relay_token = ""
        video.check_token = new_work_token()
        video.next_check_at = timezone.now() + timedelta(seconds=settings.MEMPORTAL_STATUS_FIRST_CHECK_SECONDS)
        video.save()
        if video.api_key_id:
            pacing.clear_backoff(video.api_key.pacing_account_id())
        record(video, Source.RELAY, from_status, video.status,
               f"memories.ai accepted it as {result.video_no}", remote_status=result.status)
    return video, [], True


def backoff_seconds(attempt):
    base = settings.MEMPORTAL_RETRY_BASE_SECONDS * (2 ** max(attempt - 1, 0))
    return min(base, 3600) * random.uniform(0.8, 1.2)


def fail_relay(video_id, claimed, error, api_key=None):
    """Sort a failed relay of claim number `claimed`: retry later, reject the video, or hold it
    while the key is fixed. A relay taken for dead whose video was claimed again changes nothing.

    Returns (video, when to try again): the time only when a retry is planned.
    """
    with transaction.atomic():
        video = locked(video_id)
        if video.status != S.SENDING or video.attempts != claimed:
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
                   f"waiting for a working API key: {error}", remote_status=error.answer)
        elif error.kind == CONFIG:
            # Not the video's fault either, and no team's: every relay waits behind one switch.
            video.status = S.QUEUED
            video.attempts = max(video.attempts - 1, 0)
            video.save()
            hold_relays(str(error))
            record(video, Source.RELAY, S.SENDING, S.QUEUED,
                   f"waiting for an operator to fix the memories.ai settings: {error}", remote_status=error.answer)
        elif error.kind == REJECT:
            video.status = S.REJECTED
            video.save()
            record(video, Source.RELAY, S.SENDING, S.REJECTED, str(error), remote_status=error.answer)
        elif video.deleted_at is not None:
            video.status = S.REJECTED
            video.last_error = "deleted while it was being sent"
            video.save()
            record(video, Source.RELAY, S.SENDING, S.REJECTED, video.last_error, remote_status=error.answer)
        elif video.attempts >= settings.MEMPORTAL_MAX_ATTEMPTS:
            video.status = S.REJECTED
            video.last_error = f"Gave up after {video.attempts} attempts. Last error: {error}"
            video.save()
            record(video, Source.RELAY, S.SENDING, S.REJECTED, video.last_error, remote_status=error.answer)
        else:
            run_after = timezone.now() + timedelta(seconds=backoff_seconds(video.attempts))
            if error.rate_limited:
                sender = api_key or video.api_key
                if sender is not None:
                    run_after = max(run_after, pacing.push_back_account_slot(sender.pacing_account_id()))
            video.status = S.QUEUED
            video.next_attempt_at = run_after
            video.relay_token = new_work_token()
            video.save()
            record(video, Source.RELAY, S.SENDING, S.QUEUED,
                   f"will try again at {run_after:%H:%M:%S} UTC: {error}", remote_status=error.answer)
            return video, run_after
    return video, None


def hold_relays(reason):
    """Every team's relays wait behind one switch that the operator sees and clears."""
    if RelayHold.in_force() is None:
        RelayHold.objects.create(reason=reason[:500])
        logger.error("relays held for every team until an operator clears the hold "
                     "(manage.py relay_hold --clear): %s", reason)


def clear_relay_hold(actor=None):
    """The operator fixed the settings: the hold ends. Returns how many holds were in force."""
    return RelayHold.objects.filter(cleared_at__isnull=True).update(cleared_at=timezone.now(), cleared_by=actor)


def requeue_stale(video_id, stale_after, source=Source.RECONCILE):
    """A relay whose heartbeat stopped (worker killed): back to queued with a new relay token, or
    rejected once its attempts are spent. Returns the video when it is queued again, else None."""
    with transaction.atomic():
        video = locked(video_id)
        if video.status != S.SENDING or Video.objects.filter(pk=video_id).beating(stale_after).exists():
            return None
        video.heartbeat_at = None
        if video.attempts >= settings.MEMPORTAL_MAX_ATTEMPTS:
            video.status = S.REJECTED
            video.relay_token = ""
            video.last_error = (f"Gave up after {video.attempts} attempts. Last error: the relay stopped "
                                "without an answer (worker stopped?).")
            video.save()
            record(video, source, S.SENDING, S.REJECTED, video.last_error)
            return None
        video.status = S.QUEUED
        video.relay_token = new_work_token()
        video.save()
        record(video, source, S.SENDING, S.QUEUED,
               "the relay stopped without an answer (worker stopped?); sending again. "
               "memories.ai may hold a second copy if the first one had arrived.")
    return video


def renew_relay(video_id, token):
    """A relay task that must wait hands its turn to a successor: a new token, or None when
    its own token is no longer current (someone else owns the video's relay now)."""
    new = new_work_token()
    if not Video.objects.filter(pk=video_id, status=S.QUEUED, relay_token=token).update(relay_token=new):
        return None
    return new


def resume_relay(video_id):
    """A queued video gets a new relay token (key fixed, or reconcile found it without a task).
    Returns the video, or None when it is not queued."""
    with transaction.atomic():
        video = locked(video_id)
        if video.status != S.QUEUED or video.deleted_at is not None:
            return None
        video.relay_token = new_work_token()
        video.save(update_fields=["relay_token", "updated_at"])
    return video


def stored_file_gone(video_id, claimed, reason):
    """The stored file is missing, empty or changed: nothing is sent. The user is told in plain
    words (no server path). The file's name is kept: if the storage was only misconfigured (a
    volume not mounted, the wrong bucket), Retry works once it is fixed, and purge still sees it."""
    with transaction.atomic():
        video = locked(video_id)
        if video.status != S.SENDING or video.attempts != claimed:
            return video
        video.status = S.REJECTED
        video.heartbeat_at = None
        video.relay_token = ""
        video.last_error = f"The stored copy of this video is {reason}; upload the file again."
        video.save()
        record(video, Source.RELAY, S.SENDING, S.REJECTED, video.last_error)
    return video


# --- People acting on videos --------------------------------------------------------------

def retry(video_id, actor, source=Source.USER):
    """failed/rejected -> queued for a first attempt again (the caller enqueues the relay).

    Returns the video as it was (its old copy at memories.ai, if any, is for the caller to have
    deleted there), or None when it cannot be retried."""
    with transaction.atomic():
        video = locked(video_id)
        if video.status not in (S.FAILED, S.REJECTED) or not video.file or video.deleted_at:
            return None
        old = Video.objects.get(pk=video_id)
        before = video.status
        video.status = S.QUEUED
        video.attempts = 0
        video.next_attempt_at = None
        video.relay_token = new_work_token()
        video.media_checked_at = None  # what it holds is read again before it is sent
        video.video_no = ""
        video.remote_status = ""
        video.last_error = ""
        video.save()
        message = f"retry requested; the old copy {old.video_no} is deleted at memories.ai" if old.video_no else (
            "retry requested")
        record(video, source, before, S.QUEUED, message, actor=actor)
    return old


def cancel(video_id, actor, source=Source.USER):
    with transaction.atomic():
        video = locked(video_id)
        if video.status != S.QUEUED or video.deleted_at:
            return False
        video.status = S.CANCELLED
        video.next_attempt_at = None
        video.save()
        record(video, source, S.QUEUED, S.CANCELLED, "cancelled", actor=actor)
    return True


def rotate_callback(video_id, actor, source=Source.ADMIN):
    """A leaked callback address stops working: the video gets a new token (a new generation of
    the HMAC). memories.ai keeps the address it was given with the upload, so from now on status
    checks bring this video's status. Returns the video."""
    with transaction.atomic():
        video = locked(video_id)
        video.callback_generation += 1
        video.callback_digest = token_digest(video.callback_token)
        video.save(update_fields=["callback_generation", "callback_digest", "updated_at"])
        record(video, source, video.status, video.status,
               "callback address rotated: the old one no longer works; memories.ai keeps the address it "
               "was given, so status checks bring this video's status", actor=actor)
        audit(AuditEvent.Action.CALLBACK_ROTATED, f"{video.display_name} ({video.pk})", team=video.team, actor=actor)
    return video


def key_for(video) -> ApiKey | None:
    """The key to ask memories.ai about an uploaded video: the one that uploaded it, if kept."""
    if video.api_key_id and ApiKey.objects.filter(pk=video.api_key_id).exists():
        return video.api_key
    return video.team.usable_key()
