"""Thumbnails: made by the relay worker's probe from the stored file (PyAV, in its time-limited child
process), kept beside the video in the storage in use (the local folder and S3 on moto_server),
removed with the stored file (deletion, retention), never failing a relay."""

import io
import random
import threading
import time
from datetime import timedelta
from fractions import Fraction

import av
import pytest
from django.core.management import call_command
from django.utils import timezone

from uploads import thumbnails
from uploads.models import Video
from uploads.probe import probe

from .conftest import delete_videos, run_worker, sample, store_video
from .test_storage import moto_endpoint, stored  # noqa: F401 (fixtures: both storages, for real)

pytestmark = pytest.mark.django_db(transaction=True)


def jpeg_size(data):
    """(width, height) of a JPEG, as FFmpeg reads it: proof it is a picture, not just bytes."""
    with av.open(io.BytesIO(data), format="jpeg_pipe") as container:
        frame = next(container.decode(video=0))
        return frame.width, frame.height


def relayed_video(member, team, api_key, name, data_name):
    video = store_video(member, team, api_key, name, sample(data_name).read_bytes())
    run_worker("relay")
    video.refresh_from_db()
    return video


@pytest.mark.parametrize("name, data_name", [("standup.mp4", "sample-h264-aac.mp4"),
                                             ("offsite.mkv", "sample-vp9-opus.mkv")])
def test_the_relay_worker_makes_the_thumbnail_beside_the_video(member, team, api_key, emulator, stored,
                                                               name, data_name):
    video = relayed_video(member, team, api_key, name, data_name)

    assert video.status == "processing"  # relayed as before
    stem = video.file.name.rsplit(".", 1)[0]
    assert video.thumbnail == f"{stem}.thumb.jpg"
    assert stored.names() == {video.file.name, video.thumbnail}
    data = stored.read(video.thumbnail)
    assert data[:3] == b"\xff\xd8\xff" and jpeg_size(data) == (320, 240)  # the 320x240 sample, aspect kept


def test_an_avi_gets_a_thumbnail_too_for_the_page_that_cannot_play_it(member, team, api_key, emulator):
    video = relayed_video(member, team, api_key, "camera.avi", "sample-h264-noaudio.avi")
    assert video.status == "processing" and video.thumbnail.endswith(".thumb.jpg")


@pytest.mark.parametrize("name, data_name", [("cut.mp4", "truncated.mp4"), ("image.mp4", "not-a-video.mp4")])
def test_a_file_that_cannot_be_read_gets_no_thumbnail(member, team, api_key, emulator, stored, name, data_name):
    video = store_video(member, team, api_key, name, sample(data_name).read_bytes())
    run_worker("relay")
    video.refresh_from_db()
    assert video.status == "rejected" and video.thumbnail == ""
    assert stored.names() == {video.file.name}


def test_a_probe_out_of_time_leaves_no_thumbnail_and_the_relay_goes_on(member, team, api_key, emulator, settings):
    settings.MEMPORTAL_PROBE_SECONDS = 0.001  # not even the child process starts in time
    video = relayed_video(member, team, api_key, "standup.mp4", "sample-h264-aac.mp4")
    assert video.status == "processing" and video.thumbnail == "" and len(emulator.uploads) == 1


def long_mp4(path, seconds=10, rate=25):
    """A real H.264 MP4 of `seconds` of noise (large: its picture at 10 % lies far past the start),
    index first (faststart), a keyframe a second."""
    noise = random.Random(7)
    with av.open(str(path), "w", options={"movflags": "faststart"}) as out:
        stream = out.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.codec_context.options = {"preset": "ultrafast", "g": str(rate), "bf": "0"}
        for index in range(seconds * rate):
            frame = av.VideoFrame(320, 240, "gray")
            frame.planes[0].update(noise.randbytes(frame.planes[0].buffer_size))
            frame = frame.reformat(format="yuv420p")
            frame.pts, frame.time_base = index, Fraction(1, rate)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path.read_bytes()


class StallingFile(io.RawIOBase):
    """A file in memory whose reads past `stall_at` bytes block until released (a storage that
    stops answering), counting them."""

    def __init__(self, data, stall_at):
        super().__init__()
        self.data, self.stall_at, self.position = data, stall_at, 0
        self.release, self.stalled = threading.Event(), 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def seek(self, offset, whence=0):
        self.position = [offset, self.position + offset, len(self.data) + offset][whence]
        return self.position

    def tell(self):
        return self.position

    def read(self, size=-1):
        if self.stall_at <= self.position < len(self.data):
            self.stalled += 1
            self.release.wait(30)
        end = len(self.data) if size is None or size < 0 else self.position + size
        chunk = self.data[self.position:end]
        self.position += len(chunk)
        return chunk


def test_a_thumbnail_not_made_within_the_probe_s_time_limit_is_none_and_the_probe_stands(tmp_path):
    data = long_mp4(tmp_path / "long.mp4")
    assert len(data) > 4 * 1024 * 1024
    stall_at = 256 * 1024  # the probe reads the index and the first picture, all before this

    alone = StallingFile(data, stall_at)
    assert probe(alone, 10, thumbnail_width=0).duration_seconds == 10.0 and alone.stalled == 0

    stalling = StallingFile(data, stall_at)
    started = time.monotonic()
    try:
        info = probe(stalling, 5)
    finally:
        stalling.release.set()
    assert 5 <= time.monotonic() - started < 12
    assert info.video_codec == "h264" and info.duration_seconds == 10.0  # what the probe found stands
    assert info.thumbnail is None and stalling.stalled >= 1  # the still was on its way, past the limit

    whole = probe(io.BytesIO(data), 10)  # the same file, answering: the picture at 1 s
    assert jpeg_size(whole.thumbnail) == (320, 240)


def test_the_thumbnail_is_removed_with_the_video(member, team, api_key, emulator, stored):
    video = relayed_video(member, team, api_key, "standup.mp4", "sample-h264-aac.mp4")
    assert stored.names() == {video.file.name, video.thumbnail}

    delete_videos([video.pk], member)

    assert stored.names() == set()
    video.refresh_from_db()
    assert video.thumbnail == "" and not video.file


def test_retention_removes_the_thumbnail_with_the_stored_file(member, team, api_key, emulator, stored, settings):
    settings.MEMPORTAL_RETENTION_DAYS = 7
    old = relayed_video(member, team, api_key, "old.mp4", "sample-h264-aac.mp4")
    fresh = relayed_video(member, team, api_key, "fresh.mp4", "sample-h264-aac.mp4")
    Video.objects.filter(pk__in=[old.pk, fresh.pk]).update(status="ready")
    Video.objects.filter(pk=old.pk).update(status_changed_at=timezone.now() - timedelta(days=8))

    call_command("purge_uploads", stdout=io.StringIO())

    assert stored.names() == {fresh.file.name, fresh.thumbnail}
    old.refresh_from_db()
    assert old.thumbnail == "" and not old.file


def test_a_thumbnail_arriving_after_the_file_was_removed_is_not_kept(member, team, api_key, emulator, stored):
    """The probe ran while the video was deleted: its still is stored, then refused by the row
    (its file is gone) and removed again, leaving nothing behind."""
    video = store_video(member, team, api_key, "standup.mp4", sample("sample-h264-aac.mp4").read_bytes())
    info = probe(sample("sample-h264-aac.mp4"))
    delete_videos([video.pk], member)

    assert thumbnails.keep(video.pk, info.thumbnail) == ""
    assert stored.names() == set()


def test_a_retry_keeps_the_thumbnail_it_has(member, team, api_key, emulator, stored):
    video = relayed_video(member, team, api_key, "standup.mp4", "sample-h264-aac.mp4")
    assert thumbnails.keep(video.pk, probe(sample("sample-h264-aac.mp4")).thumbnail) == ""
    video.refresh_from_db()
    assert stored.names() == {video.file.name, video.thumbnail}


def test_make_thumbnails_gives_earlier_videos_theirs(member, team, api_key, emulator, stored):
    probed = relayed_video(member, team, api_key, "earlier.mp4", "sample-h264-aac.mp4")
    thumbnails.remove(probed.thumbnail)  # as if probed before thumbnails existed
    Video.objects.filter(pk=probed.pk).update(thumbnail="")
    output = io.StringIO()

    call_command("make_thumbnails", stdout=output)

    probed.refresh_from_db()
    assert probed.thumbnail.endswith(".thumb.jpg") and stored.names() == {probed.file.name, probed.thumbnail}
    assert "made 1" in output.getvalue()
    call_command("make_thumbnails", stdout=output)  # again: nothing left to do
    assert "made 0" in output.getvalue().splitlines()[-1]
