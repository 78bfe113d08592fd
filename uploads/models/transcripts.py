"""What memories.ai made of a ready video (issue 14, point 3): its speech and visual transcripts
and its summaries by chapters and topics, fetched once by a worker (uploads/transcripts.py) and kept;
and the per-account slot that paces those calls (transcription and summary: 1/s per account).
"""

import uuid

from django.db import models
from django.utils import timezone

from .teams import MemoriesAccount
from .videos import Video


class VideoTranscript(models.Model):
    """One video's transcript and summaries. `token` fences the fetch: a Refresh gives a new one,
    so a task of an earlier fetch that runs late changes nothing."""

    class State(models.TextChoices):
        FETCHING = "fetching", "being fetched"
        FETCHED = "fetched", "fetched"
        FAILED = "failed", "could not be fetched"

    video = models.OneToOneField(Video, on_delete=models.CASCADE, related_name="understanding")
    state = models.CharField(max_length=10, choices=State.choices, default=State.FETCHING)
    token = models.CharField(max_length=32, default="")
    # [{index, start, end, text}] in seconds; [{title, description, start}] for chapters and topics.
    lines = models.JSONField(default=list, blank=True)
    # What is seen (memories.ai's visual transcript), in the shape of `lines`; None until it is
    # fetched (a row kept from before the portal fetched it says so: Refresh fetches it).
    scenes = models.JSONField(null=True, blank=True, default=None)
    chapters = models.JSONField(default=list, blank=True)
    topics = models.JSONField(default=list, blank=True)
    summary = models.TextField(blank=True)
    requested_at = models.DateTimeField(default=timezone.now)  # the fetch's start, then its last task's run
    fetched_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=400, blank=True)

    class Meta:
        verbose_name = "video transcript"

    def __str__(self):
        return f"transcript of {self.video_id} ({self.state})"

    @staticmethod
    def new_token():
        return uuid.uuid4().hex


class UnderstandingSlot(models.Model):
    """A memories.ai account's next transcript or summary call may not start before `next_at`,
    its next search before `search_at`, its next question before `chat_at`: each claimed with a
    conditional UPDATE on the database's clock (as uploads/pacing.py claims the upload slot), so
    any number of workers and web processes agree (uploads/call_slots.py)."""

    account = models.OneToOneField(MemoriesAccount, on_delete=models.CASCADE, primary_key=True,
                                   related_name="understanding_slot")
    next_at = models.DateTimeField(null=True, blank=True)
    backoff_level = models.PositiveSmallIntegerField(default=0)
    search_at = models.DateTimeField(null=True, blank=True)
    chat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "memories.ai understanding slot"

    def __str__(self):
        return f"understanding slot of account {self.account_id}"
