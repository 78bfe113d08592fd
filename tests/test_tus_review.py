"""The resumable endpoint's review (issue 12's findings), on the server's side, through Django's
test client on the local storage and the real database: a HEAD that cannot finish a complete
upload still answers its offset; a cancel that fenced a complete upload leaves no file behind; a
member removed from the team gets no video from a complete upload; the storage limit counts
every unfinished upload's bytes until they are removed; the unfinished list says which ones are
being sent right now; the sweep fences only what it saw; creation locks the user's row; the
admin lists uploads and discards them. The browser's side: tests/test_browser_resumable.py."""

import threading
import time
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.files.storage import default_storage
from django.db import connection, transaction
from django.test import Client
from django.utils import timezone

from uploads import chunkstore, resumable
from uploads.models import Membership, PartialUpload, Video
from uploads.resumable import expire_partial_uploads

from .test_tus import CHUNK, SAMPLE, partial_path, small_chunks, started  # noqa: F401 (small_chunks: a fixture)
from .tus_client import TUS, create, head, send_in_chunks



def storage_fails(monkeypatch):
    """The storage's move into the video's name fails (a full disk, an NFS hiccup)."""
    def fail(self, upload):
        raise OSError(5, "Input/output error")
    monkeypatch.setattr(chunkstore.LocalChunks, "complete", fail)


def at_videos_name(upload):
    return default_storage.exists(upload.storage_name)


# --- 1: a HEAD never answers 5xx for a finishing that failed -----------------------------------

def test_head_of_a_complete_upload_whose_finishing_fails_answers_its_offset_and_a_later_head_finishes(
        client, member, api_key, monkeypatch):
    url = started(client, member)
    send_in_chunks(client, url, SAMPLE[:3 * CHUNK], CHUNK)
    storage_fails(monkeypatch)
    last = client.generic("PATCH", url, SAMPLE[3 * CHUNK:], content_type="application/offset+octet-stream",
                          headers={**TUS, "Upload-Offset": str(3 * CHUNK)})
    assert last.status_code == 503  # the PATCH may say so: the client asks for the offset next
    answer = head(client, url)
    # Not 5xx (tus-js-client would start the file again from zero): the offset is the length, no video yet.
    assert (answer.status_code, answer["Upload-Offset"]) == (200, str(len(SAMPLE)))
    assert "Memportal-Video-Url" not in answer and not Video.objects.exists()
    assert PartialUpload.objects.get().writer == ""  # no claim left behind: the next HEAD may finish it
    monkeypatch.undo()
    again = head(client, url)
    video = Video.objects.get()
    assert again.status_code == 200 and again["Memportal-Video-Id"] == str(video.pk)
    assert default_storage.open(video.file.name).read() == SAMPLE


def test_head_of_a_complete_upload_past_its_expiry_finishes_it_rather_than_answer_410(client, member, api_key,
                                                                                   monkeypatch):
    url = complete_but_unfinished(client, member, monkeypatch)
    PartialUpload.objects.update(expires_at=timezone.now() - timedelta(seconds=1))  # the clock would finish it
    answer = head(client, url)  # a 410 would have the client send the file again: two videos
    assert answer.status_code == 200 and answer["Memportal-Video-Id"] == str(Video.objects.get().pk)


# --- 4: a cancel that fenced a complete upload removes the bytes it had ------------------------

def test_a_cancel_racing_the_last_chunk_removes_the_file_moved_into_the_videos_name(client, member, api_key,
                                                                                   monkeypatch):
    url = started(client, member)
    send_in_chunks(client, url, SAMPLE[:3 * CHUNK], CHUNK)
    seen_by_the_cancel = resumable.owned(member, PartialUpload.objects.get().pk)  # DELETE reads the row...

    def moved_then_died(upload_id, token):  # ...the last PATCH commits and moves the file, its process dies
        upload = PartialUpload.objects.get(pk=upload_id)
        resumable.store_for(upload).complete(upload)
        return resumable.reload(upload)
    monkeypatch.setattr(resumable, "finish", moved_then_died)
    send_in_chunks(client, url, SAMPLE, CHUNK, start=3 * CHUNK)
    monkeypatch.undo()
    assert at_videos_name(seen_by_the_cancel)
    resumable.terminate(seen_by_the_cancel)  # ...then the DELETE fences it
    assert not PartialUpload.objects.exists() and not Video.objects.exists()
    assert not at_videos_name(seen_by_the_cancel)  # nothing left at the video's name without a Video


# --- 5: a member removed from the team gets no video ------------------------------------------

def removed_without_signals(user, team):
    """The membership deleted by SQL (a bulk script, a restore): no signal, so only the finishing's
    own check can stop the video."""
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {Membership._meta.db_table} WHERE user_id = %s AND team_id = %s",
                       [user.pk, team.pk])


def complete_but_unfinished(client, member, monkeypatch):
    url = started(client, member)
    monkeypatch.setattr(resumable, "finish", lambda upload_id, token: resumable.reload(PartialUpload(pk=upload_id)))
    send_in_chunks(client, url, SAMPLE, CHUNK)  # every byte committed; the finishing "died"
    monkeypatch.undo()
    PartialUpload.objects.update(writer="", writer_seen_at=None)
    return url


def test_a_removed_members_complete_upload_does_not_become_a_video_by_head(client, member, team, api_key,
                                                                           monkeypatch):
    url = complete_but_unfinished(client, member, monkeypatch)
    upload = PartialUpload.objects.get()
    removed_without_signals(member, team)
    answer = head(client, url)
    assert answer.status_code == 403  # (a HEAD's answer has no body: a PATCH would say why)
    assert not Video.objects.exists() and not PartialUpload.objects.exists()
    assert not partial_path(upload).exists() and not at_videos_name(upload)


def test_a_removed_members_complete_upload_does_not_become_a_video_by_the_clock(client, member, team, api_key,
                                                                                monkeypatch):
    complete_but_unfinished(client, member, monkeypatch)
    removed_without_signals(member, team)
    expire_partial_uploads()
    assert not Video.objects.exists() and not PartialUpload.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_removing_a_member_cancels_their_unfinished_uploads_for_that_team(client, member, team, api_key,
                                                                          other_team, other_api_key):
    Membership.objects.create(user=member, team=other_team)
    there = started(client, member, team=str(team.pk))
    send_in_chunks(client, there, SAMPLE[:CHUNK], CHUNK)
    elsewhere = started(client, member, name="other.mp4", team=str(other_team.pk))
    leaving = PartialUpload.objects.get(team=team)
    with transaction.atomic():  # as the admin deletes it
        Membership.objects.get(user=member, team=team).delete()
        assert PartialUpload.objects.filter(team=team).exists()  # not before the removal is committed
    assert not PartialUpload.objects.filter(team=team).exists() and not partial_path(leaving).exists()
    assert head(client, there).status_code == 404
    assert head(client, elsewhere).status_code == 200  # the other team's upload goes on


# --- 6: bytes on disk count until they are removed --------------------------------------------

def test_an_expired_upload_whose_bytes_are_still_on_disk_counts_toward_the_storage_limit(
        client, member, teammate, api_key, settings):
    settings.MEMPORTAL_TEAM_STORAGE_BYTES = 50_000
    url = started(client, member, length=30_000)
    send_in_chunks(client, url, SAMPLE[:2 * CHUNK], CHUNK)  # 20,000 of its 30,000 bytes on the disk
    PartialUpload.objects.update(expires_at=timezone.now() - timedelta(seconds=1))  # the clock has not run yet
    other = Client()
    other.force_login(teammate)
    assert create(other, "second.mp4", 32_000).status_code == 413
    PartialUpload.objects.update(writer=PartialUpload.GONE, writer_seen_at=timezone.now())  # being removed
    assert create(other, "second.mp4", 32_000).status_code == 413
    expire_partial_uploads()  # not yet: a removal's fence waits for the stall
    PartialUpload.objects.update(writer_seen_at=timezone.now() - timedelta(hours=1))
    expire_partial_uploads()
    assert not PartialUpload.objects.exists()
    response = create(other, "second.mp4", 32_000)
    assert response.status_code == 201, response.content  # removed: room again


# --- 3: the list says which unfinished uploads are being sent right now -----------------------

def test_the_unfinished_list_says_which_uploads_are_being_sent_now(client, member, api_key, settings):
    settings.MEMPORTAL_UPLOAD_STALL_SECONDS = 10
    sending = started(client, member, name="a.mp4")
    send_in_chunks(client, sending, SAMPLE[:CHUNK], CHUNK)
    resting = started(client, member, name="b.mp4")
    send_in_chunks(client, resting, SAMPLE[:CHUNK], CHUNK)
    PartialUpload.objects.filter(filename="b.mp4").update(updated_at=timezone.now() - timedelta(seconds=60))
    listed = {u["filename"]: u["active"] for u in client.get("/uploads/tus/").json()["uploads"]}
    assert listed == {"a.mp4": True, "b.mp4": False}  # a chunk came a moment ago; b's a minute ago
    PartialUpload.objects.update(updated_at=timezone.now() - timedelta(seconds=60))
    token, _ = resumable.claim(PartialUpload.objects.get(filename="b.mp4").pk, CHUNK)  # a PATCH writing now
    PartialUpload.objects.filter(filename="b.mp4").update(updated_at=timezone.now() - timedelta(seconds=60))
    listed = {u["filename"]: u["active"] for u in client.get("/uploads/tus/").json()["uploads"]}
    assert listed == {"a.mp4": False, "b.mp4": True}
    PartialUpload.objects.update(writer_seen_at=timezone.now() - timedelta(seconds=11))  # gone silent
    assert not any(u["active"] for u in client.get("/uploads/tus/").json()["uploads"])


# --- 9: the sweep fences an expired upload only as it saw it -----------------------------------

def test_the_sweep_does_not_fence_an_upload_whose_writer_woke_up_or_whose_expiry_moved(client, member, api_key,
                                                                                       settings):
    settings.MEMPORTAL_UPLOAD_STALL_SECONDS = 10
    url = started(client, member)
    send_in_chunks(client, url, SAMPLE[:CHUNK], CHUNK)
    upload = PartialUpload.objects.get()
    token, _ = resumable.claim(upload.pk, CHUNK)
    PartialUpload.objects.update(expires_at=timezone.now() - timedelta(seconds=1),
                                 writer_seen_at=timezone.now() - timedelta(seconds=60))
    seen = PartialUpload.objects.get()  # what the sweep read: expired, its writer silent
    resumable.Lease(upload.pk, token).beat(force=True)  # the writer's bytes arrive again (same token)
    assert not resumable.fence_due(seen)
    assert PartialUpload.objects.get().writer == token

    resumable.release(upload.pk, token)
    PartialUpload.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    seen = PartialUpload.objects.get()  # expired, no writer
    PartialUpload.objects.update(expires_at=timezone.now() + timedelta(hours=1))  # a chunk committed since
    assert not resumable.fence_due(seen)
    assert PartialUpload.objects.get().writer == ""
    PartialUpload.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert resumable.fence_due(PartialUpload.objects.get())  # as it was seen: fenced
    assert PartialUpload.objects.get().writer == PartialUpload.GONE


# --- 11: the in-flight limit is per user: creation locks the user's row ------------------------

@pytest.mark.django_db(transaction=True)
def test_creation_waits_for_the_users_row_lock_so_two_teams_cannot_each_pass_the_limit(
        member, api_key, other_team, other_api_key):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises every write transaction (BEGIN IMMEDIATE): no row locks to see")
    Membership.objects.create(user=member, team=other_team)
    answers = []
    client = Client()
    client.force_login(member)  # (signing in writes the user's row: before the lock)

    def create_in_other_team():
        try:
            answers.append(create(client, "b.mp4", 1000, team=str(other_team.pk)).status_code)
        finally:
            connection.close()  # this thread's own connection
    with transaction.atomic():  # another creation of this user's, in another team, under way: its lock
        list(get_user_model().objects.select_for_update(no_key=True).filter(pk=member.pk))
        worker = threading.Thread(target=create_in_other_team)
        worker.start()
        time.sleep(1.5)
        assert worker.is_alive() and answers == []  # it waits for the user's row
    worker.join(10)
    assert answers == [201]


# --- 12: the admin lists unfinished uploads and discards them ----------------------------------

def test_the_admin_lists_uploads_and_discards_the_chosen_ones_with_their_bytes(client, member, team_admin,
                                                                             superuser, api_key):
    url = started(client, member, name="holiday.mp4")
    send_in_chunks(client, url, SAMPLE[:CHUNK], CHUNK)
    kept = started(client, member, name="keep.mp4")
    discarded = PartialUpload.objects.get(filename="holiday.mp4")
    admin = Client()
    admin.force_login(superuser)
    listing = admin.get("/admin/uploads/partialupload/")
    assert listing.status_code == 200
    text = listing.content.decode()
    for shown in ("holiday.mp4", "keep.mp4", "mia", "Team One", "31973", "10000", "31 % (9.8\xa0KB of 31.2\xa0KB)"):
        assert shown in text, shown
    assert admin.get(f"/admin/uploads/partialupload/{discarded.pk}/change/").status_code == 200
    assert admin.get("/admin/uploads/partialupload/add/").status_code == 403
    response = admin.post("/admin/uploads/partialupload/", {"action": "discard_uploads",
                                                            "_selected_action": [str(discarded.pk)]})
    assert response.status_code == 302
    assert list(PartialUpload.objects.values_list("filename", flat=True)) == ["keep.mp4"]
    assert not partial_path(discarded).exists() and head(client, url).status_code == 404
    assert head(client, kept).status_code == 200
    team_admins = Client()
    team_admins.force_login(team_admin)
    assert team_admins.get("/admin/uploads/partialupload/").status_code == 403  # superusers' (see the report)
