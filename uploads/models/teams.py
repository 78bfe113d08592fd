"""Teams, their members, and the memories.ai keys they upload with."""

from django.conf import settings
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone

from .. import crypto


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
