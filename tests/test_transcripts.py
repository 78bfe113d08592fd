"""A ready video's transcript and summaries (uploads/transcripts.py), through HTTP against the emulator
with its published rate limits on, and a real database and worker: fetched once when the video is ready
and kept, refreshed on demand, paced per account on the database's clock, 0429 tried later, 0402 and
data still missing answered in words, the refresh kept to who may act, and nothing at all while the
setting is off."""

import time
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from uploads import lifecycle, memories, transcripts
from uploads.models import UnderstandingSlot, Video, VideoTranscript

from .conftest import TEST_KEY, make_video, ready_video, run_worker, sample

pytestmark = pytest.mark.django_db(transaction=True)
KITCHEN = ["Welcome to the kitchen safety briefing.", "Always switch off the fryer before cleaning it.",
           "Fire blankets hang beside the exit door."]
CALLS = ("get_audio_transcription", "get_video_transcription", "generate_summary")


@pytest.fixture(autouse=True)
def switched_on(settings):
    settings.MEMPORTAL_UNDERSTANDING = True
    return settings


def understanding_calls(emulator):
    return [r for r in emulator.requests if any(call in r["path"] for call in CALLS)]


def fetch_all(timeout=30.0):
    """Run the default queue's worker until no transcript is being fetched (its paced tasks wait
    for their run_after: this test's thread waits between rounds, never a web request)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run_worker("default")
        if not VideoTranscript.objects.filter(state=VideoTranscript.State.FETCHING).exists():
            return
        time.sleep(0.1)
    raise AssertionError("the transcripts were still being fetched")


def due_now():
    """The waiting fetch tasks due now (the stored times move, not the clock), the slots free."""
    DBTaskResult.objects.filter(status="READY").update(run_after=timezone.now() - timedelta(seconds=1))
    UnderstandingSlot.objects.update(next_at=None)


def test_fetched_once_when_ready_and_kept(client, emulator, member, team, api_key):
    video = ready_video(emulator, member, team, api_key)
    client.force_login(member)
    assert "have not been fetched yet" in client.get(reverse("video-detail", args=[video.pk])).text

    assert transcripts.sweep_transcripts() == 1
    fetch_all()
    row = VideoTranscript.objects.get(video=video)
    assert row.state == "fetched" and row.fetched_at and not row.last_error
    assert [line["text"] for line in row.lines] == KITCHEN
    assert [(line["start"], line["end"]) for line in row.lines] == [(0.0, 0.7), (0.7, 1.4), (1.4, 2.0)]
    assert [c["title"] for c in row.chapters] == ["Welcome", "The fryer", "Fire blankets"]
    assert [t["title"] for t in row.topics] == ["Cleaning the fryer", "Fire safety"]
    assert [(line["start"], line["text"]) for line in row.scenes] == [
        (0.0, "A chef stands at a steel counter in a bright kitchen."),
        (1.0, "Close-up of a red fire blanket on a white wall.")]
    assert len(understanding_calls(emulator)) == 4  # chapters, topics, what is said, what is seen

    assert transcripts.sweep_transcripts() == 0  # kept: the next rounds ask nothing
    fetch_all()
    assert len(understanding_calls(emulator)) == 4

    page = client.get(reverse("video-detail", args=[video.pk])).text
    assert 'id="transcript"' in page and KITCHEN[1] in page
    assert 'data-seek="0.7"' in page and "0:00" in page  # m:ss, a button that seeks (the player plays mp4)
    assert "Switch the fryer off before cleaning it." in page and "Fire safety" in page
    assert "What is seen" in page and 'data-seek="1.0"' in page and "Close-up of a red fire blanket" in page
    assert "0:00.7</button>" in page  # as search and answers say it: not 0:00 twice
    assert "transcript.js" in page


def test_a_transcript_kept_from_before_what_is_seen_was_fetched_gets_it_by_itself(client, emulator, member,
                                                                                    team, api_key):
    video = ready_video(emulator, member, team, api_key)
    transcripts.sweep_transcripts()
    fetch_all()
    VideoTranscript.objects.update(scenes=None)  # as the migration leaves a row fetched before
    client.force_login(member)
    page = client.get(reverse("video-detail", args=[video.pk])).text
    assert "What is seen has not been fetched yet" in page and KITCHEN[0] in page
    before = len(understanding_calls(emulator))

    assert transcripts.sweep_transcripts() == 1  # the next clock round: that step alone
    fetch_all()
    calls = understanding_calls(emulator)[before:]
    assert [c["path"].rsplit("/", 1)[-1].split("?")[0] for c in calls] == ["get_video_transcription"]
    page = client.get(reverse("video-detail", args=[video.pk])).text
    assert "not been fetched" not in page and "A chef stands at a steel counter in a bright kitchen." in page
    assert transcripts.sweep_transcripts() == 0


@pytest.mark.parametrize("fault", [{"fault": "code", "code": "0402"}, {"fault": "http", "status": 404}])
def test_what_is_seen_that_cannot_be_fetched_leaves_the_rest_and_says_why(client, emulator, member, team, api_key,
                                                                          fault):
    video = ready_video(emulator, member, team, api_key)
    emulator.inject("video_transcription", **fault)
    transcripts.sweep_transcripts()
    fetch_all()
    row = VideoTranscript.objects.get(video=video)
    assert row.state == "fetched" and row.scenes is None and [line["text"] for line in row.lines] == KITCHEN
    assert row.last_error.startswith("What is seen could not be fetched: ")
    client.force_login(member)
    page = client.get(reverse("video-detail", args=[video.pk])).text
    assert "could not be fetched: " in page and "The transcript and summary could not be fetched" not in page
    assert KITCHEN[1] in page and "Fire safety" in page  # what came is shown
    assert transcripts.sweep_transcripts() == 0  # said once, not tried again each round


def test_what_is_seen_that_a_refresh_cannot_fetch_again_says_so_above_what_is_kept(client, emulator, member,
                                                                                    team, api_key):
    video = ready_video(emulator, member, team, api_key)
    transcripts.sweep_transcripts()
    fetch_all()
    emulator.inject("video_transcription", "code", code="0402")
    client.force_login(member)
    client.post(reverse("video-transcript-refresh", args=[video.pk]))
    fetch_all()
    page = client.get(reverse("video-detail", args=[video.pk])).text
    assert "What is seen could not be fetched again: " in page and "credits" in page
    assert "What shows is from the fetch before." in page and "Close-up of a red fire blanket" in page


def test_what_is_seen_answered_without_data_is_nothing_seen(client, emulator, member, team, api_key):
    video = ready_video(emulator, member, team, api_key)
    emulator.inject("video_transcription", "code", code="0000")  # 0000 with data: null
    transcripts.sweep_transcripts()
    fetch_all()
    row = VideoTranscript.objects.get(video=video)
    assert row.state == "fetched" and row.scenes == [] and not row.last_error
    client.force_login(member)
    assert "memories.ai described nothing seen in this video." in client.get(
        reverse("video-detail", args=[video.pk])).text


def test_refresh_fetches_again_without_waiting_in_the_request(client, emulator, member, team, api_key):
    video = ready_video(emulator, member, team, api_key)
    transcripts.sweep_transcripts()
    fetch_all()
    first = VideoTranscript.objects.get(video=video).fetched_at
    client.force_login(member)
    response = client.post(reverse("video-transcript-refresh", args=[video.pk]))
    assert len(understanding_calls(emulator)) == 4  # the request only enqueued: no call, no wait for the slot
    assert response.status_code == 302 and response.url.endswith("#transcript")
    assert VideoTranscript.objects.get(video=video).state == "fetching"
    assert "being fetched" in client.get(response.url).text
    client.post(reverse("video-transcript-refresh", args=[video.pk]))  # a second click starts no second fetch
    fetch_all()
    row = VideoTranscript.objects.get(video=video)
    assert row.state == "fetched" and row.fetched_at > first
    assert len(understanding_calls(emulator)) == 8
    assert client.get(reverse("video-transcript-refresh", args=[video.pk])).status_code == 405  # POST only


def test_two_videos_of_one_account_are_paced_a_second_apart(client, emulator, member, team, api_key):
    videos = [ready_video(emulator, member, team, api_key) for _ in range(2)]
    assert transcripts.sweep_transcripts() == 2
    fetch_all()
    assert all(row.state == "fetched" for row in VideoTranscript.objects.filter(video__in=videos))
    calls = sorted(understanding_calls(emulator), key=lambda r: r["at"])
    assert len(calls) == 8 and all(r["code"] == "0000" for r in calls)  # never over the limit: no 0429
    gaps = [b["at"] - a["at"] for a, b in zip(calls, calls[1:])]
    assert min(gaps) >= 0.95, gaps  # ~1 s apart on one clock (the slot is claimed on the database's)
    # The slot itself, as the database keeps it: a claim now is refused until its second is over.
    account_id = api_key.pacing_account_id()
    UnderstandingSlot.objects.filter(account_id=account_id).update(next_at=None)
    assert transcripts.claim_slot(account_id) is None
    free_at = transcripts.claim_slot(account_id)
    assert free_at is not None and free_at > timezone.now() + timedelta(seconds=0.5)


def test_0429_is_tried_later(client, emulator, member, team, api_key):
    video = ready_video(emulator, member, team, api_key)
    emulator.inject("summary", "code", code="0429")
    transcripts.sweep_transcripts()
    run_worker("default")
    row = VideoTranscript.objects.get(video=video)
    assert row.state == "fetching" and "rate-limiting" in row.last_error
    client.force_login(member)
    assert "rate-limiting" in client.get(reverse("video-detail", args=[video.pk])).text  # waiting, in words
    slot = UnderstandingSlot.objects.get(account_id=api_key.pacing_account_id())
    assert slot.backoff_level == 1 and slot.next_at > timezone.now()  # the account held back
    fetch_all()
    row = VideoTranscript.objects.get(video=video)
    assert row.state == "fetched" and not row.last_error and [c["title"] for c in row.chapters][0] == "Welcome"
    assert UnderstandingSlot.objects.get(account_id=api_key.pacing_account_id()).backoff_level == 0


def test_0402_is_shown_in_words_and_not_retried(client, emulator, member, team, api_key):
    video = ready_video(emulator, member, team, api_key)
    emulator.inject("summary", "code", code="0402")
    transcripts.sweep_transcripts()
    fetch_all()
    row = VideoTranscript.objects.get(video=video)
    assert row.state == "failed" and "run out of credits" in row.last_error
    assert len(understanding_calls(emulator)) == 1  # no retry storm
    client.force_login(member)
    page = client.get(reverse("video-detail", args=[video.pk])).text
    assert "could not be fetched: the memories.ai account of this key has run out of credits" in page
    assert TEST_KEY not in page
    client.post(reverse("video-transcript-refresh", args=[video.pk]))  # Refresh tries again
    fetch_all()
    assert VideoTranscript.objects.get(video=video).state == "fetched"


def test_data_still_missing_is_tried_later_a_few_times(client, emulator, member, team, api_key):
    video = ready_video(emulator, member, team, api_key, status="UNPARSE")  # memories.ai still parsing
    emulator.understanding.rate_limits.clear()  # this test moves the waits to now, the slot's included
    transcripts.sweep_transcripts()
    for _ in range(transcripts.NOT_READY_TRIES - 1):
        run_worker("default")
        assert VideoTranscript.objects.get(video=video).state == "fetching"
        due_now()
    run_worker("default")
    row = VideoTranscript.objects.get(video=video)
    assert row.state == "failed" and "has not made it yet" in row.last_error
    assert len(understanding_calls(emulator)) == transcripts.NOT_READY_TRIES
    emulator.set_status(video.video_no, "PARSE", send_callback=False)
    client.force_login(member)
    client.post(reverse("video-transcript-refresh", args=[video.pk]))
    fetch_all()
    assert [line["text"] for line in VideoTranscript.objects.get(video=video).lines] == KITCHEN


def test_a_video_without_audio_has_an_empty_transcript(client, emulator, member, team, api_key):
    video = ready_video(emulator, member, team, api_key, has_audio=False, media_checked_at=timezone.now())
    transcripts.sweep_transcripts()
    fetch_all()
    row = VideoTranscript.objects.get(video=video)
    assert row.state == "fetched" and row.lines == [] and row.chapters
    assert not [r for r in understanding_calls(emulator) if "get_audio_transcription" in r["path"]]
    client.force_login(member)
    page = client.get(reverse("video-detail", args=[video.pk])).text
    assert "no audio track, so nothing is said in it" in page
    assert "Close-up of a red fire blanket on a white wall." in page  # what is seen, all the same


def test_without_a_player_the_times_are_text(client, emulator, member, team, api_key):
    video = ready_video(emulator, member, team, api_key)
    transcripts.sweep_transcripts()
    fetch_all()
    Video.objects.filter(pk=video.pk).update(file="")  # the stored copy removed (retention)
    client.force_login(member)
    page = client.get(reverse("video-detail", args=[video.pk])).text
    assert KITCHEN[0] in page and 'class="time">0:00<' in page and "data-seek" not in page


def test_a_teammate_who_may_not_see_the_video_gets_404(client, emulator, member, teammate, team, api_key):
    video = ready_video(emulator, member, team, api_key)
    client.force_login(teammate)
    assert client.post(reverse("video-transcript-refresh", args=[video.pk])).status_code == 404
    assert client.get(reverse("video-detail", args=[video.pk])).status_code == 404
    assert not VideoTranscript.objects.exists() and not understanding_calls(emulator)


def test_switched_off_nothing_shows_and_nothing_runs(client, emulator, member, team, api_key, settings):
    settings.MEMPORTAL_UNDERSTANDING = False
    video = ready_video(emulator, member, team, api_key)
    assert transcripts.sweep_transcripts() == 0
    assert not DBTaskResult.objects.filter(task_path__endswith="fetch_transcript").exists()
    client.force_login(member)
    page = client.get(reverse("video-detail", args=[video.pk])).text
    assert "Transcript" not in page and "transcript.js" not in page and "Summary" not in page
    assert client.post(reverse("video-transcript-refresh", args=[video.pk])).status_code == 404
    # A task left from when it was on does nothing.
    settings.MEMPORTAL_UNDERSTANDING = True
    transcripts.sweep_transcripts()
    settings.MEMPORTAL_UNDERSTANDING = False
    run_worker("default")
    assert not understanding_calls(emulator)
    assert VideoTranscript.objects.get(video=video).state == "fetching"


def test_a_fetch_that_stopped_moving_is_started_again_by_the_sweep_once(emulator, member, team, api_key):
    video = ready_video(emulator, member, team, api_key)
    transcripts.sweep_transcripts()
    lost = DBTaskResult.objects.filter(status="READY")
    assert lost.count() == 1
    lost.delete()  # the worker's task is gone (a crash between two steps): nothing would ever move it
    assert transcripts.sweep_transcripts() == 0  # not yet: it may only be slow
    VideoTranscript.objects.update(requested_at=timezone.now() - transcripts.DEAD_AFTER - timedelta(seconds=1))

    assert transcripts.sweep_transcripts() == 1
    assert transcripts.sweep_transcripts() == 0  # started again once, not once per round
    fetch_all()
    row = VideoTranscript.objects.get(video=video)
    assert row.state == "fetched" and [line["text"] for line in row.lines] == KITCHEN
    assert len(understanding_calls(emulator)) == 4


def test_a_slow_fetch_started_again_leaves_one_chain_of_calls(emulator, member, team, api_key):
    video = ready_video(emulator, member, team, api_key)
    transcripts.sweep_transcripts()  # its first task waits in a long queue
    VideoTranscript.objects.update(requested_at=timezone.now() - transcripts.DEAD_AFTER - timedelta(seconds=1))
    assert transcripts.sweep_transcripts() == 1  # taken for dead: a new fetch, a new token
    fetch_all()  # the old task runs too, late: its token is gone, it calls nothing
    assert VideoTranscript.objects.get(video=video).state == "fetched"
    assert len(understanding_calls(emulator)) == 4
    assert not DBTaskResult.objects.filter(status="READY").exists()
