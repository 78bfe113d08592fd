"""Uploading through the form: what is accepted, what is refused and why, and what is stored."""

import hashlib
from pathlib import Path

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django_tasks_db.models import DBTaskResult

from uploads.models import ApiKey, Membership, Team, Video

from .conftest import PASSWORD, sample, stored_files


def upload_file(name, content, content_type="video/mp4"):
    return SimpleUploadedFile(name, content, content_type=content_type)


def post_upload(client, user, files, **data):
    client.force_login(user)
    return client.post("/videos/upload/", {"files": files, **data}, follow=True)


def page_messages(response):
    return [str(m) for m in response.context["messages"]]


@pytest.mark.parametrize("name", ["sample-h264-aac.mp4", "sample-hevc.mov", "sample-vp9-opus.mkv",
                                  "sample-h264-noaudio.avi"])
def test_it_accepts_each_container_and_stores_it(client, member, api_key, name):
    content = sample(name).read_bytes()
    response = post_upload(client, member, [upload_file(name, content)], title="Quarterly review")

    assert response.redirect_chain[-1][0] == "/videos/"
    assert "1 video stored and queued for memories.ai." in page_messages(response)
    video = Video.objects.get()
    assert (video.status, video.owner, video.team, video.api_key) == ("queued", member, api_key.team, api_key)
    assert (video.original_name, video.size, video.title) == (name, len(content), "Quarterly review")
    assert video.sha256 == hashlib.sha256(content).hexdigest()
    with default_storage.open(video.file.name) as stored:
        assert stored.read() == content
    assert video.content_type.startswith("video/")
    task = DBTaskResult.objects.get()
    assert (task.queue_name, task.args_kwargs["args"]) == ("relay", [str(video.pk), 0, video.relay_token])
    assert [e.to_status for e in video.events.all()] == ["queued"]
    assert "Quarterly review" in response.content.decode()


def test_it_accepts_an_uppercase_extension(client, member, api_key):
    response = post_upload(client, member, [upload_file("HOLIDAY.MP4", sample("sample-h264-aac.mp4").read_bytes())])
    assert Video.objects.get().original_name == "HOLIDAY.MP4"
    assert response.status_code == 200


@pytest.mark.parametrize("name, content, reason", [
    ("notes.txt", b"hello", "only .mp4, .mov, .mkv and .avi videos are accepted"),
    ("picture.mp4", (sample("not-a-video.mp4")).read_bytes(), "its content is not an MP4 video"),
    ("empty.mov", b"", "the file is empty"),
    ("renamed.mkv", sample("sample-h264-aac.mp4").read_bytes(), "its content is not a Matroska (MKV) video"),
    ("renamed.avi", sample("sample-vp9-opus.mkv").read_bytes(), "its content is not an AVI video"),
])
def test_it_refuses_a_bad_file_and_says_why(client, member, api_key, name, content, reason):
    response = post_upload(client, member, [upload_file(name, content)])
    messages = page_messages(response)
    assert any(name in m and reason in m for m in messages), messages
    assert not Video.objects.exists()
    assert not DBTaskResult.objects.exists()


def test_it_refuses_a_file_over_the_limit_while_it_streams(client, member, api_key, settings):
    settings.MEMPORTAL_MAX_UPLOAD_BYTES = 20_000
    big = sample("sample-h264-aac.mp4").read_bytes()  # 31,973 bytes
    small = sample("sample-h264-noaudio.avi").read_bytes()  # 18,290 bytes
    response = post_upload(client, member, [upload_file("big.mp4", big), upload_file("small.avi", small)])
    messages = page_messages(response)
    assert any("big.mp4" in m and "larger than the limit of 19.5\xa0KB" in m for m in messages), messages
    assert "1 video stored and queued for memories.ai." in messages
    assert list(Video.objects.values_list("original_name", flat=True)) == ["small.avi"]


def test_good_files_are_kept_when_others_in_the_same_form_are_refused(client, member, api_key):
    files = [upload_file("a.mp4", sample("sample-h264-aac.mp4").read_bytes()),
             upload_file("b.mp4", sample("not-a-video.mp4").read_bytes()),
             upload_file("c.mkv", sample("sample-vp9-opus.mkv").read_bytes())]
    response = post_upload(client, member, files, title="Batch")
    messages = page_messages(response)
    assert "2 videos stored and queued for memories.ai." in messages
    assert any("b.mp4" in m for m in messages)
    assert sorted(Video.objects.values_list("original_name", "title")) == [("a.mp4", "Batch (1)"),
                                                                           ("c.mkv", "Batch (3)")]


def test_a_team_without_a_usable_key_stores_nothing(client, member, team):
    before = stored_files()  # what earlier tests of this run left in storage
    response = post_upload(client, member, [upload_file("a.mp4", sample("sample-h264-aac.mp4").read_bytes())])
    body = response.content.decode()
    assert "has no active memories.ai API key yet: ask your team admin" in body
    assert not Video.objects.exists()
    assert stored_files() == before


def test_a_failing_key_pauses_uploads_with_the_reason(client, member, api_key):
    api_key.mark_failing("memories.ai refused the team's API key (authorization invalid) (code 0401)")
    response = post_upload(client, member, [upload_file("a.mp4", sample("sample-h264-aac.mp4").read_bytes())])
    body = response.content.decode()
    assert "Uploads for Team One are paused" in body and "code 0401" in body
    assert not Video.objects.exists()


def test_a_member_of_several_teams_chooses_the_team(client, member, api_key, other_team, other_api_key):
    Membership.objects.create(user=member, team=other_team)
    client.force_login(member)
    page = client.get("/videos/upload/").content.decode()
    assert "Team One" in page and "Team Two" in page
    response = post_upload(client, member, [upload_file("a.mp4", sample("sample-h264-aac.mp4").read_bytes())],
                           team=other_team.pk)
    assert response.status_code == 200
    assert Video.objects.get().team == other_team


def test_it_refuses_a_team_the_user_is_not_in(client, member, api_key, other_team, other_api_key):
    Membership.objects.create(user=member, team=other_team)  # two teams: the form asks which one
    foreign = Team.objects.create(name="Team Three", slug="team-three")
    foreign_key = ApiKey(team=foreign, label="Team three key")
    foreign_key.set_secret("sk-mavi-third-0123456789abcdef-T3AM")  # a usable key: only membership says no
    foreign_key.save()
    before = stored_files()
    response = post_upload(client, member, [upload_file("a.mp4", sample("sample-h264-aac.mp4").read_bytes())],
                           team=foreign.pk)
    assert response.status_code == 200 and response.redirect_chain == []  # the form again, not the list
    assert "Select a valid choice. That choice is not one of the available choices." in response.content.decode()
    assert not Video.objects.exists() and not DBTaskResult.objects.exists()
    assert stored_files() == before


def test_choosing_no_file_asks_for_one(client, member, api_key):
    response = post_upload(client, member, [])
    assert "Choose at least one video file." in response.content.decode()


def test_every_page_but_sign_in_needs_a_signed_in_user(client, db):
    for path in ["/videos/", "/videos/upload/", "/admin/"]:
        response = client.get(path)
        assert response.status_code == 302 and "login" in response["Location"], path
    assert client.get("/healthz").content == b"ok"
    assert client.get("/accounts/login/").status_code == 200


def test_a_user_in_no_team_is_told_so(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("lonely", password=PASSWORD))
    assert "not a member of any team" in client.get("/videos/upload/").content.decode()
    assert Team.objects.count() == 0


def test_too_many_files_at_once_gets_a_page_that_says_so(client, member, api_key, settings):
    settings.MEMPORTAL_FILES_PER_SELECTION = 3
    client.force_login(member)
    assert "(up to 3 at once)" in client.get("/videos/upload/").content.decode()
    files = [upload_file(f"{i}.mp4", sample("sample-h264-aac.mp4").read_bytes()) for i in range(4)]
    response = client.post("/videos/upload/", {"files": files})
    assert response.status_code == 400
    assert ("Nothing was uploaded: one selection may hold at most 3 files: pick at most 3 at a time and try again."
            in response.content.decode())
    assert not Video.objects.exists() and not list(Path(settings.FILE_UPLOAD_TEMP_DIR).iterdir())
    files = [upload_file(f"{i}.mp4", sample("sample-h264-aac.mp4").read_bytes()) for i in range(3)]
    assert client.post("/videos/upload/", {"files": files}).status_code == 302
    assert Video.objects.count() == 3
