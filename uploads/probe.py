"""What a video file holds, read with FFmpeg (PyAV), and whether memories.ai accepts it.

`probe(source)` returns a `MediaInfo` (container, duration, video codec and size, audio) or
raises `ProbeError` when the file cannot be read as a video; `refusal(info)` says, in the
user's words, why memories.ai would refuse a readable one (`None`: accepted); `check_video`
does both. Every message is a plain sentence for the user: no path, no FFmpeg wording.
`RangeReader` makes a file object of a remote file read by ranges (an S3 object), so that a
probe fetches the few blocks FFmpeg asks for, not the whole file. The same pass makes the video's
thumbnail (MediaInfo's `thumbnail`, JPEG bytes; the relay stores it beside the video): it comes
after the MediaInfo, within the same time limit, and one not made in time is simply None.

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

This module is the one callers use; its parts, which never import it: uploads/mediainfo.py
(MediaInfo, ProbeError, the sentences, `refusal`), uploads/containers.py (the container
recognised and its sizes checked), uploads/probe_child.py (the time-limited child process and
what it reads with FFmpeg). No Django in any of them, and no other uploads module: the caller
passes the source and the limit.
"""

from __future__ import annotations

import collections
import io
import os
import sys
import time
from typing import Any, BinaryIO, Callable

if not __package__:  # run as a script (python uploads/probe.py FILE...): import its package
    _ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if _ROOT not in sys.path:
        sys.path.insert(0, _ROOT)
    __package__ = "uploads"

from . import probe_child
from .mediainfo import (
    ACCEPTED_CODECS,
    ACCEPTED_CONTAINERS,
    CUT_SHORT,
    NO_VIDEO,
    NOT_A_CONTAINER,
    THUMBNAIL_WIDTH,
    UNREADABLE,
    MediaInfo,
    ProbeError,
    ProbeTimeout,
    codec_name,
    refusal,
)

__all__ = [
    "ACCEPTED_CODECS",
    "ACCEPTED_CONTAINERS",
    "CUT_SHORT",
    "DEFAULT_TIME_LIMIT",
    "NOT_A_CONTAINER",
    "NO_VIDEO",
    "UNREADABLE",
    "MediaInfo",
    "ProbeError",
    "ProbeTimeout",
    "RangeReader",
    "THUMBNAIL_WIDTH",
    "check_video",
    "codec_name",
    "probe",
    "refusal",
]

# Seconds one probe may take, child process included. A probe of a sample takes about 20 ms
# (0.2 s for the first of a process, which starts the fork server); the rest is margin for a
# slow disk, a file object read over the network, a large moov.
DEFAULT_TIME_LIMIT = 30.0


def check_video(source: str | os.PathLike | BinaryIO, time_limit: float = DEFAULT_TIME_LIMIT) -> MediaInfo:
    """`probe`, then `refusal`: the MediaInfo of a video memories.ai accepts, or ProbeError."""
    info = probe(source, time_limit=time_limit)
    reason = refusal(info)
    if reason:
        raise ProbeError(reason)
    return info


def probe(
    source: str | os.PathLike | BinaryIO,
    time_limit: float = DEFAULT_TIME_LIMIT,
    *,
    thumbnail_width: int = THUMBNAIL_WIDTH,
) -> MediaInfo:
    """What the video `source` holds: a local path, or a seekable binary file object (read
    from its start; its position is put back afterwards), such as a `RangeReader`. Raises
    ProbeError (ProbeTimeout after `time_limit` seconds) when the content cannot be read as a
    video, and OSError when the source itself cannot be read (a missing file, a storage error:
    not the file's fault).

    In the same pass, within the same `time_limit`, a JPEG still of at most `thumbnail_width`
    pixels wide (0: none) is made: MediaInfo's `thumbnail`, None when none could be made in
    time; that never fails the probe."""
    if isinstance(source, (str, os.PathLike)):
        return probe_child.run(os.fspath(source), None, time_limit, thumbnail_width)
    if not (hasattr(source, "read") and hasattr(source, "seek") and hasattr(source, "tell")):
        raise TypeError("probe() needs a path or a binary file object with read, seek and tell")
    seekable = getattr(source, "seekable", None)
    if seekable is not None and not seekable():
        raise ValueError("probe() needs a seekable file object")
    position = source.tell()
    try:
        return probe_child.run(None, source, time_limit, thumbnail_width)
    finally:
        try:
            source.seek(position)
        except Exception:  # a file object stuck in a read (a time-out) cannot be moved now
            pass


# A read of fewer bytes than this that finds nothing cached fetches only this much: the
# container checks read a box or chunk header (8 or 16 bytes) at each top-level offset, which
# for a fragmented MP4 is one far-apart header per fragment.
_PEEK = 4 * 1024


class RangeReader(io.RawIOBase):
    """A seekable, read-only binary file of `size` bytes whose content comes from
    `fetch(start, end) -> bytes`: the bytes start..end, both included, as in an HTTP Range
    header (`Range: bytes=start-end`), so for a boto3 S3 object (with django-storages:
    `obj = storage.open(name, "rb").obj`, the S3File's object, found by a HEAD request;
    nothing is downloaded until the S3File itself is read)

        RangeReader(lambda start, end: obj.get(Range=f"bytes={start}-{end}", IfMatch=obj.e_tag)
                    ["Body"].read(), obj.content_length)

    Each fetch is bounded: a read that misses the cache fetches one block of `block_size` bytes
    (256 KiB) from its position (read-ahead: FFmpeg reads 64 KiB at a time), or 4 KiB for a
    read under 4 KiB (a box header); a larger read is several such fetches. The last
    `cache_blocks` blocks' worth of what was fetched (1 MiB) is kept, least recently used
    first out. `fetches` and `bytes_fetched` count the requests and the bytes they brought.
    A fetch that returns another number of bytes than asked (a server that ignores Range, an
    object that changed) is an OSError; what `fetch` raises comes out of `read` as it is.
    Either way `probe` raises OSError (the storage failed), not a refusal.

    What a probe reads: the container's head and sizes, its index (which FFmpeg reads whole
    at open) and the first video packets, so a few blocks plus the index, whatever the file's
    size. Measured: the H.264 sample padded to 8 MB, 3 fetches, 264 KiB; a 10-minute H.264/AAC
    MP4 grown to 3 GB, 4 fetches (moov first) or 5 (moov last), 0.5-0.7 MB, of which its moov
    180 KB; the same in MKV, 2 fetches, 260 KiB. The index grows with the length: an MP4's
    moov by about 4 bytes per video or audio frame (some 1-2 MB an hour), an AVI's idx1 by 16
    bytes per packet (some 4 MB an hour), Matroska's Cues by a few bytes per keyframe. A
    fragmented MP4 costs one 4 KiB fetch per fragment besides, as its boxes are walked (an hour
    in 2-second fragments: 1,800 requests, which at S3's latency can take longer than the
    time limit).

    Meant for one user at a time (probe's reading thread); not thread-safe."""

    def __init__(
        self,
        fetch: Callable[[int, int], bytes],
        size: int,
        *,
        block_size: int = 256 * 1024,
        cache_blocks: int = 4,
    ):
        super().__init__()
        if size < 0 or block_size < 1 or cache_blocks < 1:
            raise ValueError("RangeReader needs size >= 0, block_size >= 1 and cache_blocks >= 1")
        self._fetch = fetch
        self._size = int(size)
        self._block_size = block_size
        self._cache_limit = cache_blocks * block_size
        self._cache: collections.OrderedDict[int, bytes] = collections.OrderedDict()  # start -> bytes
        self._cached = 0
        self._position = 0
        self.fetches = 0
        self.bytes_fetched = 0

    @property
    def size(self) -> int:
        return self._size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        self._check_open()
        return self._position

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        self._check_open()
        if whence == os.SEEK_SET:
            position = offset
        elif whence == os.SEEK_CUR:
            position = self._position + offset
        elif whence == os.SEEK_END:
            position = self._size + offset
        else:
            raise ValueError(f"invalid whence ({whence!r})")
        if position < 0:
            raise ValueError(f"negative seek position {position}")
        self._position = position
        return position

    def read(self, size: int | None = -1) -> bytes:
        self._check_open()
        position = self._position
        end = self._size if size is None or size < 0 else min(self._size, position + size)
        parts = []
        while position < end:
            start, data = self._segment(position, end - position)
            part = data[position - start : end - start]
            parts.append(part)
            position += len(part)
        self._position = position
        return b"".join(parts)

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._cache.clear()
        self._cached = 0
        super().close()

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed file")

    def _segment(self, position: int, wanted: int) -> tuple[int, bytes]:
        """A cached (start, bytes) holding `position`, fetched if none is."""
        for start, data in self._cache.items():
            if start <= position < start + len(data):
                self._cache.move_to_end(start)
                return start, data
        length = min(self._block_size if wanted >= _PEEK else _PEEK, self._size - position)
        last = position + length - 1
        data = bytes(self._fetch(position, last))
        self.fetches += 1
        self.bytes_fetched += len(data)
        if len(data) != length:
            raise OSError(f"the range {position}-{last} gave {len(data)} bytes, not {length}")
        if position in self._cache:
            self._cached -= len(self._cache.pop(position))
        self._cache[position] = data
        self._cached += length
        while self._cached > self._cache_limit and len(self._cache) > 1:
            self._cached -= len(self._cache.popitem(last=False)[1])
        return position, data


if __name__ == "__main__":  # python uploads/probe.py FILE...: what each file holds
    for name in sys.argv[1:]:
        started = time.monotonic()
        try:
            found: Any = probe(name)
            found = f"{found} -> {refusal(found) or 'accepted'}"
        except ProbeError as exc:
            found = f"ProbeError: {exc} [{exc.detail}]"
        print(f"{name}: {found} ({(time.monotonic() - started) * 1000:.0f} ms)")
