"""Team admins' access to the Django admin: the group, its permissions, and who is in it."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission

from .models import Membership

TEAM_ADMIN_GROUP = "Team admins"
# What a team admin may do in the admin; every ModelAdmin also scopes rows to their teams.
TEAM_ADMIN_PERMISSIONS = [
    ("uploads", "view_team"), ("uploads", "change_team"),
    ("uploads", "view_membership"), ("uploads", "add_membership"),
    ("uploads", "change_membership"), ("uploads", "delete_membership"),
    ("uploads", "view_apikey"), ("uploads", "add_apikey"), ("uploads", "change_apikey"),
    ("uploads", "delete_apikey"),
    ("uploads", "view_video"), ("uploads", "view_videoevent"), ("uploads", "view_callbackrecord"),
]


def team_admin_group():
    group, _ = Group.objects.get_or_create(name=TEAM_ADMIN_GROUP)
    wanted = set()
    for app_label, codename in TEAM_ADMIN_PERMISSIONS:
        wanted |= set(Permission.objects.filter(content_type__app_label=app_label, codename=codename))
    if set(group.permissions.all()) != wanted:
        group.permissions.set(wanted)
    return group


def privileged_otherwise(user):
    """A superuser, or staff for a reason other than a team's admin role (other groups or
    permissions, or staff with no team-admin role): only a superuser may bring them into a team."""
    if user.is_superuser:
        return True
    if not user.is_staff:
        return False
    is_team_admin = Membership.objects.filter(user=user, role=Membership.Role.ADMIN).exists()
    return (not is_team_admin or user.groups.exclude(name=TEAM_ADMIN_GROUP).exists()
            or user.user_permissions.exists())


def sync_team_admin_access(user_id):
    user = get_user_model().objects.filter(pk=user_id).first()
    if user is None:
        return
    is_team_admin = Membership.objects.filter(user_id=user_id, role=Membership.Role.ADMIN).exists()
    group = team_admin_group()
    if is_team_admin:
        user.groups.add(group)
        if not user.is_staff:
            user.is_staff = True
            user.save(update_fields=["is_staff"])
    elif user.groups.filter(pk=group.pk).exists():
        # Take back only what the team-admin role gave: someone a superuser made staff for
        # another reason (other groups or permissions) keeps their staff status.
        user.groups.remove(group)
        granted_otherwise = user.is_superuser or user.groups.exists() or user.user_permissions.exists()
        if user.is_staff and not granted_otherwise:
            user.is_staff = False
            user.save(update_fields=["is_staff"])
