"""The data: teams, their members and memories.ai keys (teams.py); videos, their events and
callbacks (videos.py).

State changes of a video are not made here but in uploads/lifecycle.py, which every entry point
(upload view, relay task, callback, status check, reconcile, admin) calls.
"""

from .teams import ApiKey, Membership, Team, TeamQuerySet
from .videos import (
    CallbackRecord, RelayHold, Video, VideoEvent, VideoQuerySet, new_callback_token, new_work_token, token_digest,
    video_upload_to,
)

__all__ = [
    "ApiKey", "CallbackRecord", "Membership", "RelayHold", "Team", "TeamQuerySet", "Video", "VideoEvent",
    "VideoQuerySet", "new_callback_token", "new_work_token", "token_digest", "video_upload_to",
]
