"""Resource limits (issue 10): stored bytes per team, and a bound on the callback records one
callback URL can make the portal keep."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from uploads.models import CallbackRecord, Video

from .conftest import sample

pytestmark = pytest.mark.django_db(transaction=True)


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
