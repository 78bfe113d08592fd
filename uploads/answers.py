"""How memories.ai's answers beyond upload are read: defensively, and a chat answer as it streams.

Owns the field readers of uploads/understanding.py's calls (times as strings or numbers or
"mm:ss", fields missing or of the wrong type: never an exception), the chat's frames (Thinking,
Refs, Content, Done, Error) and ChatStream, which reads a streamed answer from the response as
it arrives, with no fixed read size, and parses its server-sent events into frames. None of these
shapes has been seen from the live service (../shared/memories-api.md, "Beyond upload"): what is
not understood is skipped, never guessed at.

A ChatStream never raises once it has started: a broken or timed-out connection, or a stream that
ends before its end frame, is its last frame, an Error. Closing it (its `with` block, or a
streaming response that relays it being closed) closes the connection to memories.ai.
"""

import http.client
import json
import math
import time
from dataclasses import dataclass
from typing import Any, Iterator

import urllib3

from .memories import RETRY, MemoriesError, error_for_code, without_key

READ_MAX = 64 * 1024  # at most this much per read; a read returns whatever has arrived
DONE_WORDS = frozenset({"done", "[done]"})
OK_CODES = frozenset({"SUCCESS", "0000"})


@dataclass(frozen=True)
class RefItem:
    """A cited moment: `kind` is memories.ai's type (keyframe, visual_ts, audio_ts)."""

    video_no: str
    start: float | None
    end: float | None
    kind: str
    text: str


@dataclass(frozen=True)
class Ref:
    """The moments cited of one video."""

    video_no: str
    video_name: str
    duration: float | None
    items: tuple[RefItem, ...]


@dataclass(frozen=True)
class Thinking:
    title: str
    text: str
    session_id: str = ""


@dataclass(frozen=True)
class Refs:
    refs: tuple[Ref, ...]
    session_id: str = ""


@dataclass(frozen=True)
class Content:
    """A piece of the answer's text, to be appended to the pieces before it."""

    text: str
    role: str = "assistant"
    session_id: str = ""


@dataclass(frozen=True)
class Done:
    pass


@dataclass(frozen=True)
class Error:
    """The answer ended badly: memories.ai's code ("" when the connection broke or the stream
    ended early) and a message in words, without the key."""

    code: str
    message: str

    @property
    def error(self) -> MemoriesError:
        """The error the upload path would raise for it, for its wording and its kind."""
        return error_for_code(self.code, self.message) if self.code else MemoriesError(RETRY, self.message)


Frame = Thinking | Refs | Content | Done | Error


@dataclass(frozen=True)
class Message:
    """One message of a conversation, as get_session_detail lists it."""

    role: str
    content: str
    thinkings: tuple[Thinking, ...]
    refs: tuple[Ref, ...]


class ChatStream:
    """The frames of one answer, read as they arrive. Iterate it; close it (or use `with`) to stop
    early, which closes the connection. `session_id`: the last one a frame carried."""

    def __init__(self, response=None, frames: list[Frame] | None = None, most_seconds: float | None = None):
        self._response = response
        self._deadline = None if most_seconds is None else time.monotonic() + most_seconds
        self._most = most_seconds
        self.session_id = ""
        self._frames = self._read() if response is not None else iter(frames or [Done()])

    def __iter__(self) -> Iterator[Frame]:
        return self

    def __next__(self) -> Frame:
        frame = next(self._frames)
        self.session_id = getattr(frame, "session_id", "") or self.session_id
        return frame

    def close(self) -> None:
        close = getattr(self._frames, "close", None)
        if close is not None:
            close()
        if self._response is not None:
            self._response.close()

    def __enter__(self) -> "ChatStream":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _read(self) -> Iterator[Frame]:
        try:
            for payload in payloads(self._response.raw, self._deadline):
                frame = parse_frame(payload)
                if isinstance(frame, Error):  # memories.ai's own words, without the key should it echo it
                    frame = Error(frame.code, without_key(frame.message, self._response)[:300])
                if frame is not None:
                    yield frame
                if isinstance(frame, (Done, Error)):
                    return
            yield Error("", "memories.ai ended the answer before it was done")
        except TooLong:  # keep-alive comments would hold the web thread for ever: the answer has a deadline
            yield Error("", f"the answer took longer than {self._most:g} s and was cut off")
        except (TimeoutError, urllib3.exceptions.TimeoutError):
            yield Error("", "memories.ai stopped sending the answer (timed out)")
        except (OSError, ValueError, urllib3.exceptions.HTTPError, http.client.HTTPException):
            yield Error("", "the connection to memories.ai broke during the answer")
        finally:
            self._response.close()


# -- server-sent events ----------------------------------------------------------------------

class TooLong(Exception):
    """The stream went on past its deadline."""


def lines(raw, deadline: float | None = None) -> Iterator[str]:
    """The stream's lines as they arrive: read1 returns what has come (chunked or not), up to READ_MAX.
    Past `deadline` (time.monotonic()), TooLong, whatever is still coming."""
    pending = b""
    while chunk := raw.read1(READ_MAX, decode_content=True):
        if deadline is not None and time.monotonic() > deadline:
            raise TooLong
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            yield line.rstrip(b"\r").decode("utf-8", "replace")
    if pending:
        yield pending.rstrip(b"\r").decode("utf-8", "replace")


def payloads(raw, deadline: float | None = None) -> Iterator[Any]:
    """Each event's data, parsed as JSON where it is JSON (else the text). A `data:` line that is
    whole JSON (or an end word) by itself is an event even without the blank line that should end it."""
    data: list[str] = []
    for line in lines(raw, deadline):
        if not line:
            if data:
                yield _parsed("\n".join(data))
                data = []
            continue
        name, _, value = line.partition(":")
        if name != "data":  # comments (":…"), event:, id:, retry: carry nothing a frame needs
            continue
        value = value[1:] if value.startswith(" ") else value
        if not data:
            parsed = _parsed(value)
            if not isinstance(parsed, str) or _is_done_word(parsed):
                yield parsed
                continue
        data.append(value)
    if data:
        yield _parsed("\n".join(data))


def _parsed(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _is_done_word(text: str) -> bool:
    return text.strip().strip('"').lower() in DONE_WORDS


def parse_frame(payload: Any) -> Frame | None:
    """One event's data as a frame; None for what is no frame the portal knows (skipped)."""
    if isinstance(payload, str):
        return Done() if _is_done_word(payload) else None
    if not isinstance(payload, dict):
        return None
    kind, session = payload.get("type"), session_id_of(payload)
    if kind == "thinking":
        return Thinking(text(payload.get("title")), text(payload.get("content")), session)
    if kind == "ref":
        return Refs(tuple(ref_of(r) for r in items(payload, "ref", "refs")), session)
    if kind == "content":
        piece = next((v for k in ("content", "text", "delta", "token") if isinstance(v := payload.get(k), str)), "")
        return Content(piece, text(payload.get("role")) or "assistant", session)
    if kind is None and "code" in payload:
        code, data = text(payload.get("code")), payload.get("data")
        if code.upper() in OK_CODES and isinstance(data, str) and _is_done_word(data):
            return Done()
        said = text(payload.get("msg")) or (data if isinstance(data, str) else "") or "the answer failed"
        return Error("" if code.upper() in OK_CODES else code, said)
    return None


def frames_of_message(data: dict) -> list[Frame]:
    """One whole answer (an envelope's data, not a stream) as the frames a stream would carry."""
    message, session = message_of(data), session_id_of(data)
    frames: list[Frame] = [Thinking(t.title, t.text, session) for t in message.thinkings]
    if message.refs:
        frames.append(Refs(message.refs, session))
    return [*frames, Content(message.content, "assistant", session), Done()]


# -- fields ---------------------------------------------------------------------------------

def items(data: Any, *names: str) -> list[dict]:
    """The dicts of a list answer: `data` itself when it is a list, else its first list under `names`."""
    found = data if isinstance(data, list) else next(
        (v for n in names if isinstance(data, dict) and isinstance(v := data.get(n), list)), [])
    return [item for item in found if isinstance(item, dict)]


def text(value: Any) -> str:
    return "" if value is None or isinstance(value, (dict, list)) else str(value)


def first(item: dict, *names: str) -> Any:
    """The first of these fields that is there and not empty (camelCase or snake_case)."""
    return next((item[n] for n in names if item.get(n) not in (None, "")), None)


def session_id_of(item: dict) -> str:
    return text(first(item, "sessionId", "session_id"))


def number(value: Any) -> float | None:
    """A finite number from a number or a string of one; None otherwise."""
    if value is None or isinstance(value, (bool, dict, list)):
        return None
    try:
        found = float(str(value).strip())
    except ValueError:
        return None
    return found if math.isfinite(found) else None


def seconds(value: Any) -> float | None:
    """Seconds from a number, a string of one ("12.5"), or "mm:ss" / "hh:mm:ss"; None otherwise."""
    parts = [number(p) for p in value.split(":")] if isinstance(value, str) else [number(value)]
    if len(parts) > 3 or any(p is None or p < 0 for p in parts):
        return None
    return sum(p * 60 ** n for n, p in enumerate(reversed(parts)))  # type: ignore[operator]


def ref_of(item: dict) -> Ref:
    video = item.get("video") if isinstance(item.get("video"), dict) else {}
    video_no = text(first(video, "video_no", "videoNo"))
    cited = tuple(RefItem(text(first(i, "videoNo", "video_no")) or video_no, seconds(i.get("startTime")),
                          seconds(i.get("endTime")), text(i.get("type")), text(i.get("text")))
                  for i in items(item, "refItems", "ref_items"))
    return Ref(video_no or (cited[0].video_no if cited else ""), text(first(video, "video_name", "videoName")),
               seconds(video.get("duration")), cited)


def message_of(item: dict) -> Message:
    return Message(text(item.get("role")).lower() or "assistant", text(item.get("content")),
                   tuple(Thinking(text(t.get("title")), text(t.get("content"))) for t in items(item, "thinkings")),
                   tuple(ref_of(r) for r in items(item, "refs", "ref")))
