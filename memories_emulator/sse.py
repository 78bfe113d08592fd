"""Streamed answers of the memories.ai emulator: server-sent events, as memories.ai's chat sends them.

Owns ``Stream`` (the frames of one streamed answer, the delay between them, and the two stream
faults it plays, ``faults.STREAM_FAULTS``) and ``write``, which sends the frames one at a time as
``data: {json}`` events, waiting the delay between frames while watching for the client hanging
up. The HTTP handler (``server``) owns the socket and the chunked framing and gives ``write`` its
three small callables; ``understanding`` decides the frames. Imports nothing of the emulator but
the fault catalogue's code meanings.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Callable

from memories_emulator.faults import CODE_MEANINGS

# The last frame of an answer that went well; any other final frame is an error (memories.ai's docs).
END_FRAME = {"code": "SUCCESS", "data": "Done"}

DONE, CUT, CLIENT_GONE, STOPPED = "done", "cut", "client gone", "stopped"  # how a stream ended


@dataclasses.dataclass(frozen=True)
class Stream:
    """One streamed answer: its frames in order (the last one END_FRAME, unless a fault says
    otherwise), sent `delay` seconds apart."""

    frames: tuple[dict[str, Any], ...]
    delay: float = 0.0
    cut: bool = False  # the connection is closed after the frames, with no end of the body

    def with_fault(self, kind: str, params: dict[str, Any]) -> Stream:
        """This stream as the fault `kind` plays it (called by ``faults.after_serving``)."""
        after = max(0, int(params.get("after", 1)))
        if kind == "stream_error":
            code = str(params["code"])
            final = {"code": code, "msg": params.get("msg") or CODE_MEANINGS.get(code, "error"), "data": None}
            return dataclasses.replace(self, frames=(*self.frames[:after], final))
        if kind == "stream_cut":
            return dataclasses.replace(self, frames=self.frames[:after], cut=True)
        if kind == "stream_pieces":
            contents = [f for f in self.frames if f.get("type") == "content"]
            first = self.frames.index(contents[0]) if contents else len(self.frames) - 1
            others = [f for f in self.frames if f not in contents]
            own = [{**(contents[0] if contents else {"type": "content", "role": "assistant"}), "content": piece}
                   for piece in params["pieces"]]
            return dataclasses.replace(self, frames=(*others[:first], *own, *others[first:]))
        raise ValueError(f"not a stream fault: {kind!r}")


def encode(frame: dict[str, Any]) -> bytes:
    """One server-sent event: a `data:` line holding the frame's JSON, and the blank line ending it."""
    try:
        return b"data: " + json.dumps(frame, ensure_ascii=False).encode("utf-8") + b"\n\n"
    except UnicodeEncodeError:  # half of a character: only JSON's \u escape can carry it
        return b"data: " + json.dumps(frame).encode("ascii") + b"\n\n"


def write(stream: Stream, send: Callable[[bytes], bool], wait: Callable[[float], str | None],
          sent: Callable[[int], None]) -> str:
    """Send `stream`'s frames; returns how it ended (DONE, CUT, CLIENT_GONE or STOPPED).

    `send(event)` writes one event and says whether it got out; `wait(seconds)` waits between
    frames and returns None, or CLIENT_GONE / STOPPED when the wait was cut short; `sent(n)` is
    told how many frames have gone. It is told before each frame is written, so a client that
    has read a frame finds it counted, and told again with one less if the frame did not get out.
    """
    for number, frame in enumerate(stream.frames, 1):
        if number > 1:
            ended = wait(stream.delay)
            if ended is not None:
                return ended
        sent(number)
        if not send(encode(frame)):
            sent(number - 1)
            return CLIENT_GONE
    return CUT if stream.cut else DONE
