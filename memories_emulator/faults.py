"""Fault injection for the memories.ai emulator (``memories_emulator``).

Owns the catalogue of faults a test can queue with ``MemoriesEmulator.inject``,
their validation, the per-endpoint queues they wait in (and their clearing), and
how each request fault plays out on one HTTP exchange: ``play`` before the request
is served, ``after_serving`` between serving it and writing the answer. Pure
stdlib: no Django, no emulator state, and it imports no other module of the package.

Request faults are injected per call, whichever API family it came through: ``upload``,
``list``, ``delete``, and ``metadata`` (get_metadata, a GET with no body: the faults that
read part of a body read none). Their params:
- ``code`` (``code``; ``msg``; ``acted``): HTTP 200 with that envelope code. By default
  the request changes nothing; with ``acted=True`` it is served first (the upload is
  stored, the delete done) and its 0000 answer is replaced by the code (a refusal the
  request earned anyway, e.g. 0401, is left as it is).
- ``http`` (``status``; ``headers``): that HTTP status with an HTML body, as a proxy sends.
- ``timeout_before_body`` (``seconds``): no answer, then the connection is closed.
- ``stall_after`` (``bytes``; ``event``, ``release``, ``seconds`` = 30): reads that much
  of the body, sets ``event``, waits for ``release`` (or the seconds), hangs up.
- ``reset`` (``bytes`` = 65536): reads that much, then the client sees an RST.
- ``slow`` (``seconds``): waits after the body, then answers normally.
- ``malformed``: HTTP 200 with a body that is not JSON.
- ``wrong_content_type``: a success-shaped envelope (creating nothing) sent as text/html.
- ``hold_answer`` (``release``; ``event``, ``seconds`` = 60): serves the request fully (an
  upload is stored), records ``Fault.held_video_no``, sets ``event``, waits for ``release``
  (or the seconds), then writes the answer it would have written.
Callback faults: ``never``, ``other_video`` (a number the portal never heard of), ``twice``.

The calls beyond upload take the request faults too: ``search``, ``transcript_search``,
``chat``, ``chat_stream``, ``sessions``, ``session_detail``, ``video_transcription``,
``audio_transcription``, ``summary`` (e.g. ``code`` with ``code="0402"``: out of credits). A
streamed chat also takes two faults of its own, acted out by ``sse`` as the answer streams:
- ``stream_error`` (``code``; ``msg``; ``after`` = 1): after that many frames, a final frame
  ``{"code": code, "msg": msg}`` instead of the rest (memories.ai: "any other final data is an
  error").
- ``stream_cut`` (``after`` = 1): after that many frames the connection is closed, no end frame.
- ``stream_pieces`` (``pieces``: a list of strings): the answer's text is sent as these content
  frames instead of its own (one per piece; a piece may be half of a character, a lone UTF-16
  surrogate, sent escaped as JSON writes it, as a model's tokens can split an emoji).

``event`` and ``release`` are ``threading.Event`` objects (one pair serves all of a
fault's `times`), so ``hold_answer``, and ``stall_after`` with them, can only be injected
in-process. ``FaultQueue.clear`` (``MemoriesEmulator.clear_faults``) drops what is queued
and ends every wait of the faults in play, setting their ``release``.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import weakref
from collections import deque
from typing import Any, Protocol

# The documented meaning of each envelope code; a "code" fault answers with it
# unless the test gives its own msg.
CODE_MEANINGS = {
    "0000": "success",
    "0001": "parameter invalid",
    "0003": "parameter missing",
    "0401": "authorization invalid",
    "0402": "not enough credits",
    "0403": "developer account disabled",
    "0409": "duplicate request",
    "0429": "too many requests",
    "9009": "permission denied",
}

# fault name -> params it cannot do without.
REQUEST_FAULTS: dict[str, tuple[str, ...]] = {
    "code": ("code",),
    "http": ("status",),
    "timeout_before_body": ("seconds",),
    "stall_after": ("bytes",),
    "reset": (),
    "slow": ("seconds",),
    "malformed": (),
    "wrong_content_type": (),
    "hold_answer": ("release",),
}
# Params that must be threading.Event objects when given (None: not given).
EVENT_PARAMS = ("event", "release")
CALLBACK_FAULTS: dict[str, tuple[str, ...]] = {"never": (), "other_video": (), "twice": ()}
STREAM_FAULTS: dict[str, tuple[str, ...]] = {"stream_error": ("code",), "stream_cut": (), "stream_pieces": ("pieces",)}
FAULTS_BY_ENDPOINT = {
    "upload": REQUEST_FAULTS,
    "list": REQUEST_FAULTS,
    "delete": REQUEST_FAULTS,
    "metadata": REQUEST_FAULTS,
    "callback": CALLBACK_FAULTS,
    **{name: REQUEST_FAULTS for name in ("search", "transcript_search", "sessions", "session_detail",
                                         "video_transcription", "audio_transcription", "summary")},
    "chat": {**REQUEST_FAULTS, **STREAM_FAULTS},
    "chat_stream": {**REQUEST_FAULTS, **STREAM_FAULTS},
}

HTTP_REASONS = {429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
                503: "Service Unavailable", 504: "Gateway Timeout"}


@dataclasses.dataclass(eq=False)  # compared (and hashed) by identity: FaultQueue tracks faults in play
class Fault:
    """One injected fault; ``MemoriesEmulator.inject`` returns it, so a test can watch it."""

    endpoint: str
    kind: str
    times: int  # uses left
    params: dict[str, Any]
    # "hold_answer": the video number stored by the request held last (None for list, delete
    # and metadata, or for an upload that was refused); set before its `event` is set.
    held_video_no: str | None = None
    # Set by FaultQueue.clear(): every wait of this fault ends at once.
    cleared: threading.Event = dataclasses.field(default_factory=threading.Event, repr=False)

    def describe(self) -> dict[str, Any]:
        """JSON-able view for the control API; Events are shown by name only."""
        params = {k: (v if _jsonable(v) else type(v).__name__) for k, v in self.params.items()}
        shown = {"endpoint": self.endpoint, "fault": self.kind, "times": self.times, **params}
        if self.held_video_no is not None:
            shown["held_video_no"] = self.held_video_no
        return shown

    def cancel(self) -> None:
        """End this fault's waits now, and set its `release` event when it has one."""
        self.cleared.set()
        release = self.params.get("release")
        if release is not None:
            release.set()


def make_fault(endpoint: str, kind: str, times: int = 1, **params: Any) -> Fault:
    """Validate a fault request; a typo must fail the test that made it, not pass silently."""
    if endpoint not in FAULTS_BY_ENDPOINT:
        raise ValueError(f"unknown endpoint {endpoint!r}; expected one of {sorted(FAULTS_BY_ENDPOINT)}")
    catalogue = FAULTS_BY_ENDPOINT[endpoint]
    if kind not in catalogue:
        raise ValueError(f"unknown fault {kind!r} for {endpoint}; expected one of {sorted(catalogue)}")
    missing = [name for name in catalogue[kind] if name not in params]
    if missing:
        raise ValueError(f"fault {kind!r} needs params {missing}")
    if not isinstance(times, int) or times < 1:
        raise ValueError("times must be a positive int")
    for name in EVENT_PARAMS:
        if params.get(name) is not None and not isinstance(params[name], threading.Event):
            raise ValueError(f"param {name!r} must be a threading.Event (in-process injection only)")
    if kind == "hold_answer" and params["release"] is None:
        raise ValueError("fault 'hold_answer' needs a threading.Event as param 'release'")
    if kind in ("code", "stream_error"):
        params["code"] = str(params["code"])
        if not isinstance(params.get("acted", False), bool):
            raise ValueError("param 'acted' must be a boolean")
    return Fault(endpoint, kind, times, params)


class FaultQueue:
    """Faults waiting per endpoint, used up in the order they were injected."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: dict[str, deque[Fault]] = {name: deque() for name in FAULTS_BY_ENDPOINT}
        # Faults taken for a request, which may still be waiting in it; weak, so the ones
        # nobody refers to any more (their requests are over) drop out by themselves.
        self._in_play: weakref.WeakSet[Fault] = weakref.WeakSet()

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._queues[fault.endpoint].append(fault)

    def take(self, endpoint: str) -> Fault | None:
        """Use one of the next fault's `times`, or return None when nothing is queued."""
        with self._lock:
            queue = self._queues[endpoint]
            if not queue:
                return None
            fault = queue[0]
            fault.times -= 1
            if fault.times <= 0:
                queue.popleft()
            self._in_play.add(fault)
            return fault

    def pending(self) -> list[dict[str, Any]]:
        with self._lock:
            return [f.describe() for q in self._queues.values() for f in q]

    def clear(self) -> int:
        """Drop every queued fault and end the waits of those in play; returns how many were queued."""
        with self._lock:
            dropped = [f for q in self._queues.values() for f in q]
            for queue in self._queues.values():
                queue.clear()
            in_play = list(self._in_play)
            self._in_play.clear()
        for fault in {*dropped, *in_play}:
            fault.cancel()
        return len(dropped)


class Exchange(Protocol):
    """What a request fault needs from the HTTP handler serving the request."""

    stopping: threading.Event

    def read_body(self, limit: int | None = None) -> int: ...
    def answer(self, status: int, body: bytes, content_type: str, code: str,
               headers: dict[str, str] | None = None) -> None: ...
    def hang_up(self, reset: bool = False) -> None: ...
    def success_body(self) -> dict[str, Any]: ...
    def stored_video_no(self) -> str | None: ...
    def note(self, line: str) -> None: ...


def play(fault: Fault, exchange: Exchange) -> bool:
    """Act out `fault` on one request, before it is served.

    Returns True when the fault answered (or dropped) the request, False when
    the request should go on to be served ("slow", "hold_answer", an acted "code");
    ``after_serving`` then has the last word on its answer.
    """
    p = fault.params
    kind = fault.kind
    if kind == "timeout_before_body":
        _hang(fault, exchange.stopping, float(p["seconds"]))
        exchange.hang_up()
    elif kind == "stall_after":
        exchange.read_body(limit=int(p["bytes"]))
        if p.get("event") is not None:
            p["event"].set()
        _hang(fault, exchange.stopping, float(p.get("seconds", 30)), p.get("release"))
        exchange.hang_up()
    elif kind == "reset":
        exchange.read_body(limit=int(p.get("bytes", 65536)))
        exchange.hang_up(reset=True)
    elif kind == "slow":
        exchange.read_body()
        _hang(fault, exchange.stopping, float(p["seconds"]))
        return False
    elif kind == "hold_answer" or (kind == "code" and p.get("acted")) or kind in STREAM_FAULTS:
        return False
    else:
        exchange.read_body()
        _answer_without_serving(fault, exchange)
    return True


def after_serving(fault: Fault, exchange: Exchange, answer: Any) -> Any:
    """The answer to write for a request `fault` let through, now that it has been served.

    `answer` is an envelope, or a streamed answer (``sse.Stream``, which plays the stream faults).
    None: write nothing and hang up (the emulator stopped while the answer was held).
    """
    p = fault.params
    if fault.kind in STREAM_FAULTS:  # played by the stream itself; an answer that is no stream ignores it
        return answer.with_fault(fault.kind, p) if hasattr(answer, "with_fault") else answer
    code = answer.get("code") if isinstance(answer, dict) else "0000"  # a stream is a success
    if fault.kind == "code" and p.get("acted") and code == "0000":
        return _code_body(fault)
    if fault.kind != "hold_answer":
        return answer
    fault.held_video_no = exchange.stored_video_no()
    held = f" for {fault.held_video_no}" if fault.held_video_no else ""
    exchange.note(f"answer {code} held{held} [fault hold_answer]")
    if p.get("event") is not None:
        p["event"].set()
    _hang(fault, exchange.stopping, float(p.get("seconds", 60)), p["release"])
    return None if exchange.stopping.is_set() else answer


def _code_body(fault: Fault) -> dict[str, Any]:
    code = fault.params["code"]
    msg = fault.params.get("msg", CODE_MEANINGS.get(code, "unknown error"))
    return {"code": code, "msg": msg, "data": None}


def _answer_without_serving(fault: Fault, exchange: Exchange) -> None:
    p = fault.params
    if fault.kind == "code":
        body = _code_body(fault)
        exchange.answer(200, json.dumps(body).encode(), "application/json", body["code"])
    elif fault.kind == "http":
        # Shaped like what a proxy in front of the API sends: HTML, not the envelope.
        status = int(p["status"])
        reason = HTTP_REASONS.get(status, "Error")
        html = f"<html><body><h1>{status} {reason}</h1></body></html>\n".encode()
        exchange.answer(status, html, "text/html", str(status), headers=p.get("headers"))
    elif fault.kind == "malformed":
        exchange.answer(200, b"not json{", "application/json", "200")
    elif fault.kind == "wrong_content_type":
        body = json.dumps(exchange.success_body()).encode()
        exchange.answer(200, body, "text/html", "200")


def _hang(fault: Fault, stopping: threading.Event, seconds: float,
          release: threading.Event | None = None) -> None:
    """Wait `seconds`, cut short by `release`, the fault being cleared, or the emulator stopping."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not stopping.is_set() and not fault.cleared.is_set():
        if release is not None and release.is_set():
            return
        fault.cleared.wait(min(0.05, max(0.0, deadline - time.monotonic())))


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True
