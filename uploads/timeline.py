"""A video's timeline in people's words: each event (uploads/models VideoEvent) as a sentence
("Sent to memories.ai", "memories.ai finished processing"), with the raw record kept for those
who want it (the page folds it away)."""

import re
from dataclasses import dataclass

from .models import Video, VideoEvent

S = Video.Status
Source = VideoEvent.Source


@dataclass
class Entry:
    at: object
    text: str
    detail: str
    tone: str  # "good", "bad" or "" (for the marker beside the line)


def _by(event):
    return f" by {event.actor}" if event.actor else ""


WAITING = re.compile(r"^(?:will try again at [\d:]+ UTC|waiting for [^:]+): (?P<why>.+)$", re.S)


def _reason(event):
    """What the event's message says beyond its sentence (memories.ai's refusal, say), or ""."""
    message = event.message.strip()
    if message in ("cancelled", "deleted", "status check requested"):
        return ""
    match = WAITING.match(message)
    return match.group("why") if match else message


def sentence(event):
    """(text, tone) for one event."""
    source, before, after = event.source, event.from_status, event.to_status
    if source == Source.UPLOAD:
        return f"Uploaded{_by(event)}.", ""
    if event.message.startswith("renamed from"):
        return f"Renamed{_by(event)}: {event.message[len('renamed '):]}.", ""
    if event.message == "deleted":
        return f"Deleted{_by(event)}, here and at memories.ai.", "bad"
    if event.message.startswith("stored file removed"):
        return "The portal's stored copy was removed (its retention ended, or the video was deleted).", ""
    if before == after:
        if source == Source.USER and event.message == "status check requested":
            return f"memories.ai was asked again{_by(event)}.", ""
        if source in (Source.CALLBACK, Source.STATUS_CHECK) and event.remote_status:
            return f"memories.ai says it is still working on it ({event.remote_status}).", ""
        if source == Source.ADMIN:
            return f"Its callback address was changed{_by(event)}.", ""
        return "A note from the portal.", ""
    if after == S.SENDING:
        return "Being sent to memories.ai.", ""
    if after == S.PROCESSING:
        return "Sent to memories.ai, which is processing it.", "good"
    if after == S.READY:
        found = " (found by a status check)" if source == Source.STATUS_CHECK else ""
        return f"memories.ai finished processing{found}: the video is ready.", "good"
    if after == S.QUEUED and before in (S.FAILED, S.REJECTED):
        return f"Sent again{_by(event)}.", ""
    if after == S.QUEUED and event.message.startswith("waiting for a working API key"):
        return "Paused until the team has a working memories.ai API key.", "bad"
    if after == S.QUEUED and event.message.startswith("waiting for an operator"):
        return "Paused until an operator fixes the portal's memories.ai settings.", "bad"
    if after == S.QUEUED:
        return "Sending did not work; it will be tried again.", "bad"
    if after == S.FAILED:
        return "memories.ai could not process it.", "bad"
    if after == S.REJECTED:
        return "Not sent to memories.ai.", "bad"
    if after == S.CANCELLED:
        return f"Cancelled{_by(event)}.", ""
    return f"Now {Video.Status(after).label if after in S.values else after}.", ""


def raw(event):
    """The record as stored: where it came from, the change, memories.ai's word and the message."""
    parts = [event.get_source_display()]
    if event.from_status != event.to_status:
        parts.append(f"{event.from_status or '–'} → {event.to_status}")
    if event.remote_status:
        parts.append(f"memories.ai: {event.remote_status}")
    if event.message:
        parts.append(event.message)
    return " · ".join(parts)


def entries(events):
    out = []
    for event in events:
        text, tone = sentence(event)
        reason = _reason(event) if tone == "bad" and event.source != Source.UPLOAD else ""
        if reason and reason.lower() not in text.lower():
            text = f"{text} {reason[0].upper()}{reason[1:]}{'' if reason.endswith(('.', '!', '?')) else '.'}"
        out.append(Entry(event.created_at, text, raw(event), tone))
    return out
