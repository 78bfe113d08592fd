"""The memories.ai emulator's calls beyond upload: search, transcripts, summaries, chat, sessions.

Owns the answers of every call in memories.ai's "Beyond upload" (../shared/memories-api.md; paths
and routes in ``remote``), their published per-account rate limits, and how strictly each call
keeps to its caller's namespace. What a video says comes from ``content``; chat answers and
sessions from ``conversations``; a streamed answer is an ``sse.Stream`` that the HTTP side writes.

Rules every call keeps, so the portal's tests can prove its isolation:
- a call sees only its own key's videos in the namespace it names (``unique_id`` in the JSON
  body of a POST, in the query of a GET; "default" when absent, and always in the older family),
  never a deleted one; ``video_nos`` narrows that further, it never widens it;
- search, transcripts, summaries and chat see only videos in ``PARSE``: search skips the
  others; a transcript or summary of a video still parsing answers code 0000 with ``data: null``
  (so does a speech transcript of a video without audio); chat refuses them;
- a video the call cannot see is "video not found" (0001), as get_metadata answers; so is a
  session of another namespace or account (0001 "session not found"), chat included;
- over a limit (``rate_limits``: kind -> (requests, per seconds), counted per key on the
  emulator's clock, like uploads) the answer is code 0429 in an HTTP 200 envelope.

The older family ("v1.1") knows search (``data.videos[]`` of whole videos, without times, and no
``video_nos``: it searches the whole default namespace) and chat (streamed when asked with
``Accept: text/event-stream``, as is v1's ``chat``; ``chat_stream`` always streams).
Not locked itself beyond ``serve``, which takes the emulator's lock.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from memories_emulator.bodies import JsonBody, MultipartBody, envelope
from memories_emulator.content import VideoContent, content_for, has_phrase, score, terms
from memories_emulator.conversations import Sessions, compose
from memories_emulator.remote import V1, RemoteVideo, Route, namespace
from memories_emulator.sse import END_FRAME, Stream
from memories_emulator.store import NOT_FOUND, VideoStore

# memories.ai's published limits per account: kind -> (requests, per seconds).
DEFAULT_RATE_LIMITS: dict[str, tuple[int, float]] = {
    "search": (1, 1.0), "chat": (2, 60.0), "transcription": (1, 1.0), "summary": (1, 1.0)}
LIMITED = {"search": "search", "transcript_search": "search", "chat": "chat", "chat_stream": "chat",
           "video_transcription": "transcription", "audio_transcription": "transcription", "summary": "summary"}
ENDPOINTS = frozenset({*LIMITED, "sessions", "session_detail"})
SEARCH_TYPES = ("BY_CLIP", "BY_VIDEO", "BY_AUDIO", "BY_CAPTION", "BY_IMAGE")
THRESHOLDS = {"low": 0.0, "medium": 0.5, "high": 1.0}  # share of the query's words a moment must hold
DEFAULT_TOP_K, MAX_TOP_K, MAX_VIDEO_NOS = 10, 1000, 100
SUMMARY_TYPES = ("CHAPTER", "TOPIC")
PARSED = "PARSE"


def answer(code: str, data: Any = None, msg: str | None = None) -> dict[str, Any]:
    """The envelope with the success/failed flags the newer docs add to every answer."""
    return {**envelope(code, data, msg), "success": code == "0000", "failed": code != "0000"}


class Refused(Exception):
    """A request this call refuses: its envelope code and message."""

    def __init__(self, code: str, msg: str) -> None:
        super().__init__(msg)
        self.code, self.msg = code, msg


def seconds(value: float) -> str:
    """A time as the documented string answers write it: "0.7", "2"."""
    return f"{round(value, 3):g}"


def number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else round(value, 3)


class RateLimits:
    """Requests accepted per (key, kind), in a sliding window. Not locked itself."""

    def __init__(self, limits: dict[str, tuple[int, float]]) -> None:
        self.limits = limits
        self._seen: dict[tuple[str, str], list[float]] = {}

    def allow(self, key: str, kind: str, at: float) -> bool:
        count, per = self.limits.get(kind) or (0, 0.0)
        if count <= 0 or per <= 0:
            return True
        # abs(): two requests in flight at once may reach this in either order.
        window = [t for t in self._seen.get((key, kind), []) if abs(at - t) < per]
        allowed = len(window) < count
        self._seen[(key, kind)] = window + [at] if allowed else window
        return allowed


class Understanding:
    """The calls beyond upload, over the emulator's video store (see the module docstring).

    Tests may change, at any time: ``rate_limits`` (a dict; ``clear()`` switches them off),
    ``stream_delay`` (seconds between streamed frames) and ``flip_time_types`` (True: every time
    written in the other JSON type than documented, numbers as strings and strings as numbers).
    """

    def __init__(self, store: VideoStore, lock: threading.RLock, refresh: Callable[[], None],
                 rate_limits: dict[str, tuple[int, float]] | None = None, stream_delay: float = 0.05) -> None:
        self._store, self._lock, self._refresh = store, lock, refresh
        self.rate_limits = dict(DEFAULT_RATE_LIMITS if rate_limits is None else rate_limits)
        self._limits = RateLimits(self.rate_limits)
        self.stream_delay = stream_delay
        self.flip_time_types = False
        self.sessions = Sessions()

    def serve(self, route: Route, key: str, body: JsonBody | MultipartBody, query: dict[str, str],
              started: float, accept: str = "") -> dict[str, Any] | Stream:
        """The answer to an authorized call of ``ENDPOINTS`` whose body has been read."""
        self._refresh()  # statuses due by now are applied before anything is looked at
        with self._lock:
            self._limits.limits = self.rate_limits  # (a test may have replaced the dict)
            kind = LIMITED.get(route.endpoint)
            if kind is not None and not self._limits.allow(key, kind, started):
                return answer("0429")
            try:
                params = query if route.method == "GET" else self._payload(body)
                unique_id = namespace(route.family, params.get("unique_id"))
                return self._answer(route, key, unique_id, params, accept)
            except Refused as refused:
                return answer(refused.code, msg=refused.msg)
            except ValueError as exc:  # a unique_id that is no string
                return answer("0001", msg=str(exc))

    def _payload(self, body: JsonBody | MultipartBody) -> dict[str, Any]:
        try:
            payload = body.payload() if isinstance(body, JsonBody) else None
        except ValueError:
            raise Refused("0001", "body is not valid JSON") from None
        if payload is None:
            return {}
        if not isinstance(payload, dict):
            raise Refused("0001", "body must be a JSON object")
        return payload

    def _answer(self, route: Route, key: str, unique_id: str, p: dict[str, Any], accept: str) -> Any:
        endpoint = route.endpoint
        if endpoint == "search":
            return self._search(route.family, key, unique_id, p)
        if endpoint == "transcript_search":
            return self._transcript_search(key, unique_id, p)
        if endpoint in ("chat", "chat_stream"):
            streamed = endpoint == "chat_stream" or "text/event-stream" in accept
            return self._chat(key, unique_id, p, streamed)
        if endpoint == "sessions":
            return answer("0000", self.sessions.page(key, unique_id, _whole(p.get("page"), "page", 1)))
        if endpoint == "session_detail":
            return self._session_detail(key, unique_id, p)
        if endpoint == "summary":
            return self._summary(key, unique_id, p)
        return self._transcription(key, unique_id, p, "audio" if endpoint == "audio_transcription" else "video")

    # -- what a call can see --------------------------------------------------------------

    def _seen(self, key: str, unique_id: str) -> list[tuple[RemoteVideo, VideoContent]]:
        """The parsed videos this call can see, oldest first, with their content."""
        found = sorted((v for v in self._store.visible(key, unique_id) if v.status == PARSED),
                       key=lambda v: (v.create_time, v.video_no))
        return [(v, content_for(v.sha256, v.filename, v.video_name)) for v in found]

    def _one(self, key: str, unique_id: str, video_no: Any) -> RemoteVideo:
        if not video_no:
            raise Refused("0003", "video_no is required")
        found = next((v for v in self._store.visible(key, unique_id) if v.video_no == video_no), None)
        if found is None:
            raise Refused("0001", NOT_FOUND)
        return found

    def _time(self, value: float) -> Any:
        """A time where the docs write strings."""
        return number(value) if self.flip_time_types else seconds(value)

    def _number(self, value: float) -> Any:
        """A time where the docs write numbers."""
        return seconds(value) if self.flip_time_types else number(value)

    # -- search ---------------------------------------------------------------------------

    def _search(self, family: str, key: str, unique_id: str, p: dict[str, Any]) -> dict[str, Any]:
        query = p.get("search_param")
        if not isinstance(query, str) or not query.strip():
            raise Refused("0003", "search_param is required")
        search_type = p.get("search_type") or "BY_CLIP"
        if search_type not in SEARCH_TYPES:
            raise Refused("0001", f"search_type must be one of {', '.join(SEARCH_TYPES)}")
        if search_type == "BY_IMAGE":
            raise Refused("0001", "BY_IMAGE searches with an image: the emulator does not serve it")
        top_k = _whole(p.get("top_k"), "top_k", DEFAULT_TOP_K)
        if top_k > MAX_TOP_K:
            raise Refused("0001", f"top_k must be 1 to {MAX_TOP_K}")
        level = p.get("filtering_level") or "low"
        if level not in THRESHOLDS:
            raise Refused("0001", "filtering_level must be low, medium or high")
        video_nos = _video_nos(p.get("video_nos"), required=False) if family == V1 else None
        wanted = terms(query)
        moments = []
        for video, content in self._seen(key, unique_id):
            if video_nos is not None and video.video_no not in video_nos:
                continue
            speech = content.audio or ()
            lines = {"BY_AUDIO": speech, "BY_CAPTION": content.visual}.get(search_type, (*content.visual, *speech))
            found = [(score(wanted, s.text), s) for s in lines]
            found = [(f, s) for f, s in found if f > 0 and f >= THRESHOLDS[level]]
            if search_type == "BY_VIDEO" and found:
                found = [(max(f for f, _ in found), None)]
            for matched, segment in found:
                start, end = (segment.start, segment.end) if segment else (0.0, content.duration)
                moments.append((-matched, video.create_time, video.video_no, start, end, video))
        moments.sort(key=lambda m: m[:4])
        if family != V1:  # the older family: whole videos, no times
            shown: dict[str, dict[str, str]] = {}
            for *_, video in moments:
                shown.setdefault(video.video_no, {"videoNo": video.video_no, "videoName": video.video_name})
            return answer("0000", {"videos": list(shown.values())[:top_k]})
        return answer("0000", [{"videoNo": video.video_no, "videoName": video.video_name,
                                "startTime": self._time(start), "endTime": self._time(end), "score": -negative}
                               for negative, _, _, start, end, video in moments[:top_k]])

    def _transcript_search(self, key: str, unique_id: str, p: dict[str, Any]) -> dict[str, Any]:
        phrase = p.get("query")
        if not phrase or not phrase.strip():
            raise Refused("0003", "query is required")
        page, size = _whole(p.get("page"), "page", 1), _whole(p.get("page_size"), "page_size", 20)
        found = []
        for video, content in self._seen(key, unique_id):
            lines = [s for s in content.audio or () if has_phrase(phrase, s.text)]
            if lines:
                found.append({"videoNo": video.video_no, "startTime": self._time(lines[0].start),
                              "audio_ts": [{"startTime": self._time(s.start), "endTime": self._time(s.end),
                                            "text": s.text} for s in lines]})
        return answer("0000", {"videos": found[(page - 1) * size:page * size], "current_page": page,
                               "page_size": size, "total_count": len(found)})

    # -- transcripts and summaries ----------------------------------------------------------

    def _transcription(self, key: str, unique_id: str, p: dict[str, Any], kind: str) -> dict[str, Any]:
        video = self._one(key, unique_id, p.get("video_no"))
        if video.status != PARSED:
            return answer("0000", None)  # documented: null while parsing
        content = content_for(video.sha256, video.filename, video.video_name)
        lines = content.audio if kind == "audio" else content.visual
        if lines is None:
            return answer("0000", None)  # documented: null without audio
        return answer("0000", {"videoNo": video.video_no, "transcriptions": [
            {"index": n, "content": s.text, "startTime": self._time(s.start), "endTime": self._time(s.end)}
            for n, s in enumerate(lines)]})

    def _summary(self, key: str, unique_id: str, p: dict[str, Any]) -> dict[str, Any]:
        kind = p.get("type")
        if not kind:
            raise Refused("0003", "type is required (CHAPTER or TOPIC)")
        if kind not in SUMMARY_TYPES:
            raise Refused("0001", "type must be CHAPTER or TOPIC")
        video = self._one(key, unique_id, p.get("video_no"))
        if video.status != PARSED:
            return answer("0000", None)
        content = content_for(video.sha256, video.filename, video.video_name)
        items = content.chapters if kind == "CHAPTER" else content.topics
        return answer("0000", {"summary": content.summary, "items": [
            {"title": i.title, "description": i.description, "start": self._time(i.start)} for i in items]})

    # -- chat and sessions ------------------------------------------------------------------

    def _chat(self, key: str, unique_id: str, p: dict[str, Any], streamed: bool) -> dict[str, Any] | Stream:
        prompt = p.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise Refused("0003", "prompt is required")
        video_nos = _video_nos(p.get("video_nos"), required=True)
        seen = {video.video_no: (video, content) for video, content in self._seen(key, unique_id)}
        for video_no in video_nos:
            if video_no not in seen:
                self._one(key, unique_id, video_no)  # not found here, or found and not parsed:
                raise Refused("0001", f"video {video_no} is not parsed yet")
        session_id = p.get("session_id")
        session = self.sessions.find(key, unique_id, session_id) if session_id not in (None, "", 0) else None
        if session_id not in (None, "", 0) and session is None:
            raise Refused("0001", "session not found")
        follow_up = session is not None
        session = session or self.sessions.start(key, unique_id, prompt)
        composed = compose(prompt, [seen[no] for no in dict.fromkeys(video_nos)], follow_up,
                           self._number, self._time)
        session.messages += [{"role": "user", "content": prompt}, composed.message()]
        if streamed:
            return Stream((*composed.frames(session.session_id), END_FRAME), delay=self.stream_delay)
        return answer("0000", {**composed.message(), "role": "ASSISTANT", "session_id": session.session_id})

    def _session_detail(self, key: str, unique_id: str, p: dict[str, Any]) -> dict[str, Any]:
        session_id = p.get("sessionId")
        if not session_id:
            raise Refused("0003", "sessionId is required")
        session = self.sessions.find(key, unique_id, session_id)
        if session is None:
            raise Refused("0001", "session not found")
        return answer("0000", {"sessionId": session.session_id, "title": session.title,
                               "messages": [dict(m) for m in session.messages]})


def _whole(value: Any, name: str, default: int) -> int:
    """A positive whole number given as a number or a string of digits (query values are strings)."""
    if value is None or value == "":
        return default
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).isdigit() or int(value) < 1:
        raise Refused("0001", f"{name} must be a whole number from 1")
    return int(value)


def _video_nos(value: Any, required: bool) -> list[str] | None:
    if value is None or value == []:
        if required:
            raise Refused("0003", "video_nos is required")
        return None
    if not isinstance(value, list) or not all(isinstance(no, str) for no in value):
        raise Refused("0001", "video_nos must be a list of video numbers")
    if len(value) > MAX_VIDEO_NOS:
        raise Refused("0001", f"at most {MAX_VIDEO_NOS} video_nos per call")
    return value
