"""Teams, their members, the memories.ai keys they upload with, and the memories.ai accounts
those keys belong to (whose keys share one upload pace)."""

from django.conf import settings
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.crypto import salted_hmac

from .. import crypto
from .audit import AuditEvent, audit


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
    # A clash says nothing of the other team (a team admin may rename their own team).
    name = models.CharField(max_length=120, unique=True,
                            error_messages={"unique": "This name cannot be used: choose another."})
    slug = models.SlugField(max_length=60, unique=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects = TeamQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def stored_bytes(self):
        """What the team's videos keep on the portal's storage now (deleted or purged files not)."""
        return self.videos.filter(deleted_at__isnull=True).exclude(file="").aggregate(
            total=models.Sum("size"))["total"] or 0

    def usable_key(self):
        """The active key that is not marked failing, or None (Team.objects.with_usable_key())."""
        return self.api_keys.select_related("account").filter(is_active=True, failing_since__isnull=True).first()


class PasswordResetRequest(models.Model):
    """One "forgot my password" request, counted per address and per e-mail (a digest: the
    address typed is not kept) so every process shares one limit (uploads/password_reset.py)."""

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    client_address = models.GenericIPAddressField(null=True, blank=True)
    email_digest = models.CharField(max_length=64, db_index=True)


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


class MemoriesAccount(models.Model):
    """A memories.ai account. Its limits (one upload a minute) hold for all of its keys, so its
    keys, whichever teams hold them, share one upload slot (uploads/pacing.py).

    Keys are grouped by fingerprint when saved (the same key given to two teams), and a
    superuser can put keys that are different but of one account together in the admin.
    """

    name = models.CharField(max_length=120, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # Pacing: the account's next upload may not start before this time. Claimed with a
    # conditional UPDATE on the database's clock, so any number of workers agree.
    next_upload_at = models.DateTimeField(null=True, blank=True)
    # Grows on each 0429 answer, back to 0 on an accepted upload.
    upload_backoff_level = models.PositiveSmallIntegerField(default=0)

    class Meta:
        verbose_name = "memories.ai account"
        ordering = ["name", "pk"]

    def __str__(self):
        return self.name or f"memories.ai account {self.pk}"


def key_fingerprint(raw: str) -> str:
    """An HMAC of a key under the portal's secret: two stored keys are compared by it (their
    Fernet ciphertexts are randomised), and it tells nothing about the key."""
    return salted_hmac("memportal.api-key-fingerprint", raw.strip(), algorithm="sha256").hexdigest()


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
    # When memories.ai last answered a test of this key (on save, or "Test key"), whatever it said.
    last_tested_at = models.DateTimeField(null=True, blank=True)
    fingerprint = models.CharField(max_length=64, blank=True, editable=False, db_index=True)
    account = models.ForeignKey(MemoriesAccount, null=True, blank=True, on_delete=models.PROTECT,
                                related_name="api_keys", verbose_name="memories.ai account")

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
        if self.fingerprint and self.fingerprint != key_fingerprint(raw):
            # Another key: its account is found again when it is saved.
            self._previous_account_id, self.account = self.account_id, None
        self.fingerprint = key_fingerprint(raw)

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
            if self.account_id is None:
                self.account = self.account_for_fingerprint()
            if self.is_active:
                ApiKey.objects.filter(team_id=self.team_id, is_active=True).exclude(pk=self.pk).update(
                    is_active=False
                )
            super().save(*args, **kwargs)

    def pacing_account_id(self):
        """The id of the account whose upload slot this key uses (given one if it had none)."""
        if self.account_id is None:
            with transaction.atomic():
                account = self.account_for_fingerprint()
                ApiKey.objects.filter(pk=self.pk, account__isnull=True).update(account=account)
            self.account_id = ApiKey.objects.values_list("account_id", flat=True).get(pk=self.pk)
        return self.account_id

    def account_for_fingerprint(self):
        """The account of another key with this key's fingerprint (the same key, saved for
        another team), or a new account of its own."""
        same = (ApiKey.objects.filter(fingerprint=self.fingerprint, account__isnull=False)
                .exclude(pk=self.pk).select_related("account").first() if self.fingerprint else None)
        if same is not None:
            return same.account
        previous = getattr(self, "_previous_account_id", None)
        if previous and not ApiKey.objects.filter(account_id=previous).exclude(pk=self.pk).exists():
            return MemoriesAccount.objects.get(pk=previous)  # a new secret for the same key
        team = f" ({self.team.name})" if self.team_id else ""
        return MemoriesAccount.objects.create(name=f"account of key {self.masked}{team}")

    def mark_failing(self, reason: str):
        """memories.ai refused the key: failing from now (or still, since it first failed)."""
        if ApiKey.objects.filter(pk=self.pk, failing_since__isnull=True).update(
                failing_since=timezone.now(), last_error=reason[:500]):
            audit(AuditEvent.Action.KEY_FAILING, f"{self.label} ({self.masked})", team=self.team, detail=reason)
        else:
            ApiKey.objects.filter(pk=self.pk).update(last_error=reason[:500])

    def mark_used(self):
        ApiKey.objects.filter(pk=self.pk).update(last_used_at=timezone.now())
