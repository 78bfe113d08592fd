"""Uploads of one team are paced; other teams do not wait for them."""

import pytest
from django_tasks_db.models import DBTaskResult

from uploads.tasks import relay_video

from .conftest import make_video, relay_with_worker_process

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_teams_uploads_are_at_least_the_interval_apart(member, team, api_key, outsider, other_team,
                                                         other_api_key, emulator):
    emulator.upload_interval = 1.0
    ours = [make_video(member, team, name=f"ours-{i}.mp4") for i in range(3)]
    theirs = make_video(outsider, other_team, name="theirs.mp4")
    for video in [*ours, theirs]:
        relay_video.enqueue(str(video.pk), 0)

    relay_with_worker_process(emulator, interval=1, message="all four videos relayed")

    ours_starts = sorted(u.started_at for u in emulator.uploads if u.filename.startswith("ours"))
    assert len(ours_starts) == 3
    gaps = [b - a for a, b in zip(ours_starts, ours_starts[1:])]
    assert all(gap >= 1.0 for gap in gaps), gaps
    assert all(u.code == "0000" for u in emulator.uploads)  # paced by us, never refused with 0429
    theirs_start = next(u.started_at for u in emulator.uploads if u.filename == "theirs.mp4")
    assert theirs_start - ours_starts[0] < 1.0  # the other team did not wait behind ours


def test_a_teams_waiting_videos_go_in_upload_order_each_waking_near_its_turn(member, team, api_key, emulator):
    emulator.upload_interval = 0.5
    count = 8
    videos = [make_video(member, team, name=f"turn-{i}.mp4") for i in range(count)]
    for video in reversed(videos):  # enqueued in the opposite order: the upload order must win
        relay_video.enqueue(str(video.pk), 0)

    relay_with_worker_process(emulator, interval=1, message="all eight videos relayed")

    sent = [u.filename for u in sorted(emulator.uploads, key=lambda u: u.started_at)]
    # The first one goes as soon as a worker picks any task; the others wait their turn, in order.
    assert sent[1:] == [v.original_name for v in videos if v.original_name != sent[0]]
    # Each waiting relay wakes about at its turn: at most twice (once more when the slot before
    # it was claimed a poll late), not once per freed slot, which would make 8 + 7+6+...+1 = 36.
    assert DBTaskResult.objects.filter(queue_name="relay").count() <= count + 2 * (count - 1)
