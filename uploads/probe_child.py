"""The reading of a probe (uploads/probe.py, which callers use), done in a child process that is
killed at the time limit, and what that child reads with FFmpeg (PyAV).

A file, a FIFO or a file object whose read never returns, and a hostile file that keeps FFmpeg
busy, cost at most `time_limit`. PyAV's own `timeout` does not help there: it is checked between
reads, not during one (a blocked read of a FIFO or of a Python file object outlives it). A path
is opened by the child; a file object stays in this process, which answers the child's
read/seek/tell requests one by one, so only the bytes FFmpeg asks for are read (the header, a
few packets; never the whole file).

In the child: the container is recognised and its sizes checked (uploads/containers.py), then
FFmpeg opens it with that one demuxer; no sample of the index may lie past the end, and the
first video frame must decode.

No Django and no uploads module but the probe's vocabulary and the container checks.
"""

from __future__ import annotations

import dataclasses
import fractions
import logging
import multiprocessing
import os
import queue
import threading
import time
from typing import BinaryIO

from .containers import check_boxes, check_riff, check_segment, read_at, sniff
from .mediainfo import (
    ACCEPTED_CODECS,
    CUT_SHORT,
    NO_VIDEO,
    NOT_A_CONTAINER,
    UNREADABLE,
    MediaInfo,
    ProbeError,
    ProbeTimeout,
    accepted_words,
)

logger = logging.getLogger("uploads.probe")  # the probe's log, whichever of its modules writes

# Until the first video frame: packets and bytes read at most (a stream that has produced no
# picture by then is not going to).
_FIRST_FRAME_PACKETS = 300
_FIRST_FRAME_BYTES = 64 * 1024 * 1024
# Index entries per stream checked against the file's end (the last ones lie furthest in).
_INDEX_TAIL = 64
_BUFFER_SIZE = 64 * 1024
# The thumbnail: the picture at this share of the duration, JPEG quantiser (2 best, 31 worst).
_STILL_AT = 0.10
_JPEG_QUALITY = 5
# The child's address space: a decoder of a hostile frame size fails instead of eating the host.
_CHILD_ADDRESS_SPACE = 4 * 1024**3


# The parent's side -----------------------------------------------------------------------


def _context():
    """forkserver where there is one: each probe's child is forked from a small server process
    that has imported PyAV and this module already, not from this (possibly threaded,
    Django-laden) one; the first probe of a process starts that server. Elsewhere spawn."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["av", __name__])
        return ctx
    return multiprocessing.get_context("spawn")


def run(path: str | None, fileobj: BinaryIO | None, time_limit: float, thumbnail_width: int = 0) -> MediaInfo:
    """What the file at `path`, or the file object `fileobj` (from its start), holds, read in a
    child process stopped after `time_limit` seconds. Raises ProbeError (ProbeTimeout), or
    OSError when the source itself cannot be read.

    With `thumbnail_width`, the child then makes a JPEG still of at most that width (MediaInfo's
    `thumbnail`) in what is left of `time_limit`: the MediaInfo comes first, so a still that is
    not made in time (or at all) only leaves `thumbnail` None, never fails the probe."""
    deadline = time.monotonic() + time_limit
    ctx = _context()
    parent_end, child_end = ctx.Pipe()
    child = ctx.Process(target=_child, args=(child_end, path, thumbnail_width), name="uploads-probe", daemon=True)
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
    still = None
    if kind == "info":
        try:
            still_kind, still = outcome.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            still_kind = "late"
        if still_kind != "thumbnail":  # out of time, or the child died making it
            logger.info("probe: no thumbnail (%s)", "not made in time" if still_kind == "late" else "no answer")
            still = None
            child.kill()
    child.join(timeout=1.0)
    if child.is_alive():  # it answered but does not exit (a stuck FFmpeg thread): end it
        child.kill()
        child.join()
    server.join(timeout=1.0)
    if kind == "info":
        return MediaInfo(**value, thumbnail=still)
    if kind == "ioerror":
        raise OSError(f"the file could not be read for probing: {value}")
    if kind == "refused":
        message, detail = value
        if detail:
            logger.info("probe: %s (%s)", message, detail)
        raise ProbeError(message, detail)
    detail = f"probe process ended without an answer, exit code {child.exitcode}"
    logger.warning("probe: %s", detail)
    raise ProbeTimeout(UNREADABLE, detail)  # the probe did not finish: not a verdict on the file


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
            if kind in ("info", "thumbnail", "refused", "ioerror"):
                outcome.put(message)
                if kind != "info":  # after the MediaInfo, the thumbnail may still read
                    return
                continue
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


def _child(conn, path: str | None, thumbnail_width: int = 0) -> None:
    import av

    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard == resource.RLIM_INFINITY or hard > _CHILD_ADDRESS_SPACE:
            resource.setrlimit(resource.RLIMIT_AS, (_CHILD_ADDRESS_SPACE, hard))
    except (ImportError, ValueError, OSError):
        pass
    try:
        def report(info: MediaInfo) -> None:
            conn.send(("info", {k: v for k, v in dataclasses.asdict(info).items() if k != "thumbnail"}))

        if path is None:
            still = _inspect(_RemoteFile(conn), report, thumbnail_width)
        else:
            with open(path, "rb") as f:
                still = _inspect(f, report, thumbnail_width)
        conn.send(("thumbnail", still))
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


def _inspect(f, report, thumbnail_width: int = 0) -> bytes | None:
    """Reads `f` (a seekable binary file) in this process, without a time limit: gives its
    MediaInfo to `report`, then returns a JPEG still of at most `thumbnail_width` pixels wide
    (None: not asked for, or none could be made)."""
    f.seek(0, os.SEEK_END)
    size = f.tell()
    f.seek(0)
    head = read_at(f, 0, 1024)
    family = sniff(head)
    if family is None:
        raise ProbeError(NOT_A_CONTAINER)
    if family == "mov":
        check_boxes(f, size)
    elif family == "avi":
        check_riff(f, size)
    else:
        check_segment(head, size)
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
            accepted = accepted_words(ACCEPTED_CODECS.values())
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
        report(MediaInfo(
            container=shown,
            duration_seconds=round(duration, 3) if duration is not None else None,
            video_codec=name,
            width=width,
            height=height,
            has_audio=bool(audios),
            audio_codec=audios[0].codec_context.name if audios else None,
        ))
        if not thumbnail_width:
            return None
        return _still(container, video, frame, duration, thumbnail_width)


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


def _still(container, video, first, duration: float | None, width: int) -> bytes | None:
    """A JPEG of the picture at 10 % of the duration (the keyframe before it: no decoding up to
    the exact time), else of the first picture, at most `width` pixels wide, aspect kept. None
    when none can be made: a thumbnail is never worth refusing a file."""
    try:
        frame = _frame_at(container, video, duration * _STILL_AT) if duration else None
        return _jpeg(frame or first, width, video.sample_aspect_ratio)
    except Exception as exc:  # FFmpeg's errors, a frame the encoder refuses, memory
        logger.info("probe: no thumbnail (%s: %s)", type(exc).__name__, exc)
        return None


def _frame_at(container, video, seconds: float):
    """The first picture decoded from the keyframe before `seconds`, or None."""
    import av

    if not video.time_base or seconds <= 0:
        return None
    try:
        container.seek(int(seconds / video.time_base) + (video.start_time or 0), stream=video, backward=True)
    except av.error.FFmpegError:
        return None
    codec = video.codec_context
    codec.flush_buffers()
    for packets, packet in enumerate(container.demux(video)):
        try:
            frames = codec.decode(None if packet.size == 0 else packet)
        except av.error.FFmpegError:
            frames = []
        if frames:
            return frames[0]
        if packet.size == 0 or packets >= _FIRST_FRAME_PACKETS:
            return None
    return None


def _jpeg(frame, width: int, sar) -> bytes:
    """`frame` scaled to at most `width` pixels wide (even sizes, its display aspect kept: `sar`,
    the stream's pixel shape, 0/1 or None when square), as JPEG."""
    import av

    shown = frame.width * (float(sar) if sar else 1.0)
    out_width = max(2, min(width, round(shown)) // 2 * 2)
    out_height = max(2, round(out_width * frame.height / shown / 2) * 2)
    encoder = av.CodecContext.create("mjpeg", "w")
    encoder.width, encoder.height, encoder.pix_fmt = out_width, out_height, "yuvj420p"
    encoder.time_base = fractions.Fraction(1, 1)
    encoder.flags |= av.codec.context.Flags.qscale
    encoder.global_quality = _JPEG_QUALITY * 118  # FFmpeg's lambda per quantiser step (FF_QP2LAMBDA)
    picture = frame.reformat(width=out_width, height=out_height, format="yuvj420p")
    picture.pts = 0
    return b"".join(bytes(packet) for packet in encoder.encode(picture) + encoder.encode(None))
