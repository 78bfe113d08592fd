"""Races of issue 8 that were fixed without a test of their own (docs/reliability.md, "One owner
at a time": defects 5, 7 and 9), one regression test each.

Each test runs the competing action on a thread of its own, so on a database connection of its
own, at a chosen point of the transition under test: a wrapper around a function that the
transition calls runs it (or waits for it) first, then calls the real function. Only the timing
is patched, never the behaviour under test; so the tests run on SQLite and on PostgreSQL.
"""

import hashlib
import threading
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from uploads import actions, callbacks, lifecycle, removal, tasks
from uploads.memories import UploadResult
from uploads.models import CallbackRecord, MemoriesAccount, Video

from .conftest import OtherConnection, accept_relay, account_of, make_video, queued_video, run_worker, sample

pytestmark = pytest.mark.django_db(transaction=True)


def first_call_runs_first(monkeypatch, module, name, competing):
    """Patch module.name so that its first call runs competing() to its end (on another
    connection) before the real function; later calls are the real function alone."""
    real, pending = getattr(module, name), [competing]

    def wrapper(*args, **kwargs):
        if pending:
            OtherConnection(pending.pop()).result()
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)


def slot_of(team):
    return account_of(team).next_upload_at


# 5. An early callback decided `pending` from a stale read is never applied.
def test_a_relay_answer_between_the_callbacks_read_and_its_decision_does_not_strand_it(
        client, member, team, monkeypatch):
    """Defect 5: the callback view reads the video (sending, no number yet); before it decides,
    the relay's answer commits on another connection and applies the callbacks pending so far
    (none yet). The decision is taken under the video's lock from a fresh read, so the callback
    is applied now instead of being left `pending` for an answer that has come and gone."""
    video = make_video(member, team, status=Video.Status.SENDING, attempts=1, heartbeat_at=timezone.now())

    def relay_answer():  # what the relay task does with memories.ai's 0000 (uploads/tasks.py send())
        accept_relay(video, UploadResult("VI77", "clip", "UNPARSE", None))

    # The view reads the body right after it has read the video, before anything is decided.
    first_call_runs_first(monkeypatch, callbacks, "read_limited_body", relay_answer)
    response = client.post(video.callback_path, data='{"videoNo": "VI77", "status": "PARSE"}',
                           content_type="application/json")

    assert (response.status_code, response.json()["message"]) == (200, "applied")
    video.refresh_from_db()
    assert (video.status, video.video_no, video.remote_status) == ("ready", "VI77", "PARSE")
    assert CallbackRecord.objects.get().outcome == "applied"
    assert [e.to_status for e in video.events.all()] == ["processing", "ready"]


# 7. A slot taken for a video another task claimed first is a phantom: the team waits for nothing.
def test_a_slot_taken_for_a_video_claimed_elsewhere_is_given_back(member, team, api_key, emulator, settings,
                                                                   monkeypatch):
    """Defect 7: two relay rows for one video and token (a duplicate enqueue). The second reads
    the video queued and is held just before its claim; the first claims the slot and the video
    and sends it; the slot runs out. The second then finds the slot free but the video claimed:
    the slot it took is rolled back with the failed claim, so the team's next video goes at once."""
    settings.MEMPORTAL_UPLOAD_INTERVAL_SECONDS = 60
    video = queued_video(member, team, "first.mp4")
    real_claim, at_claim, go_on = lifecycle.claim_slot_and_video, threading.Event(), threading.Event()

    def claim_after_a_pause(*args):
        at_claim.set()
        assert go_on.wait(30)
        return real_claim(*args)

    monkeypatch.setattr(lifecycle, "claim_slot_and_video", claim_after_a_pause)
    # A second worker runs a duplicate of the video's relay row (same attempt, same token).
    late = OtherConnection(tasks.relay_video.call, str(video.pk), 0, video.relay_token)
    try:
        assert at_claim.wait(30)  # it has read the video queued, and waits before its claim
        monkeypatch.setattr(lifecycle, "claim_slot_and_video", real_claim)
        run_worker("relay")  # the first worker runs the row: claims the slot and the video, sends it
        video.refresh_from_db()
        assert video.status == "processing" and len(emulator.uploads) == 1
        # The slot runs out while the second still waits (the stored time moves, as make_due does).
        MemoriesAccount.objects.update(next_upload_at=timezone.now() - timedelta(seconds=1))
        slot = slot_of(team)
    finally:
        go_on.set()
    assert late.result() == "claimed elsewhere"
    assert slot_of(team) == slot  # the slot it took for nothing was given back
    second = queued_video(member, team, "second.mp4")
    run_worker("relay")
    second.refresh_from_db()
    assert second.status == "processing" and len(emulator.uploads) == 2  # not paced behind a phantom


@pytest.mark.parametrize("skew", [timedelta(hours=1), -timedelta(hours=1)], ids=["worker-ahead", "worker-behind"])
def test_pacing_follows_the_databases_clock_not_the_workers(member, team, api_key, emulator, settings,
                                                            monkeypatch, skew):
    """Defect 7: a punctual worker sends the team's first video and takes the slot; a worker
    whose clock is an hour off (another connection) relays the second. Ahead, it still waits
    for the slot; behind, it does not wait for a slot already free, and the slot it takes ends
    an interval after the database's now, not after its own."""
    settings.MEMPORTAL_UPLOAD_INTERVAL_SECONDS = 60
    queued_video(member, team, "first.mp4")
    run_worker("relay")
    taken = slot_of(team)
    assert taken > timezone.now() + timedelta(seconds=50)
    if skew < timedelta(0):  # the slot ran out a second ago, by the database's clock
        MemoriesAccount.objects.update(next_upload_at=timezone.now() - timedelta(seconds=1))
    second = make_video(member, team, name="second.mp4")

    real_now = timezone.now
    monkeypatch.setattr(timezone, "now", lambda: real_now() + skew)
    try:
        outcome = OtherConnection(tasks.relay_video.call, str(second.pk), 0, second.relay_token).result()
    finally:
        monkeypatch.setattr(timezone, "now", real_now)

    second.refresh_from_db()
    if skew > timedelta(0):
        assert outcome == "paced" and second.status == "queued" and len(emulator.uploads) == 1
        assert slot_of(team) == taken
    else:
        assert outcome == "sent" and second.status == "processing" and len(emulator.uploads) == 2
        assert abs(slot_of(team) - (real_now() + timedelta(seconds=61))) < timedelta(seconds=10)


# 9. Purge deletes the file of a video that a retry has just queued again.
def test_a_retry_between_purges_snapshot_and_its_delete_keeps_the_file(member, team, api_key, emulator, settings,
                                                                         monkeypatch):
    """Defect 9: purge's snapshot holds a video failed 30 days ago; before purge removes its
    file, Retry (another connection) queues it again. The file is claimed with a conditional
    UPDATE (same name, still retained, still expired) that now matches nothing: the file stays,
    and the retry's relay sends it."""
    settings.MEMPORTAL_RETENTION_DAYS = 7
    video = make_video(member, team, status=Video.Status.FAILED, video_no="VI-failed", remote_status="FAIL")
    Video.objects.filter(pk=video.pk).update(status_changed_at=timezone.now() - timedelta(days=30))
    storage, name = video.file.storage, video.file.name

    def retry():
        assert tasks.perform(actions.retry, video.pk, member)

    first_call_runs_first(monkeypatch, removal, "remove_stored_file", retry)
    call_command("purge_uploads")

    video.refresh_from_db()
    assert video.status == "queued" and video.file.name == name and storage.exists(name)
    assert video.file_removed_at is None
    assert not video.events.filter(message__startswith="stored file removed").exists()
    run_worker("relay")
    video.refresh_from_db()
    assert video.status == "processing" and video.video_no != "VI-failed"
    content = sample("sample-h264-aac.mp4").read_bytes()
    assert [(u.size, u.sha256) for u in emulator.uploads] == [(len(content), hashlib.sha256(content).hexdigest())]
