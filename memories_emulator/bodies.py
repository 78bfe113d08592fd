"""What the memories.ai emulator reads off the wire, and the envelope it answers with.

Owns the record of each upload as it arrived (``ReceivedUpload``), the two request body
readers (a small JSON body; a multipart body whose file part is hashed, never held), the
API's answer envelope, and how a key may be shown (``key_tail``). It knows nothing of the
HTTP server or of the emulator's state: the server feeds the readers, the emulator's core
judges what they read.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from memories_emulator.faults import CODE_MEANINGS

MAX_FIELD = 64 * 1024  # form fields are short URLs and names; a cap keeps a bad client out of memory
MAX_JSON = 1024 * 1024


def key_tail(key: str | None) -> str | None:
    """How a key may be shown anywhere: "…" and its last four characters."""
    if key is None:
        return None
    # Four characters of a very short key would be most of it.
    return "…" + key[-4:] if len(key) >= 8 else "…"


def envelope(code: str, data: Any = None, msg: str | None = None) -> dict[str, Any]:
    return {"code": code, "msg": msg or CODE_MEANINGS.get(code, "unknown error"), "data": data}


@dataclass
class ReceivedUpload:
    """One upload request as the emulator saw it, refused or not."""

    started_at: float
    key_tail: str | None
    headers: dict[str, str]
    fields: dict[str, str] = field(default_factory=dict)
    filename: str | None = None
    content_type: str | None = None
    size: int = 0  # bytes of the file part
    sha256: str | None = None  # of the file bytes received; set once the request is settled
    complete: bool = False  # the whole body arrived
    code: str | None = None  # envelope code, HTTP status, or None when never answered
    video_no: str | None = None
    body_bytes: int = 0  # raw body bytes read so far, multipart framing included


def redacted_headers(headers: Any) -> dict[str, str]:
    return {name: (key_tail(value) if name.lower() == "authorization" else value)
            for name, value in headers.items()}


class JsonBody:
    """Collects a small JSON request body."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._too_big = False

    def feed(self, chunk: bytes) -> None:
        if len(self._buf) + len(chunk) > MAX_JSON:
            self._too_big = True
        else:
            self._buf += chunk

    def finish(self, complete: bool) -> None:
        pass

    def payload(self) -> Any:
        """The parsed body (None when empty); raises ValueError."""
        if self._too_big:
            raise ValueError("body too large")
        return json.loads(self._buf) if self._buf.strip() else None


class MultipartBody:
    """Streams a multipart body into a ReceivedUpload: fields kept, the file part only hashed.

    `lock` guards the record: the emulator's readers copy it under the same lock.
    """

    def __init__(self, record: ReceivedUpload, content_type: str | None, lock: threading.RLock) -> None:
        self.record = record
        self.error: str | None = None
        self._lock = lock
        self._hasher = hashlib.sha256()
        self._ended = self._finished = self._seen_file = False
        self._part_headers: dict[str, str] = {}
        self._header: tuple[list[bytes], list[bytes]] = ([], [])
        self._part: str | None = None  # "file", "field" or "skip"
        self._field_name, self._field_value = "", bytearray()
        self._parser: MultipartParser | None = None
        ctype, options = parse_options_header(content_type)
        if ctype != b"multipart/form-data" or not options.get(b"boundary"):
            self.error = "body must be multipart/form-data"
            return
        callbacks = {"on_part_begin": self._on_part_begin, "on_header_field": self._on_header_field,
                     "on_header_value": self._on_header_value, "on_header_end": self._on_header_end,
                     "on_headers_finished": self._on_headers_finished, "on_part_data": self._on_part_data,
                     "on_part_end": self._on_part_end, "on_end": self._on_end}
        try:
            self._parser = MultipartParser(options[b"boundary"], callbacks=callbacks)  # type: ignore[arg-type]
        except FormParserError as exc:
            self.error = f"bad multipart boundary: {exc}"

    def feed(self, chunk: bytes) -> None:
        with self._lock:
            self.record.body_bytes += len(chunk)
        if self._parser is None or self.error:
            return
        try:
            self._parser.write(chunk)
        except FormParserError as exc:
            self.error = f"malformed multipart body: {exc}"

    def finish(self, complete: bool) -> None:
        if self._finished:
            return
        self._finished = True
        if complete and not self.error and not self._ended:
            self.error = "multipart body ends before its closing boundary"
        with self._lock:
            self.record.complete = complete
            self.record.sha256 = self._hasher.hexdigest() if self._seen_file else None

    def _on_part_begin(self) -> None:
        self._part_headers, self._part = {}, None

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header[0].append(data[start:end])

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header[1].append(data[start:end])

    def _on_header_end(self) -> None:
        name, value = (b"".join(pieces).decode("latin-1") for pieces in self._header)
        self._part_headers[name.strip().lower()] = value.strip()
        self._header = ([], [])

    def _on_headers_finished(self) -> None:
        _, options = parse_options_header(self._part_headers.get("content-disposition"))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        filename = options.get(b"filename")
        if filename is None:
            self._part, self._field_name, self._field_value = "field", name, bytearray()
        elif name == "file" and not self._seen_file:
            self._part, self._seen_file = "file", True
            with self._lock:
                self.record.filename = filename.decode("utf-8", "replace")
                self.record.content_type = self._part_headers.get("content-type")
        else:
            self._part = "skip"  # the API takes one file part; others are ignored

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._part == "file":
            self._hasher.update(memoryview(data)[start:end])
            with self._lock:
                self.record.size += end - start
        elif self._part == "field":
            if len(self._field_value) + end - start > MAX_FIELD:
                raise FormParserError(f"form field {self._field_name!r} is too long")
            self._field_value += data[start:end]

    def _on_part_end(self) -> None:
        if self._part == "field":
            with self._lock:
                self.record.fields[self._field_name] = self._field_value.decode("utf-8", "replace")

    def _on_end(self) -> None:
        self._ended = True
