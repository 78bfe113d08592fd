"""A ready video's transcripts (what is said, what is seen) and summaries (issue 14, point 3),
fetched from memories.ai by a worker, once, and kept (they do not change); fetched again on
demand (the page's Refresh).

Behind MEMPORTAL_UNDERSTANDING: when it is off, the sweep enqueues nothing, a task that runs
anyway does nothing, and the page shows nothing (`for_page`).

- Each clock round (reconcile --every) sweeps for ready videos that have no VideoTranscript yet,
  creates one ("being fetched") and enqueues one fetch_transcript per video on the default queue.
- A fetch is four calls, one per task run: the chapters, the topics, the speech transcript, then
  the visual one (what is seen). A video whose probe found no audio track skips the speech: its
  transcript is empty; so is one whose speech memories.ai answers with `data: null` once its
  summaries came (it parsed: no audio); the same for what is seen. memories.ai allows
  transcription and summary 1/s per account, so each call first claims the account's
  understanding slot (1 s, plus a margin), a conditional UPDATE on the database's clock as for the
  upload slot (uploads/pacing.py). A task that finds it taken hands its turn to a successor with
  run_after; nothing sleeps, and the web request of a Refresh only enqueues.
- 0429: the account's slot is pushed back (longer each time) and the call tried later, a bounded
  number of times. `data: null` (memories.ai still parsing) is tried later, a few times. Key
  trouble and 0402 (credits), a refused request, a wrong path: recorded in words, as the upload
  path words them, and not retried (Refresh tries again).
- Every write is fenced by the row's token: a Refresh gives a new one, so a late task of an
  earlier fetch changes nothing.
- Each task that runs marks its fetch as moving (requested_at); a fetch that stopped moving for
  DEAD_AFTER (its task lost) is started again by the sweep, with a new token.
- What is seen is the last step, and the least needed: when it cannot be fetched, what came is kept
  and the fetch ends "fetched", its last_error saying what is missing and why. A transcript kept
  from before the portal fetched what is seen (scenes null) has the sweep fetch that step alone.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.db.models.functions import Coalesce, Greatest
from django.tasks import task
from django.utils import timezone

from memportal import logs

from . import call_slots, lifecycle, memories, understanding
from .clock import database_time
from .crypto import ApiKeyDecryptionError
from .models import UnderstandingSlot, Video, VideoTranscript

logger = logging.getLogger(__name__)
T = VideoTranscript.State
TRANSCRIPTS = {"audio": "lines", "video": "scenes"}  # memories.ai's kind of transcript: the field keeping it
STEPS = ("CHAPTER", "TOPIC", "audio", "video")  # one call each, in this order
SLOT_SECONDS = 1.1  # memories.ai's 1 call/s per account, plus a margin for the time to reach it
NOT_READY_TRIES = 5  # data: null (still parsing): tried again this many times, further apart each time
NOT_READY_FIRST_SECONDS = 5
BUSY_TRIES = 8  # 0429, or a connection that broke: tried again this many times
SWEEP_AT_MOST = 200  # videos started per sweep; the rest wait for the next round
REFRESH_AGAIN_AFTER = timedelta(minutes=2)  # a fetch idle this long that is still "being fetched" may be restarted
# A fetch none of whose tasks ran for this long died (its task lost with a worker's database, a
# crash between two steps): the sweep starts it again. A live fetch runs a task at least every
# couple of minutes (a slot wait is at most ~70 s, a "not made yet" wait 80 s), workers permitting.
DEAD_AFTER = timedelta(minutes=30)


def enabled():
    return bool(getattr(settings, "MEMPORTAL_UNDERSTANDING", False))


# -- pacing: the account's understanding slot --------------------------------------------------

def claim_slot(account_id):
    """Take the account's understanding slot now; None if taken, else when the slot frees up."""
    return call_slots.claim(account_id, call_slots.TRANSCRIPT, SLOT_SECONDS)


def slot_free_at(account_id):
    return UnderstandingSlot.objects.values_list("next_at", flat=True).filter(account_id=account_id).first()


def push_back_slot(account_id):
    """memories.ai said 0429: hold the account's transcript and summary calls back, longer each time."""
    with transaction.atomic():
        slot = UnderstandingSlot.objects.select_for_update().get(account_id=account_id)
        level = min(slot.backoff_level + 1, 6)
        later = database_time(SLOT_SECONDS * (2 ** level))
        UnderstandingSlot.objects.filter(account_id=account_id).update(
            backoff_level=level, next_at=Greatest(Coalesce(F("next_at"), later), later))
    return slot_free_at(account_id)


def clear_backoff(account_id):
    UnderstandingSlot.objects.filter(account_id=account_id, backoff_level__gt=0).update(backoff_level=0)


# -- starting a fetch ---------------------------------------------------------------------------

def ready_videos():
    """Ready videos memories.ai holds."""
    return Video.objects.alive().filter(status=Video.Status.READY).exclude(video_no="")


def due_videos():
    """Ready videos memories.ai holds whose transcript was never asked for."""
    return ready_videos().filter(understanding__isnull=True)


def sweep_transcripts():
    """Start the fetch of every ready video without a transcript yet; returns how many were started."""
    if not enabled():
        return 0
    started = 0
    for pk in due_videos().order_by("status_changed_at").values_list("pk", flat=True)[:SWEEP_AT_MOST]:
        token = VideoTranscript.new_token()
        try:
            with transaction.atomic():
                _, created = VideoTranscript.objects.get_or_create(video_id=pk, defaults={"token": token})
        except IntegrityError:  # another sweep made it meanwhile
            continue
        if created:
            _enqueue(str(pk), token, STEPS[0], 0)
            started += 1
    return started + restart_dead() + fetch_missing_scenes()


def restart_dead():
    """Start again every fetch that stopped moving (DEAD_AFTER) of a video still ready; returns how many."""
    restarted = 0
    dead = (VideoTranscript.objects.filter(state=T.FETCHING, requested_at__lt=timezone.now() - DEAD_AFTER,
                                           video__in=ready_videos())
            .values_list("pk", "video_id", "token"))
    for pk, video_id, old in dead[:SWEEP_AT_MOST]:
        token = VideoTranscript.new_token()
        # Fenced by the old token: of two sweeps at once, one restarts it; a task of the old
        # fetch that wakes up late finds its token gone and changes nothing.
        if VideoTranscript.objects.filter(pk=pk, token=old, state=T.FETCHING).update(
                token=token, requested_at=timezone.now(), last_error=""):
            logger.warning("the transcript fetch of video %s stopped moving: started again", video_id)
            _enqueue(str(video_id), token, STEPS[0], 0)
            restarted += 1
    return restarted


def fetch_missing_scenes():
    """Fetch what is seen, and only that, for each transcript kept from before the portal fetched
    it (scenes null, no error said); returns how many were started. One that fails says so in its
    last_error, so it is not started again each round (Refresh tries the whole fetch again)."""
    started = 0
    kept = (VideoTranscript.objects.filter(state=T.FETCHED, scenes__isnull=True, last_error="",
                                           video__in=ready_videos())
            .values_list("pk", "video_id", "token"))
    for pk, video_id, old in kept[:SWEEP_AT_MOST]:
        token = VideoTranscript.new_token()
        if VideoTranscript.objects.filter(pk=pk, token=old, state=T.FETCHED).update(
                token=token, state=T.FETCHING, requested_at=timezone.now()):
            _enqueue(str(video_id), token, STEPS[-1], 0)
            started += 1
    return started


def refresh(video):
    """Fetch the video's transcript and summaries again (the page's Refresh). Returns False when a
    fetch is already under way (and recent): no second one is started."""
    token = VideoTranscript.new_token()
    with transaction.atomic():
        row, created = VideoTranscript.objects.select_for_update().get_or_create(
            video=video, defaults={"token": token})
        if not created:
            if row.state == T.FETCHING and row.requested_at > timezone.now() - REFRESH_AGAIN_AFTER:
                return False
            VideoTranscript.objects.filter(pk=row.pk).update(
                token=token, state=T.FETCHING, requested_at=timezone.now(), last_error="")
        transaction.on_commit(lambda: _enqueue(str(video.pk), token, STEPS[0], 0))
    return True


def _enqueue(video_id, token, step, tries, run_after=None):
    task_ = fetch_transcript.using(run_after=run_after) if run_after is not None else fetch_transcript
    task_.enqueue(video_id, token, step, tries, request_id=logs.current_request_id() or logs.new_request_id())


# -- the worker's side ----------------------------------------------------------------------------

@task(queue_name="default")
@logs.in_task_context
def fetch_transcript(video_id: str, token: str, step: str, tries: int = 0):
    """One call of a fetch (`step`), while its token is current; then the next step, paced."""
    if not enabled():
        return "switched off"
    current = VideoTranscript.objects.filter(video_id=video_id, token=token, state=T.FETCHING)
    video = Video.objects.alive().select_related("team").filter(pk=video_id, status=Video.Status.READY).first()
    if video is None or step not in STEPS or not current.update(requested_at=timezone.now()):
        return "stale"  # (a task that runs marks its fetch as moving: restart_dead leaves it be)
    if step == "audio" and video.has_audio is False:
        current.update(lines=[])  # no audio track: nothing was said, nothing to ask
        return _next(video, token, step)
    key = lifecycle.key_for(video)
    if key is None:
        return _failed(current, step, "the team has no usable memories.ai API key: ask your team admin to add "
                                      "one, then Refresh")
    account_id = key.pacing_account_id()
    free_at = claim_slot(account_id)
    if free_at is not None:  # another call of this account has the slot: try at its end
        _enqueue(video_id, token, step, tries, run_after=free_at)
        return "waiting for the slot"
    place = memories.Place.of(video.api_family, video.namespace)
    try:
        raw_key = key.reveal()
        if step in TRANSCRIPTS:
            answer = understanding.transcript(raw_key, place, video.video_no, step)
        else:
            answer = understanding.summary(raw_key, place, video.video_no, step)
    except ApiKeyDecryptionError as error:
        return _failed(current, step, str(error))
    except memories.MemoriesError as error:
        return _error(video_id, token, step, tries, account_id, current, error)
    clear_backoff(account_id)
    # The summaries came, so it parsed: null is nothing said (no audio), nothing described seen.
    if answer is None and step in TRANSCRIPTS:
        current.update(**{TRANSCRIPTS[step]: []})
        return _next(video, token, step, account_id)
    if answer is None:  # memories.ai has not made it yet (still parsing)
        if tries + 1 >= NOT_READY_TRIES:
            return _failed(current, step, "memories.ai has not made it yet (it answered without data): Refresh later")
        later = timezone.now() + timedelta(seconds=NOT_READY_FIRST_SECONDS * (2 ** tries))
        _enqueue(video_id, token, step, tries + 1, run_after=later)
        return "not made yet"
    if step in TRANSCRIPTS:
        current.update(**{TRANSCRIPTS[step]: [
            {"index": line.index, "start": line.start, "end": line.end, "text": line.text} for line in answer.lines]})
    else:
        entries = [{"title": item.title, "description": item.description, "start": item.start}
                   for item in answer.items]
        current.update(**({"chapters": entries} if step == "CHAPTER" else {"topics": entries}),
                       summary=answer.text or F("summary"))
    return _next(video, token, step, account_id)


def _next(video, token, step, account_id=None):
    """The step after `step`, at the account's next free slot; or the fetch is done."""
    position = STEPS.index(step)
    if position + 1 < len(STEPS):
        run_after = slot_free_at(account_id) if account_id is not None else None
        _enqueue(str(video.pk), token, STEPS[position + 1], 0, run_after=run_after)
        return f"{step} kept"
    VideoTranscript.objects.filter(video_id=video.pk, token=token, state=T.FETCHING).update(
        state=T.FETCHED, fetched_at=timezone.now(), last_error="")
    return "fetched"


def _error(video_id, token, step, tries, account_id, current, error):
    logger.info("a transcript call of video %s failed: %s", video_id, error)
    if error.rate_limited or error.kind == memories.RETRY:
        if tries + 1 >= BUSY_TRIES:
            return _failed(current, step, f"{error}; Refresh to try again")
        run_after = (push_back_slot(account_id) if error.rate_limited
                     else timezone.now() + timedelta(seconds=SLOT_SECONDS * (2 ** tries)))
        current.update(last_error=str(error))  # shown while it waits
        _enqueue(video_id, token, step, tries + 1, run_after=run_after)
        return "busy: tried later"
    return _failed(current, step, str(error))  # key trouble, credits, refused, a wrong path: no retry storm


def _failed(current, step, reason):
    """The fetch could not go on. At its last step (what is seen) what came is kept and the fetch
    ends, saying what is missing and why (any earlier copy of what is seen stays as it was)."""
    if step == STEPS[-1]:
        current.update(state=T.FETCHED, fetched_at=timezone.now(),
                       last_error=f"What is seen could not be fetched: {reason}"[:400])
        return "fetched without what is seen"
    current.update(state=T.FAILED, last_error=reason[:400])
    return "failed"


# -- the video page -----------------------------------------------------------------------------

def clock(value):
    """Seconds as m:ss (h:mm:ss past an hour); "" when unknown."""
    if value is None:
        return ""
    whole = int(value)
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def moment_clock(value):
    """A moment's time: m:ss, with tenths when it falls inside a second (0:00.7), so the moments of
    a short clip do not all read 0:00; "" when unknown."""
    if value is None:
        return ""
    tenths = round(value * 10) % 10
    return clock(value) + (f".{tenths}" if tenths else "")


def line_at(lines, start, end=None):
    """The first kept line (`VideoTranscript.lines`) said between `start` and `end` (at `start`
    when no end), for a search result or a cited moment; "" when none or no time."""
    if start is None:
        return ""
    end = start if end is None else end
    for line in lines:
        begin, stop = line.get("start"), line.get("end")
        if isinstance(begin, (int, float)) and begin <= end and (not isinstance(stop, (int, float)) or stop > start):
            return line.get("text") or ""
    return ""


def kept_lines(video_ids):
    """{video id: (what is said, what is seen)} of the kept transcripts of `video_ids`, for the
    lines of search results and cited moments (a video without one is absent)."""
    return {video_id: (said, seen or []) for video_id, said, seen in VideoTranscript.objects.filter(
        video__in=video_ids).values_list("video_id", "lines", "scenes")}


def _timed(entries):
    """Kept lines with their time as moments show it (tenths inside a second), so two lines of one
    second do not both read 0:00 and match what search and answers say."""
    return [{**entry, "clock": moment_clock(entry.get("start"))} for entry in entries if isinstance(entry, dict)]


def for_page(video):
    """The video page's context for the Transcript and Summary sections ({} when switched off or
    the video is not ready)."""
    if not enabled() or video.status != Video.Status.READY:
        return {}
    row = VideoTranscript.objects.filter(video=video).first()
    state = row.state if row else ""
    said, seen = (_timed(row.lines), _timed(row.scenes or [])) if row else ([], [])
    if video.has_audio is False:
        said_empty = "This video has no audio track, so nothing is said in it."
    else:
        said_empty = "memories.ai heard no speech in this video." if state == T.FETCHED else ""
    seen_warning = ""
    if state == T.FETCHED and row.last_error and seen:  # a Refresh could not fetch it again: kept from before
        seen_warning = row.last_error.replace("could not be fetched", "could not be fetched again", 1).rstrip(".") + \
            ". What shows is from the fetch before."
    if state == T.FETCHED and row.last_error:  # the last step could not be fetched: it says why
        seen_empty = row.last_error.rstrip(".") + "."
    elif state == T.FETCHED and row.scenes is None:  # kept from before: the next sweep fetches it
        seen_empty = "What is seen has not been fetched yet: it is fetched in a minute or two."
    else:
        seen_empty = "memories.ai described nothing seen in this video." if state == T.FETCHED else ""
    return {"understanding": {
        "row": row, "state": state, "said": said, "seen": seen,
        "transcripts": [
            {"id": "transcript-lines", "kind": "said", "heading": "What is said", "lines": said, "empty": said_empty},
            {"id": "transcript-scenes", "kind": "seen", "heading": "What is seen", "lines": seen, "empty": seen_empty,
             "warning": seen_warning}],
        "chapters": _timed(row.chapters) if row else [],
        "topics": _timed(row.topics) if row else [], "summary": row.summary if row else "",
    }}
