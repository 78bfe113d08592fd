"""memories.ai beyond upload: search, transcripts, summaries, streamed chat and its sessions.

The second half of the seam to memories.ai (uploads/memories.py is the first, and this module
sends through it): the same timeouts, the same envelope reading and the same MemoriesError kinds
(0429 is RETRY and `rate_limited`; 0402, credits, and the key codes are KEY; see
`out_of_credits`). Every call names the place of its video (`memories.Place`): the family's path
and, with v1, the namespace. None of these calls has been tried against the live service
(../shared/memories-api.md, "Beyond upload"): every path is a setting (PATH_SETTINGS), and every
answer is read defensively — times as strings or numbers, fields missing, `data: null` while a
video is parsing, unknown stream frames skipped.

Namespaces: a place without one (the older family, or v1's "default") is shared by every team of
the account, so search refuses to run there without `video_nos`, transcript search refuses to run
there at all, and search results are kept to the `video_nos` asked for whatever memories.ai sends.

A streamed chat answer (`chat_stream`) is read as it arrives and parsed into Thinking, Refs,
Content, then Done or Error frames (uploads/answers.py, which also reads every answer's fields);
closing it closes the connection to memories.ai. The API key is sent in the Authorization header
only: never in a message, a frame or a log line.
"""

from dataclasses import dataclass
from typing import Any

from django.conf import settings

from .answers import (
    ChatStream, Content, Done, Error, Frame, Message, Ref, RefItem, Refs, Thinking, first, frames_of_message,
    items, message_of, number, seconds, session_id_of, text,
)
from .memories import V1, MemoriesError, Place, _envelope, _request

__all__ = [
    "ChatStream", "Content", "Done", "Error", "Frame", "Message", "Moment", "Line", "Ref", "RefItem", "Refs",
    "SessionDetail", "SessionInfo", "Summary", "SummaryItem", "Thinking", "Transcript", "TranscriptHit",
    "chat_stream", "list_sessions", "out_of_credits", "search", "search_transcripts", "session_detail", "summary",
    "transcript",
]

# The settings of this module's paths (the upload path's are in uploads/memories.py): search and chat
# in either family (memories.Place.path), the other calls v1's only, named after memories.ai's calls.
V1_CALLS = ("search_audio_transcripts", "get_video_transcription", "get_audio_transcription", "generate_summary",
            "list_sessions", "get_session_detail")
PATH_SETTINGS = ("MEMORIES_SEARCH_PATH", "MEMORIES_CHAT_STREAM_PATH", "MEMORIES_V1_SEARCH_PATH",
                 "MEMORIES_V1_CHAT_STREAM_PATH", *(f"MEMORIES_V1_{call.upper()}_PATH" for call in V1_CALLS))
CREDITS = "0402"  # one of memories.KEY_CODES: credits are key trouble, as on the upload path
SEARCH_TYPES = ("BY_CLIP", "BY_VIDEO", "BY_AUDIO", "BY_CAPTION")
SUMMARY_KINDS = ("CHAPTER", "TOPIC")
MAX_VIDEO_NOS = 100


def out_of_credits(error: MemoriesError) -> bool:
    return error.code == CREDITS


# -- what the answers become ---------------------------------------------------------------

@dataclass(frozen=True)
class Moment:
    """A search result: a moment of a video (start and end None when memories.ai gave no times)."""

    video_no: str
    video_name: str
    start: float | None
    end: float | None
    score: float | None


@dataclass(frozen=True)
class Line:
    """A line of a transcript, or of a transcript search's hit."""

    index: int
    text: str
    start: float | None
    end: float | None


@dataclass(frozen=True)
class Transcript:
    video_no: str
    lines: tuple[Line, ...]


@dataclass(frozen=True)
class TranscriptHit:
    video_no: str
    start: float | None
    lines: tuple[Line, ...]


@dataclass(frozen=True)
class SummaryItem:
    title: str
    description: str
    start: float | None


@dataclass(frozen=True)
class Summary:
    text: str
    items: tuple[SummaryItem, ...]


@dataclass(frozen=True)
class SessionInfo:
    session_id: str
    title: str


@dataclass(frozen=True)
class SessionDetail:
    session_id: str
    title: str
    messages: tuple[Message, ...]


# -- the calls -------------------------------------------------------------------------------

def search(api_key: str, place: Place, query: str, *, search_type: str = "BY_CLIP",
           video_nos: list[str] | None = None, top_k: int = 20, filtering_level: str | None = None) -> list[Moment]:
    """Moments matching `query`, best first, only of `video_nos` when given (at most 100 a call).

    Without a namespace (the older family, or v1's default) `video_nos` is required."""
    if search_type not in SEARCH_TYPES:
        raise ValueError(f"search_type must be one of {', '.join(SEARCH_TYPES)}")
    wanted = _checked_video_nos(video_nos, place, "search")
    if wanted is not None and not wanted:
        return []
    body: dict[str, Any] = {"search_param": query, "search_type": search_type, "top_k": top_k, **place.scoped()}
    if wanted is not None:
        body["video_nos"] = wanted  # the older family documents none: then kept to them below
    if filtering_level:
        body["filtering_level"] = filtering_level
    data = _data(_request("post", place.path("search"), api_key, json=body))
    moments = [_moment(item) for item in items(data, "videos", "items", "results")]
    return [m for m in moments if m is not None and (wanted is None or m.video_no in wanted)]


def search_transcripts(api_key: str, place: Place, phrase: str, *, page: int = 1,
                       page_size: int = 20) -> list[TranscriptHit]:
    """Videos whose speech holds `phrase` exactly. It takes no video_nos: a namespace's only."""
    if not place.scoped():
        raise ValueError("transcript search has no video_nos: it runs only in a team's namespace")
    data = _data(_request("get", _v1_path("search_audio_transcripts"), api_key,
                          params={"query": phrase, "page": page, "page_size": page_size, **place.scoped()}))
    hits = []
    for item in items(data, "videos", "items"):
        video_no = text(first(item, "videoNo", "video_no"))
        if video_no:
            lines = tuple(_line(n, said) for n, said in enumerate(items(item, "audio_ts")))
            hits.append(TranscriptHit(video_no, seconds(item.get("startTime")), lines))
    return hits


def transcript(api_key: str, place: Place, video_no: str, kind: str = "audio") -> Transcript | None:
    """The speech ("audio") or the visual transcript ("video") with its times; None while the video
    is parsing, or for speech when it has no audio track."""
    if kind not in ("audio", "video"):
        raise ValueError('kind must be "audio" or "video"')
    path = _v1_path("get_audio_transcription" if kind == "audio" else "get_video_transcription")
    data = _data(_request("get", path, api_key, params={"video_no": video_no, **place.scoped()}))
    if not isinstance(data, dict):
        return None
    return Transcript(text(first(data, "videoNo", "video_no")) or video_no,
                      tuple(_line(n, item) for n, item in enumerate(items(data, "transcriptions"))))


def summary(api_key: str, place: Place, video_no: str, kind: str = "CHAPTER") -> Summary | None:
    """The video's summary by chapters or topics; None while it is parsing."""
    if kind not in SUMMARY_KINDS:
        raise ValueError('kind must be "CHAPTER" or "TOPIC"')
    data = _data(_request("get", _v1_path("generate_summary"), api_key,
                          params={"video_no": video_no, "type": kind, **place.scoped()}))
    if not isinstance(data, dict):
        return None
    return Summary(text(data.get("summary")), tuple(
        SummaryItem(text(i.get("title")), text(i.get("description")), seconds(i.get("start")))
        for i in items(data, "items")))


def list_sessions(api_key: str, place: Place, page: int = 1) -> list[SessionInfo]:
    """memories.ai's conversations in the place's namespace (everyone's there, not one user's)."""
    data = _data(_request("get", _v1_path("list_sessions"), api_key,
                          params={"page": page, **place.scoped()}))
    return [SessionInfo(session_id_of(s), text(s.get("title"))) for s in items(data, "sessions") if session_id_of(s)]


def session_detail(api_key: str, place: Place, session_id: str) -> SessionDetail:
    data = _data(_request("get", _v1_path("get_session_detail"), api_key,
                          params={"sessionId": session_id, **place.scoped()}))
    data = data if isinstance(data, dict) else {}
    return SessionDetail(session_id_of(data) or str(session_id), text(data.get("title")),
                         tuple(message_of(m) for m in items(data, "messages")))


def chat_stream(api_key: str, place: Place, video_nos: list[str], prompt: str,
                session_id: str = "") -> ChatStream:
    """Ask about 1 to 100 videos; the answer's frames as memories.ai sends them.

    Raises MemoriesError before any frame when memories.ai refuses the question (rate limit,
    credits, key, a video it does not know): nothing has been streamed yet, so the caller can
    answer in words. Follow-up questions pass the session id the frames carried."""
    if not video_nos or len(video_nos) > MAX_VIDEO_NOS:
        raise ValueError(f"ask about 1 to {MAX_VIDEO_NOS} videos")
    body = {"video_nos": list(video_nos), "prompt": prompt, **place.scoped()}
    if session_id:
        body["session_id"] = session_id
    response = _request("post", place.path("chat_stream"), api_key, json=body, stream=True,
                        headers={"Accept": "text/event-stream", "Accept-Encoding": "identity"})
    if response.status_code == 200 and "text/event-stream" in response.headers.get("Content-Type", ""):
        return ChatStream(response, most_seconds=settings.MEMPORTAL_ASK_ANSWER_SECONDS)
    try:  # an error envelope, or one whole answer instead of a stream
        data = _data(response)
    finally:
        response.close()
    return ChatStream(None, frames_of_message(data if isinstance(data, dict) else {}))


def _v1_path(call: str) -> str:
    """The configured path of one of V1_CALLS, which only the v1 family documents: an older-family
    video is asked there too, without unique_id (its namespace is "default")."""
    return getattr(settings, f"MEMORIES_V1_{call.upper()}_PATH")


def _data(response) -> Any:
    """The envelope's `data` as sent (a list, a dict or None); MemoriesError for anything but 0000."""
    _envelope(response)  # raises for an HTTP error or a code other than 0000
    return response.json().get("data")


def _checked_video_nos(video_nos: list[str] | None, place: Place, call: str) -> list[str] | None:
    if video_nos is None:
        if not place.scoped():
            raise ValueError(f"{call} without a namespace ({'v1' if place.family == V1 else 'older family'}) "
                             "needs video_nos: it would see every team's videos of the account")
        return None
    if len(video_nos) > MAX_VIDEO_NOS:
        raise ValueError(f"memories.ai takes at most {MAX_VIDEO_NOS} video_nos per call")
    return [str(no) for no in video_nos]


def _moment(item: dict) -> Moment | None:
    video_no = text(first(item, "videoNo", "video_no"))
    if not video_no:
        return None
    return Moment(video_no, text(first(item, "videoName", "video_name")),
                  seconds(first(item, "startTime", "start_time")), seconds(first(item, "endTime", "end_time")),
                  number(item.get("score")))


def _line(position: int, item: dict) -> Line:
    index = item.get("index")
    return Line(index if isinstance(index, int) and not isinstance(index, bool) else position,
                text(first(item, "content", "text")), seconds(item.get("startTime")), seconds(item.get("endTime")))
