"""Status checks: when callbacks never come, the portal asks list_videos until the video is final."""

import pytest
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from uploads.models import Video

from .conftest import make_due, make_video, run_worker

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_check_applies_what_list_videos_says(relayed, emulator):
    emulator.set_status(relayed.video_no, "PARSE", send_callback=False)
    make_due("default")
    run_worker("default")
    relayed.refresh_from_db()
    assert relayed.status == "ready" and relayed.checks == 1
    assert relayed.events.last().source == "status_check"
    assert any(r["path"].endswith("list_videos") for r in emulator.requests)
    assert not DBTaskResult.objects.filter(status="READY").exists()  # final: no more checks


def test_a_failed_video_is_seen_by_the_check(relayed, emulator):
    emulator.set_status(relayed.video_no, "FAIL", send_callback=False)
    make_due("default")
    run_worker("default")
    relayed.refresh_from_db()
    assert relayed.status == "failed"


def test_checks_come_at_a_growing_interval(relayed, emulator, settings):
    settings.MEMPORTAL_STATUS_FIRST_CHECK_SECONDS = 10
    gaps = []
    for _ in range(3):
        make_due("default")
        before = timezone.now()
        run_worker("default")
        relayed.refresh_from_db()
        gaps.append((relayed.next_check_at - before).total_seconds())
    assert relayed.status == "processing" and relayed.checks == 3
    assert gaps[0] < gaps[1] < gaps[2]
    assert DBTaskResult.objects.filter(status="READY", queue_name="default").count() == 1


def test_checks_stop_after_the_maximum_age_and_the_page_says_so(relayed, emulator, settings, client, member):
    settings.MEMPORTAL_STATUS_MAX_AGE = 5
    settings.MEMPORTAL_STATUS_FIRST_CHECK_SECONDS = 10
    make_due("default")
    run_worker("default")
    relayed.refresh_from_db()
    assert relayed.status == "processing" and relayed.next_check_at is None
    assert not DBTaskResult.objects.filter(status="READY").exists()
    client.force_login(member)
    page = client.get(f"/videos/{relayed.pk}/").content.decode()
    assert "No answer from memories.ai since" in page and "Check now" in page


def test_check_now_asks_again(relayed, emulator, settings, client, member):
    settings.MEMPORTAL_STATUS_MAX_AGE = 5
    make_due("default")
    run_worker("default")
    emulator.set_status(relayed.video_no, "PARSE", send_callback=False)
    client.force_login(member)
    response = client.post(f"/videos/{relayed.pk}/check/", follow=True)
    assert "memories.ai will be asked again" in response.content.decode()
    run_worker("default")
    relayed.refresh_from_db()
    assert relayed.status == "ready"


def test_a_video_unknown_to_memories_ai_keeps_being_checked(member, team, api_key, emulator, fast_pipeline):
    video = make_video(member, team, status=Video.Status.PROCESSING, video_no="VI-unknown")
    from uploads.tasks import check_video

    check_video.enqueue(str(video.pk))
    run_worker("default")
    video.refresh_from_db()
    assert video.status == "processing" and video.next_check_at is not None
