"""How requests reach the memories.ai emulator.

Owns the wire side of ``uploads/emulator.py``: the threaded HTTP server, the
per-request handler (routing, reading the body in chunks, answering, hanging
up on purpose), the multipart reader that hashes the file part without ever
holding it, and the record of each upload as it arrived. What the fake API
decides lives in ``uploads/emulator.py``; injected faults are acted out by
``uploads/emulator_faults.py`` through the handler's read/answer/hang-up methods.
"""

from __future__ import annotations

import hashlib
import json
import logging
import socket
import socketserver
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from uploads import emulator_faults as faults

if TYPE_CHECKING:
    from uploads.emulator import MemoriesEmulator

logger = logging.getLogger("memportal.emulator")

CHUNK = 64 * 1024
MAX_FIELD = 64 * 1024  # form fields are short URLs and names; a cap keeps a bad client out of memory
MAX_JSON = 1024 * 1024
# Seconds a silent client may hold a connection: one that stops mid-body must not pin a thread.
SOCKET_TIMEOUT = 30


def key_tail(key: str | None) -> str | None:
    """How a key may be shown anywhere: "…" and its last four characters."""
    if key is None:
        return None
    # Four characters of a very short key would be most of it.
    return "…" + key[-4:] if len(key) >= 8 else "…"


def envelope(code: str, data: Any = None, msg: str | None = None) -> dict[str, Any]:
    return {"code": code, "msg": msg or faults.CODE_MEANINGS.get(code, "unknown error"), "data": data}


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


def _redacted_headers(headers: Any) -> dict[str, str]:
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
    """Streams a multipart body into a ReceivedUpload: fields kept, the file part only hashed."""

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



class EmulatorServer(ThreadingHTTPServer):
    daemon_threads = True  # a stalled request must not keep the process alive

    def __init__(self, address: tuple[str, int], emulator: MemoriesEmulator) -> None:
        self.emulator = emulator
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind() resolves the host name (getfqdn), which can stall on a
        # machine with slow DNS; the emulator never needs it.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.exception("memories.ai emulator: error while serving %s", client_address)


class _Handler(BaseHTTPRequestHandler):
    """One connection; per-request state is reset in _route()."""

    protocol_version = "HTTP/1.1"
    server_version = "memories-emulator/1.0"
    timeout = SOCKET_TIMEOUT
    server: EmulatorServer

    def do_GET(self) -> None:
        self._route()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
        # The emulator logs its own line per request; http.server's stderr lines would be noise.
        logger.debug("http.server: " + format, *args)

    # -- per request -------------------------------------------------------

    def _route(self) -> None:
        emu = self.server.emulator
        self.stopping = emu._stopping
        self._wall, self._t0 = time.time(), time.monotonic()
        self._sink: JsonBody | MultipartBody = JsonBody()
        self._read = 0
        self._fault: faults.Fault | None = None
        self._settled = False
        self._upload: ReceivedUpload | None = None
        self._request: dict[str, Any] | None = None
        self._length = self._content_length()
        path = urlsplit(self.path).path
        if emu.control_api and path.startswith("/_emulator/"):
            self._serve_control(path)  # not recorded: it is the test harness talking, not the portal
            return
        endpoint = emu._routes.get(path)
        key = self.headers.get("Authorization")
        if endpoint == "upload" and self.command == "POST":
            self._upload = ReceivedUpload(started_at=self._wall, key_tail=key_tail(key),
                                          headers=_redacted_headers(self.headers))
            self._sink = MultipartBody(self._upload, self.headers.get("Content-Type"), emu._lock)
        self._request = {"path": self.path, "method": self.command, "at": self._wall,
                         "key_tail": key_tail(key), "code": None}
        emu._record(self._upload, self._request)
        try:
            if endpoint is None:
                self._drain_and_answer(404, {"error": "not found"})
            elif self.command != "POST":
                self._drain_and_answer(405, {"error": "method not allowed"})
            else:
                self._serve_api(endpoint, key)
        finally:
            self._settle(None, "no answer (error)")

    def _serve_api(self, endpoint: str, key: str | None) -> None:
        emu = self.server.emulator
        started = emu._clock()
        if self._length is None:
            self.answer_json(envelope("0003", msg="a Content-Length is required"))
            return
        self._fault = emu._faults.take(endpoint)
        if self._fault is not None and faults.play(self._fault, self):
            return
        # The key is judged on the headers alone, before the body is read. The body is still
        # drained, so the client reads the answer instead of a reset, and the record is whole.
        authorized = emu._authorized(key)
        self.read_body()
        if not self._body_done():
            self.hang_up()  # the client went away mid-body; nobody to answer
        elif not authorized:
            self.answer_json(envelope("0401"))
        else:
            self.answer_json(emu._serve(endpoint, key, self._sink, started))

    def _serve_control(self, path: str) -> None:
        emu = self.server.emulator
        self.read_body()
        route = (self.command, path)
        try:
            if route == ("GET", "/_emulator/state"):
                self._send(200, emu.state())
            elif route == ("POST", "/_emulator/fault"):
                spec = dict(self._sink.payload() or {})
                emu.inject(spec.pop("endpoint", ""), spec.pop("fault", ""), spec.pop("times", 1), **spec)
                self._send(200, {"ok": True})
            elif route == ("POST", "/_emulator/status"):
                spec = self._sink.payload() or {}
                emu.set_status(spec["video_no"], spec["status"], bool(spec.get("send_callback", True)))
                self._send(200, {"ok": True})
            else:
                self._send(404, {"error": "not found"})
        except KeyError as exc:
            self._send(404, {"error": str(exc)})
        except (TypeError, ValueError) as exc:
            self._send(400, {"error": str(exc)})

    def _settle(self, code: str | None, outcome: str) -> None:
        """Finish this request's records and log line.

        Runs before the answer is written or the connection dropped, so whatever the
        client sees, the records already show it.
        """
        if self._settled or self._request is None:
            return
        self._settled = True
        self._sink.finish(complete=self._body_done())
        emu, upload = self.server.emulator, self._upload
        with emu._lock:
            self._request["code"] = code
            if upload is not None:
                upload.code = code
        line = f"{self.command} {self.path} key={self._request['key_tail'] or '-'} -> {outcome}"
        if upload is not None:
            line += f" file={upload.filename!r} {upload.size} bytes"
            if upload.video_no:
                line += f" {upload.video_no}"
        if self._fault is not None:
            line += f" [fault {self._fault.kind}]"
        emu._log(f"{line} in {(time.monotonic() - self._t0) * 1000:.0f} ms")

    def _content_length(self) -> int | None:
        """The body length, or None when it is unknown (chunked or a bad header)."""
        if self.headers.get("Transfer-Encoding"):
            return None
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            return None
        return length if length >= 0 else None

    def _body_done(self) -> bool:
        return self._length is not None and self._read >= self._length

    def _drain_and_answer(self, status: int, body: dict[str, Any]) -> None:
        self.read_body()
        self._send(status, body)

    def _send(self, status: int, body: dict[str, Any]) -> None:
        self.answer(status, json.dumps(body).encode(), "application/json", str(status))

    # -- what emulator_faults.play() uses ----------------------------------

    def read_body(self, limit: int | None = None) -> int:
        """Feed the body (or its first `limit` bytes) to this request's reader."""
        if self._length is None:
            return self._read
        target = self._length if limit is None else min(self._length, limit)
        while self._read < target:
            try:
                chunk = self.rfile.read(min(CHUNK, target - self._read))
            except OSError:  # includes the socket timeout
                chunk = b""
            if not chunk:  # the client went away or fell silent
                self.close_connection = True
                break
            self._read += len(chunk)
            self._sink.feed(chunk)
        return self._read

    def answer(self, status: int, body: bytes, content_type: str, code: str,
               headers: dict[str, str] | None = None) -> None:
        self._settle(code, code)
        if not self._body_done():
            self.close_connection = True  # unread body bytes would be taken for the next request
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            self.close_connection = True

    def answer_json(self, body: dict[str, Any]) -> None:
        self.answer(200, json.dumps(body).encode(), "application/json", body["code"])

    def hang_up(self, reset: bool = False) -> None:
        """Drop the connection without an answer; `reset` makes the client see an RST."""
        self._settle(None, "no answer (reset)" if reset else "no answer (closed)")
        self.close_connection = True
        if reset:
            try:
                # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.rfile.close()  # the makefile() reference would otherwise keep the fd open
                self.connection.close()
            except OSError:
                pass

    def success_body(self) -> dict[str, Any]:
        return self.server.emulator._success_look(self._fault.endpoint if self._fault else "upload")
