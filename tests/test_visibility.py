"""Who sees what: members their own videos, team admins their teams', superusers all."""

import pytest

from uploads.models import Video

from .conftest import make_video


@pytest.fixture
def videos(member, teammate, outsider, team, other_team):
    return {
        "mine": make_video(member, team, name="mine.mp4"),
        "teammate": make_video(teammate, team, name="teammates.mp4"),
        "other_team": make_video(outsider, other_team, name="other-team.mp4"),
    }


def visible(user):
    return set(Video.objects.visible_to(user).values_list("original_name", flat=True))


def test_visible_to_follows_the_roles(videos, member, team_admin, superuser, django_user_model):
    assert visible(member) == {"mine.mp4"}
    assert visible(team_admin) == {"mine.mp4", "teammates.mp4"}
    assert visible(superuser) == {"mine.mp4", "teammates.mp4", "other-team.mp4"}
    member.is_active = False
    assert visible(member) == set()


def test_my_videos_lists_only_mine_newest_first(client, videos, member):
    newer = make_video(member, member.memberships.get().team, name="newer.mp4")
    client.force_login(member)
    page = client.get("/videos/").content.decode()
    assert page.index("newer.mp4") < page.index("mine.mp4")
    assert "teammates.mp4" not in page and "other-team.mp4" not in page
    assert f'data-video-id="{newer.pk}"' in page and "Queued" in page


def test_another_members_video_is_404(client, videos, member):
    client.force_login(member)
    for name in ["teammate", "other_team"]:
        video = videos[name]
        assert client.get(f"/videos/{video.pk}/").status_code == 404
        assert client.post(f"/videos/{video.pk}/retry/").status_code == 404
        assert client.post(f"/videos/{video.pk}/cancel/").status_code == 404
        assert client.post(f"/videos/{video.pk}/check/").status_code == 404
    states = client.post("/videos/states/", {"ids": [str(v.pk) for v in videos.values()]},
                         content_type="application/json").json()
    assert set(states["videos"]) == {str(videos["mine"].pk)}


def test_a_team_admin_sees_the_teams_videos_on_request(client, videos, team_admin):
    client.force_login(team_admin)
    assert "teammates.mp4" not in client.get("/videos/").content.decode()
    assert client.get("/videos/?scope=team").status_code == 200  # an old link: just "My videos"
    page = client.get("/videos/team/").content.decode()
    assert "teammates.mp4" in page and "mine.mp4" in page and "other-team.mp4" not in page
    assert client.get(f"/videos/{videos['teammate'].pk}/").status_code == 200
    assert client.get(f"/videos/{videos['other_team'].pk}/").status_code == 404


def test_the_video_page_shows_details_and_timeline(client, member, team, api_key, emulator):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from .conftest import sample

    client.force_login(member)
    client.post("/videos/upload/", {"files": [SimpleUploadedFile(
        "talk.mp4", sample("sample-h264-aac.mp4").read_bytes())], "title": "Talk"})
    video = Video.objects.get()
    page = client.get(f"/videos/{video.pk}/").content.decode()
    assert "Talk" in page and "talk.mp4" in page and video.sha256 in page
    assert "Upload" in page and "talk.mp4 stored (31973 bytes)" in page
    assert "Cancel" in page
