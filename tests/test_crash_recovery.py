"""No video is ever stuck: a worker killed mid-upload, and a status check whose task row was lost.

A killed worker leaves its task row RUNNING forever, so recovery comes from the video's own
state: `reconcile` (run by the clock process every minute) puts a `sending` video whose
heartbeat went stale back in the queue, and enqueues a check for a `processing` video whose
next check is long overdue. A relay that is alive (fresh heartbeat) is left alone.
"""

import hashlib
import os
import signal
import threading
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from uploads import lifecycle
from uploads.management.commands.reconcile import reconcile
from uploads.models import Video

from .conftest import (
    padded,
    accept_relay,
    relay_tasks,
    run_worker,
    sample,
    start_worker_process,
    stop_worker,
    store_video,
    wait_until,
)

pytestmark = pytest.mark.django_db(transaction=True)

MiB = 1024 * 1024


def test_a_relay_killed_mid_upload_is_requeued_and_sent_once_more(member, team, api_key, emulator):
    content = sample("sample-h264-aac.mp4").read_bytes()
    content = padded(content, os.urandom(3 * MiB - len(content) - 8))
    video = store_video(member, team, api_key, "all-hands.mp4", content)
    stalled, release = threading.Event(), threading.Event()
    emulator.inject("upload", "stall_after", bytes=MiB, event=stalled, release=release, seconds=30)

    worker = start_worker_process("relay", MEMORIES_API_BASE_URL=emulator.base_url,
                                  MEMPORTAL_UPLOAD_INTERVAL_SECONDS=0)
    try:
        assert stalled.wait(timeout=20), "the relay never reached memories.ai"
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
    finally:
        stop_worker(worker)
    release.set()  # memories.ai gives up on the dead connection

    video.refresh_from_db()
    assert video.status == "sending" and video.attempts == 1
    assert video.heartbeat_at is not None
    # The killed worker's task row says RUNNING for ever; nothing else would ever send the video.
    assert DBTaskResult.objects.get(queue_name="relay").status == "RUNNING"
    assert reconcile() == (0, 0)  # with the default threshold the heartbeat is still fresh

    # Time passes: the heartbeat is now older than the threshold the clock process uses.
    time.sleep(max(0.0, 1.2 - (timezone.now() - video.heartbeat_at).total_seconds()))
    assert reconcile(stale_after=1) == (1, 0)
    video.refresh_from_db()
    assert video.status == "queued" and video.heartbeat_at is None
    event = video.events.last()
    assert (event.source, event.from_status, event.to_status) == ("reconcile", "sending", "queued")
    assert "sending again" in event.message and "second copy" in event.message
    assert reconcile(stale_after=1) == (0, 0)  # one re-queue, not one per pass

    run_worker("relay")  # a new worker
    video.refresh_from_db()
    assert video.status == "processing" and video.attempts == 2

    wait_until(lambda: all(u.code is not None or u.sha256 for u in emulator.uploads),
               message="memories.ai to settle the stalled upload")
    uploads = emulator.uploads
    assert len(uploads) == 2
    complete = [u for u in uploads if u.complete]
    incomplete = [u for u in uploads if not u.complete]
    assert len(complete) == 1 and len(incomplete) == 1
    assert complete[0].sha256 == hashlib.sha256(content).hexdigest() and complete[0].size == len(content)
    assert complete[0].code == "0000" and complete[0].video_no == video.video_no
    assert incomplete[0].code is None and incomplete[0].size < len(content)
    assert [(e.source, e.to_status) for e in video.events.all()] == [
        ("upload", "queued"), ("relay", "sending"), ("reconcile", "queued"), ("relay", "sending"),
        ("relay", "processing")]


def test_an_overdue_check_whose_task_was_lost_is_enqueued_and_brings_the_video_to_ready(
        member, team, api_key, emulator, fast_pipeline):
    emulator.send_callbacks = False
    video = store_video(member, team, api_key, "demo.mp4", sample("sample-h264-aac.mp4").read_bytes())
    run_worker("relay")
    video.refresh_from_db()
    assert video.status == "processing"
    emulator.set_status(video.video_no, "PARSE", send_callback=False)

    # The check's task row is lost, and its planned time is long past.
    DBTaskResult.objects.filter(queue_name="default").delete()
    Video.objects.filter(pk=video.pk).update(next_check_at=timezone.now() - timedelta(minutes=5))
    run_worker("default")
    video.refresh_from_db()
    assert video.status == "processing"  # nothing would ever look at it again

    assert reconcile() == (0, 1)
    assert reconcile() == (0, 0)  # the check is planned now: the next pass does not add another
    assert DBTaskResult.objects.filter(queue_name="default", status="READY").count() == 1
    run_worker("default")
    video.refresh_from_db()
    assert (video.status, video.remote_status, video.checks) == ("ready", "PARSE", 1)
    event = video.events.last()
    assert (event.source, event.from_status, event.to_status) == ("status_check", "processing", "ready")


def test_a_check_that_is_only_just_due_is_not_doubled(member, team, api_key, emulator, fast_pipeline):
    emulator.send_callbacks = False
    video = store_video(member, team, api_key, "demo.mp4", sample("sample-h264-aac.mp4").read_bytes())
    run_worker("relay")
    # The planned check is a few seconds late (a busy worker), its task row still waiting.
    Video.objects.filter(pk=video.pk).update(next_check_at=timezone.now() - timedelta(seconds=5))
    assert reconcile() == (0, 0)
    assert DBTaskResult.objects.filter(queue_name="default").count() == 1


def test_a_relay_with_a_fresh_heartbeat_is_left_alone(member, team, api_key, emulator):
    content = sample("sample-h264-aac.mp4").read_bytes()
    video = store_video(member, team, api_key, "town-hall.mp4", content)
    emulator.inject("upload", "slow", seconds=2)  # memories.ai takes its time to answer

    worker = start_worker_process("relay", MEMORIES_API_BASE_URL=emulator.base_url,
                                  MEMPORTAL_UPLOAD_INTERVAL_SECONDS=0)
    try:
        wait_until(lambda: any(u.body_bytes and u.size == len(content) for u in emulator.uploads),
                   message="the whole file at memories.ai")
        video.refresh_from_db()
        assert video.status == "sending"
        call_command("reconcile", stale_after=30)  # another worker's clock pass, mid-upload
        video.refresh_from_db()
        assert video.status == "sending" and video.attempts == 1
        assert not relay_tasks().exists()
        wait_until(lambda: Video.objects.get(pk=video.pk).status == "processing", message="the relay's answer")
    finally:
        stop_worker(worker)

    assert len(emulator.uploads) == 1
    assert emulator.uploads[0].sha256 == hashlib.sha256(content).hexdigest()
    video.refresh_from_db()
    assert [(e.source, e.to_status) for e in video.events.all()] == [
        ("upload", "queued"), ("relay", "sending"), ("relay", "processing")]


def test_an_answer_that_comes_after_a_requeue_wins_and_no_second_copy_is_sent(member, team, api_key, emulator):
    from uploads.memories import UploadResult

    video = store_video(member, team, api_key, "slow-answer.mp4", sample("sample-h264-aac.mp4").read_bytes())
    assert lifecycle.claim_for_relay(video.pk, 0, video.relay_token, api_key, lifecycle.place_for_team(team.pk))
    assert reconcile(stale_after=0) == (1, 0)  # taken for dead while still waiting for the answer
    accept_relay(video, UploadResult("VI1", "slow-answer", "UNPARSE", None))
    video.refresh_from_db()
    assert video.status == "processing" and video.video_no == "VI1"
    run_worker("relay")  # the re-queued relay task finds the video already accepted
    assert emulator.uploads == []
