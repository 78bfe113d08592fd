"""What the memories.ai emulator does later: each video's planned steps, and its callbacks.

Owns the timeline (status changes and callbacks due at a time on the emulator's clock,
soonest first) and the posting of status callbacks, one thread per callback, each recorded
and logged with the URL's secret left out. The emulator's core decides what to plan and
when to run what is due; this module keeps no video state of its own.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import urlsplit

import requests

CALLBACK_TIMEOUT = 5.0


@dataclass(order=True)
class Step:
    """A timeline event of one video: a status change and/or a callback."""

    due: float
    seq: int
    video_no: str = field(compare=False)
    status: str | None = field(compare=False, default=None)
    callback: dict[str, Any] | None = field(compare=False, default=None)
    copies: int = field(compare=False, default=1)


class Timeline:
    """Every video's planned steps. Not locked itself: the caller holds the emulator's lock."""

    def __init__(self) -> None:
        self._steps: list[Step] = []
        self._seq = itertools.count()

    def add(self, due: float, video_no: str, *, status: str | None = None,
            callback: dict[str, Any] | None = None, copies: int = 1) -> None:
        heapq.heappush(self._steps, Step(due, next(self._seq), video_no, status=status,
                                         callback=callback, copies=copies))

    def drop(self, video_nos: set[str]) -> None:
        """Forget the planned steps of these videos."""
        if video_nos:
            self._steps = [s for s in self._steps if s.video_no not in video_nos]
            heapq.heapify(self._steps)

    def pop_due(self, now: float) -> list[Step]:
        """Take out the steps due at `now`, in the order they fall due."""
        due = []
        while self._steps and self._steps[0].due <= now:
            due.append(heapq.heappop(self._steps))
        return due


class CallbackPoster:
    """POSTs status callbacks, each `copies` times; `record` and `log` get what happened."""

    def __init__(self, record: Callable[[dict[str, Any]], None], log: Callable[[str], None]) -> None:
        self._record = record
        self._log = log

    def send_later(self, url: str, body: dict, copies: int) -> None:
        # A thread per callback: a receiver that hangs must not delay the next video's callback.
        threading.Thread(target=self._post, args=(url, body, copies),
                         name="memories-emulator-callback", daemon=True).start()

    def _post(self, url: str, body: dict, copies: int) -> None:
        for _ in range(copies):
            sent = {"url": url, "body": dict(body), "status_code": None, "error": None, "at": time.time()}
            try:
                response = requests.post(url, json=body, timeout=CALLBACK_TIMEOUT)
                sent["status_code"] = outcome = response.status_code
            except requests.RequestException as exc:
                sent["error"] = f"{type(exc).__name__}: {exc}"
                # Only the error's type in the log: requests repeats the URL, and with it the secret.
                outcome = type(exc).__name__
            self._record(sent)
            self._log(f"callback {body['status']} {body['videoNo']} -> {redact_url(url)}: {outcome}")


def redact_url(url: str) -> str:
    """Callback URLs carry the portal's secret: log where they point, not the secret."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}/…"
