"""Pacing holds across workers: one team's uploads stay an interval apart however many relay
workers run, each video is sent once, and memories.ai's 0429 pushes the team's slot back."""

import hashlib

import pytest
from django.utils import timezone

from uploads.models import Video

from .conftest import (
    padded,
    account_of,
    make_due,
    relay_tasks,
    run_worker,
    sample,
    start_worker_process,
    stop_worker,
    store_video,
    wait_until,
)

pytestmark = pytest.mark.django_db(transaction=True)

SAMPLE = sample("sample-h264-aac.mp4").read_bytes()


def test_two_relay_workers_keep_one_teams_uploads_an_interval_apart(member, team, api_key, emulator):
    emulator.upload_interval = 1.0  # memories.ai answers 0429 to uploads of one key closer than this
    contents = {f"standup-{i}.mp4": padded(SAMPLE, bytes([i]) * 1024) for i in range(4)}
    videos = [store_video(member, team, api_key, name, content) for name, content in contents.items()]

    env = {"MEMORIES_API_BASE_URL": emulator.base_url, "MEMPORTAL_UPLOAD_INTERVAL_SECONDS": 1}
    workers = [start_worker_process("relay", **env), start_worker_process("relay", **env)]
    try:
        # Done when all four are accepted, or as soon as memories.ai refuses one.
        wait_until(lambda: any(u.code not in (None, "0000") for u in emulator.uploads)
                   or not Video.objects.exclude(status="processing").exists(), timeout=30,
                   message="all four videos relayed")
        assert [worker.poll() for worker in workers] == [None, None]  # both still running
    finally:
        outputs = [stop_worker(worker) for worker in workers]

    assert not any("Traceback" in output for output in outputs), outputs
    uploads = emulator.uploads
    # Never refused with 0429: the portal paced them, memories.ai did not have to.
    assert [u.code for u in uploads] == ["0000"] * 4, [(u.filename, u.code, u.started_at) for u in uploads]
    starts = sorted(u.started_at for u in uploads)
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert all(gap >= 1.0 for gap in gaps), gaps
    assert sorted(u.filename for u in uploads) == sorted(contents)
    assert sorted(u.sha256 for u in uploads) == sorted(hashlib.sha256(c).hexdigest() for c in contents.values())
    for video in videos:
        video.refresh_from_db()
        assert video.status == "processing" and video.attempts == 1
        assert [e.to_status for e in video.events.all()] == ["queued", "sending", "processing"]
    assert len({v.video_no for v in videos}) == 4


def test_a_0429_pushes_the_accounts_next_slot_back_further_each_time(member, team, api_key, emulator, settings):
    settings.MEMPORTAL_UPLOAD_INTERVAL_SECONDS = 60
    video = store_video(member, team, api_key, "retro.mp4", SAMPLE)
    emulator.inject("upload", "code", times=2, code="0429")

    delays = []
    for level in (1, 2):
        before = timezone.now()
        run_worker("relay")
        account = account_of(team)
        video.refresh_from_db()
        assert video.status == "queued" and "code 0429" in video.last_error
        assert account.upload_backoff_level == level
        delays.append((account.next_upload_at - before).total_seconds())
        # The video's retry waits at least for the account's slot.
        retry = relay_tasks().get()
        assert retry.run_after >= account.next_upload_at
        make_due("relay")
    assert delays[0] >= 60 * 2 and delays[1] >= 60 * 4 and delays[1] > delays[0], delays

    run_worker("relay")
    video.refresh_from_db()
    assert video.status == "processing" and video.attempts == 3
    assert account_of(team).upload_backoff_level == 0  # an accepted upload clears the backoff
    assert [u.code for u in emulator.uploads] == ["0429", "0429", "0000"]
