"""What the invariant machine checks after every step, as functions of the database and the emulator.

"Live" work is counted from the task rows themselves: live_relays() and live_checks() are the
one place that knows how (the attempt number, and the video's fencing token once it has one).
"""

from datetime import timedelta
from itertools import pairwise

from django.apps import apps
from django.conf import settings
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from uploads.models import CallbackRecord, Video

S = Video.Status
RELAY, CHECK, DELETE = (f"uploads.tasks.{name}" for name in ("relay_video", "check_video", "delete_remote_videos"))
LIVE = ("READY", "RUNNING")
# Where a video may rest once faults stop and time moves on (besides the conditional ones below).
RESTING = {S.READY, S.CANCELLED, S.FAILED, S.REJECTED}


def task_rows(path, statuses=LIVE):
    return list(DBTaskResult.objects.filter(task_path=path, status__in=statuses))


def _token(args, index):
    """The fencing token a task row carries ("" for rows enqueued before tokens existed)."""
    return args[index] if len(args) > index else ""


def live_relays(video, relay_rows, dead=frozenset()):
    """Relay rows that can still send this video: it is queued, the row carries its attempt (and
    its relay token, where the video has one), and the row's worker was not killed."""
    if video.deleted_at or video.status != S.QUEUED:
        return []
    token = getattr(video, "relay_token", "")
    return [row for row in relay_rows if str(row.pk) not in dead
            and row.args_kwargs["args"][:2] == [str(video.pk), video.attempts]
            and _token(row.args_kwargs["args"], 2) == token]


def live_checks(video, check_rows):
    """Check rows that can still ask about this video: it is processing (a check in any other
    state does nothing and plans no successor) and the row carries its check token, if any."""
    if video.deleted_at or video.status != S.PROCESSING:
        return []
    token = getattr(video, "check_token", "")
    return [row for row in check_rows
            if row.args_kwargs["args"][:1] == [str(video.pk)] and _token(row.args_kwargs["args"], 1) == token]


def running_relay(video, relay_rows):
    """The RUNNING row that claimed this sending video (claiming attempt n makes attempts n + 1)."""
    return [row for row in relay_rows
            if row.status == "RUNNING" and row.args_kwargs["args"][:2] == [str(video.pk), video.attempts - 1]]


def relays_held():
    """The operator's switch on every relay (issue 8, defect 3), where the portal has one."""
    try:
        return apps.get_model("uploads", "RelayHold").objects.filter(cleared_at__isnull=True).exists()
    except LookupError:
        return False


def processing_since(video):
    event = video.events.filter(to_status=S.PROCESSING).exclude(from_status=S.PROCESSING).order_by("pk").last()
    return event.created_at if event else video.created_at


def checks_may_have_stopped(video):
    """Status checks stop at MEMPORTAL_STATUS_MAX_AGE; the last one planned may fall up to one
    interval short of it."""
    age = timezone.now() - processing_since(video)
    return age >= timedelta(seconds=settings.MEMPORTAL_STATUS_MAX_AGE - settings.MEMPORTAL_STATUS_MAX_INTERVAL_SECONDS)


def no_way_forward(video, relay_rows, check_rows, dead, waiting_for_reconcile):
    """Why this video that is not resting has nothing that will move it, or "" when it has.
    `waiting_for_reconcile`: a worker died holding its relay, and reconcile has not had its turn."""
    if video.deleted_at or video.status in RESTING:
        return ""
    if video.status == S.QUEUED:
        # A relay that can send it; or the key is failing or missing (the page says "waiting
        # for a working API key"), or relays are held for the operator, or a dead worker holds
        # its relay and it is reconcile's turn.
        if (live_relays(video, relay_rows, dead) or video.team.usable_key() is None or relays_held()
                or waiting_for_reconcile):
            return ""
        return f"queued (attempt {video.attempts}) with a working key and no relay task that can send it"
    if video.status == S.SENDING:
        if not running_relay(video, relay_rows):
            return "sending, but no relay is running: the relay ended without a transition"
        if video.heartbeat_at is None:
            return "sending without a heartbeat: reconcile can never re-queue it"
        return ""
    if live_checks(video, check_rows) and video.next_check_at or checks_may_have_stopped(video):
        return ""
    return "processing, before the maximum age, with no status check scheduled"


def resting(video, check_rows):
    if video.deleted_at or video.status in RESTING:
        return True
    if video.status == S.QUEUED:
        return video.team.usable_key() is None or relays_held()
    if video.status == S.PROCESSING:
        return not live_checks(video, check_rows) and video.next_check_at is None and checks_may_have_stopped(video)
    return False


def timeline_problems(video):
    """The VideoEvent rows, replayed from the upload, must end in the video's state; ready is final."""
    moves = list(video.events.order_by("pk").values_list("from_status", "to_status"))
    problems = []
    if not moves or moves[0] != ("", S.QUEUED):
        problems.append(f"the timeline does not start with the upload: {moves[:1]}")
    problems += [f"event {b} follows {a}: it starts from another state" for a, b in pairwise(moves) if b[0] != a[1]]
    if moves and moves[-1][1] != video.status:
        problems.append(f"the timeline ends in {moves[-1][1]}, the video is {video.status}")
    tos = [to for _, to in moves]
    if S.READY in tos and any(to != S.READY for to in tos[tos.index(S.READY):]):
        problems.append(f"ready moved back: {tos}")
    return problems


# memories.ai's answers that are not the file's fault (issue 8, defect 3): the key or its
# account (401/403, 0401, 0402, 0403, 9009), or a setting or proxy (3xx, 404, 405, 413). A
# send answered so spends none of the file's attempts.
NOT_THE_FILES_FAULT = {"0401", "0402", "0403", "9009", "HTTP 401", "HTTP 403", "HTTP 404", "HTTP 405",
                       "HTTP 413", *(f"HTTP {status}" for status in range(300, 400))}


def attempts_problems(video):
    """The video's attempts are the sends in its timeline since it last started (the upload or a
    retry), less those memories.ai answered with an answer that is not the file's fault."""
    events = list(video.events.order_by("pk").values_list("from_status", "to_status", "remote_status"))
    starts = [i for i, (before, after, _) in enumerate(events) if after == S.QUEUED and before in ("", S.FAILED, S.REJECTED)]
    since = events[starts[-1]:] if starts else events
    sends = sum((before, after) == (S.QUEUED, S.SENDING) for before, after, _ in since)
    free = sum(before == S.SENDING and answer in NOT_THE_FILES_FAULT for before, _, answer in since)
    if video.attempts != sends - free:
        return f"{video.attempts} attempts spent, the timeline shows {sends} sends of which {free} not the file's fault"
    return ""


def missing_file(video):
    """A video that may still be sent or retried keeps its stored file (retention removes failed
    videos' files on purpose, and says so in file_removed_at)."""
    if video.deleted_at:
        return ""
    needed = video.status in (S.QUEUED, S.SENDING, S.REJECTED) or (
        video.status == S.FAILED and video.file_removed_at is None)
    if needed and not (video.file and video.file.storage.exists(video.file.name)):
        return f"{video.status} without its stored file"
    return ""


def remote_deletions_planned():
    """The video numbers that a delete_remote_videos row will delete, or gave up on (logged)."""
    rows = task_rows(DELETE) + [row for row in task_rows(DELETE, ("SUCCESSFUL",)) if row.return_value == "gave up"]
    return {no for row in rows for no in row.args_kwargs["args"][1]}


def unaccounted_copies(emulator, videos_by_name, in_flight):
    """Copies memories.ai holds that the portal was told about and neither keeps nor deletes,
    sorted by what the video did with it: (overwritten, forgotten, kept by a deleted video)."""
    planned = remote_deletions_planned()
    overwritten, forgotten, undeleted = [], [], []
    for video_no, remote in sorted(emulator.videos.items()):
        video = videos_by_name.get(remote.video_name)
        if remote.deleted or video_no in in_flight or video_no in planned or video is None:
            continue
        if video.deleted_at is not None:
            undeleted.append(f"{video_no} of deleted {remote.video_name}")
        elif video.video_no != video_no:
            (overwritten if video.video_no else forgotten).append(
                f"{video_no} of {remote.video_name} ({video.status}, video_no {video.video_no or '-'})")
    return overwritten, forgotten, undeleted


def stale_pending_callbacks():
    """A callback stays pending only while its video still waits for the relay's answer."""
    return [f"callback {cb.remote_status} {cb.video_no} pending, video {cb.video.status}"
            f"{' deleted' if cb.video.deleted_at else ''} {cb.video.video_no or '-'}"
            for cb in CallbackRecord.objects.filter(outcome=CallbackRecord.Outcome.PENDING).select_related("video")
            if cb.video.status not in (S.QUEUED, S.SENDING) or cb.video.video_no or cb.video.deleted_at]
