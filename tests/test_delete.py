"""Deleting videos: gone from every list, file removed at once, deleted at memories.ai in batches."""

import pytest
from django.core.files.storage import default_storage
from django_tasks_db.models import DBTaskResult

from uploads.models import Video

from .conftest import delete_videos, make_video, queued_video, run_worker

pytestmark = pytest.mark.django_db(transaction=True)


def relayed(member, team, n=1):
    videos = [queued_video(member, team, name=f"clip-{i}.mp4") for i in range(n)]
    run_worker("relay")
    return [Video.objects.get(pk=v.pk) for v in videos]


def delete_calls(emulator):
    return [r for r in emulator.requests if "delete" in r["path"]]


def test_a_member_deletes_their_video(client, member, team, api_key, emulator):
    [video] = relayed(member, team)
    name = video.file.name
    client.force_login(member)
    page = client.get(f"/videos/{video.pk}/delete/").content.decode()
    assert "memories.ai is asked to delete its copy" in page
    response = client.post(f"/videos/{video.pk}/delete/", follow=True)
    assert "was deleted, here and at memories.ai" in response.content.decode()
    assert "clip-0.mp4" not in client.get("/videos/").content.decode()
    assert client.get(f"/videos/{video.pk}/").status_code == 404
    assert not default_storage.exists(name)  # removed at once, before any worker ran

    video = Video.objects.get(pk=video.pk)  # kept for the audit trail
    assert video.deleted_at and not video.file and video.file_removed_at
    assert [e.message for e in video.events.all()][-2:] == ["deleted", "stored file removed (video deleted)"]
    run_worker("default")
    assert emulator.videos[video.video_no].deleted
    video.refresh_from_db()
    assert video.remote_deleted_at is not None
    assert not Video.objects.visible_to(member).exists()


def test_deleting_twice_is_harmless(member, team, api_key, emulator):
    [video] = relayed(member, team)
    assert len(delete_videos([video.pk], member)) == 1
    assert delete_videos([video.pk], member) == []
    run_worker("default")
    assert len(delete_calls(emulator)) == 1


def test_a_queued_video_deleted_is_never_sent(member, team, api_key, emulator):
    video = queued_video(member, team)
    delete_videos([video.pk], member)
    run_worker("relay")
    run_worker("default")
    assert emulator.uploads == [] and delete_calls(emulator) == []


def test_a_team_admin_deletes_many_from_the_admin_in_batches_of_100(client, team_admin, member, team, api_key,
                                                                    emulator):
    videos = [make_video(member, team, name=f"v{i}.mp4", status="ready", video_no=f"VI{i:04d}")
              for i in range(150)]
    client.force_login(team_admin)
    response = client.post("/admin/uploads/video/", {
        "action": "delete_videos", "_selected_action": [v.pk for v in videos]}, follow=True)
    assert "150 video(s) deleted" in response.content.decode()
    assert Video.objects.alive().count() == 0
    assert DBTaskResult.objects.filter(task_path="uploads.tasks.delete_remote_videos").count() == 2
    run_worker("default")
    calls = delete_calls(emulator)
    assert len(calls) == 2 and all(c["code"] == "0000" for c in calls)
    assert Video.objects.filter(remote_deleted_at__isnull=False).count() == 150


def test_a_failed_remote_delete_is_retried(member, team, api_key, emulator, settings):
    settings.MEMPORTAL_RETRY_BASE_SECONDS = 0
    [video] = relayed(member, team)
    emulator.inject("delete", "http", status=503)
    delete_videos([video.pk], member)
    run_worker("default")
    video.refresh_from_db()
    assert video.remote_deleted_at is not None
    assert [c["code"] for c in delete_calls(emulator)][-1] == "0000"


def test_team_admin_actions_retry_and_cancel_many(client, team_admin, member, team, api_key):
    rejected = [make_video(member, team, status="rejected") for _ in range(3)]
    queued = [make_video(member, team) for _ in range(2)]
    client.force_login(team_admin)
    client.post("/admin/uploads/video/", {"action": "retry_videos", "_selected_action": [v.pk for v in rejected]})
    assert Video.objects.filter(pk__in=[v.pk for v in rejected], status="queued").count() == 3
    client.post("/admin/uploads/video/", {"action": "cancel_videos", "_selected_action": [v.pk for v in queued]})
    assert Video.objects.filter(pk__in=[v.pk for v in queued], status="cancelled").count() == 2
    assert Video.objects.get(pk=queued[0].pk).events.last().source == "admin"


def test_a_deactivated_members_videos_stay_with_the_team(client, team_admin, member, team, api_key, emulator):
    video = make_video(member, team, status="failed")
    member.is_active = False
    member.save()
    client.force_login(team_admin)
    assert client.get(f"/videos/{video.pk}/").status_code == 200
    assert "clip.mp4" in client.get("/videos/team/").content.decode()
    assert "clip.mp4" in client.get("/admin/uploads/video/").content.decode()
    response = client.post(f"/videos/{video.pk}/retry/", follow=True)
    assert "is queued again" in response.content.decode()
    run_worker("relay")
    video.refresh_from_db()
    assert video.status == "processing"
