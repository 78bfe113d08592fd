"""The seed's video requirements, checked before a paced slot is spent (issue 9): the relay
worker reads what the stored file holds (uploads/probe.py) and refuses what memories.ai would,
in words, before taking the account's slot or sending a byte; the page shows what it found."""

import pytest

from .conftest import account_of, run_worker, sample, store_video

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize(("name", "reason"), [
    ("refused-mjpeg.avi", "MJPEG video; memories.ai accepts H.264, H.265/HEVC and VP9"),
    ("refused-mpeg4.mp4", "MPEG-4 Part 2 video; memories.ai accepts H.264, H.265/HEVC and VP9"),
    ("truncated.mp4", "the file is"),
])
def test_a_file_memories_ai_would_refuse_is_refused_before_a_slot_is_spent(
        client, name, reason, member, team, api_key, emulator, settings):
    settings.MEMPORTAL_UPLOAD_INTERVAL_SECONDS = 60
    video = store_video(member, team, api_key, name, sample(name).read_bytes())
    run_worker("relay")
    video.refresh_from_db()
    assert video.status == "rejected" and video.attempts == 0
    assert video.last_error.startswith(f"Not sent to memories.ai: {reason}")
    assert emulator.uploads == [] and account_of(team).next_upload_at is None  # no slot spent
    assert video.file.storage.exists(video.file.name)  # kept as a rejected video's file is
    client.force_login(member)
    page = client.get(f"/videos/{video.pk}/").content.decode()
    assert reason in page and "/work/" not in page and "var/" not in page


@pytest.mark.parametrize(("name", "shown"), [
    ("sample-h264-aac.mp4", "H.264, "),
    ("sample-hevc.mov", "H.265/HEVC, "),
    ("sample-vp9-opus.mkv", "VP9, "),
])
def test_an_accepted_file_is_sent_and_its_page_says_what_it_holds(client, name, shown, member, team, api_key,
                                                                  emulator):
    video = store_video(member, team, api_key, name, sample(name).read_bytes())
    run_worker("relay")
    video.refresh_from_db()
    assert video.status == "processing" and video.media_checked_at is not None
    assert video.width and video.height and video.duration_seconds > 0 and video.has_audio
    client.force_login(member)
    page = client.get(f"/videos/{video.pk}/").content.decode()
    assert f"<dd>{shown}{video.width}×{video.height}</dd>" in page
    assert "<dt>Duration</dt><dd>0:0" in page
    assert "nothing said to transcribe" not in page


def test_a_video_without_audio_is_sent_and_the_page_says_its_transcripts_will_be_empty(
        client, member, team, api_key, emulator):
    video = store_video(member, team, api_key, "standup.avi", sample("sample-h264-noaudio.avi").read_bytes())
    run_worker("relay")
    video.refresh_from_db()
    assert video.status == "processing" and video.has_audio is False
    client.force_login(member)
    assert "no audio track: nothing said to transcribe" in client.get(f"/videos/{video.pk}/").content.decode()
