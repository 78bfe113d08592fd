"""uploads/probe.py: what a video file holds, read with FFmpeg in a child process, and whether
memories.ai accepts it; and RangeReader, a remote file read by bounded ranges. Real files
throughout (tests/data/, and cut or remuxed copies made here with PyAV), and a real S3 object
on a local S3 server; no database, no clock patched."""

import ast
import dataclasses
import importlib
import io
import multiprocessing
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import storages

from uploads import mediainfo
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
    RangeReader,
    check_video,
    probe,
    refusal,
)

from .test_storage import moto_endpoint, s3  # noqa: F401 (fixtures: moto_server, the S3 storage)

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


def padded_h264() -> bytes:
    """sample-h264-aac.mp4 (32 kB) followed by 8 MB that no reader needs (a trailing free box)."""
    padding = 8 * 1024 * 1024
    return (DATA / "sample-h264-aac.mp4").read_bytes() + padding.to_bytes(4, "big") + b"free" + bytes(padding - 8)


def test_only_what_ffmpeg_asks_for_is_read_of_a_file_object(tmp_path):
    big = tmp_path / "padded.mp4"
    big.write_bytes(padded_h264())
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


class Served:
    """A fetch(start, end) over bytes in memory, as an HTTP range read: counts what it serves."""

    def __init__(self, data: bytes):
        self.data = data
        self.ranges: list[tuple[int, int]] = []

    def __call__(self, start: int, end: int) -> bytes:
        assert 0 <= start <= end < len(self.data), (start, end)  # a valid Range, inclusive
        self.ranges.append((start, end))
        return self.data[start : end + 1]

    @property
    def bytes_served(self) -> int:
        return sum(end - start + 1 for start, end in self.ranges)


def test_a_range_reader_reads_seeks_and_tells_like_the_bytes_it_stands_for():
    data = random.Random(7).randbytes(1_000_003)
    fetch = Served(data)
    reader, same = RangeReader(fetch, len(data), block_size=64 * 1024, cache_blocks=3), io.BytesIO(data)
    assert (reader.readable(), reader.seekable(), reader.writable(), reader.size) == (True, True, False, len(data))
    moves = random.Random(8)
    for _ in range(2_000):
        whence = moves.choice([os.SEEK_SET, os.SEEK_CUR, os.SEEK_END])
        offset = {os.SEEK_SET: moves.randrange(len(data) + 100), os.SEEK_CUR: moves.randrange(-1000, 5000),
                  os.SEEK_END: moves.randrange(-len(data), 50)}[whence]
        if same.seek(0, os.SEEK_CUR) + offset < 0 and whence == os.SEEK_CUR:
            offset = 0
        assert reader.seek(offset, whence) == same.seek(offset, whence)
        size = moves.choice([1, 8, 16, 1024, 4095, 4096, 65536, 200_000])
        assert reader.read(size) == same.read(size)
        assert reader.tell() == same.tell()
    reader.seek(999_000)
    same.seek(999_000)
    assert reader.read() == same.read() == data[999_000:]  # to the end
    assert reader.read(10) == b"" and reader.tell() == len(data)
    buffer = bytearray(5000)
    reader.seek(10)
    assert reader.readinto(buffer) == 5000 and bytes(buffer) == data[10:5010]
    assert max(end - start + 1 for start, end in fetch.ranges) <= 64 * 1024  # every fetch bounded
    assert (reader.fetches, reader.bytes_fetched) == (len(fetch.ranges), fetch.bytes_served)
    with pytest.raises(ValueError):
        reader.seek(-1)
    reader.close()
    with pytest.raises(ValueError):
        reader.read(1)
    assert RangeReader(Served(b""), 0).read() == b""


def test_a_range_reader_reads_ahead_a_block_and_keeps_what_it_fetched():
    data = bytes(range(256)) * 4096  # 1 MiB
    fetch = Served(data)
    reader = RangeReader(fetch, len(data))
    assert reader.read(16) == data[:16]  # a box header: 4 KiB fetched
    assert reader.read(65536) == data[16:65552]  # FFmpeg's read: the rest, a block of 256 KiB ahead
    reader.seek(0)
    assert reader.read(200_000) == data[:200_000]  # all of it cached
    assert fetch.ranges == [(0, 4095), (4096, 4096 + 256 * 1024 - 1)]
    reader.seek(len(data) - 10)
    assert reader.read(100) == data[-10:]  # the last fetch stops at the end
    assert fetch.ranges[-1] == (len(data) - 10, len(data) - 1)


def test_a_range_reader_refuses_a_fetch_that_gives_other_bytes_than_asked():
    with pytest.raises(OSError, match="gave 10 bytes, not 4096"):
        RangeReader(lambda start, end: b"x" * 10, 1_000_000).read(1)
    with pytest.raises(OSError, match="gave 1000000 bytes, not 4096"):  # a server that ignores Range
        RangeReader(lambda start, end: bytes(1_000_000), 1_000_000).read(1)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_a_probe_through_a_range_reader_finds_what_a_probe_of_the_path_does(name):
    data = (DATA / name).read_bytes()
    fetch = Served(data)
    assert probe(RangeReader(fetch, len(data))) == probe(DATA / name)
    assert len(fetch.ranges) <= 4


def test_a_probe_through_a_range_reader_fetches_a_few_blocks_not_the_file():
    data = padded_h264()
    fetch = Served(data)
    reader = RangeReader(fetch, len(data))
    assert probe(reader) == probe(DATA / "sample-h264-aac.mp4")
    assert reader.tell() == 0  # put back where it was
    assert fetch.bytes_served < 1024 * 1024 < 8 * 1024 * 1024 < len(data)  # of 8 MB, under 1 MB
    assert fetch.bytes_served < 300_000 and len(fetch.ranges) <= 4, fetch.ranges  # in fact 3: two 4 KiB peeks, a block
    assert max(end - start + 1 for start, end in fetch.ranges) <= 256 * 1024


def test_a_range_reader_whose_fetch_fails_makes_probe_raise_oserror_not_a_refusal():
    def fetch(start, end):
        raise RuntimeError("S3 unreachable")  # as botocore's ClientError, not an OSError

    with pytest.raises(OSError, match="S3 unreachable") as caught:
        probe(RangeReader(fetch, 10_000_000))
    assert not isinstance(caught.value, ProbeError)


def test_a_probe_of_an_s3_object_fetches_ranges_not_the_object(s3):  # noqa: F811
    data = padded_h264()
    storage = storages["default"]  # the project's S3 storage (django-storages), on moto_server
    name = storage.save("videos/probe/padded.mp4", ContentFile(data, name="padded.mp4"))
    stored = storage.open(name, "rb")  # an S3File: one HEAD request, nothing downloaded yet
    obj = stored.obj  # its boto3 Object, under the storage's full key
    served = []

    def fetch(start, end):
        body = obj.get(Range=f"bytes={start}-{end}", IfMatch=obj.e_tag)["Body"].read()
        served.append(len(body))
        return body

    reader = RangeReader(fetch, obj.content_length)
    assert probe(reader) == probe(DATA / "sample-h264-aac.mp4")
    assert obj.content_length == len(data) and 0 < sum(served) < 1024 * 1024 and len(served) <= 4
    stored.close()


PROBE_PARTS = ["probe", "probe_child", "containers", "mediainfo"]


@pytest.mark.parametrize("name", PROBE_PARTS)
def test_probe_and_its_parts_import_no_django_and_no_other_uploads_module(name):
    module = importlib.import_module(f"uploads.{name}")
    imported = []
    for node in ast.walk(ast.parse(Path(module.__file__).read_text())):
        if isinstance(node, ast.Import):
            imported += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level:  # from . import x, from .x import y
            imported += [f"uploads.{node.module}"] if node.module else [f"uploads.{a.name}" for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            imported.append(node.module)
    assert not [m for m in imported if m.split(".")[0] == "django"]
    ours = {m.split(".")[1] for m in imported if m.startswith("uploads.")}
    assert ours <= set(PROBE_PARTS) - {name, "probe"}, ours  # the parts never import probe
    assert not [m for m in imported if m == "uploads"]


def test_callers_find_the_probe_s_names_in_uploads_probe():
    # tasks.py: probe.probe, probe.ProbeError, probe.refusal; the page: MediaInfo.video_codec_name.
    for name in ["probe", "check_video", "refusal", "codec_name", "ProbeError", "ProbeTimeout", "MediaInfo",
                 "ACCEPTED_CODECS", "RangeReader", "DEFAULT_TIME_LIMIT"]:
        assert name in probe_module.__all__ and hasattr(probe_module, name), name
    assert probe_module.ProbeError is mediainfo.ProbeError  # one class, whichever module raises it
    assert issubclass(probe_module.ProbeTimeout, probe_module.ProbeError)
    assert probe_module.codec_name("hevc") == "H.265/HEVC"
    assert probe_module.probe(DATA / "refused-mjpeg.avi").video_codec_name == "MJPEG"


def test_probe_runs_as_a_script_from_anywhere(tmp_path):
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, probe_module.__file__, str(DATA / "sample-vp9-opus.mkv"),
                           str(DATA / "truncated.mp4")], cwd=tmp_path, env=environment, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "video_codec='vp9'" in lines[0] and "-> accepted" in lines[0]
    assert "ProbeError: the file is cut short" in lines[1]
