"""Duplicates (issue 12, point 5): a resumable upload's SHA-256 is computed by the relay worker
from the stored file before the account's upload slot is claimed (in the worker, outside the
probe's time-limited child); a video's page names the identical videos the user may see, or says
only that the team has the file; the upload page's fingerprint is kept on the Video when a
resumable upload finishes, and the duplicates lookup matches on it as well as on name and size."""

import hashlib
import io
import time

import pytest
from django.core.files.storage import default_storage
from django.test import Client
from django.utils import timezone

from uploads import hashing, lifecycle, tasks, views
from uploads.models import Video

from .conftest import make_video as stored_video, run_worker, sample
from .test_browser_resumable import (chunks, link, open_upload_page, page, row,  # noqa: F401 (fixtures)
                                     browser_fingerprint, tus_creations, video_file, wait_state)
from .test_storage import BUCKET, moto_endpoint, s3  # noqa: F401 (fixtures)
from .tus_client import create, send_in_chunks

SAMPLE = sample("sample-h264-aac.mp4").read_bytes()
SHA = hashlib.sha256(SAMPLE).hexdigest()


def make_video(owner, team, sha256="0" * 64, **extra):
    """conftest's make_video, with this SHA-256 (or none yet)."""
    video = stored_video(owner, team, **extra)
    Video.objects.filter(pk=video.pk).update(sha256=sha256)
    video.sha256 = sha256
    return video


def resumable_video(owner, team, **extra):
    """A queued video as a finished resumable upload leaves it: no SHA-256 yet, its relay task."""
    video = make_video(owner, team, sha256="", **extra)
    tasks.enqueue([tasks.RelayVideo(str(video.pk), 0, video.relay_token)])
    return video


def spy_on_the_claim(monkeypatch):
    """The video's stored SHA-256 at the moment the relay claims the account's slot."""
    seen = []
    claim = lifecycle.claim_slot_and_video

    def claiming(video, *args, **kwargs):
        seen.append(Video.objects.values_list("sha256", flat=True).get(pk=video.pk))
        return claim(video, *args, **kwargs)
    monkeypatch.setattr(lifecycle, "claim_slot_and_video", claiming)
    return seen


# --- the SHA-256, in the worker, before the slot ------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_a_resumable_uploads_sha256_is_stored_before_the_slot_is_claimed(member, team, api_key, emulator,
                                                                        monkeypatch):
    video = resumable_video(member, team)
    seen = spy_on_the_claim(monkeypatch)
    run_worker("relay")
    video.refresh_from_db()
    assert seen == [SHA]  # known before memories.ai's upload slot was spent
    assert video.status == "processing" and video.sha256 == SHA and video.media_checked_at is not None
    assert emulator.uploads[-1].sha256 == SHA


@pytest.mark.django_db(transaction=True)
def test_a_video_refused_by_the_probe_still_has_its_sha256(member, team, api_key, emulator):
    content = sample("refused-mjpeg.avi").read_bytes()
    video = resumable_video(member, team, name="old.avi")
    Video.objects.filter(pk=video.pk).update(size=len(content))
    with default_storage.open(video.file.name, "wb") as stored:
        stored.write(content)
    run_worker("relay")
    video.refresh_from_db()
    assert video.status == "rejected" and emulator.uploads == []
    assert video.sha256 == hashlib.sha256(content).hexdigest()


@pytest.mark.django_db(transaction=True)
def test_hashing_does_not_count_against_the_probes_time_limit(member, team, api_key, emulator, settings,
                                                             monkeypatch):
    settings.MEMPORTAL_PROBE_SECONDS = 1.5
    digest = hashing.sha256_of

    def slow(stream, *args, **kwargs):
        time.sleep(2.5)  # longer than the probe may take: a 3 GB file takes 10-20 s
        return digest(stream, *args, **kwargs)
    monkeypatch.setattr(hashing, "sha256_of", slow)
    video = resumable_video(member, team)
    run_worker("relay")
    video.refresh_from_db()
    assert video.status == "processing" and video.sha256 == SHA
    assert video.media_checked_at is not None and video.video_codec  # probed, in its own time
    assert "could not be read in time" not in " ".join(e.message for e in video.events.all())


@pytest.mark.django_db(transaction=True)
def test_a_form_uploads_sha256_is_not_read_again(member, team, api_key, emulator, monkeypatch):
    video = make_video(member, team, sha256=SHA)
    tasks.enqueue([tasks.RelayVideo(str(video.pk), 0, video.relay_token)])
    monkeypatch.setattr(hashing, "sha256_of", lambda *a, **k: pytest.fail("hashed again"))
    run_worker("relay")
    video.refresh_from_db()
    assert video.status == "processing" and video.sha256 == SHA


@pytest.mark.django_db(transaction=True)
def test_a_file_that_cannot_be_read_for_the_hash_is_hashed_by_the_relay_as_it_sends(member, team, api_key,
                                                                                    emulator, monkeypatch):
    video = resumable_video(member, team)

    def failing(stream, *args, **kwargs):
        raise OSError("the disk hiccupped")
    monkeypatch.setattr(hashing, "sha256_of", failing)
    run_worker("relay")
    video.refresh_from_db()
    assert video.status == "processing" and video.sha256 == SHA  # the relay's own hash of what it sent


def test_the_hash_streams_the_file_in_blocks():
    class Stream(io.BytesIO):
        reads = []

        def read(self, n=-1):
            self.reads.append(n)
            return super().read(n)
    content = b"x" * 2500
    assert hashing.sha256_of(Stream(content), block_bytes=1000) == (hashlib.sha256(content).hexdigest(), 2500)
    assert Stream.reads == [1000, 1000, 1000, 1000]  # never the whole file at once


@pytest.mark.django_db(transaction=True)
def test_an_s3_stored_resumable_upload_is_hashed_from_the_object_before_the_slot(member, team, api_key, emulator,
                                                                                s3, monkeypatch):
    video = resumable_video(member, team)
    assert [item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET)["Contents"]] == [video.file.name]
    seen = spy_on_the_claim(monkeypatch)
    run_worker("relay")
    video.refresh_from_db()
    assert seen == [SHA] and video.status == "processing" and video.sha256 == SHA


# --- the video's page names identical videos ----------------------------------------------------

def page_of(user, video):
    client = Client()
    client.force_login(user)
    return client.get(f"/videos/{video.pk}/").content.decode()


def test_identical_videos_the_user_may_see_are_named_with_links(db, member, team):
    first = make_video(member, team, name="talk.mp4", title="Launch talk", sha256=SHA)
    again = make_video(member, team, name="talk-copy.mp4", sha256=SHA)
    shown = page_of(member, again)
    assert (f'Identical to <a href="/videos/{first.pk}/">“Launch talk”</a>, uploaded '
            f'<time datetime="{first.created_at.isoformat()}">{timezone.localtime(first.created_at):%Y-%m-%d}</time>'
            ) in shown
    assert "Your team already has this file." not in shown
    assert "Identical to" in page_of(member, first) and f"/videos/{again.pk}/\">“talk-copy.mp4”" in page_of(
        member, first)


def test_a_teammates_identical_video_is_only_said(db, member, teammate, team):
    theirs = make_video(teammate, team, name="secret.mp4", title="Board meeting", sha256=SHA)
    mine = make_video(member, team, sha256=SHA)
    shown = page_of(member, mine)
    assert "Your team already has this file." in shown
    assert "Board meeting" not in shown and str(theirs.pk) not in shown and "Identical to" not in shown


def test_the_team_admin_sees_the_teammates_video_named(db, member, team_admin, team):
    theirs = make_video(member, team, title="Board meeting", sha256=SHA)
    own = make_video(team_admin, team, sha256=SHA)
    shown = page_of(team_admin, own)
    assert "Identical to" in shown and "“Board meeting”" in shown and f"/videos/{theirs.pk}/" in shown


def test_deleted_cancelled_other_teams_and_unhashed_videos_are_not_identical(db, member, outsider, team,
                                                                            other_team):
    make_video(outsider, other_team, sha256=SHA)  # another team's, unseen: not "your team"
    make_video(member, team, sha256=SHA, deleted_at=timezone.now())
    make_video(member, team, sha256=SHA, status=Video.Status.CANCELLED)
    make_video(member, team, sha256="")
    mine = make_video(member, team, sha256=SHA)
    shown = page_of(member, mine)
    assert "Identical to" not in shown and "Your team already has this file." not in shown
    unhashed = make_video(member, team, sha256="")
    assert "Identical to" not in page_of(member, unhashed)


def test_the_identical_videos_are_found_in_one_query(db, member, teammate, team, django_assert_num_queries):
    make_video(member, team, title="Mine", sha256=SHA)
    make_video(teammate, team, sha256=SHA)
    video = make_video(member, team, sha256=SHA)
    with django_assert_num_queries(1):
        found = views.identical_to(video, member)
        names = [other.display_name for other in found["identical"]]
    assert names == ["Mine"] and found["team_has_identical"] is False


# --- the fingerprint on the server --------------------------------------------------------------

FINGERPRINT = "mp1-31973-1700000000000-0123456789abcdef0123456789abcdef"


def test_a_finished_resumable_upload_keeps_the_pages_fingerprint(client, member, api_key, settings):
    settings.MEMPORTAL_UPLOAD_CHUNK_BYTES = 10_000
    client.force_login(member)
    url = create(client, "clip.mp4", len(SAMPLE), fingerprint=FINGERPRINT)["Location"]
    send_in_chunks(client, url, SAMPLE, 10_000)
    assert Video.objects.get().fingerprint == FINGERPRINT


def duplicates(client, **query):
    response = client.get("/videos/duplicates/", query)
    assert response.status_code == 200
    return response.json()


def test_the_lookup_matches_the_fingerprint_or_the_name_and_size(client, member, teammate, team):
    video = make_video(member, team, name="renamed.mp4", fingerprint=FINGERPRINT)
    client.force_login(member)
    found = duplicates(client, name="clip.mp4", size=1, fingerprint=FINGERPRINT)
    assert [v["id"] for v in found["videos"]] == [str(video.pk)] and found["team_has_it"] is False
    assert duplicates(client, name="renamed.mp4", size=video.size)["videos"][0]["id"] == str(video.pk)
    assert duplicates(client, name="renamed.mp4", size=video.size, fingerprint="mp1-other")["videos"]
    assert duplicates(client, name="clip.mp4", size=1, fingerprint="mp1-other") == {"videos": [],
                                                                                   "team_has_it": False}
    assert duplicates(client, name="clip.mp4", size=1, fingerprint="") == {"videos": [], "team_has_it": False}
    Video.objects.filter(pk=video.pk).update(owner=teammate)  # a teammate's: only said
    assert duplicates(client, name="clip.mp4", size=1, fingerprint=FINGERPRINT) == {"videos": [],
                                                                                   "team_has_it": True}


def test_the_fingerprint_of_another_teams_video_is_no_duplicate(client, member, outsider, other_team):
    make_video(outsider, other_team, fingerprint=FINGERPRINT)
    client.force_login(member)
    assert duplicates(client, name="clip.mp4", size=1, fingerprint=FINGERPRINT) == {"videos": [],
                                                                                   "team_has_it": False}


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_upload_page_sends_its_fingerprint_to_the_lookup(page, link, member, api_key, tmp_path):  # noqa: F811
    net = link()
    path = video_file(tmp_path, "same.mp4", 200 * 1024)
    own = make_video(member, api_key.team, name="stored-under-another-name.mp4", title="Kept copy",
                     fingerprint=browser_fingerprint(path))
    open_upload_page(page, net.url, member)
    created = tus_creations(page)
    page.set_input_files("#id_files", str(path))
    wait_state(page, "same.mp4", "duplicate")  # neither its name nor its size match: its fingerprint does
    text = row(page, "same.mp4").inner_text()
    assert "You uploaded this file before: “Kept copy”" in text
    assert f"/videos/{own.pk}/" in row(page, "same.mp4").inner_html() and created == []
