"""The memories.ai emulator's state and API: what the fake memories.ai decides.

Owns the remote side of the portal's one integration: it accepts uploads (streamed and
hashed by ``bodies``, never held in memory), paces them per key, moves videos UNPARSE ->
PARSE on a ``timeline``, has status callbacks posted, has list/get_metadata/delete calls
answered by the video ``store``, and plays the faults a test injects (catalogue in
``faults``; ``clear_faults`` drops them and releases held requests). It serves both API
families of memories.ai on one port, the older "v1.1" one and the newer "v1" one with its
``unique_id`` namespaces (paths, keywords and shapes in ``remote``; what a call can see, and
the not-found answer of get_metadata, in ``store``), and the calls beyond upload (search,
transcripts, summaries, chat, sessions: ``understanding``, public as ``.understanding``). Faults
are injected per call ("upload", "list", "delete", "metadata", "search", ...), whichever family
the call came through. It writes upload times
in ms, or in seconds (``upload_time_unit``). The HTTP side (``server``) reaches it only
through the public methods listed in ``server.Backend``.
Tests run it in-process on a loopback port; ``python -m memories_emulator`` runs it
standalone. No production module imports it, and it must stay importable without Django.

Keys are secrets even here: only "…" + their last four characters ever reach logs,
recorded headers or the control API; so are callback URLs, which the state page shows by
their origin only.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
import time
from typing import Any, Callable, Iterable
from urllib.parse import urlsplit

import memories_emulator.faults as faults
from memories_emulator.bodies import JsonBody, MultipartBody, ReceivedUpload, envelope, key_tail
from memories_emulator.remote import (
    PATHS, UPLOAD_TIME_UNITS, RemoteVideo, Route, lookalike, namespace, route_table,
    split_filename, upload_answer, upload_refusal,
)
from memories_emulator.server import EmulatorServer
from memories_emulator.store import VideoStore
from memories_emulator.timeline import CallbackPoster, Timeline
from memories_emulator.understanding import ENDPOINTS as UNDERSTANDING, Understanding

__all__ = ["MemoriesEmulator", "ReceivedUpload", "RemoteVideo", "key_tail"]

logger = logging.getLogger("memportal.emulator")

SCHEDULER_TICK = 0.02  # polled, not slept until due: the clock may be a fake that tests move


def hide_url(url: str | None) -> str | None:
    """A callback URL as the state page shows it: its origin only, since its path carries the
    portal's per-video secret."""
    if not url:
        return url
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/…"


class MemoriesEmulator:
    """The fake API server plus its inspectable state. See the module docstring."""

    def __init__(self, keys: Iterable[str] = (), host: str = "127.0.0.1", port: int = 0, *,
                 upload_interval: float = 60.0, callback_delay: float = 1.0, parse_delay: float = 3.0,
                 send_callbacks: bool = True, clock: Callable[[], float] = time.time,
                 upload_path: str = PATHS["upload_path"][0], list_path: str = PATHS["list_path"][0],
                 delete_path: str = PATHS["delete_path"][0],
                 older_delete_path: str = PATHS["older_delete_path"][0],
                 v1_upload_path: str = PATHS["v1_upload_path"][0],
                 v1_list_path: str = PATHS["v1_list_path"][0],
                 metadata_path: str = PATHS["metadata_path"][0], control_api: bool = True,
                 rng: random.Random | None = None, upload_time_unit: str = "ms", paths: dict[str, str] | None = None,
                 rate_limits: dict[str, tuple[int, float]] | None = None, stream_delay: float = 0.05) -> None:
        self.host, self.port = host, port
        self.upload_interval = upload_interval
        self.callback_delay = callback_delay
        self.parse_delay = parse_delay
        self.send_callbacks = send_callbacks
        self.control_api = control_api
        self._clock = clock
        self._rng = rng or random.Random()
        # `paths`: any other keyword of remote.PATHS (the calls beyond upload) moved off its default.
        self._routes = route_table({**{name: path for name, (path, _) in PATHS.items()}, **(paths or {}),
            "upload_path": upload_path, "list_path": list_path, "older_delete_path": older_delete_path,
            "v1_upload_path": v1_upload_path, "v1_list_path": v1_list_path, "metadata_path": metadata_path,
            "delete_path": delete_path,
        })
        self._keys = set(keys)
        self._lock = threading.RLock()
        self._upload_time_unit = "ms"
        self.set_upload_time_unit(upload_time_unit)
        self._uploads: list[ReceivedUpload] = []
        self._videos = VideoStore()
        self._requests: list[dict[str, Any]] = []
        self._callbacks: list[dict[str, Any]] = []
        self._log_lines: list[str] = []
        self._last_accepted: dict[str, float] = {}  # raw key -> clock at that upload's start
        self._timeline = Timeline()
        self._poster = CallbackPoster(self._record_callback, self.log)
        self._faults = faults.FaultQueue()
        self._stopping = threading.Event()
        self._server: EmulatorServer | None = None
        self._threads: list[threading.Thread] = []
        self.understanding = Understanding(self._videos, self._lock, self._run_due, rate_limits, stream_delay)

    # -- lifecycle -------------------------------------------------------

    def start(self) -> MemoriesEmulator:
        if self._server is not None or self._stopping.is_set():
            raise RuntimeError("an emulator starts once")
        self._server = EmulatorServer((self.host, self.port), self)
        self.port = self._server.server_address[1]
        self._threads = [
            threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                             name="memories-emulator-http", daemon=True),
            threading.Thread(target=self._run_scheduler, name="memories-emulator-timeline", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; stalled or sleeping requests are woken and dropped."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        for thread in self._threads:
            thread.join(timeout=2)

    def __enter__(self) -> MemoriesEmulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the emulator is not running")
        return f"http://{self.host}:{self.port}"

    # -- what tests control ----------------------------------------------

    def add_key(self, key: str) -> None:
        with self._lock:
            self._keys.add(key)

    def remove_key(self, key: str) -> None:
        with self._lock:
            self._keys.discard(key)

    def inject(self, endpoint: str, fault: str, times: int = 1, **params: Any) -> faults.Fault:
        """Queue a fault for the next `times` requests to `endpoint` (see memories_emulator.faults).

        Returns the queued Fault: its `times` counts down as it is used, and a "hold_answer"
        fault shows the held upload's number as `held_video_no`.
        """
        queued = faults.make_fault(endpoint, fault, times, **params)
        self._faults.add(queued)
        self.log(f"fault queued: {endpoint} {fault} x{times}")
        return queued

    def clear_faults(self) -> int:
        """Drop every queued fault, and release the requests faults hold (their `release` is set).

        Returns how many queued faults were dropped (served at POST /_emulator/clear_faults).
        """
        dropped = self._faults.clear()
        self.log(f"faults cleared: {dropped} dropped")
        return dropped

    def set_upload_time_unit(self, unit: str) -> None:
        """"ms" (memories.ai's documented unit) or "s": how answers write an upload's time."""
        if unit not in UPLOAD_TIME_UNITS:
            raise ValueError(f"upload time unit must be one of {sorted(UPLOAD_TIME_UNITS)}, not {unit!r}")
        with self._lock:
            self._upload_time_unit = unit

    def set_status(self, video_no: str, status: str, send_callback: bool = True) -> None:
        """Force a remote status now; the video's planned timeline is dropped."""
        with self._lock:
            video = self._videos.get(video_no)  # in any account and namespace
            if video is None:
                raise KeyError(f"unknown video {video_no}")
            video.status = status
            self._timeline.drop({video_no})
            url = video.callback if send_callback else None
        self.log(f"status of {video_no} set to {status}")
        if url:
            self._poster.send_later(url, {"videoNo": video_no, "status": status}, 1)

    def wait_for(self, predicate: Callable[[MemoriesEmulator], Any], timeout: float = 10) -> Any:
        """Poll until predicate(self) is truthy and return its value, else raise TimeoutError."""
        deadline = time.monotonic() + timeout
        while True:
            result = predicate(self)
            if result:
                return result
            if time.monotonic() >= deadline:
                raise TimeoutError(f"emulator condition not met within {timeout}s")
            time.sleep(0.02)

    # -- what tests inspect (copies, taken under the lock) ----------------

    @property
    def uploads(self) -> list[ReceivedUpload]:
        with self._lock:
            return [dataclasses.replace(u, headers=dict(u.headers), fields=dict(u.fields))
                    for u in self._uploads]

    @property
    def videos(self) -> dict[str, RemoteVideo]:
        self._run_due()  # so a status read right after a fake clock moves is already current
        with self._lock:
            return self._videos.copies()

    @property
    def requests(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self._requests]

    @property
    def callbacks_sent(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(c) for c in self._callbacks]

    @property
    def log_lines(self) -> list[str]:
        with self._lock:
            return list(self._log_lines)

    def state(self) -> dict[str, Any]:
        """Everything recorded, JSON-able and without raw keys (served at /_emulator/state)."""
        videos = {}
        for no, video in self.videos.items():
            shown = {f.name: getattr(video, f.name) for f in dataclasses.fields(video) if f.name != "key"}
            videos[no] = {**shown, "key_tail": key_tail(video.key), "callback": hide_url(video.callback)}
        uploads = [dataclasses.asdict(u) for u in self.uploads]
        for upload in uploads:
            if "callback" in upload["fields"]:
                upload["fields"]["callback"] = hide_url(upload["fields"]["callback"])
        sent = [{**c, "url": hide_url(c.get("url"))} for c in self.callbacks_sent]
        return {"uploads": uploads, "videos": videos, "requests": self.requests, "callbacks_sent": sent,
                "pending_faults": self._faults.pending()}

    # -- what the HTTP side uses (server.Backend) ----------------------------

    @property
    def stopping(self) -> threading.Event:
        return self._stopping

    @property
    def record_lock(self) -> threading.RLock:
        return self._lock

    def route_for(self, path: str) -> Route | None:
        return self._routes.get(path)

    def now(self) -> float:
        return self._clock()

    def take_fault(self, endpoint: str) -> faults.Fault | None:
        return self._faults.take(endpoint)

    def is_authorized(self, key: str | None) -> bool:
        with self._lock:
            return key is not None and key in self._keys

    def record_request(self, request: dict[str, Any], upload: ReceivedUpload | None) -> None:
        with self._lock:
            self._requests.append(request)
            if upload is not None:
                self._uploads.append(upload)

    def record_outcome(self, request: dict[str, Any], upload: ReceivedUpload | None,
                       code: str | None) -> None:
        with self._lock:
            request["code"] = code
            if upload is not None:
                upload.code = code

    def log(self, line: str) -> None:
        with self._lock:
            self._log_lines.append(line)
        logger.info(line)

    def serve(self, route: Route, key: str, body: MultipartBody | JsonBody, started: float,
              query: dict[str, str], accept: str = "") -> Any:
        """Answer an authorized request whose body has been read; `started` is when it began."""
        if route.endpoint in UNDERSTANDING:
            return self.understanding.serve(route, key, body, query, started, accept)
        if isinstance(body, MultipartBody):
            return self._accept_upload(key, body, started, route.family)
        if route.endpoint == "metadata":  # a GET: its parameters are in the query
            self._run_due()
            with self._lock:
                return self._videos.get_metadata(key, route.family, query, self._upload_time_unit)
        try:
            payload = body.payload()
        except ValueError:
            return envelope("0001", msg="body is not valid JSON")
        if route.endpoint == "list":
            self._run_due()
            with self._lock:
                return self._videos.list_videos(key, route.family, payload, self._upload_time_unit)
        with self._lock:
            answer, deleted = self._videos.delete_videos(key, route.family, payload, query)
            self._timeline.drop(deleted)
        return answer

    def success_lookalike(self, endpoint: str) -> dict:
        """A success-shaped body for the "wrong_content_type" fault; it creates nothing."""
        return lookalike(endpoint, self._new_video_no(), int(self._clock() * 1000), self._upload_time_unit)

    # -- the API -------------------------------------------------------------

    def _accept_upload(self, key: str, body: MultipartBody, started: float, family: str) -> dict:
        refusal = upload_refusal(body)
        if refusal is not None:
            return refusal
        record = body.record
        unique_id = namespace(family, record.fields.get("unique_id"))  # a form field: always a string
        name, _ = split_filename(record.filename or "")
        now = self._clock()
        with self._lock:
            last = self._last_accepted.get(key)
            # abs(): two uploads in flight at once may finish in either order.
            if self.upload_interval > 0 and last is not None and abs(started - last) < self.upload_interval:
                return envelope("0429")
            self._last_accepted[key] = started
            video = RemoteVideo(video_no=self._new_video_no(), video_name=name, status="UNPARSE",
                                size=record.size, create_time=int(now * 1000),
                                callback=record.fields.get("callback") or None, key=key,
                                client_id=f"{self._rng.getrandbits(128):032x}", unique_id=unique_id,
                                filename=record.filename or "", sha256=record.sha256)
            self._videos.add(video)
            record.video_no = video.video_no
            self._plan_timeline(video, now)
            unit = self._upload_time_unit
        return upload_answer(video.video_no, video.video_name, video.create_time, unit)

    # -- timeline and callbacks --------------------------------------------

    def _plan_timeline(self, video: RemoteVideo, t0: float) -> None:
        """Queue UNPARSE callback and the PARSE change (+ callback). Caller holds the lock."""
        parse_body, copies = None, 1
        if video.callback and self.send_callbacks:
            fault = self._faults.take("callback")
            kind = fault.kind if fault else None
            # "other_video": a number the portal never heard of, as if misrouted.
            target = self._new_video_no() if kind == "other_video" else video.video_no
            copies = 2 if kind == "twice" else 1
            if kind == "never":
                self.log(f"callbacks for {video.video_no} withheld (fault never)")
            else:
                unparse_body = {"videoNo": target, "clientId": video.client_id, "status": "UNPARSE"}
                self._timeline.add(t0 + self.callback_delay, video.video_no, callback=unparse_body,
                                   copies=copies)
                parse_body = {"videoNo": target, "status": "PARSE"}
        # The PARSE callback rides on the status change, so it never runs ahead of list_videos.
        self._timeline.add(t0 + self.parse_delay, video.video_no, status="PARSE", callback=parse_body,
                           copies=copies)

    def _run_due(self) -> None:
        now = self._clock()
        sends = []
        with self._lock:
            for step in self._timeline.pop_due(now):
                video = self._videos.get(step.video_no)
                if video is None:  # (never: videos are marked deleted, not removed)
                    continue
                if step.status is not None:
                    video.status = step.status
                if step.callback is not None and video.callback and self.send_callbacks:
                    sends.append((video.callback, step.callback, step.copies))
        for url, body, copies in sends:
            self._poster.send_later(url, body, copies)

    def _run_scheduler(self) -> None:
        while not self._stopping.wait(SCHEDULER_TICK):
            try:
                self._run_due()
            except Exception:  # one bad step must not end the timeline for every video
                logger.exception("memories.ai emulator: timeline step failed")

    def _record_callback(self, sent: dict[str, Any]) -> None:
        with self._lock:
            self._callbacks.append(sent)

    def _new_video_no(self) -> str:
        with self._lock:
            while True:
                video_no = f"VI{self._rng.randrange(10**17, 10**18)}"
                if video_no not in self._videos:
                    return video_no
