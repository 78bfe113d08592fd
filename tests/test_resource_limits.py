"""Resource limits (issue 10): stored bytes per team, and a bound on the callback records one
callback URL can make the portal keep."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from uploads.models import CallbackRecord, Video

from uploads.views import OverQuota

from .conftest import sample, store_video

pytestmark = pytest.mark.django_db(transaction=True)


def test_two_uploads_at_once_cannot_both_pass_the_teams_limit(member, teammate, team, api_key, settings):
    """Both passed the form's early check while the team held nothing; the one that commits
    second is refused under the team's lock, and its stored file removed."""
    content = sample("sample-h264-aac.mp4").read_bytes()
    settings.MEMPORTAL_TEAM_STORAGE_BYTES = len(content) * 3 // 2
    before = stored_names()
    first = store_video(member, team, api_key, "first.mp4", content)
    with pytest.raises(OverQuota, match="Team One may keep"):
        store_video(teammate, team, api_key, "second.mp4", content)
    assert list(Video.objects.values_list("original_name", flat=True)) == ["first.mp4"]
    assert stored_names() - before == {first.file.name}


def stored_names():
    from django.core.files.storage import default_storage

    from .conftest import stored_files
    return stored_files(default_storage, "videos")


def test_a_team_over_its_storage_quota_is_told_why_and_the_rest_is_kept(client, member, team, api_key, settings):
    content = sample("sample-h264-aac.mp4").read_bytes()
    settings.MEMPORTAL_TEAM_STORAGE_BYTES = 2 * len(content) + 10
    client.force_login(member)
    files = [SimpleUploadedFile(f"clip{i}.mp4", content) for i in range(3)]
    response = client.post("/videos/upload/", {"files": files}, follow=True)
    page = response.content.decode()
    assert Video.objects.count() == 2
    assert "“clip2.mp4” was not accepted: Team One may keep" in page and "delete videos it no longer needs" in page


def test_one_callback_url_cannot_fill_the_database(processing, settings):
    settings.MEMPORTAL_CALLBACKS_KEPT_PER_VIDEO = 5
    for n in range(12):
        Client().post(processing.callback_path, data=json.dumps({"videoNo": processing.video_no, "status": f"S{n}"}),
                      content_type="application/json")
    kept = list(CallbackRecord.objects.order_by("pk").values_list("remote_status", flat=True))
    assert kept == [f"S{n}" for n in range(7, 12)]  # the newest five
