"""The data: teams, their members and memories.ai keys (teams.py); videos, their events and
callbacks (videos.py); what the workers' queues last said (workers.py).

State changes of a video are not made here but in uploads/lifecycle.py, which every entry point
(upload view, relay task, callback, status check, reconcile, admin) calls.
"""

from .asking import Conversation, Question
from .audit import AuditEvent, audit
from .partial import PartialUpload
from .profiles import Profile
from .teams import (
    ApiKey, MemoriesAccount, Membership, PasswordResetRequest, Team, TeamQuerySet, key_fingerprint,
)
from .videos import (
    CallbackRecord, RelayHold, Video, VideoEvent, VideoQuerySet, new_callback_token, new_work_token, token_digest,
    video_upload_to,
)
from .transcripts import UnderstandingSlot, VideoTranscript
from .workers import WorkerPing

__all__ = [
    "ApiKey", "AuditEvent", "audit", "CallbackRecord", "MemoriesAccount", "Membership", "PartialUpload", "PasswordResetRequest", "Profile", "RelayHold", "Team", "TeamQuerySet", "Video", "VideoEvent",
    "VideoQuerySet", "new_callback_token", "new_work_token", "token_digest", "video_upload_to", "key_fingerprint", "WorkerPing",
    "UnderstandingSlot", "VideoTranscript", "Conversation", "Question",
]
