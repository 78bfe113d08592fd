"""The work an action leaves for the task queue, as plain data.

Actions (uploads/actions.py) change state and return a Result whose `work` lists these; the
entry point that called them (a view, the admin, a command, a task) enqueues that work with
uploads.tasks.perform(), inside the same transaction as the change, so the state and its task
rows commit together or not at all. Nothing below the entry points enqueues anything.
"""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class RelayVideo:
    """Send video `video_id` for attempt number `attempt`, not before `run_after`, while `token`
    is still the video's relay token."""

    video_id: str
    attempt: int
    token: str
    run_after: datetime | None = None


@dataclass(frozen=True)
class CheckVideo:
    """Ask memories.ai where video `video_id` stands, not before `run_after`, while `token` is
    still the video's check token."""

    video_id: str
    token: str
    run_after: datetime | None = None


@dataclass(frozen=True)
class DeleteRemoteVideos:
    """Have memories.ai delete these videos (at most 100) with key `key_id`."""

    key_id: int
    video_nos: tuple[str, ...]
    attempt: int = 0
    run_after: datetime | None = None
    family: str = ""  # the videos' place at memories.ai (uploads/memories.py Place)
    namespace: str = ""


@dataclass(frozen=True)
class SendPasswordReset:
    """Mail user `user_id` a password-reset link for the site at `domain`; the worker makes the
    link, so no task row ever holds it."""

    user_id: int
    domain: str
    protocol: str


Work = RelayVideo | CheckVideo | DeleteRemoteVideos | SendPasswordReset


@dataclass(frozen=True)
class Result:
    """What an action did (`value`, for its caller) and the work it leaves (`work`)."""

    value: Any = None
    work: tuple[Work, ...] = field(default_factory=tuple)
