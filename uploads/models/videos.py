"""Videos, their timeline (events), the callbacks memories.ai sent about them, and the
operator's relay hold."""

import hashlib
import secrets
import uuid
from pathlib import PurePath

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.crypto import salted_hmac

from ..clock import database_time
from ..memories import Place
from .teams import ApiKey, Membership, Team


class VideoQuerySet(models.QuerySet):
    def alive(self):
        return self.filter(deleted_at__isnull=True)

    def beating(self, stale_after):
        """Videos whose relay's heartbeat is fresher than `stale_after` seconds (by the database's
        clock, which wrote it)."""
        return self.filter(heartbeat_at__gt=database_time(-stale_after))

    def heartbeat_stale(self, stale_after):
        """Sending videos whose relay has been silent for `stale_after` seconds, or never beat."""
        return self.filter(status=Video.Status.SENDING).filter(
            Q(heartbeat_at__isnull=True) | Q(heartbeat_at__lte=database_time(-stale_after)))

    def actionable_by(self, user):
        """Videos this user may act on (retry, cancel, check now, delete): their own in a team
        they still belong to, their teams' as its admin, any as a superuser. A member removed
        from the team still sees their own videos (visible_to), read-only."""
        if not user.is_authenticated or not user.is_active:
            return self.none()
        videos = self.alive()
        if user.is_superuser:
            return videos
        # Subqueries, not joins: no duplicate rows, so no DISTINCT under every sort of the list.
        member_of = Membership.objects.filter(user=user).values("team_id")
        return videos.filter(Q(owner=user, team_id__in=member_of) | Q(team_id__in=administered_team_ids(user)))

    def visible_to(self, user):
        """A member sees their own videos, a team admin their teams', a superuser all."""
        if not user.is_authenticated or not user.is_active:
            return self.none()
        videos = self.alive()
        if user.is_superuser:
            return videos
        return videos.filter(Q(owner=user) | Q(team_id__in=administered_team_ids(user)))


def administered_team_ids(user):
    return Membership.objects.filter(user=user, role=Membership.Role.ADMIN).values("team_id")


def video_upload_to(video, filename):
    suffix = PurePath(filename).suffix.lower()
    return f"videos/{video.team.slug}/{timezone.now():%Y/%m}/{video.pk}{suffix}"


def new_work_token():
    """A fencing token: a task acts only while the token it carries is the video's current one."""
    return secrets.token_hex(8)


def new_callback_token():
    """Migration 0001's default for the plaintext token column, which migration 0003 removed."""
    return secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Video(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENDING = "sending", "Sending to memories.ai"
        PROCESSING = "processing", "Processing"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"
        REJECTED = "rejected", "Rejected"
        CANCELLED = "cancelled", "Cancelled"

    FINAL = {Status.READY, Status.CANCELLED}

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="videos")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="videos")
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="videos")
    title = models.CharField(max_length=200, blank=True)
    original_name = models.CharField(max_length=255)
    file = models.FileField(upload_to=video_upload_to, max_length=500, blank=True)
    content_type = models.CharField(max_length=100)
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    # The upload page's cheap fingerprint of the file (name, size, last change, sampled slices;
    # PartialUpload.fingerprint), kept when a resumable upload finishes: the duplicates lookup
    # matches on it. "" for the plain form's uploads.
    fingerprint = models.CharField(max_length=200, blank=True, db_index=True)

    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED, db_index=True)
    remote_status = models.CharField(max_length=40, blank=True)
    video_no = models.CharField(max_length=100, blank=True, db_index=True)
    # Where the copy lives at memories.ai (uploads/memories.py Place): the API family it was sent
    # through ("" for videos sent before families: the older one) and its v1 namespace.
    api_family = models.CharField(max_length=8, blank=True)
    namespace = models.CharField(max_length=100, blank=True)
    video_name = models.CharField(max_length=255, blank=True)
    remote_uploaded_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    # What the stored file holds (uploads/probe.py), read by the relay worker before a slot is spent.
    media_checked_at = models.DateTimeField(null=True, blank=True)
    duration_seconds = models.FloatField(null=True, blank=True)
    video_codec = models.CharField(max_length=40, blank=True)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    has_audio = models.BooleanField(null=True, blank=True)
    # The storage name of a JPEG still made by the worker from the stored file (beside it, removed
    # with it); "" until made, or when none could be.
    thumbnail = models.CharField(max_length=500, blank=True)

    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    checks = models.PositiveIntegerField(default=0)
    next_check_at = models.DateTimeField(null=True, blank=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)

    # One live chain per kind of work: a relay or check task carries the token current when it
    # was enqueued, and acts (or plans its successor) only while it is still the video's token.
    # Asking for the work again replaces the token, so a superseded task row finds it stale.
    relay_token = models.CharField(max_length=16, blank=True, editable=False)
    check_token = models.CharField(max_length=16, blank=True, editable=False)

    # The callback URL carries a token derived from the video's id with an HMAC under the
    # secret key; only its SHA-256 is stored and looked up, so neither the database nor the
    # admin holds a usable token.
    callback_digest = models.CharField(max_length=64, unique=True, editable=False)
    # Raised when a team admin rotates a leaked callback address: the token derives from it too.
    callback_generation = models.PositiveSmallIntegerField(default=0, editable=False)

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    status_changed_at = models.DateTimeField(default=timezone.now, db_index=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    remote_deleted_at = models.DateTimeField(null=True, blank=True)
    file_removed_at = models.DateTimeField(null=True, blank=True)
    # The status_changed_at of the last outcome (ready, failed) its owner was emailed about: one
    # email per outcome, however many workers or duplicate callbacks see it.
    mailed_outcome_at = models.DateTimeField(null=True, blank=True)

    objects = VideoQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["team", "status"], name="video_team_status_idx"),
            # "My videos" and "Team videos", newest first, and the owner's notices.
            models.Index(fields=["owner", "-created_at"], name="video_owner_created_idx"),
            models.Index(fields=["team", "-created_at"], name="video_team_created_idx"),
            models.Index(fields=["owner", "status_changed_at"], name="video_owner_changed_idx"),
            # The list's count of a team's alive videos, read from the index alone (bench/library.py).
            models.Index(fields=["team", "owner"], condition=Q(deleted_at__isnull=True), name="video_team_alive_idx"),
        ]

    def __str__(self):
        return self.display_name

    def save(self, *args, **kwargs):
        if not self.callback_digest:
            self.callback_digest = token_digest(self.callback_token)
        super().save(*args, **kwargs)

    @property
    def callback_token(self):
        """The secret in this video's callback URL (never stored: derived when it is needed)."""
        value = str(self.pk) if not self.callback_generation else f"{self.pk}:{self.callback_generation}"
        return salted_hmac("memportal.callback-token", value, algorithm="sha256").hexdigest()[:43]

    @property
    def display_name(self):
        return self.title or self.original_name

    @property
    def is_final(self):
        return self.status in self.FINAL

    @property
    def callback_path(self):
        from django.urls import reverse

        return reverse("memories-callback", args=[self.callback_token])

    @property
    def place(self):
        """Where its copy lives at memories.ai: every call about it names the same place."""
        return Place.of(self.api_family, self.namespace)

    def callback_url(self):
        if not settings.MEMPORTAL_PUBLIC_URL:
            return None
        return settings.MEMPORTAL_PUBLIC_URL + self.callback_path


class VideoEvent(models.Model):
    """One line of a video's timeline: what arrived, from where, and what changed."""

    class Source(models.TextChoices):
        UPLOAD = "upload", "Upload"
        RELAY = "relay", "Relay"
        CALLBACK = "callback", "Callback"
        STATUS_CHECK = "status_check", "Status check"
        RECONCILE = "reconcile", "Reconcile"
        USER = "user", "User"
        ADMIN = "admin", "Admin"

    video = models.ForeignKey(Video, on_delete=models.CASCADE, related_name="events")
    created_at = models.DateTimeField(default=timezone.now)
    source = models.CharField(max_length=20, choices=Source.choices)
    from_status = models.CharField(max_length=12, blank=True)
    to_status = models.CharField(max_length=12, blank=True)
    remote_status = models.CharField(max_length=40, blank=True)
    message = models.CharField(max_length=500, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self):
        return f"{self.get_source_display()}: {self.from_status or '-'} → {self.to_status or '-'}"


class CallbackRecord(models.Model):
    """A status callback as it arrived, stored before it is applied, with what came of it."""

    class Outcome(models.TextChoices):
        PENDING = "pending", "Pending (waiting for the relay's answer)"
        APPLIED = "applied", "Applied"
        DUPLICATE = "duplicate", "Duplicate"
        STALE = "stale", "Stale"
        REFUSED = "refused", "Refused"
        ERROR = "error", "Error"

    video = models.ForeignKey(Video, null=True, blank=True, on_delete=models.CASCADE, related_name="callbacks")
    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    headers = models.JSONField(default=dict, blank=True)
    body = models.TextField(blank=True)
    video_no = models.CharField(max_length=100, blank=True)
    remote_status = models.CharField(max_length=40, blank=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.PENDING)
    detail = models.TextField(blank=True)

    class Meta:
        ordering = ["-received_at", "-pk"]

    def __str__(self):
        return f"{self.remote_status or '?'} for {self.video_no or '?'} ({self.outcome})"


class RelayHold(models.Model):
    """The operator's switch: memories.ai answered as if a setting (its base URL, a path) or a
    proxy in between were wrong. No team can fix that and every upload would hit it, so every
    team's relays wait, no file's attempts are spent, until an operator clears the hold
    (`manage.py relay_hold --clear`, or the admin) and the queues resume."""

    reason = models.CharField(max_length=500)
    since = models.DateTimeField(default=timezone.now)
    cleared_at = models.DateTimeField(null=True, blank=True)
    cleared_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-since"]

    def __str__(self):
        state = f"cleared {self.cleared_at:%Y-%m-%d %H:%M}" if self.cleared_at else "in force"
        return f"relays held since {self.since:%Y-%m-%d %H:%M} ({state}): {self.reason}"

    @classmethod
    def in_force(cls):
        """The hold in force, if any (two workers may each set one at once: clearing ends all)."""
        return cls.objects.filter(cleared_at__isnull=True).first()
