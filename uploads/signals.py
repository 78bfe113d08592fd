"""Keeps a user's admin access in step with their team-admin memberships, cancels a removed
member's unfinished uploads for the team, starts a session's clock at sign-in, and writes the
audit trail (sign-ins, roles, staff status, keys).

Giving someone the team-admin role makes them staff with the team-admin permissions; removing
their last team-admin role takes both away again. Being signal-driven, this holds however the
membership changes: admin, shell or management command (bulk queryset updates excepted, which
Django sends no signals for; the code never uses them on memberships).
"""

from axes.signals import user_locked_out
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db import transaction
from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver

from memportal.middleware import client_ip
from memportal.sessions import mark_signed_in

from . import resumable
from .models import ApiKey, AuditEvent, Membership, Team, audit
from .permissions import sync_team_admin_access

A = AuditEvent.Action


@receiver(post_save, sender=Membership)
@receiver(post_delete, sender=Membership)
def membership_changed(sender, instance, **kwargs):
    if kwargs.get("raw"):  # loaddata copies rows as they are (deploy/sqlite_to_postgres.sh)
        return
    sync_team_admin_access(instance.user_id)


@receiver(post_delete, sender=Membership)
def end_removed_members_uploads(sender, instance, **kwargs):
    """Removed from a team: their unfinished resumable uploads for it are cancelled (bytes and
    all), once the removal is committed; a complete one never becomes the team's video."""
    user_id, team_id = instance.user_id, instance.team_id
    transaction.on_commit(lambda: resumable.end_uploads_of(user_id, team_id))


@receiver(user_logged_in)
def signed_in(sender, request, user, **kwargs):
    """The session's lifetime and its last password confirmation start now (memportal/sessions.py)."""
    if request is not None and hasattr(request, "session"):
        mark_signed_in(request.session)


# --- The audit trail (uploads/models/audit.py) ----------------------------------------------

@receiver(user_logged_in)
def audit_signed_in(sender, request, user, **kwargs):
    audit(A.SIGNED_IN, user.get_username(), actor=user, client_address=_address(request))


@receiver(user_logged_out)
def audit_signed_out(sender, request, user, **kwargs):
    if user is not None:
        audit(A.SIGNED_OUT, user.get_username(), actor=user, client_address=_address(request))


@receiver(user_login_failed)
def audit_sign_in_failed(sender, credentials, request=None, **kwargs):
    # credentials are cleansed by Django (the password is "********"): only the username is kept.
    audit(A.SIGN_IN_FAILED, str(credentials.get("username", ""))[:150], client_address=_address(request))


@receiver(user_locked_out)
def audit_locked_out(sender, request, username, ip_address, **kwargs):
    audit(A.LOCKED_OUT, str(username or "")[:150], client_address=ip_address or _address(request),
          detail="sign-in paused for the cool-off")


@receiver(pre_save, sender=get_user_model())
def remember_user_flags(sender, instance, **kwargs):
    if kwargs.get("raw"):  # loaddata copies rows as they are (deploy/sqlite_to_postgres.sh)
        return
    before = sender.objects.filter(pk=instance.pk).values("is_staff", "is_superuser").first() if instance.pk else None
    instance._audit_before = before


@receiver(post_save, sender=get_user_model())
def audit_user_flags(sender, instance, created, **kwargs):
    if kwargs.get("raw"):  # loaddata copies rows as they are (deploy/sqlite_to_postgres.sh)
        return
    before = getattr(instance, "_audit_before", None) or {"is_staff": False, "is_superuser": False}
    changes = [f"{flag} {'granted' if getattr(instance, flag) else 'removed'}"
               for flag in ("is_staff", "is_superuser") if before[flag] != getattr(instance, flag)]
    if changes:
        audit(A.STAFF_CHANGED, instance.get_username(), detail=", ".join(changes))


@receiver(pre_save, sender=Membership)
def remember_role(sender, instance, **kwargs):
    if kwargs.get("raw"):  # loaddata copies rows as they are (deploy/sqlite_to_postgres.sh)
        return
    instance._audit_role = (sender.objects.filter(pk=instance.pk).values_list("role", flat=True).first()
                            if instance.pk else None)


@receiver(post_save, sender=Membership)
def audit_role(sender, instance, created, **kwargs):
    if kwargs.get("raw"):  # loaddata copies rows as they are (deploy/sqlite_to_postgres.sh)
        return
    before = getattr(instance, "_audit_role", None)
    if created or before != instance.role:
        audit(A.ROLE_CHANGED, f"{instance.user.get_username()} in {instance.team}", team=instance.team,
              detail=f"{before or 'none'} → {instance.role}")


@receiver(post_delete, sender=Membership)
def audit_role_removed(sender, instance, **kwargs):
    audit(A.ROLE_CHANGED, f"{instance.user.get_username()} in {instance.team}", team=team_id_of(instance),
          detail=f"{instance.role} → none (removed from the team)")


@receiver(pre_save, sender=ApiKey)
def remember_key(sender, instance, **kwargs):
    if kwargs.get("raw"):  # loaddata copies rows as they are (deploy/sqlite_to_postgres.sh)
        return
    instance._audit_before = (sender.objects.filter(pk=instance.pk)
                              .values("is_active", "failing_since", "secret_encrypted").first()
                              if instance.pk else None)


@receiver(post_save, sender=ApiKey)
def audit_key(sender, instance, created, **kwargs):
    if kwargs.get("raw"):  # loaddata copies rows as they are (deploy/sqlite_to_postgres.sh)
        return
    key, before = f"{instance.label} ({instance.masked})", getattr(instance, "_audit_before", None)
    if created or before is None:
        audit(A.KEY_ADDED, key, team=instance.team, detail="active" if instance.is_active else "inactive")
        return
    if before["secret_encrypted"] != instance.secret_encrypted:
        audit(A.KEY_ADDED, key, team=instance.team, detail="a new secret for this key")
    if before["is_active"] != instance.is_active:
        audit(A.KEY_ACTIVATED if instance.is_active else A.KEY_DEACTIVATED, key, team=instance.team)
    if before["failing_since"] is None and instance.failing_since is not None:
        audit(A.KEY_FAILING, key, team=instance.team, detail=instance.last_error)


@receiver(post_delete, sender=ApiKey)
def audit_key_removed(sender, instance, **kwargs):
    audit(A.KEY_REMOVED, f"{instance.label} ({instance.masked})", team=team_id_of(instance))


def team_id_of(instance):
    return Team.objects.filter(pk=instance.team_id).first()


def _address(request):
    return client_ip(request) if request is not None and hasattr(request, "META") else None
