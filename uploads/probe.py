"""What a video file holds, read with FFmpeg (PyAV), and whether memories.ai accepts it.

`probe(source)` returns a `MediaInfo` (container, duration, video codec and size, audio) or
raises `ProbeError` when the file cannot be read as a video; `refusal(info)` says, in the
user's words, why memories.ai would refuse a readable one (`None`: accepted); `check_video`
does both. Every message is a plain sentence for the user: no path, no FFmpeg wording.

The reading happens in a child process that is killed at `time_limit`: a file, a FIFO or a file
object whose read never returns, and a hostile file that keeps FFmpeg busy, cost at most that
long. PyAV's own `timeout` does not help there: it is checked between reads, not during one
(a blocked read of a FIFO or of a Python file object outlives it). A path is opened by the
child; a file object stays in this process, which answers the child's read/seek/tell requests
one by one, so only the bytes FFmpeg asks for are read (the header, a few packets; never the
whole file). Only the MP4/MOV, Matroska and AVI demuxers are ever used: the container is
recognised from its first bytes and given to FFmpeg, which therefore never tries the other
formats it knows (playlists that name further files among them).

A cut-short file (an upload that did not finish) is told by the container's own sizes, which
cost a few small reads: FFmpeg opens an MP4 whose `moov` comes first and whose media data is cut,
demuxes and decodes it up to the cut with warnings only ("partial file", "Packet corrupt"),
and with one byte missing decodes every frame. So: MP4/MOV, the top-level boxes must end where
the file ends; AVI, the RIFF chunks; Matroska, the Segment (unless its size is left unknown, as
by a live recorder); and no sample of the index may lie past the end. Then the first video
frame must decode.

No Django here and no other uploads module: the caller passes the source and the limit.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import queue
import struct
import sys
import threading
import time
from typing import Any, BinaryIO

logger = logging.getLogger(__name__)

# Seconds one probe may take, child process included. A probe of a sample takes about 20 ms
# (0.2 s for the first of a process, which starts the fork server); the rest is margin for a
# slow disk, a file object read over the network, a large moov.
DEFAULT_TIME_LIMIT = 30.0

# FFmpeg's codec name -> the name people know it by.
ACCEPTED_CODECS: dict[str, str] = {"h264": "H.264", "hevc": "H.265/HEVC", "vp9": "VP9"}
ACCEPTED_CONTAINERS: dict[str, str] = {"mp4": "MP4", "mov": "MOV", "mkv": "MKV", "avi": "AVI"}

UNREADABLE = "the file is not a video that can be read (it may be truncated or damaged)"
CUT_SHORT = "the file is cut short (it may not have been uploaded completely)"
NO_VIDEO = "the file has no video track"
NOT_A_CONTAINER = "the file is not an MP4, MOV, MKV or AVI video"

# Common names of refused video codecs; any other is named by FFmpeg's long name.
_CODEC_NAMES = {
    **ACCEPTED_CODECS,
    "mjpeg": "MJPEG",
    "mpeg4": "MPEG-4 Part 2",
    "av1": "AV1",
    "vp8": "VP8",
    "mpeg1video": "MPEG-1",
    "mpeg2video": "MPEG-2",
    "h263": "H.263",
    "msmpeg4v2": "Microsoft MPEG-4 v2",
    "msmpeg4v3": "Microsoft MPEG-4 v3",
    "wmv1": "WMV7",
    "wmv2": "WMV8",
    "wmv3": "WMV9",
    "vc1": "VC-1",
    "prores": "ProRes",
    "dnxhd": "DNxHD",
    "theora": "Theora",
    "ffv1": "FFV1",
    "rawvideo": "uncompressed",
    "png": "PNG",
    "gif": "GIF",
    "cinepak": "Cinepak",
    "dvvideo": "DV",
}

# Until the first video frame: packets and bytes read at most (a stream that has produced no
# picture by then is not going to).
_FIRST_FRAME_PACKETS = 300
_FIRST_FRAME_BYTES = 64 * 1024 * 1024
# Top-level MP4 boxes / AVI chunks walked at most (a fragmented MP4 has two per fragment).
_MAX_TOP_LEVEL = 200_000
# Index entries per stream checked against the file's end (the last ones lie furthest in).
_INDEX_TAIL = 64
_BUFFER_SIZE = 64 * 1024
# The child's address space: a decoder of a hostile frame size fails instead of eating the host.
_CHILD_ADDRESS_SPACE = 4 * 1024**3


class ProbeError(Exception):
    """The file cannot be read as a video, or is refused. `str()` is the user's sentence;
    `detail` is for operators (FFmpeg's words, an exit code), never shown to the user."""

    def __init__(self, message: str, detail: str = ""):
        super().__init__(message)
        self.message = message
        self.detail = detail


class ProbeTimeout(ProbeError):
    """The probe was stopped at its time limit."""


@dataclasses.dataclass(frozen=True)
class MediaInfo:
    container: str  # "mp4", "mov", "mkv" or "avi"
    duration_seconds: float | None  # as the container says; None when it does not
    video_codec: str  # FFmpeg's codec name: "h264", "hevc", "vp9", "mjpeg", "mpeg4", ...
    width: int
    height: int
    has_audio: bool
    audio_codec: str | None  # FFmpeg's codec name of the first audio track: "aac", "opus", ...

    @property
    def video_codec_name(self) -> str:
        return codec_name(self.video_codec)


def codec_name(ffmpeg_name: str) -> str:
    """The name people know a video codec by: "h264" -> "H.264"."""
    if ffmpeg_name in _CODEC_NAMES:
        return _CODEC_NAMES[ffmpeg_name]
    try:
        import av

        return av.codec.Codec(ffmpeg_name, "r").long_name or ffmpeg_name
    except Exception:
        return ffmpeg_name


def _accepted_words(names) -> str:
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def refusal(info: MediaInfo) -> str | None:
    """Why memories.ai would refuse this video, in the user's words; None if it accepts it.
    An audio track is not required (memories.ai needs one only to transcribe)."""
    if info.container not in ACCEPTED_CONTAINERS:
        return NOT_A_CONTAINER
    if info.video_codec not in ACCEPTED_CODECS:
        accepted = _accepted_words(ACCEPTED_CODECS.values())
        return f"{info.video_codec_name} video; memories.ai accepts {accepted}"
    return None


def check_video(source: str | os.PathLike | BinaryIO, time_limit: float = DEFAULT_TIME_LIMIT) -> MediaInfo:
    """`probe`, then `refusal`: the MediaInfo of a video memories.ai accepts, or ProbeError."""
    info = probe(source, time_limit=time_limit)
    reason = refusal(info)
    if reason:
        raise ProbeError(reason)
    return info


def probe(source: str | os.PathLike | BinaryIO, time_limit: float = DEFAULT_TIME_LIMIT) -> MediaInfo:
    """What the video `source` holds: a local path, or a seekable binary file object (read
    from its start; its position is put back afterwards). Raises ProbeError (ProbeTimeout
    after `time_limit` seconds) when the content cannot be read as a video, and OSError when
    the source itself cannot be read (a missing file, a storage error: not the file's fault)."""
    if isinstance(source, (str, os.PathLike)):
        return _run(os.fspath(source), None, time_limit)
    if not (hasattr(source, "read") and hasattr(source, "seek") and hasattr(source, "tell")):
        raise TypeError("probe() needs a path or a binary file object with read, seek and tell")
    seekable = getattr(source, "seekable", None)
    if seekable is not None and not seekable():
        raise ValueError("probe() needs a seekable file object")
    position = source.tell()
    try:
        return _run(None, source, time_limit)
    finally:
        try:
            source.seek(position)
        except Exception:  # a file object stuck in a read (a time-out) cannot be moved now
            pass


# The parent's side -----------------------------------------------------------------------


def _context():
    """forkserver where there is one: each probe's child is forked from a small server process
    that has imported PyAV already, not from this (possibly threaded, Django-laden) one; the
    first probe of a process starts that server. Elsewhere spawn."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        if __name__ != "__main__":
            ctx.set_forkserver_preload(["av", __name__])
        return ctx
    return multiprocessing.get_context("spawn")


def _run(path: str | None, fileobj: BinaryIO | None, time_limit: float) -> MediaInfo:
    deadline = time.monotonic() + time_limit
    ctx = _context()
    parent_end, child_end = ctx.Pipe()
    child = ctx.Process(target=_child, args=(child_end, path), name="uploads-probe", daemon=True)
    child.start()
    child_end.close()
    outcome: queue.Queue = queue.Queue()
    # A daemon thread answers the child, so that a source whose read blocks cannot hold up the
    # deadline below: the thread is left to its read, the child is killed.
    server = threading.Thread(
        target=_serve, args=(parent_end, fileobj, outcome), name="uploads-probe-io", daemon=True
    )
    server.start()
    try:
        kind, value = outcome.get(timeout=max(0.0, deadline - time.monotonic()))
    except queue.Empty:
        child.kill()
        child.join()
        raise ProbeTimeout(
            f"the file could not be read within {time_limit:g} second{'' if time_limit == 1 else 's'}"
            " (it may be damaged)",
            detail=f"probe stopped after {time_limit:g} s",
        ) from None
    child.join(timeout=1.0)
    if child.is_alive():  # it answered but does not exit (a stuck FFmpeg thread): end it
        child.kill()
        child.join()
    server.join(timeout=1.0)
    if kind == "info":
        return MediaInfo(**value)
    if kind == "ioerror":
        raise OSError(f"the file could not be read for probing: {value}")
    if kind == "refused":
        message, detail = value
        if detail:
            logger.info("probe: %s (%s)", message, detail)
        raise ProbeError(message, detail)
    detail = f"probe process ended without an answer, exit code {child.exitcode}"
    logger.warning("probe: %s", detail)
    raise ProbeError(UNREADABLE, detail)


def _serve(conn, fileobj: BinaryIO | None, outcome: queue.Queue) -> None:
    """Answers the child's requests on `fileobj` until the child reports its outcome or dies."""
    try:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                outcome.put(("died", None))
                return
            kind = message[0]
            if kind in ("info", "refused", "ioerror"):
                outcome.put(message)
                return
            try:
                if fileobj is None:
                    raise OSError("no file object")
                if kind == "read":
                    reply = ("ok", fileobj.read(message[1]) or b"")
                elif kind == "seek":
                    reply = ("ok", fileobj.seek(message[1], message[2]))
                else:  # "tell"
                    reply = ("ok", fileobj.tell())
            except Exception as exc:
                reply = ("error", f"{type(exc).__name__}: {exc}")
            try:
                conn.send(reply)
            except (EOFError, OSError):  # the child was killed while we read
                return
    finally:
        conn.close()


# The child's side ------------------------------------------------------------------------


class _RemoteFile:
    """The parent's file object, seen from the child: each call is one request."""

    def __init__(self, conn):
        self._conn = conn

    def _ask(self, *request):
        self._conn.send(request)
        kind, value = self._conn.recv()
        if kind == "error":
            raise OSError(value)
        return value

    def read(self, size: int = -1) -> bytes:
        return self._ask("read", size)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._ask("seek", offset, whence)

    def tell(self) -> int:
        return self._ask("tell")

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True


def _child(conn, path: str | None) -> None:
    import av

    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard == resource.RLIM_INFINITY or hard > _CHILD_ADDRESS_SPACE:
            resource.setrlimit(resource.RLIMIT_AS, (_CHILD_ADDRESS_SPACE, hard))
    except (ImportError, ValueError, OSError):
        pass
    try:
        if path is None:
            info = _inspect(_RemoteFile(conn))
        else:
            with open(path, "rb") as f:
                info = _inspect(f)
        conn.send(("info", dataclasses.asdict(info)))
    except ProbeError as exc:
        conn.send(("refused", (exc.message, exc.detail)))
    except OSError as exc:
        if isinstance(exc, av.error.FFmpegError):  # FFmpeg's errors from the content
            conn.send(("refused", (UNREADABLE, f"{type(exc).__name__}: {exc}")))
        else:  # the source could not be read: not the file's fault
            conn.send(("ioerror", f"{type(exc).__name__}: {exc}"))
    except Exception as exc:  # FFmpeg's errors, a bug: the file was not read
        conn.send(("refused", (UNREADABLE, f"{type(exc).__name__}: {exc}")))
    finally:
        conn.close()


def _inspect(f) -> MediaInfo:
    """Reads `f` (a seekable binary file) in this process, without a time limit."""
    f.seek(0, os.SEEK_END)
    size = f.tell()
    f.seek(0)
    head = _read_at(f, 0, 1024)
    family = _sniff(head)
    if family is None:
        raise ProbeError(NOT_A_CONTAINER)
    if family == "mov":
        _check_boxes(f, size)
    elif family == "avi":
        _check_riff(f, size)
    else:
        _check_segment(head, size)
    f.seek(0)

    import av

    try:
        container = av.open(f, mode="r", format=family, buffer_size=_BUFFER_SIZE)
    except av.error.FFmpegError as exc:
        raise ProbeError(UNREADABLE, str(exc)) from None
    with container:
        videos = [
            s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic
        ]
        if not videos:
            raise ProbeError(NO_VIDEO)
        video = videos[0]
        for stream in container.streams:
            ends = [e.pos + e.size for e in stream.index_entries[-_INDEX_TAIL:]]
            if ends and max(ends) > size:
                raise ProbeError(CUT_SHORT, f"stream {stream.index}: a sample ends at {max(ends)} of {size} bytes")
        audios = list(container.streams.audio)
        if container.duration is not None:
            duration = container.duration / av.time_base
        elif video.duration is not None and video.time_base:
            duration = float(video.duration * video.time_base)
        else:
            duration = None
        codec = video.codec_context
        if codec is None:  # FFmpeg has no decoder for it
            accepted = _accepted_words(ACCEPTED_CODECS.values())
            raise ProbeError(f"the video's codec is not one that can be read; memories.ai accepts {accepted}")
        name = codec.name
        width, height = codec.width, codec.height
        frame = _first_frame(container, video)
        if not width or not height:
            width, height = frame.width, frame.height
        if family == "mov":
            shown = "mov" if container.metadata.get("major_brand", "qt  ").strip() == "qt" else "mp4"
        else:
            shown = {"matroska": "mkv", "avi": "avi"}[family]
        return MediaInfo(
            container=shown,
            duration_seconds=round(duration, 3) if duration is not None else None,
            video_codec=name,
            width=width,
            height=height,
            has_audio=bool(audios),
            audio_codec=audios[0].codec_context.name if audios else None,
        )


def _first_frame(container, video):
    """The first picture of `video`. A corrupt packet or a decoding error on the way is passed
    over (a glitch that players pass over too); none in the first packets is a refusal."""
    import av

    codec = video.codec_context
    codec.thread_count = 1  # one picture wanted: no frame threads, no decoder delay
    packets = read = 0
    trouble = ""
    for packet in container.demux(video):
        at_end = packet.size == 0  # the empty packet at the end flushes the decoder
        if not at_end and packet.is_corrupt:
            trouble = f"corrupt packet at byte {packet.pos}"
        else:
            try:
                frames = codec.decode(None if at_end else packet)
            except av.error.FFmpegError as exc:
                trouble, frames = str(exc), []
            if frames:
                return frames[0]
        if at_end:
            break
        packets += 1
        read += packet.size
        if packets >= _FIRST_FRAME_PACKETS or read >= _FIRST_FRAME_BYTES:
            break
    raise ProbeError(UNREADABLE, f"no picture in the first {packets} video packets; {trouble or 'no error'}")


def _read_at(f, offset: int, n: int) -> bytes:
    f.seek(offset)
    data = b""
    while len(data) < n:
        chunk = f.read(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


_MOV_TOP_LEVEL = {b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot", b"uuid"}


def _sniff(head: bytes) -> str | None:
    """The FFmpeg demuxer for the file's first bytes: "mov", "matroska", "avi" or None."""
    if head[4:8] in _MOV_TOP_LEVEL:
        return "mov"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "matroska"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "avi"
    return None


def _check_boxes(f, size: int) -> None:
    """MP4/MOV: the top-level boxes must tile the file (the last one may say "to the end")."""
    offset = 0
    for _ in range(_MAX_TOP_LEVEL):
        if offset == size:
            return
        header = _read_at(f, offset, 16)
        if len(header) < 8:
            raise ProbeError(CUT_SHORT, f"box header cut at {offset} of {size} bytes")
        box_size, box_type = struct.unpack(">I4s", header[:8])
        if box_size == 0:  # extends to the end of the file
            return
        if box_size == 1:
            if len(header) < 16:
                raise ProbeError(CUT_SHORT, f"box header cut at {offset} of {size} bytes")
            box_size = struct.unpack(">Q", header[8:16])[0]
            if box_size < 16:
                raise ProbeError(UNREADABLE, f"box {box_type!r} at {offset} has size {box_size}")
        elif box_size < 8:
            raise ProbeError(UNREADABLE, f"box {box_type!r} at {offset} has size {box_size}")
        if offset + box_size > size:
            raise ProbeError(CUT_SHORT, f"box {box_type!r} at {offset} ends at {offset + box_size} of {size} bytes")
        offset += box_size


def _check_riff(f, size: int) -> None:
    """AVI: the RIFF chunks (one, or more for an OpenDML file past 1 GB) must fit the file."""
    offset = 0
    for _ in range(_MAX_TOP_LEVEL):
        if offset >= size - 1:  # done, or a final pad byte
            return
        header = _read_at(f, offset, 8)
        if len(header) < 8:
            raise ProbeError(CUT_SHORT, f"chunk header cut at {offset} of {size} bytes")
        chunk_id, chunk_size = struct.unpack("<4sI", header)
        end = offset + 8 + chunk_size
        if end > size:
            raise ProbeError(CUT_SHORT, f"chunk {chunk_id!r} at {offset} ends at {end} of {size} bytes")
        offset = end + (chunk_size & 1)


def _vint(data: bytes, at: int, keep_marker: bool) -> tuple[int, int]:
    """An EBML variable-size integer at `at`: (value, its length); value -1 means unknown."""
    first = data[at]
    length = 1
    while length <= 8 and not first & (0x80 >> (length - 1)):
        length += 1
    if length > 8 or at + length > len(data):
        raise ValueError("bad EBML number")
    value = first if keep_marker else first & (0xFF >> length)
    for byte in data[at + 1 : at + length]:
        value = (value << 8) | byte
    if not keep_marker and value == (1 << (7 * length)) - 1:
        return -1, length
    return value, length


def _check_segment(head: bytes, size: int) -> None:
    """Matroska: the Segment after the EBML header must fit the file (unless of unknown size)."""
    try:
        at = 4
        header_size, n = _vint(head, at, keep_marker=False)
        at += n + header_size
        segment_id, n = _vint(head, at, keep_marker=True)
        at += n
        segment_size, n = _vint(head, at, keep_marker=False)
        at += n
    except (ValueError, IndexError):
        if size < len(head) + 1:
            raise ProbeError(CUT_SHORT, f"EBML header cut, {size} bytes") from None
        raise ProbeError(UNREADABLE, "unreadable EBML header") from None
    if segment_id != 0x18538067:
        raise ProbeError(UNREADABLE, f"element {segment_id:#x} where the Segment should be")
    if segment_size != -1 and at + segment_size > size:
        raise ProbeError(CUT_SHORT, f"Segment ends at {at + segment_size} of {size} bytes")


if __name__ == "__main__":  # python uploads/probe.py FILE...: what each file holds
    for name in sys.argv[1:]:
        started = time.monotonic()
        try:
            found: Any = probe(name)
            found = f"{found} -> {refusal(found) or 'accepted'}"
        except ProbeError as exc:
            found = f"ProbeError: {exc} [{exc.detail}]"
        print(f"{name}: {found} ({(time.monotonic() - started) * 1000:.0f} ms)")
