"""Every fault memories.ai can throw at the relay and at its callbacks, and what the portal does.

The relay runs in a real db_worker against the emulator with a fault injected; callbacks travel
over real HTTP from the emulator to the running site. tests/test_relay.py covers the plain
answers (each code's message, HTTP 5xx, connection refused, a slow answer past the timeout);
this file covers the broken exchanges, what happens after them, and the callback paths.
"""

import hashlib
import os
import signal
import threading
from datetime import timedelta

import pytest
from django.utils import timezone

from uploads.models import CallbackRecord, Video

from .conftest import (
    account_of,
    make_due,
    queued_video,
    relay_tasks,
    run_worker,
    sample,
    start_worker_process,
    stop_worker,
    wait_until,
)

pytestmark = pytest.mark.django_db(transaction=True)

SAMPLE = sample("sample-h264-aac.mp4").read_bytes()
SAMPLE_SHA256 = hashlib.sha256(SAMPLE).hexdigest()


@pytest.fixture
def queued(member, team, api_key, emulator):
    return queued_video(member, team, name="Quarterly review.mp4")


def assert_waits_for_a_retry(video, words):
    video.refresh_from_db()
    assert video.status == "queued" and video.attempts == 1, video.last_error
    assert words in video.last_error
    assert video.next_attempt_at > timezone.now() + timedelta(seconds=10)
    retry = relay_tasks().get()
    assert retry.args_kwargs["args"] == [str(video.pk), 1, video.relay_token] and retry.run_after == video.next_attempt_at
    event = video.events.last()
    assert (event.source, event.from_status, event.to_status) == ("relay", "sending", "queued")
    assert "will try again" in event.message and words in event.message
    assert video.file.storage.exists(video.file.name)


def assert_sent_on_retry(video, emulator):
    """The retry, once due, goes through: the fault was transient and left nothing stuck."""
    make_due("relay")
    run_worker("relay")
    video.refresh_from_db()
    assert video.status == "processing" and video.attempts == 2 and video.last_error == ""
    accepted = [u for u in emulator.uploads if u.code == "0000"]
    assert len(accepted) == 1 and accepted[0].complete and accepted[0].sha256 == SAMPLE_SHA256
    assert accepted[0].video_no == video.video_no and list(emulator.videos) == [video.video_no]


# --- Broken exchanges on the upload ---------------------------------------------------------

@pytest.mark.parametrize("fault, params, words", [
    ("timeout_before_body", {"seconds": 3}, "did not answer in time"),
    ("reset", {"bytes": 8 * 1024}, "the connection broke"),
    ("malformed", {}, "not its JSON envelope"),
], ids=["timeout_before_body", "reset_mid_stream", "malformed"])
def test_a_broken_exchange_waits_for_a_retry_that_then_goes_through(queued, emulator, settings, fault, params,
                                                                     words):
    settings.MEMORIES_READ_TIMEOUT = 0.5
    emulator.inject("upload", fault, **params)
    run_worker("relay")
    assert_waits_for_a_retry(queued, words)
    assert emulator.videos == {}  # memories.ai kept nothing of the broken attempt
    assert_sent_on_retry(queued, emulator)


def test_a_stall_during_the_body_times_out_and_leaves_an_incomplete_upload(queued, emulator, settings):
    settings.MEMORIES_READ_TIMEOUT = 0.5
    release = threading.Event()
    emulator.inject("upload", "stall_after", bytes=8 * 1024, release=release, seconds=30)
    try:
        run_worker("relay")
    finally:
        release.set()
    assert_waits_for_a_retry(queued, "did not answer in time")
    wait_until(lambda: emulator.uploads[0].sha256 is not None, message="memories.ai to drop the stalled upload")
    stalled = emulator.uploads[0]
    assert not stalled.complete and stalled.code is None and stalled.video_no is None
    assert stalled.body_bytes == 8 * 1024 and stalled.sha256 != SAMPLE_SHA256
    assert_sent_on_retry(queued, emulator)
    assert [u.complete for u in emulator.uploads] == [False, True]


def test_a_slow_answer_within_the_timeout_is_accepted(queued, emulator, settings):
    settings.MEMORIES_READ_TIMEOUT = 5
    emulator.inject("upload", "slow", seconds=1)
    run_worker("relay")
    queued.refresh_from_db()
    assert queued.status == "processing" and queued.attempts == 1 and queued.last_error == ""
    assert list(emulator.videos) == [queued.video_no]
    assert not relay_tasks().exists()


def test_an_envelope_sent_as_text_html_is_still_read(queued, emulator):
    # The client reads the JSON envelope whatever the Content-Type says (uploads/memories.py).
    emulator.inject("upload", "wrong_content_type")
    run_worker("relay")
    queued.refresh_from_db()
    assert queued.status == "processing" and queued.remote_status == "UNPARSE"
    assert queued.video_no.startswith("VI") and queued.last_error == ""
    assert not relay_tasks().exists()


# --- HTTP 200 with an error code: the whole table in one place ----------------------------

@pytest.mark.parametrize("code, status, key_failing, retried", [
    ("0001", "rejected", False, False),
    ("0003", "rejected", False, False),
    ("0409", "rejected", False, False),
    ("0401", "queued", True, False),
    ("0402", "queued", True, False),
    ("0403", "queued", True, False),
    ("9009", "queued", True, False),
    ("0429", "queued", False, True),
])
def test_every_documented_error_code(queued, emulator, api_key, team, code, status, key_failing, retried):
    emulator.inject("upload", "code", code=code)
    run_worker("relay")
    queued.refresh_from_db()
    api_key.refresh_from_db()
    team.refresh_from_db()
    assert queued.status == status, queued.last_error
    assert f"code {code}" in queued.last_error
    assert api_key.is_failing is key_failing
    assert relay_tasks().exists() is retried
    # A key problem is not the video's fault: the attempt does not count against it.
    assert queued.attempts == (0 if key_failing else 1)
    assert account_of(team).upload_backoff_level == (1 if code == "0429" else 0)
    event = queued.events.last()
    assert (event.from_status, event.to_status, event.remote_status) == ("sending", status, code)
    assert queued.video_no == "" and emulator.videos == {}
    assert queued.file.storage.exists(queued.file.name)  # a person can still retry it


# --- Callbacks --------------------------------------------------------------------------------

@pytest.fixture
def reachable(live_server, settings, fast_pipeline):
    """The portal is reachable at a public URL, so the relay gives memories.ai a callback."""
    settings.MEMPORTAL_PUBLIC_URL = live_server.url
    return live_server


def test_callbacks_that_never_come_are_made_up_for_by_the_status_check(reachable, queued, emulator):
    emulator.inject("callback", "never")
    run_worker("relay")
    queued.refresh_from_db()
    assert queued.status == "processing"
    assert emulator.uploads[0].fields["callback"] == reachable.url + queued.callback_path
    emulator.wait_for(lambda e: e.videos[queued.video_no].status == "PARSE")
    assert emulator.callbacks_sent == [] and not CallbackRecord.objects.exists()
    queued.refresh_from_db()
    assert queued.status == "processing"

    make_due("default")
    run_worker("default")
    queued.refresh_from_db()
    assert queued.status == "ready" and queued.remote_status == "PARSE"
    event = queued.events.last()
    assert (event.source, event.from_status, event.to_status) == ("status_check", "processing", "ready")


def test_callbacks_naming_another_video_are_refused_and_change_nothing(reachable, queued, emulator):
    # Late enough that the relay's answer is stored before the first callback comes.
    emulator.callback_delay, emulator.parse_delay = 0.5, 1.0
    emulator.inject("callback", "other_video")
    run_worker("relay")
    queued.refresh_from_db()
    assert queued.status == "processing"
    sent = emulator.wait_for(lambda e: len(e.callbacks_sent) == 2 and e.callbacks_sent, timeout=10)

    assert [c["status_code"] for c in sent] == [409, 409]
    assert [c["body"]["status"] for c in sent] == ["UNPARSE", "PARSE"]
    other = sent[0]["body"]["videoNo"]
    assert other != queued.video_no
    records = CallbackRecord.objects.filter(video=queued).order_by("pk")
    assert [(r.video_no, r.remote_status, r.outcome) for r in records] == [
        (other, "UNPARSE", "refused"), (other, "PARSE", "refused")]
    assert all(queued.video_no in r.detail for r in records)
    queued.refresh_from_db()
    assert (queued.status, queued.remote_status) == ("processing", "UNPARSE")
    assert [(e.source, e.to_status) for e in queued.events.all()] == [("relay", "sending"), ("relay", "processing")]

    # The video is not stuck behind the misrouted callbacks: its status check finds it parsed.
    make_due("default")
    run_worker("default")
    queued.refresh_from_db()
    assert queued.status == "ready"


def test_a_callback_that_comes_before_the_relays_answer_is_applied_when_the_answer_comes(
        reachable, member, team, api_key, emulator):
    video = queued_video(member, team, name="Offsite.mp4")
    # memories.ai takes the file, then answers slowly; meanwhile the worker is held up before it
    # reads the answer (SIGSTOP), so memories.ai's callbacks overtake the answer. The emulator's
    # "slow" fault alone cannot do it: it registers the video, and starts its callback timeline,
    # only when it finally answers.
    emulator.inject("upload", "slow", seconds=1)
    worker = start_worker_process("relay", MEMORIES_API_BASE_URL=emulator.base_url,
                                  MEMPORTAL_PUBLIC_URL=reachable.url, MEMPORTAL_UPLOAD_INTERVAL_SECONDS=0)
    stopped = False
    try:
        wait_until(lambda: emulator.uploads and emulator.uploads[0].size == len(SAMPLE),
                   message="the whole file at memories.ai")
        os.kill(worker.pid, signal.SIGSTOP)
        stopped = True
        sent = emulator.wait_for(lambda e: len(e.callbacks_sent) == 2 and e.callbacks_sent, timeout=10)
        assert [(c["body"]["status"], c["status_code"]) for c in sent] == [("UNPARSE", 200), ("PARSE", 200)]
        video.refresh_from_db()
        assert video.status == "sending" and video.video_no == ""
        records = CallbackRecord.objects.filter(video=video).order_by("pk")
        assert [(r.remote_status, r.outcome) for r in records] == [("UNPARSE", "pending"), ("PARSE", "pending")]
        assert "before the relay's answer" in records[0].detail

        os.kill(worker.pid, signal.SIGCONT)
        stopped = False
        wait_until(lambda: Video.objects.get(pk=video.pk).status == "ready", message="the pending callbacks")
    finally:
        if stopped:
            os.kill(worker.pid, signal.SIGCONT)
        stop_worker(worker)

    video.refresh_from_db()
    assert video.video_no == emulator.uploads[0].video_no and video.remote_status == "PARSE"
    records = CallbackRecord.objects.filter(video=video).order_by("pk")
    assert [(r.remote_status, r.outcome) for r in records] == [("UNPARSE", "duplicate"), ("PARSE", "applied")]
    assert [(e.source, e.from_status, e.to_status) for e in video.events.all()] == [
        ("relay", "queued", "sending"), ("relay", "sending", "processing"), ("callback", "processing", "ready")]
