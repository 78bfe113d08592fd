"""The data: teams, their members and memories.ai keys, videos, their events and callbacks.

State changes of a video are not made here but in uploads/lifecycle.py, which every entry point
(upload view, relay task, callback, status check, reconcile, admin) calls.
"""

import hashlib
import secrets
import uuid
from pathlib import PurePath

from django.conf import settings
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.crypto import salted_hmac

from . import crypto
from .clock import database_time


class TeamQuerySet(models.QuerySet):
    def administered_by(self, user):
        """Teams whose members and keys this user may manage."""
        if not user.is_authenticated or not user.is_active:
            return self.none()
        if user.is_superuser:
            return self.all()
        return self.filter(memberships__user=user, memberships__role=Membership.Role.ADMIN).distinct()

    def with_usable_key(self):
        """Teams with an active key that is not marked failing."""
        return self.filter(api_keys__is_active=True, api_keys__failing_since__isnull=True).distinct()

    def of_member(self, user):
        if not user.is_authenticated or not user.is_active:
            return self.none()
        return self.filter(memberships__user=user).distinct()


class Team(models.Model):
    name = models.CharField(max_length=120, unique=True)
    slug = models.SlugField(max_length=60, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    # Pacing: memories.ai accepts one upload per minute per account, so a team's next upload may
    # not start before this time. Claimed with a conditional UPDATE, so many workers agree.
    next_upload_at = models.DateTimeField(null=True, blank=True)
    # Grows on each 0429 answer, back to 0 on an accepted upload.
    upload_backoff_level = models.PositiveSmallIntegerField(default=0)

    objects = TeamQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def usable_key(self):
        """The active key that is not marked failing, or None (Team.objects.with_usable_key())."""
        return self.api_keys.filter(is_active=True, failing_since__isnull=True).first()


class Membership(models.Model):
    class Role(models.TextChoices):
        MEMBER = "member", "Member"
        ADMIN = "admin", "Team admin"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "team"], name="one_membership_per_user_and_team")]
        ordering = ["team__name", "user__username"]

    def __str__(self):
        return f"{self.user} in {self.team} ({self.get_role_display()})"


class ApiKey(models.Model):
    """A memories.ai API key. The secret is stored encrypted and never shown again in full."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="api_keys")
    label = models.CharField(max_length=100)
    secret_encrypted = models.TextField(editable=False)
    last4 = models.CharField(max_length=4, editable=False)
    is_active = models.BooleanField("active", default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    failing_since = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)

    class Meta:
        verbose_name = "API key"
        constraints = [
            models.UniqueConstraint(
                fields=["team"], condition=Q(is_active=True), name="one_active_api_key_per_team"
            )
        ]
        ordering = ["team__name", "-is_active", "-created_at"]

    def __str__(self):
        return f"{self.label} ({self.masked})"

    @property
    def masked(self):
        return f"…{self.last4}" if self.last4 else "…"

    # A key shorter than this shows none of its characters: its last four would give away too much.
    SHOWN_FROM_LENGTH = 16

    def set_secret(self, raw: str):
        raw = raw.strip()
        self.secret_encrypted = crypto.encrypt(raw)
        self.last4 = raw[-4:] if len(raw) >= self.SHOWN_FROM_LENGTH else ""

    def reveal(self) -> str:
        """The raw key, for the Authorization header only. Never log or display it."""
        return crypto.decrypt(self.secret_encrypted)

    @property
    def is_failing(self):
        return self.failing_since is not None

    def validate_constraints(self, exclude=None):
        # The one-active-key constraint is met by save() itself (it deactivates the others), so
        # a form that activates a second key is not an error.
        super().validate_constraints(exclude={*(exclude or ()), "team"})

    def save(self, *args, **kwargs):
        # One active key per team: activating this key deactivates the others in the same
        # transaction. Making a key usable again resumes the team's queue: that is an action
        # (uploads/actions.py resume_team_queue), run by whoever did it (admin, command).
        with transaction.atomic():
            if self.is_active:
                ApiKey.objects.filter(team_id=self.team_id, is_active=True).exclude(pk=self.pk).update(
                    is_active=False
                )
            super().save(*args, **kwargs)

    def mark_failing(self, reason: str):
        ApiKey.objects.filter(pk=self.pk).update(failing_since=timezone.now(), last_error=reason[:500])

    def mark_used(self):
        ApiKey.objects.filter(pk=self.pk).update(last_used_at=timezone.now())


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

    def visible_to(self, user):
        """A member sees their own videos, a team admin their teams', a superuser all."""
        if not user.is_authenticated or not user.is_active:
            return self.none()
        videos = self.alive()
        if user.is_superuser:
            return videos
        return videos.filter(
            Q(owner=user) | Q(team__memberships__user=user, team__memberships__role=Membership.Role.ADMIN)
        ).distinct()


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

    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED, db_index=True)
    remote_status = models.CharField(max_length=40, blank=True)
    video_no = models.CharField(max_length=100, blank=True, db_index=True)
    video_name = models.CharField(max_length=255, blank=True)
    remote_uploaded_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

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

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    status_changed_at = models.DateTimeField(default=timezone.now, db_index=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    remote_deleted_at = models.DateTimeField(null=True, blank=True)
    file_removed_at = models.DateTimeField(null=True, blank=True)

    objects = VideoQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["team", "status"], name="video_team_status_idx")]

    def __str__(self):
        return self.display_name

    def save(self, *args, **kwargs):
        if not self.callback_digest:
            self.callback_digest = token_digest(self.callback_token)
        super().save(*args, **kwargs)

    @property
    def callback_token(self):
        """The secret in this video's callback URL (never stored: derived when it is needed)."""
        return salted_hmac("memportal.callback-token", str(self.pk), algorithm="sha256").hexdigest()[:43]

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

    def next_attempt(self):
        """For a queued video: when the relay will try it next, or why it waits."""
        if self.status != self.Status.QUEUED:
            return ""
        if self.team.usable_key() is None:
            return "waiting for a working API key"
        if RelayHold.in_force() is not None:
            return "waiting: an operator is fixing the memories.ai settings"
        times = [t for t in (self.next_attempt_at, self.team.next_upload_at) if t and t > timezone.now()]
        if not times:
            return "next attempt: now"
        return f"next attempt {timezone.localtime(max(times)):%H:%M:%S}"

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
