"""uploads/probe.py: what a video file holds, read with FFmpeg in a child process, and whether
memories.ai accepts it. Real files throughout (tests/data/, and cut or remuxed copies made
here with PyAV); no database, no clock patched."""

import dataclasses
import io
import multiprocessing
import os
import threading
import time
from pathlib import Path

import av
import pytest

from uploads import probe as probe_module
from uploads.probe import (
    ACCEPTED_CODECS,
    CUT_SHORT,
    NO_VIDEO,
    NOT_A_CONTAINER,
    UNREADABLE,
    MediaInfo,
    ProbeError,
    ProbeTimeout,
    check_video,
    probe,
    refusal,
)

DATA = Path(__file__).parent / "data"
ACCEPTED_RULE = "memories.ai accepts H.264, H.265/HEVC and VP9"

SAMPLES = {
    # file: container, video codec, duration (s), width, height, audio codec (None: no audio)
    "sample-h264-aac.mp4": ("mp4", "h264", 2.0, 320, 240, "aac"),
    "sample-hevc.mov": ("mov", "hevc", 2.0, 320, 240, "aac"),
    "sample-vp9-opus.mkv": ("mkv", "vp9", 2.0, 320, 240, "opus"),
    "sample-h264-noaudio.avi": ("avi", "h264", 2.0, 320, 240, None),
    "refused-mjpeg.avi": ("avi", "mjpeg", 1.0, 160, 120, None),
    "refused-mpeg4.mp4": ("mp4", "mpeg4", 1.0, 160, 120, "aac"),
}
READABLE = ["sample-h264-aac.mp4", "sample-hevc.mov", "sample-vp9-opus.mkv", "sample-h264-noaudio.avi"]


def refused(source, **kwargs) -> ProbeError:
    """The ProbeError of probing `source`, checked to be a sentence fit for the user."""
    with pytest.raises(ProbeError) as caught:
        probe(source, **kwargs)
    message = str(caught.value)
    assert message == caught.value.message
    assert "/" not in message.replace("H.265/HEVC", "") and "ffmpeg" not in message.lower(), message
    return caught.value


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_each_sample_is_read_for_codec_duration_size_and_audio(name):
    container, codec, duration, width, height, audio = SAMPLES[name]
    info = probe(DATA / name)
    assert isinstance(info, MediaInfo)
    assert (info.container, info.video_codec, info.width, info.height) == (container, codec, width, height)
    assert info.duration_seconds == pytest.approx(duration, abs=0.05)
    assert info.has_audio is (audio is not None)
    assert info.audio_codec == audio
    assert probe(str(DATA / name)) == info  # a str path as well as a Path


@pytest.mark.parametrize("name", READABLE)
def test_h264_hevc_and_vp9_are_accepted_with_or_without_audio(name):
    info = check_video(DATA / name)
    assert info.video_codec in ACCEPTED_CODECS
    assert refusal(info) is None


@pytest.mark.parametrize(("name", "words"), [
    ("refused-mjpeg.avi", "MJPEG video"),
    ("refused-mpeg4.mp4", "MPEG-4 Part 2 video"),
])
def test_mjpeg_and_mpeg4_part2_are_refused_with_the_rule_in_words(name, words):
    info = probe(DATA / name)  # readable: the facts are there, memories.ai would refuse them
    assert refusal(info) == f"{words}; {ACCEPTED_RULE}"
    with pytest.raises(ProbeError, match=f"^{words}; {ACCEPTED_RULE}$"):
        check_video(DATA / name)


def test_the_rule_names_any_other_codec_and_container_in_words():
    info = probe(DATA / "sample-vp9-opus.mkv")
    assert ACCEPTED_CODECS == {"h264": "H.264", "hevc": "H.265/HEVC", "vp9": "VP9"}
    assert refusal(dataclasses.replace(info, video_codec="av1")) == f"AV1 video; {ACCEPTED_RULE}"
    assert refusal(dataclasses.replace(info, video_codec="mpeg2video")) == f"MPEG-2 video; {ACCEPTED_RULE}"
    assert refusal(dataclasses.replace(info, video_codec="cavs")).endswith(f" video; {ACCEPTED_RULE}")
    assert refusal(dataclasses.replace(info, container="flv")) == NOT_A_CONTAINER
    assert refusal(dataclasses.replace(info, has_audio=False, audio_codec=None)) is None  # audio: optional
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.video_codec = "h264"


def test_the_truncated_sample_is_refused_as_cut_short():
    # Its first 3,000 bytes: ftyp and the start of mdat, no moov (FFmpeg: "moov atom not found").
    error = refused(DATA / "truncated.mp4")
    assert str(error) == CUT_SHORT == "the file is cut short (it may not have been uploaded completely)"
    assert "mdat" in error.detail  # for the operator: which box runs past the end


@pytest.mark.parametrize("name", READABLE)
@pytest.mark.parametrize("keep", [0.5, 0.9, -1], ids=["half", "90%", "one-byte-short"])
def test_every_container_cut_anywhere_is_refused_as_cut_short(tmp_path, name, keep):
    data = (DATA / name).read_bytes()
    cut = tmp_path / name
    cut.write_bytes(data[:keep] if keep == -1 else data[: int(len(data) * keep)])
    assert str(refused(cut)) == CUT_SHORT


@pytest.fixture
def faststart_mp4(tmp_path):
    """sample-h264-aac.mp4 remuxed with its moov first, as most cameras and encoders write it."""
    target = tmp_path / "faststart.mp4"
    with av.open(str(DATA / "sample-h264-aac.mp4")) as source, \
            av.open(str(target), "w", options={"movflags": "faststart"}) as out:
        streams = {s.index: out.add_stream_from_template(s) for s in source.streams}
        for packet in source.demux():
            if packet.dts is not None:
                packet.stream = streams[packet.stream.index]
                out.mux(packet)
    assert target.read_bytes()[36:40] == b"moov"
    return target


@pytest.mark.parametrize("keep", [10_000, 20_000, -1])
def test_an_mp4_cut_in_its_media_data_is_refused_although_ffmpeg_opens_and_decodes_it(faststart_mp4, keep):
    cut = faststart_mp4.with_name(f"cut-{keep}.mp4")
    cut.write_bytes(faststart_mp4.read_bytes()[:keep])
    # Why the container's sizes decide: FFmpeg opens the cut file and decodes up to the cut
    # without an error, and gives the full duration from the moov.
    with av.open(str(cut)) as container:
        assert container.duration == 2_000_000
        assert sum(1 for _ in container.decode(video=0)) > 0
    assert str(refused(cut)) == CUT_SHORT
    assert probe(faststart_mp4).duration_seconds == pytest.approx(2.0)  # the whole one is fine


def test_files_that_are_not_videos_are_refused_with_a_reason(tmp_path):
    assert str(refused(DATA / "not-a-video.mp4")) == NOT_A_CONTAINER  # a PNG image
    text = tmp_path / "notes.mp4"
    text.write_text("Meeting notes, not a video.\n" * 20)
    assert str(refused(text)) == "the file is not an MP4, MOV, MKV or AVI video"
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    assert str(refused(empty)) == NOT_A_CONTAINER
    playlist = tmp_path / "playlist.mp4"  # FFmpeg would follow it to another file: never tried
    playlist.write_text(f"#EXTM3U\n#EXTINF:2,\n{DATA / 'sample-h264-aac.mp4'}\n#EXT-X-ENDLIST\n")
    assert str(refused(playlist)) == NOT_A_CONTAINER


def test_damaged_media_data_is_refused_as_unreadable(tmp_path):
    # Every size intact (not cut), but the media data zeroed: no picture decodes.
    data = bytearray((DATA / "sample-h264-aac.mp4").read_bytes())
    mdat = data.index(b"mdat") - 4
    size = int.from_bytes(data[mdat : mdat + 4], "big")
    data[mdat + 8 : mdat + size] = bytes(size - 8)
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(bytes(data))
    error = refused(damaged)
    assert str(error) == UNREADABLE == "the file is not a video that can be read (it may be truncated or damaged)"


def test_a_file_with_only_audio_is_refused_as_having_no_video_track(tmp_path):
    target = tmp_path / "audio-only.mp4"
    with av.open(str(DATA / "sample-h264-aac.mp4")) as source, av.open(str(target), "w") as out:
        audio = out.add_stream_from_template(source.streams.audio[0])
        for packet in source.demux(source.streams.audio[0]):
            if packet.dts is not None:
                packet.stream = audio
                out.mux(packet)
    assert str(refused(target)) == NO_VIDEO == "the file has no video track"


class CountingFile(io.RawIOBase):
    """A seekable binary file object that records what is read of it."""

    def __init__(self, path):
        self._file = open(path, "rb")
        self.bytes_read = 0
        self.largest_read = 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def read(self, size=-1):
        assert size is not None and size >= 0, "never asked for the whole file"
        data = self._file.read(size)
        self.bytes_read += len(data)
        self.largest_read = max(self.largest_read, size)
        return data

    def seek(self, offset, whence=os.SEEK_SET):
        return self._file.seek(offset, whence)

    def tell(self):
        return self._file.tell()

    def close(self):
        self._file.close()
        super().close()


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_a_file_object_works_as_well_as_a_path(name):
    with open(DATA / name, "rb") as f:
        f.seek(123)
        assert probe(f) == probe(DATA / name)
        assert f.tell() == 123  # its position is put back
    assert probe(io.BytesIO((DATA / name).read_bytes())) == probe(DATA / name)


def test_a_file_object_is_refused_like_a_path(tmp_path):
    with open(DATA / "truncated.mp4", "rb") as f:
        assert str(refused(f)) == CUT_SHORT
    with open(DATA / "not-a-video.mp4", "rb") as f:
        assert str(refused(f)) == NOT_A_CONTAINER


def test_only_what_ffmpeg_asks_for_is_read_of_a_file_object(tmp_path):
    # 32 kB of video followed by 8 MB that no reader needs (a trailing free box).
    big = tmp_path / "padded.mp4"
    padding = 8 * 1024 * 1024
    big.write_bytes((DATA / "sample-h264-aac.mp4").read_bytes() + padding.to_bytes(4, "big") + b"free"
                    + bytes(padding - 8))
    f = CountingFile(big)
    try:
        assert probe(f).video_codec == "h264"
    finally:
        f.close()
    assert f.bytes_read < 200_000 < big.stat().st_size
    assert f.largest_read <= 64 * 1024


def test_a_source_that_cannot_be_read_raises_oserror_not_a_refusal(tmp_path):
    class Failing(CountingFile):
        def read(self, size=-1):
            raise OSError("storage unreachable")

    f = Failing(DATA / "sample-h264-aac.mp4")
    try:
        with pytest.raises(OSError, match="storage unreachable") as caught:
            probe(f)
        assert not isinstance(caught.value, ProbeError)
    finally:
        f.close()
    with pytest.raises(OSError):
        probe(tmp_path / "missing.mp4")


def no_probe_children():
    return not [p for p in multiprocessing.active_children() if p.name == "uploads-probe"]


def test_the_time_limit_stops_a_probe_of_a_fifo_nobody_writes(tmp_path):
    fifo = tmp_path / "stalled.mp4"
    os.mkfifo(fifo)  # opening it for reading blocks until a writer comes: none will
    started = time.monotonic()
    with pytest.raises(ProbeTimeout) as caught:
        probe(fifo, time_limit=1.0)
    elapsed = time.monotonic() - started
    assert 1.0 <= elapsed < 3.0, elapsed
    assert str(caught.value) == "the file could not be read within 1 second (it may be damaged)"
    assert no_probe_children()


def test_the_time_limit_stops_a_probe_whose_file_object_blocks_in_read():
    release = threading.Event()

    class Stalling(CountingFile):
        def read(self, size=-1):
            if size > 16 and self.tell() >= 8000:  # past the box headers, FFmpeg's reads stall
                release.wait()
            return super().read(min(size, 4096))

    f = Stalling(DATA / "sample-h264-aac.mp4")
    try:
        started = time.monotonic()
        with pytest.raises(ProbeTimeout, match=r"^the file could not be read within 1.5 seconds"):
            probe(f, time_limit=1.5)
        assert 1.5 <= time.monotonic() - started < 3.5
        assert no_probe_children()
    finally:
        release.set()  # the read left behind returns; its answer goes nowhere
        time.sleep(0.1)
        f.close()
    assert probe(DATA / "sample-h264-aac.mp4").video_codec == "h264"  # the next probe is unaffected


def test_a_probe_costs_tens_of_milliseconds():
    probe(DATA / "sample-h264-aac.mp4")  # the first one starts the fork server
    started = time.monotonic()
    for name in READABLE:
        probe(DATA / name)
    assert (time.monotonic() - started) / len(READABLE) < 1.0


def test_probe_imports_no_django_and_no_other_uploads_module():
    source = Path(probe_module.__file__).read_text()
    imports = [line.strip() for line in source.splitlines() if line.strip().startswith(("import ", "from "))]
    assert not [line for line in imports if "django" in line or "uploads" in line or line.startswith("from .")]
