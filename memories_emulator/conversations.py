"""The memories.ai emulator's chat: the answers it composes, and the sessions that keep them.

Owns ``Sessions`` (every conversation, per account and namespace, as memories.ai keeps them:
list_sessions and get_session_detail see only their own namespace's) and ``compose``, which
writes a deterministic answer to a prompt about some videos: the transcript lines and captions
that match the prompt's words become the answer's cited moments (``ref`` frames whose
``refItems`` start at the matching line's own second), and its text quotes them. The frames are
shaped as memories.ai's chat_stream documents them; ``understanding`` checks the request, picks
the videos and decides between a stream (``sse.Stream``) and one envelope. Not locked itself:
``understanding`` holds the emulator's lock around it.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from memories_emulator.content import VideoContent, score, terms
from memories_emulator.remote import RemoteVideo

MAX_CITED = 3
WORDS_PER_CHUNK = 4
SESSIONS_PAGE = 20
FIRST_SESSION_ID = 606_140_356_924_534_784  # session ids look like memories.ai's: long numbers


@dataclass
class Session:
    session_id: str
    title: str
    messages: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Answer:
    """A composed answer: what the frames and the session's message are made of."""

    thinkings: tuple[dict[str, str], ...]
    refs: tuple[dict[str, Any], ...]
    text: str

    def frames(self, session_id: str) -> list[dict[str, Any]]:
        """The answer as chat_stream's frames (without the end frame): thinking, ref, content chunks."""
        frames: list[dict[str, Any]] = [{"type": "thinking", **t, "sessionId": session_id} for t in self.thinkings]
        if self.refs:
            frames.append({"type": "ref", "ref": list(self.refs), "sessionId": session_id})
        pieces = re.findall(r"\S+\s*", self.text)
        for at in range(0, len(pieces), WORDS_PER_CHUNK):
            frames.append({"type": "content", "role": "assistant",
                           "content": "".join(pieces[at:at + WORDS_PER_CHUNK]), "sessionId": session_id})
        return frames

    def message(self) -> dict[str, Any]:
        """The answer as get_session_detail lists it."""
        return {"role": "assistant", "content": self.text, "thinkings": [dict(t) for t in self.thinkings],
                "refs": list(self.refs)}


class Sessions:
    """Conversations per (key, namespace). Not locked itself: the caller holds the emulator's lock."""

    def __init__(self) -> None:
        self._by_place: dict[tuple[str, str], dict[str, Session]] = {}
        self._numbers = itertools.count(FIRST_SESSION_ID)

    def find(self, key: str, unique_id: str, session_id: Any) -> Session | None:
        return self._by_place.get((key, unique_id), {}).get(str(session_id))

    def start(self, key: str, unique_id: str, prompt: str) -> Session:
        session = Session(str(next(self._numbers)), " ".join(prompt.split())[:80])
        self._by_place.setdefault((key, unique_id), {})[session.session_id] = session
        return session

    def page(self, key: str, unique_id: str, page: int) -> dict[str, Any]:
        """One page of list_sessions, newest first."""
        found = list(reversed(self._by_place.get((key, unique_id), {}).values()))
        shown = found[(page - 1) * SESSIONS_PAGE:page * SESSIONS_PAGE]
        return {"sessions": [{"sessionId": s.session_id, "title": s.title} for s in shown],
                "current_page": page, "page_size": SESSIONS_PAGE, "total_count": len(found)}

    def count(self) -> int:
        return sum(len(sessions) for sessions in self._by_place.values())


def compose(prompt: str, videos: list[tuple[RemoteVideo, VideoContent]], follow_up: bool,
            number: Callable[[float], Any], text_time: Callable[[float], Any]) -> Answer:
    """The answer to `prompt` about `videos`, the same every time.

    `number` and `text_time` write a time as the answer's ref items (numbers, documented) and its
    videos' durations (strings, as in memories.ai's examples) have it.
    """
    wanted = terms(prompt)
    phrase = " ".join(wanted) or prompt.strip()
    matches = []
    for order, (video, content) in enumerate(videos):
        lines = [("audio_ts", s) for s in content.audio or ()] + [("visual_ts", s) for s in content.visual]
        for kind, segment in lines:
            found = score(wanted, segment.text)
            if found > 0:
                matches.append((-found, order, segment.start, kind, segment, video, content))
    matches.sort(key=lambda m: m[:3])
    cited = matches[:MAX_CITED]
    refs: dict[str, dict[str, Any]] = {}
    for _, _, _, kind, segment, video, content in sorted(cited, key=lambda m: (m[1], m[2])):
        ref = refs.setdefault(video.video_no, {
            "video": {"video_no": video.video_no, "video_name": video.video_name,
                      "duration": text_time(content.duration)},
            "refItems": []})
        ref["refItems"].append({"videoNo": video.video_no, "startTime": number(segment.start),
                                "endTime": number(segment.end), "type": kind, "text": segment.text})
    lead = "Following up: " if follow_up else ""
    names = ", ".join(f"“{video.video_name}”" for video, _ in videos)
    if cited:
        quoted = "".join(f" In “{video.video_name}” at {segment.start:g}s: {segment.text}"
                         for _, _, _, _, segment, video, _ in cited)
        text = f"{lead}I found {len(cited)} moment{'s' if len(cited) > 1 else ''} about “{phrase}”.{quoted}"
    else:
        video, content = videos[0]
        shown = content.visual[0].text if content.visual else content.summary
        text = f"{lead}I could not find “{phrase}” in {names}. “{video.video_name}” shows: {shown}"
    thinkings = ({"title": "Information Retrieval",
                  "content": f"Looking for “{phrase}” in {len(videos)} video{'s' if len(videos) > 1 else ''}."},
                 {"title": "Answer", "content": f"{len(cited)} moment{'' if len(cited) == 1 else 's'} match."})
    return Answer(thinkings, tuple(refs.values()), text)
