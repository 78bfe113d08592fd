"""Keeps a user's admin access in step with their team-admin memberships, and starts a session's
clock at sign-in.

Giving someone the team-admin role makes them staff with the team-admin permissions; removing
their last team-admin role takes both away again. Being signal-driven, this holds however the
membership changes: admin, shell or management command (bulk queryset updates excepted, which
Django sends no signals for; the code never uses them on memberships).
"""

from django.contrib.auth.signals import user_logged_in
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from memportal.sessions import mark_signed_in

from .models import Membership
from .permissions import sync_team_admin_access


@receiver(post_save, sender=Membership)
@receiver(post_delete, sender=Membership)
def membership_changed(sender, instance, **kwargs):
    sync_team_admin_access(instance.user_id)


@receiver(user_logged_in)
def signed_in(sender, request, user, **kwargs):
    """The session's lifetime and its last password confirmation start now (memportal/sessions.py)."""
    if request is not None and hasattr(request, "session"):
        mark_signed_in(request.session)
