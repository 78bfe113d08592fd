"""How requests reach the memories.ai emulator.

Owns the wire side: the threaded HTTP server and the per-request handler (routing each path
to the call it serves, a ``remote.Route``, and refusing another method than the call's;
reading the body in chunks into a reader from ``bodies``; handing the query parameters on;
answering, hanging up on purpose, the control API under ``/_emulator/``). What the fake API decides lives behind ``Backend``, the
small public interface below, which ``core.MemoriesEmulator`` implements; this module never
imports the core. Injected faults are acted out through the handler's read/answer/hang-up
methods (``faults.Exchange``): by ``faults.play`` before a request is served, and by
``faults.after_serving`` between serving it and writing its answer. A streamed answer
(``sse.Stream``, chat's) goes out as server-sent events, one HTTP chunk per frame; its record
gains ``frames_sent``, ``frames_sent_at`` (wall-clock times) and ``stream_end`` ("done", "cut",
"client gone" or "stopped"), so a test can tell when each frame left and that a client hung up.
Each is on record before its bytes leave: a client that has read a frame, or the body's end,
finds it there.

Control API (unless switched off): ``GET /_emulator/state``; ``POST /_emulator/fault``
(JSON ``{"endpoint", "fault", "times", ...params}``); ``POST /_emulator/clear_faults``
(answers ``{"ok": true, "dropped": n}``); ``POST /_emulator/status`` (JSON ``{"video_no",
"status", "send_callback"}``).
"""

from __future__ import annotations

import json
import logging
import select
import socket
import socketserver
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from memories_emulator.bodies import (
    JsonBody, MultipartBody, ReceivedUpload, envelope, key_tail, redacted_headers,
)
from memories_emulator.faults import Fault, after_serving, play
from memories_emulator.remote import Route
from memories_emulator.sse import CLIENT_GONE, DONE, STOPPED, Stream, write

logger = logging.getLogger("memportal.emulator")

CHUNK = 64 * 1024
# Seconds a silent client may hold a connection: one that stops mid-body must not pin a thread.
SOCKET_TIMEOUT = 30


class Backend(Protocol):
    """What the HTTP side needs from the emulator; ``MemoriesEmulator`` provides it."""

    @property
    def stopping(self) -> threading.Event:
        """Set when the emulator stops: waits and stalls end at once."""

    @property
    def control_api(self) -> bool:
        """Whether ``/_emulator/*`` is served."""

    @property
    def record_lock(self) -> threading.RLock:
        """Guards the recorded requests and uploads; hold it to change one."""

    def route_for(self, path: str) -> Route | None:
        """The call this path serves (its endpoint, family and method), or None for no call."""

    def now(self) -> float:
        """The emulator's clock (a fake one in some tests)."""

    def take_fault(self, endpoint: str) -> Fault | None:
        """Use up the next injected fault for this endpoint, if any."""

    def is_authorized(self, key: str | None) -> bool: ...

    def record_request(self, request: dict[str, Any], upload: ReceivedUpload | None) -> None:
        """Keep a request (and its upload record) as it starts; both are filled in later."""

    def record_outcome(self, request: dict[str, Any], upload: ReceivedUpload | None,
                       code: str | None) -> None:
        """Write the code the client was given (None: no answer) into the records."""

    def serve(self, route: Route, key: str, body: JsonBody | MultipartBody, started: float,
              query: dict[str, str], accept: str = "") -> dict[str, Any] | Stream:
        """The API's answer to an authorized request whose body has been read: an envelope, or a
        stream of frames.

        `query`: the URL's query parameters, the first value of each; `accept`: the Accept header.
        """

    def success_lookalike(self, endpoint: str) -> dict[str, Any]:
        """A success-shaped answer that creates nothing ("wrong_content_type" fault)."""

    def log(self, line: str) -> None: ...

    # The control API.
    def state(self) -> dict[str, Any]: ...

    def inject(self, endpoint: str, fault: str, times: int = 1, **params: Any) -> Fault: ...

    def clear_faults(self) -> int:
        """Drop every queued fault and release held requests; how many were queued."""

    def set_status(self, video_no: str, status: str, send_callback: bool = True) -> None: ...


class EmulatorServer(ThreadingHTTPServer):
    daemon_threads = True  # a stalled request must not keep the process alive

    def __init__(self, address: tuple[str, int], backend: Backend) -> None:
        self.backend = backend
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
        backend = self.server.backend
        self.stopping = backend.stopping
        self._wall, self._t0 = time.time(), time.monotonic()
        self._sink: JsonBody | MultipartBody = JsonBody()
        self._read = 0
        self._fault: Fault | None = None
        self._settled = False
        self._upload: ReceivedUpload | None = None
        self._request: dict[str, Any] | None = None
        self._length = self._content_length()
        url = urlsplit(self.path)
        if backend.control_api and url.path.startswith("/_emulator/"):
            self._serve_control(url.path)  # not recorded: it is the test harness talking, not the portal
            return
        route = backend.route_for(url.path)
        key = self.headers.get("Authorization")
        if route is not None and route.endpoint == "upload" and self.command == route.method:
            self._upload = ReceivedUpload(started_at=self._wall, key_tail=key_tail(key),
                                          headers=redacted_headers(self.headers))
            self._sink = MultipartBody(self._upload, self.headers.get("Content-Type"), backend.record_lock)
        self._request = {"path": self.path, "method": self.command, "at": self._wall,
                         "key_tail": key_tail(key), "code": None}
        backend.record_request(self._request, self._upload)
        try:
            if route is None:
                self._drain_and_answer(404, {"error": "not found"})
            elif self.command != route.method:
                self._drain_and_answer(405, {"error": "method not allowed"})
            else:
                query = {name: values[0] for name, values in parse_qs(url.query, keep_blank_values=True).items()}
                self._serve_api(route, key, query)
        finally:
            self._settle(None, "no answer (error)")

    def _record_arguments(self, query: dict[str, str]) -> None:
        """What a call beyond upload was asked (its query, its JSON body), for tests to read: a
        member's search must name only their own videos. Never a key: that travels in a header."""
        self._request["query"] = dict(query)
        if isinstance(self._sink, JsonBody):
            try:
                self._request["json"] = self._sink.payload()
            except ValueError:
                self._request["json"] = None

    def _serve_api(self, route: Route, key: str | None, query: dict[str, str]) -> None:
        backend = self.server.backend
        started = backend.now()
        if self._length is None:
            self.answer_json(envelope("0003", msg="a Content-Length is required"))
            return
        self._fault = backend.take_fault(route.endpoint)
        if self._fault is not None and play(self._fault, self):
            return
        # The key is judged on the headers alone, before the body is read. The body is still
        # drained, so the client reads the answer instead of a reset, and the record is whole.
        authorized = backend.is_authorized(key)
        self.read_body()
        if not self._body_done():
            self.hang_up()  # the client went away mid-body; nobody to answer
            return
        # Finished before it is served: a multipart body without its closing boundary is
        # refused, and the upload's record is whole while an answer is held.
        self._sink.finish(complete=True)
        self._record_arguments(query)
        if not authorized or key is None:  # (a None key is never authorized)
            served = envelope("0401")
        else:
            served = backend.serve(route, key, self._sink, started, query, self.headers.get("Accept", ""))
        answer = served if self._fault is None else after_serving(self._fault, self, served)
        if answer is None:
            self.hang_up()
        elif isinstance(answer, Stream):
            self.answer_stream(answer)
        else:
            self.answer_json(answer)

    def _serve_control(self, path: str) -> None:
        backend = self.server.backend
        self.read_body()
        route = (self.command, path)
        try:
            if route == ("GET", "/_emulator/state"):
                self._send(200, backend.state())
            elif route == ("POST", "/_emulator/fault"):
                spec = dict(self._sink.payload() or {})  # type: ignore[union-attr]
                backend.inject(spec.pop("endpoint", ""), spec.pop("fault", ""), spec.pop("times", 1), **spec)
                self._send(200, {"ok": True})
            elif route == ("POST", "/_emulator/clear_faults"):
                self._send(200, {"ok": True, "dropped": backend.clear_faults()})
            elif route == ("POST", "/_emulator/status"):
                spec = self._sink.payload() or {}  # type: ignore[union-attr]
                backend.set_status(spec["video_no"], spec["status"], bool(spec.get("send_callback", True)))
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
        backend, upload = self.server.backend, self._upload
        backend.record_outcome(self._request, upload, code)
        line = f"{self.command} {self.path} key={self._request['key_tail'] or '-'} -> {outcome}"
        if upload is not None:
            line += f" file={upload.filename!r} {upload.size} bytes"
            if upload.video_no:
                line += f" {upload.video_no}"
        if self._fault is not None:
            line += f" [fault {self._fault.kind}]"
        backend.log(f"{line} in {(time.monotonic() - self._t0) * 1000:.0f} ms")

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

    # -- what faults.play() uses (faults.Exchange) ---------------------------

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

    def answer_stream(self, stream: Stream) -> None:
        """Write a streamed answer: server-sent events in chunks, as they are due."""
        self._settle("0000", "0000 (stream)")
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
        except OSError:
            self.close_connection = True
            return
        ended = write(stream, self._send_chunk, self._wait_or_hang_up, self._count_frame)
        with self.server.backend.record_lock:  # on record before the body's end can reach the client
            self._request["stream_end"] = ended  # type: ignore[index]
        if ended != DONE or not self._send_chunk(b""):  # b"": the last chunk, the end of the body
            self.close_connection = True
        self.note(f"stream {ended} after {self._request.get('frames_sent', 0)} frames")  # type: ignore[union-attr]

    def _send_chunk(self, data: bytes) -> bool:
        try:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
        except OSError:
            return False
        return True

    def _wait_or_hang_up(self, seconds: float) -> str | None:
        """Wait between frames; CLIENT_GONE as soon as the client closes its end, STOPPED on stop."""
        deadline = time.monotonic() + seconds
        while not self.stopping.is_set():
            left = deadline - time.monotonic()
            try:
                readable, _, _ = select.select([self.connection], [], [], max(0.0, min(left, 0.05)))
                if readable and not self.connection.recv(1, socket.MSG_PEEK):
                    return CLIENT_GONE  # EOF: the client closed the connection
            except (OSError, ValueError):
                return CLIENT_GONE
            if readable:  # bytes of a next request: not a hang-up, but no reason to spin on them
                time.sleep(max(0.0, min(left, 0.05)))
            if left <= 0:
                return None
        return STOPPED

    def _count_frame(self, sent: int) -> None:
        record: dict[str, Any] = self._request  # type: ignore[assignment]
        with self.server.backend.record_lock:
            times = record.get("frames_sent_at", ())
            record["frames_sent"] = sent
            # a new tuple, so copies stay put; one less when a frame did not get out
            record["frames_sent_at"] = (*times, time.time()) if sent > len(times) else times[:sent]

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
        return self.server.backend.success_lookalike(self._fault.endpoint if self._fault else "upload")

    def stored_video_no(self) -> str | None:
        return self._upload.video_no if self._upload is not None else None

    def note(self, line: str) -> None:
        self.server.backend.log(f"{self.command} {self.path}: {line}")
