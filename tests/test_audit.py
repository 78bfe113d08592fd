"""The audit trail an auditor reads in the admin (issue 10): sign-in, sign-out, failed sign-in,
lockout, role and staff changes, keys added, activated, tested, failing, removed, callback
rotation; who, when, from where; never a secret."""

import pytest
from django.test import Client

from uploads.models import ApiKey, AuditEvent, Membership

from .conftest import PASSWORD, TEST_KEY

pytestmark = pytest.mark.django_db(transaction=True)
A = AuditEvent.Action


def actions(since=0, **filters):
    return list(AuditEvent.objects.filter(pk__gt=since, **filters).order_by("pk").values_list("action", flat=True))


def mark():
    """The last event so far (the fixtures' own memberships and users write some)."""
    return AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def test_sign_ins_failures_lockouts_and_sign_outs_are_recorded_with_the_address(member, settings):
    settings.AXES_FAILURE_LIMIT = 2
    since = mark()
    client = Client(REMOTE_ADDR="10.7.7.7")
    client.post("/accounts/login/", {"username": member.username, "password": PASSWORD})
    client.post("/accounts/logout/")
    for _ in range(2):
        Client(REMOTE_ADDR="10.8.8.8").post("/accounts/login/", {"username": member.username, "password": "nope"})
    assert sorted(actions(since)) == sorted([A.SIGNED_IN, A.SIGNED_OUT, A.SIGN_IN_FAILED, A.SIGN_IN_FAILED, A.LOCKED_OUT])
    signed_in = AuditEvent.objects.get(action=A.SIGNED_IN)
    assert (signed_in.actor, signed_in.client_address) == (member, "10.7.7.7")
    assert AuditEvent.objects.filter(action=A.SIGN_IN_FAILED, client_address="10.8.8.8").count() == 2
    assert not AuditEvent.objects.filter(detail__contains="nope").exists()


def test_roles_staff_and_keys_are_recorded_with_who_did_it_and_no_secret(client, team_admin, team, member, emulator):
    client.force_login(team_admin)
    client.post("/admin/uploads/apikey/add/", {"team": team.pk, "label": "Main", "secret": TEST_KEY, "is_active": "on"})
    key = ApiKey.objects.get()
    client.post("/admin/uploads/apikey/", {"action": "test_keys", "_selected_action": [key.pk]})
    membership = Membership.objects.get(user=member)
    client.post(f"/admin/uploads/membership/{membership.pk}/change/", {"role": "admin", "username": member.username})
    client.post(f"/admin/uploads/membership/{membership.pk}/delete/", {"post": "yes"})
    client.post(f"/admin/uploads/apikey/{key.pk}/delete/", {"post": "yes"})
    done = actions(actor=team_admin)
    for action in (A.KEY_ADDED, A.KEY_TESTED, A.ROLE_CHANGED, A.STAFF_CHANGED, A.KEY_REMOVED):
        assert action in done, action
    role = AuditEvent.objects.get(action=A.ROLE_CHANGED, detail="member → admin")
    assert role.team == team and role.actor == team_admin
    assert AuditEvent.objects.filter(action=A.ROLE_CHANGED, detail="admin → none (removed from the team)").exists()
    text = " ".join(f"{e.subject} {e.detail}" for e in AuditEvent.objects.all())
    assert TEST_KEY not in text and TEST_KEY[-4:] in text  # masked only


def test_a_relay_marking_a_key_failing_and_a_rotation_are_recorded(member, team, api_key, processing):
    from uploads import actions as portal_actions, tasks

    since = mark()
    api_key.mark_failing("memories.ai refused the API key (authorization invalid) (code 0401)")
    api_key.mark_failing("again")  # still failing: recorded once
    tasks.perform(portal_actions.rotate_callback, processing.pk, member)
    assert actions(since) == [A.KEY_FAILING, A.CALLBACK_ROTATED]
    assert AuditEvent.objects.get(action=A.CALLBACK_ROTATED).actor == member


def test_only_superusers_read_the_trail(client, superuser, team_admin, member):
    Client().post("/accounts/login/", {"username": member.username, "password": PASSWORD})
    client.force_login(superuser)
    assert member.username in client.get("/admin/uploads/auditevent/").content.decode()
    client.force_login(team_admin)
    assert client.get("/admin/uploads/auditevent/").status_code == 403
