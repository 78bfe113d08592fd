"""The audit trail: who did what to whom, when and from where, in words an auditor reads; never a
secret (keys appear as `…` and their last 4 characters). Written by uploads/signals.py for
sign-ins, roles, staff status and keys, and by the transitions that matter (callback rotation).

The actor and the client address of the request being served come from `current_request`, set
by memportal.middleware.AuditContextMiddleware; outside a request (a worker, a command) the actor
is the system.
"""

import contextvars

from django.conf import settings
from django.db import models
from django.utils import timezone

current_request = contextvars.ContextVar("memportal_current_request", default=None)


class AuditEvent(models.Model):
    class Action(models.TextChoices):
        SIGNED_IN = "signed_in", "Signed in"
        SIGNED_OUT = "signed_out", "Signed out"
        SIGN_IN_FAILED = "sign_in_failed", "Sign-in failed"
        LOCKED_OUT = "locked_out", "Locked out (too many failures)"
        ROLE_CHANGED = "role_changed", "Team role changed"
        STAFF_CHANGED = "staff_changed", "Staff or superuser status changed"
        KEY_ADDED = "key_added", "API key added"
        KEY_ACTIVATED = "key_activated", "API key activated"
        KEY_DEACTIVATED = "key_deactivated", "API key deactivated"
        KEY_TESTED = "key_tested", "API key tested"
        KEY_FAILING = "key_failing", "API key marked failing"
        KEY_REMOVED = "key_removed", "API key removed"
        CALLBACK_ROTATED = "callback_rotated", "Callback address rotated"

    at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    actor_name = models.CharField(max_length=150, blank=True)  # kept when the user is deleted
    action = models.CharField(max_length=20, choices=Action.choices, db_index=True)
    subject = models.CharField(max_length=300, blank=True)  # whom or what, in words
    team = models.ForeignKey("uploads.Team", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    client_address = models.GenericIPAddressField(null=True, blank=True)
    detail = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-at", "-pk"]

    def __str__(self):
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor_name or 'system'}: {self.get_action_display()} {self.subject}"


def audit(action, subject="", team=None, detail="", actor=None, client_address=None):
    """Write one audit event; the actor and address default to the request being served."""
    request = current_request.get()
    if actor is None and request is not None:
        user = getattr(request, "user", None)
        actor = user if user is not None and user.is_authenticated else None
    if client_address is None and request is not None:
        client_address = getattr(request, "audit_client_ip", None)
    return AuditEvent.objects.create(
        actor=actor, actor_name=actor.get_username() if actor else "", action=action, subject=subject[:300],
        team=team, client_address=client_address, detail=detail[:500])
