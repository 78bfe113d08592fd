"""The container of a video file, recognised from its first bytes, and whether the file holds all
of it: the byte-level checks a probe (uploads/probe.py) makes before FFmpeg reads the file.

`sniff` names the one FFmpeg demuxer to use (MP4/MOV, Matroska or AVI), so FFmpeg never tries
the other formats it knows (playlists that name further files among them).

A cut-short file (an upload that did not finish) is told by the container's own sizes, which
cost a few small reads: FFmpeg opens an MP4 whose `moov` comes first and whose media data is cut,
demuxes and decodes it up to the cut with warnings only ("partial file", "Packet corrupt"),
and with one byte missing decodes every frame. So: MP4/MOV, the top-level boxes must end where
the file ends (`check_boxes`); AVI, the RIFF chunks (`check_riff`); Matroska, the Segment
(`check_segment`, unless its size is left unknown, as by a live recorder).

Plain bytes and `struct`: no FFmpeg, no Django, no uploads module but the probe's vocabulary.
"""

from __future__ import annotations

import struct

from .mediainfo import CUT_SHORT, UNREADABLE, ProbeError

# Top-level MP4 boxes / AVI chunks walked at most (a fragmented MP4 has two per fragment).
_MAX_TOP_LEVEL = 200_000

_MOV_TOP_LEVEL = {b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot", b"uuid"}


def read_at(f, offset: int, n: int) -> bytes:
    """Up to `n` bytes of the seekable binary file `f` from `offset` (fewer only at its end)."""
    f.seek(offset)
    data = b""
    while len(data) < n:
        chunk = f.read(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def sniff(head: bytes) -> str | None:
    """The FFmpeg demuxer for the file's first bytes: "mov", "matroska", "avi" or None."""
    if head[4:8] in _MOV_TOP_LEVEL:
        return "mov"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "matroska"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "avi"
    return None


def check_boxes(f, size: int) -> None:
    """MP4/MOV: the top-level boxes must tile the file (the last one may say "to the end")."""
    offset = 0
    for _ in range(_MAX_TOP_LEVEL):
        if offset == size:
            return
        header = read_at(f, offset, 16)
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


def check_riff(f, size: int) -> None:
    """AVI: the RIFF chunks (one, or more for an OpenDML file past 1 GB) must fit the file."""
    offset = 0
    for _ in range(_MAX_TOP_LEVEL):
        if offset >= size - 1:  # done, or a final pad byte
            return
        header = read_at(f, offset, 8)
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


def check_segment(head: bytes, size: int) -> None:
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
