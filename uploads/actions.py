"""What people, workers and the clock do to videos: a transition plus the work it starts.

Each action moves a video through uploads/lifecycle.py (or uploads/reports.py) and returns a
followups.Result: what it did, and the work it leaves for the queue as data (relay this video
with this token, check that one). It never enqueues: the entry point that called it does, with
uploads.tasks.perform(), inside the same transaction, so a new token and the one task row that
carries it commit together.
"""

from django.db import transaction

from . import lifecycle, removal, reports
from .followups import CheckVideo, RelayVideo, Result
from .lifecycle import Source
from .models import Team, Video

S = Video.Status


def _relay(video):
    return RelayVideo(str(video.pk), video.attempts, video.relay_token, video.next_attempt_at)


def queue_upload(video, actor):
    """A stored upload becomes a queued Video with its first relay."""
    lifecycle.add_video(video, actor)
    return Result(video, (RelayVideo(str(video.pk), 0, video.relay_token),))


def relay_later(video_id, attempt, token, run_after):
    """A relay that must wait (paced, or not yet due) hands its turn to one successor."""
    new = lifecycle.renew_relay(video_id, token)
    if new is None:
        return Result(False)
    return Result(True, (RelayVideo(str(video_id), attempt, new, run_after),))


def relay_accepted(video_id, result):
    """memories.ai took the file: processing with its first check planned; copies the video does
    not keep (a second one, or one for a video no longer wanted) are deleted there. Callbacks
    that came early are applied by the caller afterwards."""
    video, unwanted, check = lifecycle.accept_relay(video_id, result)
    work = removal.remote_deletions([video], video_nos=unwanted) if unwanted else ()
    if check:
        work += (CheckVideo(str(video.pk), video.check_token, video.next_check_at),)
    return Result(video, work)


def relay_failed(video_id, claimed, error, api_key=None):
    """A failed relay (of claim number `claimed`): retried later, rejected, or held while the
    team's key is fixed."""
    video, retry_at = lifecycle.fail_relay(video_id, claimed, error, api_key)
    if retry_at is None:
        return Result(video)
    return Result(video, (_relay(video),))


def media_refused(video_id, token, reason):
    return Result(lifecycle.refuse_media(video_id, token, reason))


def stored_file_gone(video_id, claimed, reason):
    return Result(lifecycle.stored_file_gone(video_id, claimed, reason))


def resume_team_queue(team_id):
    """A key became usable again: the team's waiting videos move, one relay each."""
    waiting = Video.objects.alive().filter(team_id=team_id, status=S.QUEUED).values_list("pk", flat=True)
    return resume_videos(waiting)


def clear_relay_hold(actor=None):
    """The operator cleared the configuration hold: every waiting video with a usable key moves."""
    if not lifecycle.clear_relay_hold(actor):
        return Result(0)
    waiting = (Video.objects.alive().filter(status=S.QUEUED, team__in=Team.objects.with_usable_key())
               .values_list("pk", flat=True))
    return resume_videos(waiting)


def resume_videos(video_ids):
    """Queued videos without a way forward get one relay each (a new token supersedes any other)."""
    work = []
    for video_id in video_ids:
        video = lifecycle.resume_relay(video_id)
        if video is not None:
            work.append(_relay(video))
    return Result(len(work), tuple(work))


def requeue_stale(video_id, stale_after, source=Source.RECONCILE):
    """A relay whose worker died goes back to the queue (or is given up); True when queued."""
    video = lifecycle.requeue_stale(video_id, stale_after, source)
    if video is None:
        return Result(False)
    return Result(True, (_relay(video),))


def plan_next_check(video_id, token):
    """After a status check: the next one, at a growing interval, until the maximum age."""
    planned = reports.plan_next_check(video_id, token)
    if planned is None:
        return Result(None)
    new, due = planned
    return Result(due, (CheckVideo(str(video_id), new, due),))


def check_now(video_id, actor=None, source=None):
    """A check now, as the video's one check chain (it supersedes any planned one)."""
    token = reports.start_check(video_id, actor, source)
    if token is None:
        return Result(False)
    return Result(True, (CheckVideo(str(video_id), token),))


def rotate_callback(video_id, actor, source=Source.ADMIN):
    """A new callback address; a processing video is checked at once (memories.ai's callbacks
    to the old address no longer count)."""
    video = lifecycle.rotate_callback(video_id, actor, source)
    return Result(video, check_now(video_id).work if video.status == Video.Status.PROCESSING else ())


def retry(video_id, actor, source=Source.USER):
    """Send a failed or rejected video again; the copy memories.ai could not process is deleted there."""
    old = lifecycle.retry(video_id, actor, source)
    if old is None:
        return Result(False)
    work = removal.remote_deletions([old]) if old.video_no else ()
    return Result(True, (_relay(Video.objects.get(pk=video_id)),) + work)


def cancel(video_id, actor, source=Source.USER):
    return Result(lifecycle.cancel(video_id, actor, source))


def request_check(video_id, actor, source=Source.USER):
    """Someone pressed "Check now"."""
    return check_now(video_id, actor, source)


def rename(video_id, title, actor, source=Source.USER):
    """A new title ("" shows the file name), with its event; no work follows."""
    with transaction.atomic():
        video = lifecycle.locked(video_id)
        if video.title != title:
            before = video.display_name
            Video.objects.filter(pk=video.pk).update(title=title)
            video.title = title
            lifecycle.record(video, source, video.status, video.status,
                             f"renamed from “{before}” to “{video.display_name}”", actor=actor)
    return Result(video)
