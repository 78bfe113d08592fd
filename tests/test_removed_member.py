"""A member removed from a team keeps their own history, read-only (issue 10, finding 3): they can
no longer retry, cancel, check or delete a video, nor upload, with the team's key."""

import pytest

from uploads.models import Membership

from .conftest import make_video, relay_tasks

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize(("status", "action"), [("rejected", "retry"), ("queued", "cancel"),
                                                 ("processing", "check"), ("ready", "delete")])
def test_a_removed_member_sees_their_video_but_cannot_act_on_it(client, member, team, api_key, status, action):
    video = make_video(member, team, status=status, video_no="VI1" if status in ("processing", "ready") else "")
    Membership.objects.filter(user=member, team=team).delete()
    client.force_login(member)
    response = client.post(f"/videos/{video.pk}/{action}/", follow=True)
    assert response.status_code == 200
    assert f"You are no longer a member of {team}" in response.content.decode()
    video.refresh_from_db()
    assert video.status == status and video.deleted_at is None and not relay_tasks().exists()
    page = client.get(f"/videos/{video.pk}/").content.decode()
    assert "shown read-only" in page and ">Retry<" not in page and "Delete…" not in page
    assert str(video.pk) in client.get("/videos/").content.decode()  # still in their list


def test_a_removed_member_cannot_upload(client, member, team, api_key):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from .conftest import sample

    Membership.objects.filter(user=member, team=team).delete()
    client.force_login(member)
    client.post("/videos/upload/", {"files": [SimpleUploadedFile("a.mp4", sample("sample-h264-aac.mp4").read_bytes())]})
    assert not team.videos.exists()


def test_a_member_still_in_the_team_acts_as_before(client, member, team, api_key):
    video = make_video(member, team, status="rejected")
    client.force_login(member)
    client.post(f"/videos/{video.pk}/retry/")
    video.refresh_from_db()
    assert video.status == "queued" and relay_tasks().exists()
