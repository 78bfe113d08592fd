"""Fault injection for the memories.ai emulator (``memories_emulator``).

Owns the catalogue of faults a test can queue with ``MemoriesEmulator.inject``,
their validation, the per-endpoint queues they wait in, and how each request
fault plays out on one HTTP exchange. Pure stdlib: no Django, no emulator state,
and it imports no other module of the package.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
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
}
CALLBACK_FAULTS: dict[str, tuple[str, ...]] = {"never": (), "other_video": (), "twice": ()}
FAULTS_BY_ENDPOINT = {
    "upload": REQUEST_FAULTS,
    "list": REQUEST_FAULTS,
    "delete": REQUEST_FAULTS,
    "callback": CALLBACK_FAULTS,
}

HTTP_REASONS = {429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
                503: "Service Unavailable", 504: "Gateway Timeout"}


@dataclasses.dataclass
class Fault:
    endpoint: str
    kind: str
    times: int
    params: dict[str, Any]

    def describe(self) -> dict[str, Any]:
        """JSON-able view for the control API; Events are shown by name only."""
        params = {k: (v if _jsonable(v) else type(v).__name__) for k, v in self.params.items()}
        return {"endpoint": self.endpoint, "fault": self.kind, "times": self.times, **params}


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
    if kind == "code":
        params["code"] = str(params["code"])
    return Fault(endpoint, kind, times, params)


class FaultQueue:
    """Faults waiting per endpoint, used up in the order they were injected."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: dict[str, deque[Fault]] = {name: deque() for name in FAULTS_BY_ENDPOINT}

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
            return fault

    def pending(self) -> list[dict[str, Any]]:
        with self._lock:
            return [f.describe() for q in self._queues.values() for f in q]


class Exchange(Protocol):
    """What a request fault needs from the HTTP handler serving the request."""

    stopping: threading.Event

    def read_body(self, limit: int | None = None) -> int: ...
    def answer(self, status: int, body: bytes, content_type: str, code: str,
               headers: dict[str, str] | None = None) -> None: ...
    def hang_up(self, reset: bool = False) -> None: ...
    def success_body(self) -> dict[str, Any]: ...


def play(fault: Fault, exchange: Exchange) -> bool:
    """Act out `fault` on one request.

    Returns True when the fault answered (or dropped) the request, False when
    the request should go on to be served normally ("slow").
    """
    p = fault.params
    kind = fault.kind
    if kind == "timeout_before_body":
        exchange.stopping.wait(float(p["seconds"]))
        exchange.hang_up()
    elif kind == "stall_after":
        exchange.read_body(limit=int(p["bytes"]))
        if p.get("event") is not None:
            p["event"].set()
        _hang(exchange.stopping, p.get("release"), float(p.get("seconds", 30)))
        exchange.hang_up()
    elif kind == "reset":
        exchange.read_body(limit=int(p.get("bytes", 65536)))
        exchange.hang_up(reset=True)
    elif kind == "slow":
        exchange.read_body()
        exchange.stopping.wait(float(p["seconds"]))
        return False
    else:
        exchange.read_body()
        _answer_without_serving(fault, exchange)
    return True


def _answer_without_serving(fault: Fault, exchange: Exchange) -> None:
    p = fault.params
    if fault.kind == "code":
        code = p["code"]
        body = {"code": code, "msg": p.get("msg", CODE_MEANINGS.get(code, "unknown error")), "data": None}
        exchange.answer(200, json.dumps(body).encode(), "application/json", code)
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


def _hang(stopping: threading.Event, release: threading.Event | None, seconds: float) -> None:
    """Wait for `release`, the timeout, or the emulator stopping, whichever comes first."""
    if release is None:
        stopping.wait(seconds)
        return
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not release.is_set() and not stopping.is_set():
        release.wait(0.05)


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True
