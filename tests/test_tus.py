"""The resumable upload endpoint (tus 1.0: core, creation, termination, expiration) by the
protocol's rules, through Django's test client, on the local storage: offsets, refusals in the
upload form's words, another user's upload, cancel and expiry removing the bytes, the sign-in
and CSRF rules. Real HTTP, tuspy, a killed web process and S3: tests/test_tus_live.py."""

import hashlib
import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.files.storage import default_storage
from django.test import Client
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from uploads import chunkstore, resumable
from uploads.models import Membership, PartialUpload, Team, Video
from uploads.resumable import expire_partial_uploads

from .conftest import run_worker, sample
from .tus_client import CSRF, TUS, create, head, metadata, patch, send_in_chunks

SAMPLE = sample("sample-h264-aac.mp4").read_bytes()  # 31,973 bytes
CHUNK = 10_000
MIB = 1024 * 1024


@pytest.fixture(autouse=True)
def small_chunks(settings):
    settings.MEMPORTAL_UPLOAD_CHUNK_BYTES = CHUNK


def partial_path(upload):
    return Path(default_storage.path(f"partial/{upload.pk}.part"))


def started(client, user, name="clip.mp4", length=len(SAMPLE), **meta):
    client.force_login(user)
    response = create(client, name, length, **meta)
    assert response.status_code == 201, response.content
    return response["Location"]


def test_options_says_what_the_server_supports_to_anyone(client, db):
    response = client.options("/uploads/tus/")
    assert response.status_code == 204
    assert (response["Tus-Resumable"], response["Tus-Version"]) == ("1.0.0", "1.0.0")
    assert response["Tus-Extension"] == "creation,termination,expiration"
    assert response["Tus-Max-Size"] == str(django_settings.MEMPORTAL_MAX_UPLOAD_BYTES)
    assert response["Memportal-Chunk-Size"] == str(CHUNK)


def test_a_file_sent_in_chunks_becomes_a_queued_video_moved_into_place_not_copied(client, member, api_key):
    url = started(client, member, title="Quarterly review", fingerprint="clip.mp4-31973-1700000000-ab12")
    upload = PartialUpload.objects.get()
    assert url == f"/uploads/tus/{upload.pk}/" and upload.fingerprint.endswith("ab12")
    answer = head(client, url)
    assert (answer.status_code, answer["Upload-Offset"], answer["Upload-Length"]) == (200, "0", str(len(SAMPLE)))
    assert "no-store" in answer["Cache-Control"] and answer["Tus-Resumable"] == "1.0.0" and answer["Upload-Expires"]

    send_in_chunks(client, url, SAMPLE[:2 * CHUNK], CHUNK)
    assert head(client, url)["Upload-Offset"] == str(2 * CHUNK)
    inode = partial_path(upload).stat().st_ino
    last = send_in_chunks(client, url, SAMPLE, CHUNK, start=2 * CHUNK)

    video = Video.objects.get()
    assert last["Memportal-Video-Url"] == f"/videos/{video.pk}/" and last["Memportal-Video-Id"] == str(video.pk)
    assert (video.status, video.owner, video.api_key, video.title) == ("queued", member, api_key, "Quarterly review")
    assert (video.original_name, video.size, video.content_type, video.sha256) == ("clip.mp4", len(SAMPLE),
                                                                                  "video/mp4", "")
    assert video.file.name == f"videos/team-one/{timezone.now():%Y/%m}/{video.pk}.mp4"  # as the form names it
    stored = Path(default_storage.path(video.file.name))
    assert stored.read_bytes() == SAMPLE and stored.stat().st_ino == inode  # moved, the same file
    assert oct(stored.stat().st_mode & 0o777) == oct(django_settings.FILE_UPLOAD_PERMISSIONS)
    assert not partial_path(upload).exists()
    task = DBTaskResult.objects.get()
    assert (task.queue_name, task.args_kwargs["args"]) == ("relay", [str(video.pk), 0, video.relay_token])
    assert [(e.to_status, e.message) for e in video.events.all()] == [("queued", "clip.mp4 stored (31973 bytes)")]
    # The last answer lost? A HEAD says it is done, and names the video.
    again = head(client, url)
    assert (again["Upload-Offset"], again["Memportal-Video-Url"]) == (str(len(SAMPLE)), f"/videos/{video.pk}/")
    assert patch(client, url, len(SAMPLE), b"")["Memportal-Video-Id"] == str(video.pk)


@pytest.mark.django_db(transaction=True)  # a real db_worker runs the relay
@pytest.mark.parametrize("name", ["sample-hevc.mov", "sample-vp9-opus.mkv", "sample-h264-noaudio.avi"])
def test_a_sample_sent_in_chunks_is_relayed_like_a_form_upload(client, member, api_key, emulator, name):
    content = sample(name).read_bytes()
    url = started(client, member, name=name, length=len(content))
    send_in_chunks(client, url, content, CHUNK)
    run_worker("relay")
    video = Video.objects.get()
    assert video.status == "processing" and video.video_codec  # probed, then sent
    assert emulator.uploads[-1].sha256 == hashlib.sha256(content).hexdigest()
    assert video.sha256 == hashlib.sha256(content).hexdigest()  # of the stored file, before the slot


def test_a_chunk_at_another_offset_is_refused_with_409_and_changes_nothing(client, member, api_key):
    url = started(client, member)
    send_in_chunks(client, url, SAMPLE[:CHUNK], CHUNK)
    for offset in (0, CHUNK + 1, 5):
        response = patch(client, url, offset, SAMPLE[offset:offset + 100])
        assert response.status_code == 409 and response["Upload-Offset"] == str(CHUNK)
        assert f"The server has {CHUNK} bytes of this file" in response.content.decode()
    assert head(client, url)["Upload-Offset"] == str(CHUNK)
    assert partial_path(PartialUpload.objects.get()).read_bytes() == SAMPLE[:CHUNK]


def test_a_chunk_over_the_chunk_size_is_refused_with_413_before_it_is_read(client, member, api_key):
    url = started(client, member)
    response = patch(client, url, 0, SAMPLE[:CHUNK + 1])
    assert response.status_code == 413 and f"at most 9.8\xa0KB ({CHUNK} bytes)" in response.content.decode()
    assert response["Tus-Resumable"] == "1.0.0"
    assert head(client, url)["Upload-Offset"] == "0"
    past_the_end = patch(client, started(client, member, name="short.mp4", length=100), 0, SAMPLE[:101])
    assert past_the_end.status_code == 413 and "goes past the end" in past_the_end.content.decode()


def test_a_chunk_must_be_sent_as_offset_octet_stream_with_its_offset(client, member, api_key):
    url = started(client, member)
    wrong_type = client.generic("PATCH", url, SAMPLE[:100], content_type="application/octet-stream",
                                headers={**TUS, "Upload-Offset": "0"})
    assert wrong_type.status_code == 415
    no_offset = client.generic("PATCH", url, SAMPLE[:100], content_type="application/offset+octet-stream", headers=TUS)
    assert no_offset.status_code == 400
    no_version = client.generic("PATCH", url, SAMPLE[:100], content_type="application/offset+octet-stream",
                                headers={"Upload-Offset": "0"})
    assert (no_version.status_code, no_version["Tus-Version"]) == (412, "1.0.0")
    assert head(client, url)["Upload-Offset"] == "0"


def test_a_post_with_method_override_is_a_patch(client, member, api_key):
    url = started(client, member)
    response = client.post(url, SAMPLE[:CHUNK], content_type="application/offset+octet-stream",
                           headers={**TUS, "Upload-Offset": "0", "X-HTTP-Method-Override": "PATCH"})
    assert (response.status_code, response["Upload-Offset"]) == (204, str(CHUNK))


@pytest.mark.parametrize("name, length, status, reason", [
    ("big.mp4", 3 * 1000**3 + 1, 413, "“big.mp4” was not accepted: it is larger than the limit of 2.8\xa0GB."),
    ("notes.txt", 100, 422, "“notes.txt” was not accepted: only .mp4, .mov, .mkv and .avi videos are accepted."),
    ("empty.mov", 0, 422, "“empty.mov” was not accepted: the file is empty."),
])
def test_a_file_the_form_would_refuse_is_refused_at_creation_in_its_words(client, member, api_key, name, length,
                                                                          status, reason):
    client.force_login(member)
    before = set(os.listdir(default_storage.path(""))) if os.path.isdir(default_storage.path("")) else set()
    response = create(client, name, length)
    assert (response.status_code, response.content.decode().strip()) == (status, reason)
    assert not PartialUpload.objects.exists()
    assert set(os.listdir(default_storage.path(""))) - before <= {"partial"}


def test_content_that_is_not_its_container_is_refused_with_the_first_chunk_and_removed(client, member, api_key):
    content = sample("sample-vp9-opus.mkv").read_bytes()
    url = started(client, member, name="renamed.mp4", length=len(content))
    upload = PartialUpload.objects.get()
    response = patch(client, url, 0, content[:CHUNK])
    assert response.status_code == 422
    assert response.content.decode().strip() == ("“renamed.mp4” was not accepted: its content is not an MP4 video, "
                                                  "whatever its name says.")
    assert not PartialUpload.objects.exists() and not partial_path(upload).exists()
    assert head(client, url).status_code == 404


def test_another_users_upload_is_not_found_and_left_alone(client, member, teammate, api_key):
    url = started(client, member)
    send_in_chunks(client, url, SAMPLE[:CHUNK], CHUNK)
    other = Client()
    other.force_login(teammate)
    assert head(other, url).status_code == 404
    assert patch(other, url, CHUNK, SAMPLE[CHUNK:2 * CHUNK]).status_code == 404
    assert other.delete(url, headers=TUS).status_code == 404
    assert head(client, url)["Upload-Offset"] == str(CHUNK)
    assert partial_path(PartialUpload.objects.get()).read_bytes() == SAMPLE[:CHUNK]


def test_signed_out_every_method_but_options_gets_401_not_the_sign_in_page(client, member, api_key):
    url = started(client, member)
    anonymous = Client(enforce_csrf_checks=True)
    for response in (anonymous.post("/uploads/tus/", headers={**TUS, "Upload-Length": "10"}), head(anonymous, url),
                     patch(anonymous, url, 0, SAMPLE[:1000]), anonymous.delete(url, headers=TUS),
                     anonymous.get("/uploads/tus/")):
        assert response.status_code == 401, response
        assert response["Tus-Resumable"] == "1.0.0" and response["Memportal-Sign-In"] == "/accounts/login/"
    assert "sign in again" in patch(anonymous, url, 0, SAMPLE[:1000]).content.decode()
    # A whole chunk from a session that ended meanwhile: still 401 (over the 64 KiB an anonymous
    # request may send, but the endpoint answers from the headers and never reads the body).
    whole = patch(anonymous, url, 0, bytes(MIB))
    assert whole.status_code == 401 and whole["Tus-Resumable"] == "1.0.0"
    assert head(client, url)["Upload-Offset"] == "0"


def test_post_patch_and_delete_need_the_csrf_token_in_a_header(member, api_key):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(member)
    browser.cookies["csrftoken"] = CSRF
    assert create(browser, "clip.mp4", len(SAMPLE)).status_code == 403
    url = create(browser, "clip.mp4", len(SAMPLE), headers={"X-CSRFToken": CSRF})["Location"]
    assert head(browser, url).status_code == 200  # HEAD changes nothing: no token needed
    refused = patch(browser, url, 0, SAMPLE[:CHUNK])
    assert refused.status_code == 403 and refused["Tus-Resumable"] == "1.0.0"
    assert patch(browser, url, 0, SAMPLE[:CHUNK], headers={"X-CSRFToken": CSRF}).status_code == 204
    assert browser.delete(url, headers=TUS).status_code == 403
    assert browser.delete(url, headers={**TUS, "X-CSRFToken": CSRF}).status_code == 204


def test_who_may_not_upload_is_told_why_as_the_form_would(client, django_user_model, member, team, api_key):
    lonely = django_user_model.objects.create_user("lonely", password="x" * 20)
    client.force_login(lonely)
    response = create(client)
    assert (response.status_code, response.content.decode().strip()) == (
        403, "You are not a member of any team yet: ask your team admin to add you.")
    api_key.mark_failing("memories.ai refused the team's API key (authorization invalid) (code 0401)")
    client.force_login(member)
    paused = create(client)
    assert paused.status_code == 403 and "Uploads for Team One are paused" in paused.content.decode()
    api_key.is_active = False
    api_key.save()
    no_key = create(client)
    assert no_key.status_code == 403 and "Team One has no active memories.ai API key yet" in no_key.content.decode()
    assert not PartialUpload.objects.exists()


def test_a_member_of_several_teams_says_which_and_only_their_own(client, member, api_key, other_team, other_api_key):
    Membership.objects.create(user=member, team=other_team)
    foreign = Team.objects.create(name="Team Three", slug="team-three")
    client.force_login(member)
    assert create(client).status_code == 400
    assert create(client, team=str(foreign.pk)).status_code == 403
    assert create(client, team=str(other_team.pk)).status_code == 201
    assert PartialUpload.objects.get().team == other_team


def test_a_member_removed_from_the_team_cannot_go_on(client, member, team, api_key):
    url = started(client, member)
    Membership.objects.filter(user=member, team=team).delete()
    response = patch(client, url, 0, SAMPLE[:CHUNK])
    assert response.status_code == 403 and "no longer a member of Team One" in response.content.decode()


def test_unfinished_bytes_count_toward_the_team_storage(client, member, teammate, api_key, settings):
    settings.MEMPORTAL_TEAM_STORAGE_BYTES = 50_000
    started(client, member, length=len(SAMPLE))  # nothing sent yet: its length is reserved
    other = Client()
    other.force_login(teammate)
    response = create(other, "second.mp4", len(SAMPLE))
    assert response.status_code == 413
    assert response.content.decode().strip() == (
        "“second.mp4” was not accepted: Team One may keep 48.8\xa0KB of videos on the portal and keeps 31.2\xa0KB: "
        "delete videos it no longer needs, or ask your team admin.")


def test_a_user_may_have_only_so_many_uploads_in_flight(client, member, api_key, settings):
    settings.MEMPORTAL_UPLOADS_IN_FLIGHT_PER_USER = 2
    first = started(client, member, name="a.mp4")
    started(client, member, name="b.mp4")
    response = create(client, "c.mp4", len(SAMPLE))
    assert response.status_code == 429 and "you have 2 uploads under way" in response.content.decode()
    send_in_chunks(client, first, SAMPLE, CHUNK)  # one finishes: room for the next
    assert create(client, "c.mp4", len(SAMPLE)).status_code == 201


def test_cancel_removes_the_bytes_and_the_upload(client, member, api_key):
    url = started(client, member)
    send_in_chunks(client, url, SAMPLE[:CHUNK], CHUNK)
    upload = PartialUpload.objects.get()
    assert partial_path(upload).exists()
    response = client.delete(url, headers=TUS)
    assert (response.status_code, response["Tus-Resumable"]) == (204, "1.0.0")
    assert not partial_path(upload).exists() and not PartialUpload.objects.exists()
    assert head(client, url).status_code == 404
    assert patch(client, url, CHUNK, SAMPLE[CHUNK:2 * CHUNK]).status_code == 404


def test_a_finished_upload_cannot_be_cancelled_its_video_stays(client, member, api_key):
    url = started(client, member)
    send_in_chunks(client, url, SAMPLE, CHUNK)
    response = client.delete(url, headers=TUS)
    assert response.status_code == 409 and "it is a video now" in response.content.decode()
    video = Video.objects.get()
    assert default_storage.exists(video.file.name)


def test_an_expired_upload_is_gone_and_the_clock_removes_its_bytes(client, member, api_key):
    url = started(client, member)
    send_in_chunks(client, url, SAMPLE[:CHUNK], CHUNK)
    upload = PartialUpload.objects.get()
    expires = timezone.now() + timedelta(hours=django_settings.MEMPORTAL_UPLOAD_EXPIRE_HOURS)
    assert abs((upload.expires_at - expires).total_seconds()) < 60
    PartialUpload.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert head(client, url).status_code == 410
    assert patch(client, url, CHUNK, SAMPLE[CHUNK:2 * CHUNK]).status_code == 410
    assert client.get("/uploads/tus/").json() == {"uploads": []}

    assert expire_partial_uploads() == 1
    assert not partial_path(upload).exists() and not PartialUpload.objects.exists()
    assert head(client, url).status_code == 404
    assert expire_partial_uploads() == 0


def test_a_finished_upload_is_forgotten_when_it_expires_and_its_video_keeps_the_file(client, member, api_key):
    url = started(client, member)
    send_in_chunks(client, url, SAMPLE, CHUNK)
    PartialUpload.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert expire_partial_uploads() == 0
    assert not PartialUpload.objects.exists()
    assert default_storage.open(Video.objects.get().file.name).read() == SAMPLE


def test_a_complete_upload_whose_finishing_died_is_finished_by_head_or_the_clock(client, member, api_key,
                                                                                 monkeypatch):
    url = started(client, member)
    monkeypatch.setattr(resumable, "finish", lambda upload_id, token: resumable.reload(PartialUpload(pk=upload_id)))
    send_in_chunks(client, url, SAMPLE, CHUNK)  # all bytes committed; the finishing "died"
    monkeypatch.undo()
    PartialUpload.objects.update(writer_seen_at=timezone.now() - timedelta(seconds=60))
    assert not Video.objects.exists()
    answer = head(client, url)
    video = Video.objects.get()
    assert answer["Memportal-Video-Id"] == str(video.pk)
    assert default_storage.open(video.file.name).read() == SAMPLE


def test_a_second_writer_waits_unless_the_first_went_silent(client, member, api_key, settings):
    settings.MEMPORTAL_UPLOAD_STALL_SECONDS = 10
    url = started(client, member)
    upload = PartialUpload.objects.get()
    token, _ = resumable.claim(upload.pk, 0)  # a request writing the first chunk right now
    busy = patch(client, url, 0, SAMPLE[:CHUNK])
    assert (busy.status_code, busy["Retry-After"]) == (423, "10")
    PartialUpload.objects.update(writer_seen_at=timezone.now() - timedelta(seconds=11))  # silent since
    assert patch(client, url, 0, SAMPLE[:CHUNK]).status_code == 204
    with pytest.raises(resumable.Superseded):  # the silent one, waking up, can no longer commit
        resumable.Lease(upload.pk, token).beat(force=True)
    assert head(client, url)["Upload-Offset"] == str(CHUNK)


def test_the_user_can_list_their_unfinished_uploads_to_resume_them(client, member, teammate, api_key):
    url = started(client, member, fingerprint="clip.mp4-31973-1700000000-ab12")
    send_in_chunks(client, url, SAMPLE[:CHUNK], CHUNK)
    Client().force_login(teammate)
    listed = client.get("/uploads/tus/").json()["uploads"]
    assert [(u["url"], u["filename"], u["length"], u["offset"], u["fingerprint"]) for u in listed] == [
        (url, "clip.mp4", len(SAMPLE), CHUNK, "clip.mp4-31973-1700000000-ab12")]
    other = Client()
    other.force_login(teammate)
    assert other.get("/uploads/tus/").json() == {"uploads": []}


@pytest.mark.parametrize("header", ["filename", "filename !!!", "filename YQ==,filename Yg==",
                                    "name " + metadata(filename="a.mp4").split(" ")[1]])
def test_metadata_that_is_not_tus_metadata_or_names_no_file_is_refused(client, member, api_key, header):
    client.force_login(member)
    response = client.post("/uploads/tus/", headers={**TUS, "Upload-Length": "100", "Upload-Metadata": header})
    assert response.status_code == 400


@pytest.mark.parametrize("length", ["", "-1", "1e3", "²", "12 "])
def test_an_upload_length_that_is_not_a_whole_number_is_refused(client, member, api_key, length):
    client.force_login(member)
    response = client.post("/uploads/tus/", headers={**TUS, "Upload-Length": length,
                                                     "Upload-Metadata": metadata(filename="a.mp4")})
    assert response.status_code == 400 and not PartialUpload.objects.exists()


def test_a_file_name_keeps_no_folders(client, member, api_key):
    started(client, member, name="../../etc/C:\\Users\\mia\\holiday.mp4")
    assert PartialUpload.objects.get().filename == "holiday.mp4"


def test_the_body_limit_still_applies_before_the_endpoint(client, member, api_key, settings):
    """RequestBodyLimitMiddleware judges a chunk's declared length like any body: a chunk fits a
    signed-in user's limit; a body with no length is refused before anything reads it."""
    url = started(client, member)
    settings.MEMPORTAL_MAX_REQUEST_BYTES = CHUNK - 1
    assert patch(client, url, 0, SAMPLE[:CHUNK]).status_code == 413
    settings.MEMPORTAL_MAX_REQUEST_BYTES = 10 * CHUNK
    chunked = client.generic("PATCH", url, SAMPLE[:100], content_type="application/offset+octet-stream",
                             headers={**TUS, "Upload-Offset": "0", "Transfer-Encoding": "chunked"},
                             CONTENT_LENGTH="")
    assert chunked.status_code == 413
    assert head(client, url)["Upload-Offset"] == "0"


def test_the_chunk_store_is_the_storage_videos_go_to(settings):
    assert isinstance(resumable.chunk_store(), chunkstore.LocalChunks)
