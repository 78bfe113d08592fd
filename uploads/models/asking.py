"""Questions people ask memories.ai about their videos (issue 14, point 2): each user's own
conversations, kept in the portal, since memories.ai lists sessions per namespace (a team's, which
would show teammates' chats). The per-team chat budget counts a team's questions (Question.team).
"""

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from .teams import Team
from .videos import Video


class Conversation(models.Model):
    """Questions about a fixed set of videos of one team and one memories.ai place, asked by one
    user; `session_id` is memories.ai's, so follow-up questions keep their context."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations")
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="conversations")
    videos = models.ManyToManyField(Video, related_name="conversations")
    api_family = models.CharField(max_length=8, blank=True)
    namespace = models.CharField(max_length=100, blank=True)
    session_id = models.CharField(max_length=200, blank=True)
    title = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["user", "-updated_at"], name="conversation_user_recent")]

    def __str__(self):
        return self.title


class Question(models.Model):
    """One question and its answer, as it streamed in: the text, the moments it cited
    ([{video_no, start, end, kind, text}]) and how it ended."""

    class State(models.TextChoices):
        ANSWERING = "answering", "being answered"
        ANSWERED = "answered", "answered"
        FAILED = "failed", "not answered"
        REFUSED = "refused", "refused by memories.ai"  # before any of it was answered: not in the budget

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="questions")
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="questions")
    text = models.TextField()
    answer = models.TextField(blank=True)
    moments = models.JSONField(default=list, blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.ANSWERING)
    error = models.CharField(max_length=400, blank=True)
    asked_at = models.DateTimeField(default=timezone.now)
    answered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["asked_at", "pk"]
        indexes = [models.Index(fields=["team", "asked_at"], name="question_team_asked"),
                   models.Index(fields=["state", "asked_at"], name="question_state_asked")]

    def __str__(self):
        return self.text[:60]
