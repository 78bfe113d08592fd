"""What people, workers and the clock do to videos: a transition plus the work it starts.

Each action moves a video through uploads/lifecycle.py and returns a followups.Result: what it
did, and the work it leaves for the queue as data (relay this video, check that one). It never
enqueues: the entry point that called it does, with uploads.tasks.perform(), inside the same
transaction, so a state and the task rows that carry it forward commit together.
"""

from django.utils import timezone

from . import lifecycle, removal
from .followups import CheckVideo, RelayVideo, Result
from .lifecycle import Source
from .models import Video

S = Video.Status


def queue_upload(video, actor):
    """A stored upload becomes a queued Video with its first relay."""
    lifecycle.add_video(video, actor)
    return Result(video, (RelayVideo(str(video.pk), 0),))


def relay_accepted(video_id, result):
    """memories.ai took the file: processing, first check planned (or deleted there if we no
    longer want it). Callbacks that came early are applied by the caller afterwards."""
    video = lifecycle.accept_relay(video_id, result)
    if video.deleted_at is not None:
        return Result(video, removal.remote_deletions([video]))
    return Result(video, (CheckVideo(str(video.pk), video.next_check_at),))


def relay_failed(video_id, error, api_key=None):
    """A failed relay: retried later, rejected, or held while the team's key is fixed."""
    video, retry_at = lifecycle.fail_relay(video_id, error, api_key)
    if retry_at is None:
        return Result(video)
    return Result(video, (RelayVideo(str(video.pk), video.attempts, retry_at),))


def resume_team_queue(team_id):
    """A key became usable again: one relay for each of the team's waiting videos."""
    now = timezone.now()
    waiting = Video.objects.alive().filter(team_id=team_id, status=S.QUEUED)
    return Result(work=tuple(
        RelayVideo(str(video_id), attempts, next_at if next_at and next_at > now else None)
        for video_id, attempts, next_at in waiting.values_list("pk", "attempts", "next_attempt_at")
    ))


def requeue_stale(video_id, stale_after, source=Source.RECONCILE):
    """A relay whose worker died goes back to the queue; True when it did."""
    video = lifecycle.requeue_stale(video_id, stale_after, source)
    if video is None:
        return Result(False)
    return Result(True, (RelayVideo(str(video.pk), video.attempts),))


def plan_next_check(video_id):
    """After a status check: the next one, at a growing interval, until the maximum age."""
    next_at = lifecycle.plan_next_check(video_id)
    if next_at is None:
        return Result(None)
    return Result(next_at, (CheckVideo(str(video_id), next_at),))


def check_overdue(video_id):
    """reconcile: a processing video's check should have run a while ago (its task was lost)."""
    lifecycle.bring_check_forward(video_id)
    return Result(True, (CheckVideo(str(video_id)),))


def retry(video_id, actor, source=Source.USER):
    if not lifecycle.retry(video_id, actor, source):
        return Result(False)
    return Result(True, (RelayVideo(str(video_id), 0),))


def cancel(video_id, actor, source=Source.USER):
    return Result(lifecycle.cancel(video_id, actor, source))


def request_check(video_id, actor, source=Source.USER):
    if not lifecycle.request_check(video_id, actor, source):
        return Result(False)
    return Result(True, (CheckVideo(str(video_id)),))
