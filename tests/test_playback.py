"""The player and the views behind it (uploads/playback.py): ranges answered 206 and capped, 416,
who may see the stored copy (everyone else 404), downloads, what plays and what gets the fallback,
the removed copy, and S3's presigned redirect with its origin in the CSP (moto_server)."""

import re
import time

import pytest
import requests
from django.core.files.base import ContentFile
from django.urls import reverse
from django.utils import timezone

from uploads import lifecycle
from uploads.models import Video
from uploads.probe import probe

from .conftest import padded, sample
from .test_storage import moto_endpoint, s3  # noqa: F401 (fixtures: the project's S3 storage on moto_server)

pytestmark = pytest.mark.django_db
MOVED = "This format does not play in the browser"


def stored_video(owner, team, data_name, name=None, content=None):
    """A video stored and probed as the relay worker leaves it (its media, its thumbnail)."""
    content = content if content is not None else sample(data_name).read_bytes()
    name = name or data_name
    video = Video(owner=owner, team=team, original_name=name, content_type="video/mp4", size=len(content),
                  sha256="0" * 64)
    video.file.save(name, ContentFile(content), save=False)
    video.save()
    lifecycle.record_media(video.pk, probe(sample(data_name)))
    video.refresh_from_db()
    return video


def media(client, video, **headers):
    return client.get(reverse("video-media", args=[video.pk]), headers=headers)


def page(client, video):
    response = client.get(reverse("video-detail", args=[video.pk]))
    assert response.status_code == 200
    return response.content.decode()


@pytest.fixture
def mp4(member, team):
    return stored_video(member, team, "sample-h264-aac.mp4", "standup.mp4")


def test_a_range_is_answered_206_with_its_bytes_and_content_range(client, member, mp4):
    client.force_login(member)
    content = sample("sample-h264-aac.mp4").read_bytes()

    response = media(client, mp4, Range="bytes=100-199")

    assert response.status_code == 206
    assert response.content == content[100:200]
    assert response["Content-Range"] == f"bytes 100-199/{len(content)}"
    assert response["Content-Length"] == "100"
    assert response["Content-Type"] == "video/mp4" and response["Accept-Ranges"] == "bytes"
    assert "private" in response["Cache-Control"]
    assert response["ETag"].startswith('"') and response["Last-Modified"]


def test_each_answer_is_capped_and_the_browser_s_next_ranges_bring_the_rest(client, member, team, settings):
    settings.MEMPORTAL_MEDIA_RANGE_BYTES = 64 * 1024
    content = padded(sample("sample-h264-aac.mp4").read_bytes(), bytes(range(256)) * 1024)  # 288 KiB
    video = stored_video(member, team, "sample-h264-aac.mp4", "long.mp4", content)
    client.force_login(member)

    received, start = b"", 0
    while start < len(content):
        response = media(client, video, Range=f"bytes={start}-")
        assert response.status_code == 206 and len(response.content) <= 64 * 1024
        first, last, size = map(int, re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", response["Content-Range"]).groups())
        assert (first, size) == (start, len(content)) and last - first + 1 == len(response.content)
        received += response.content
        start = last + 1
    assert received == content

    assert media(client, video, Range="bytes=-1000").content == content[-1000:]  # the last 1,000 bytes


@pytest.mark.parametrize("wanted", ["bytes=31973-", "bytes=99999-100000", "bytes=-0"])
def test_a_range_past_the_end_is_416(client, member, mp4, wanted):
    client.force_login(member)
    response = media(client, mp4, Range=wanted)
    assert response.status_code == 416 and response["Content-Range"] == f"bytes */{mp4.size}"


def test_without_a_range_the_whole_file_comes_inline_and_download_makes_it_an_attachment(client, member, mp4):
    client.force_login(member)
    content = sample("sample-h264-aac.mp4").read_bytes()

    whole = media(client, mp4)
    assert whole.status_code == 200 and b"".join(whole.streaming_content) == content
    assert whole["Content-Disposition"].startswith("inline") and whole["Accept-Ranges"] == "bytes"

    download = client.get(reverse("video-media", args=[mp4.pk]) + "?download=1", headers={"Range": "bytes=0-9"})
    assert download.status_code == 200 and b"".join(download.streaming_content) == content  # whole, not a range
    assert download["Content-Disposition"] == 'attachment; filename="standup.mp4"'


def test_a_range_for_another_version_of_the_file_gets_the_whole_file(client, member, mp4):
    client.force_login(member)
    etag = media(client, mp4, Range="bytes=0-0")["ETag"]
    assert media(client, mp4, Range="bytes=0-9", **{"If-Range": etag}).status_code == 206
    assert media(client, mp4, Range="bytes=0-9", **{"If-Range": '"another"'}).status_code == 200
    assert media(client, mp4, **{"If-None-Match": etag}).status_code == 304


def test_only_those_who_may_see_the_video_get_its_copy(client, mp4, member, teammate, team_admin, outsider,
                                                       superuser):
    thumbnail = reverse("video-thumbnail", args=[mp4.pk])
    for user in (teammate, outsider):  # a teammate who is not admin, another team
        client.force_login(user)
        assert media(client, mp4, Range="bytes=0-9").status_code == 404
        assert client.get(thumbnail).status_code == 404
    for user in (member, team_admin, superuser):
        client.force_login(user)
        assert media(client, mp4, Range="bytes=0-9").status_code == 206
        answer = client.get(thumbnail)
        assert answer.status_code == 200 and answer["Content-Type"] == "image/jpeg"
        assert answer.content[:3] == b"\xff\xd8\xff" and "private" in answer["Cache-Control"]
    client.logout()
    signed_out = media(client, mp4)
    assert signed_out.status_code == 302 and signed_out["Location"].startswith(reverse("login"))
    Video.objects.filter(pk=mp4.pk).update(deleted_at=timezone.now())
    client.force_login(member)
    assert media(client, mp4).status_code == 404 and client.get(thumbnail).status_code == 404


def test_the_page_plays_an_h264_mp4_with_its_thumbnail_as_poster(client, member, mp4):
    client.force_login(member)
    html = page(client, mp4)
    assert f'<video id="player" data-video-id="{mp4.pk}" controls preload="metadata"' in html
    assert f'poster="{reverse("video-thumbnail", args=[mp4.pk])}"' in html
    assert f'<source src="{reverse("video-media", args=[mp4.pk])}" type="video/mp4">' in html
    assert MOVED not in html


def test_an_h264_mov_is_served_as_mp4(client, member, team):
    video = stored_video(member, team, "sample-h264-aac.mov", "keynote.mov")
    Video.objects.filter(pk=video.pk).update(content_type="video/quicktime")
    client.force_login(member)
    assert 'type="video/mp4"' in page(client, video)
    assert media(client, video, Range="bytes=0-99")["Content-Type"] == "video/mp4"
    download = client.get(reverse("video-media", args=[video.pk]) + "?download=1")
    assert download["Content-Type"] == "video/quicktime"  # a download keeps the file's own type


def test_a_vp9_mkv_plays_as_webm(client, member, team):
    video = stored_video(member, team, "sample-vp9-opus.mkv", "offsite.mkv")
    client.force_login(member)
    assert '<source src="' in page(client, video) and 'type="video/webm"' in page(client, video)


@pytest.mark.parametrize("data_name, reason", [("sample-hevc.mov", "H.265/HEVC in MOV video"),
                                               ("sample-h264-noaudio.avi", "H.264 in AVI video")])
def test_what_does_not_play_shows_the_thumbnail_and_a_download_link(client, member, team, data_name, reason):
    video = stored_video(member, team, data_name)
    client.force_login(member)
    html = page(client, video)
    assert "<video" not in html
    assert f"{MOVED} ({reason})." in html
    assert f'<img src="{reverse("video-thumbnail", args=[video.pk])}" alt="A still from the video">' in html
    assert f'href="{reverse("video-media", args=[video.pk])}?download=1"' in html


def test_once_the_stored_copy_is_removed_there_is_no_player(client, member, team, mp4):
    from uploads.lifecycle import Source
    from uploads.removal import remove_stored_file

    assert remove_stored_file(mp4, "kept 7 days", Source.RECONCILE)
    client.force_login(member)
    html = page(client, mp4)
    assert "The stored copy of this video was removed on" in html and "<video" not in html
    assert media(client, mp4, Range="bytes=0-9").status_code == 404
    assert client.get(reverse("video-thumbnail", args=[mp4.pk])).status_code == 404


def test_the_csp_names_no_other_origin_with_the_local_folder(client, member, mp4):
    client.force_login(member)
    policy = client.get(reverse("video-detail", args=[mp4.pk]))["Content-Security-Policy"]
    assert "media-src 'self';" in policy and "img-src 'self' data:;" in policy


@pytest.mark.django_db(transaction=True)
def test_with_s3_the_copy_is_a_short_lived_presigned_redirect_and_the_csp_names_its_origin(
        client, member, team, s3, settings, moto_endpoint):  # noqa: F811
    import runpy

    from .conftest import ROOT

    settings.SECURE_CSP = runpy.run_path(str(ROOT / "memportal" / "settings.py"))["SECURE_CSP"]  # S3's settings
    video = stored_video(member, team, "sample-h264-aac.mov", "keynote.mov")
    assert s3.head_object(Bucket="memportal-test", Key=video.file.name)  # stored in the bucket
    client.force_login(member)

    response = media(client, video, Range="bytes=0-99")
    assert response.status_code == 302 and "no-store" in response["Cache-Control"]
    location = response["Location"]
    assert location.startswith(f"{moto_endpoint}/memportal-test/{video.file.name}?")
    expires = int(re.search(r"[?&]Expires=(\d+)", location).group(1))  # a Unix time, 6 h from now
    assert settings.MEMPORTAL_MEDIA_URL_SECONDS == 6 * 3600 and abs(expires - time.time() - 6 * 3600) < 120
    fetched = requests.get(location, headers={"Range": "bytes=0-99"}, timeout=10)
    assert fetched.status_code == 206 and fetched.content == sample("sample-h264-aac.mov").read_bytes()[:100]
    assert fetched.headers["Content-Type"] == "video/mp4"  # the MOV as it plays

    thumbnail = client.get(reverse("video-thumbnail", args=[video.pk]))
    assert thumbnail.status_code == 302
    assert requests.get(thumbnail["Location"], timeout=10).content[:3] == b"\xff\xd8\xff"

    policy = client.get(reverse("video-detail", args=[video.pk]))["Content-Security-Policy"]
    assert f"media-src 'self' {moto_endpoint};" in policy and f"img-src 'self' data: {moto_endpoint};" in policy
