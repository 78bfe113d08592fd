"""What the memories.ai emulator "understood" of each video: transcripts, captions, summaries.

Owns the deterministic content the calls beyond upload answer from (``understanding``): for a
sample video, a data file shipped in ``data/transcripts/`` (one JSON file per video, found by the
SHA-256 of the uploaded bytes, else by the uploaded file's name); for any other file, content
generated from its name, the same every time. Also owns how a query is matched against a line
(``terms``, ``score``, ``has_phrase``). Pure functions and frozen data: no emulator state.

A data file holds ``title``, ``files`` (file names it answers for), ``sha256`` (hashes of the
files' bytes), ``duration`` (seconds), ``audio`` (the speech: a list of ``{start, end, text}``
lines, or null for a video without an audio track), ``visual`` (the captions, same shape), and
optionally ``summary``, ``chapters`` and ``topics`` (lists of ``{title, description, start}``),
which are otherwise derived from the captions and the speech.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "data" / "transcripts"
GENERATED_DURATION = 12.0  # what list_videos says of every video ("12")
STOP_WORDS = frozenset(
    "a an and any are as at be by can did do does for from had has have how i in is it its me my of on "
    "or show that the their them there this to was were what when where which who why with you your "
    "video videos clip please tell about".split())
# For content generated from a file's name: a place and a thing picked by the name's hash.
PLACES = ("workshop", "office", "garden", "station", "studio", "harbour", "library", "kitchen")
THINGS = ("ladder", "whiteboard", "bicycle", "printer", "lantern", "toolbox", "camera", "map")


@dataclass(frozen=True)
class Segment:
    """A line of speech or a caption, from `start` to `end` seconds."""

    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Item:
    """A chapter or a topic of a summary, from `start` seconds."""

    title: str
    description: str
    start: float


@dataclass(frozen=True)
class VideoContent:
    title: str
    duration: float
    audio: tuple[Segment, ...] | None  # None: the video has no audio track
    visual: tuple[Segment, ...]
    summary: str
    chapters: tuple[Item, ...]
    topics: tuple[Item, ...]
    source: str  # the data file's name, or "generated"


def content_for(sha256: str | None, filename: str, video_name: str) -> VideoContent:
    """The content of an uploaded video: its data file (by hash, then by file name), else generated."""
    by_hash, by_name = shipped()
    found = by_hash.get(sha256 or "") or by_name.get(filename.replace("\\", "/").rsplit("/", 1)[-1].lower())
    return found or generated(video_name)


@functools.cache
def shipped(folder: Path = DATA_DIR) -> tuple[dict[str, VideoContent], dict[str, VideoContent]]:
    """The shipped data files, by SHA-256 and by lower-cased file name (read once per process)."""
    by_hash: dict[str, VideoContent] = {}
    by_name: dict[str, VideoContent] = {}
    for path in sorted(folder.glob("*.json")):
        raw = json.loads(path.read_text(encoding="utf-8"))
        content = _from_data(raw, path.name)
        by_hash.update(dict.fromkeys(raw.get("sha256", []), content))
        by_name.update(dict.fromkeys((name.lower() for name in raw.get("files", [])), content))
    return by_hash, by_name


def _segments(lines: list[dict] | None) -> tuple[Segment, ...] | None:
    if lines is None:
        return None
    return tuple(Segment(float(line["start"]), float(line["end"]), str(line["text"])) for line in lines)


def _items(items: list[dict]) -> tuple[Item, ...]:
    return tuple(Item(str(i["title"]), str(i["description"]), float(i["start"])) for i in items)


def _from_data(raw: dict, source: str) -> VideoContent:
    audio, visual = _segments(raw.get("audio")), _segments(raw.get("visual")) or ()
    title = str(raw["title"])
    return VideoContent(
        title=title, duration=float(raw["duration"]), audio=audio, visual=visual,
        summary=str(raw.get("summary") or _summary_text(title, audio, visual)),
        chapters=_items(raw["chapters"]) if "chapters" in raw else _chapters(visual),
        topics=_items(raw["topics"]) if "topics" in raw else _topics(audio, visual), source=source)


def generated(video_name: str) -> VideoContent:
    """Content for a video no data file describes, from its name alone: "kitchen-tour" is a video
    whose speech and captions say "kitchen tour", so tests can make searchable videos by naming them."""
    words = re.findall(r"[A-Za-z0-9]+", video_name) or ["untitled"]
    title = " ".join(words)
    digest = hashlib.sha256(video_name.encode("utf-8")).digest()
    place, thing = PLACES[digest[0] % len(PLACES)], THINGS[digest[1] % len(THINGS)]
    audio = (Segment(0.0, 3.0, f"Welcome to {title}."),
             Segment(3.0, 6.0, f"Here we look at the {thing} in the {place}."),
             Segment(6.0, 9.0, f"Remember what {title} shows about the {thing}."),
             Segment(9.0, GENERATED_DURATION, "Thanks for watching."))
    visual = (Segment(0.0, 4.0, f"A title card reads {title}."),
              Segment(4.0, 8.0, f"A {thing} in a {place}, seen from the side."),
              Segment(8.0, GENERATED_DURATION, f"The {place} again, wider, as the clip ends."))
    return VideoContent(title=title, duration=GENERATED_DURATION, audio=audio, visual=visual,
                        summary=_summary_text(title, audio, visual), chapters=_chapters(visual),
                        topics=_topics(audio, visual), source="generated")


def _summary_text(title: str, audio: tuple[Segment, ...] | None, visual: tuple[Segment, ...]) -> str:
    said = f" It says: {audio[0].text}" if audio else " It has no speech."
    shown = f" It shows: {visual[0].text}" if visual else ""
    return f"{title}.{shown}{said}"


def _chapters(visual: tuple[Segment, ...]) -> tuple[Item, ...]:
    return tuple(Item(f"Part {n}", s.text, s.start) for n, s in enumerate(visual, 1))


def _topics(audio: tuple[Segment, ...] | None, visual: tuple[Segment, ...]) -> tuple[Item, ...]:
    lines = audio or visual
    return tuple(Item(" ".join(terms(s.text)[:3]).capitalize() or f"Topic {n}", s.text, s.start)
                 for n, s in enumerate(lines[:2], 1))


# -- matching ---------------------------------------------------------------------------

def _word(token: str) -> str:
    # A crude stem, so "fryers" finds "fryer" and "blankets" finds "blanket".
    return token[:-1] if len(token) > 3 and token.endswith("s") and not token.endswith("ss") else token


def terms(text: str) -> list[str]:
    """The words of `text` a search looks for: lower-cased, crudely stemmed, without stop words
    (all of them when it has nothing else), each once."""
    tokens = [_word(t) for t in re.findall(r"[a-z0-9]+", text.lower())]
    kept = [t for t in tokens if t not in STOP_WORDS] or tokens
    return list(dict.fromkeys(kept))


def score(query_terms: list[str], text: str) -> float:
    """The share of the query's terms found in `text` (0 to 1)."""
    if not query_terms:
        return 0.0
    found = {_word(t) for t in re.findall(r"[a-z0-9]+", text.lower())}  # stop words too: a query may be all of them
    return round(sum(t in found for t in query_terms) / len(query_terms), 4)


def has_phrase(phrase: str, text: str) -> bool:
    """Whether `text` holds `phrase` exactly (case and runs of spaces aside)."""
    wanted = " ".join(phrase.lower().split())
    return bool(wanted) and wanted in " ".join(text.lower().split())
