"""Sessions end when idle and in any case after a maximum lifetime; the live poll is not activity;
adding or changing an API key asks for the password again (issue 10, "Sessions")."""

import time

import pytest

from memportal.sessions import CONFIRMED_AT, SEEN_AT, SIGNED_IN_AT

from .conftest import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)


def shift(client, **seconds_ago):
    """Move the session's own times back (the clock stays: only the stored times move)."""
    session = client.session
    for name, ago in seconds_ago.items():
        session[name] = time.time() - ago
    session.save()


def test_an_idle_session_ends(client, member, settings):
    settings.MEMPORTAL_SESSION_IDLE_SECONDS = 600
    client.force_login(member)
    assert client.get("/videos/").status_code == 200
    shift(client, **{SEEN_AT: 601})
    response = client.get("/videos/")
    assert response.status_code == 302 and response.url.startswith("/accounts/login/")


def test_a_busy_session_ends_at_its_maximum_lifetime(client, member, settings):
    settings.MEMPORTAL_SESSION_MAX_SECONDS = 3600
    client.force_login(member)
    shift(client, **{SIGNED_IN_AT: 3601, SEEN_AT: 1})
    assert client.get("/videos/").status_code == 302


def test_the_live_poll_does_not_keep_a_session_alive(client, member, settings):
    settings.MEMPORTAL_SESSION_IDLE_SECONDS = 600
    client.force_login(member)
    shift(client, **{SEEN_AT: 500})
    seen = client.session[SEEN_AT]
    for _ in range(3):
        assert client.post("/videos/states/", {"ids": []}, content_type="application/json").status_code == 200
    assert client.session[SEEN_AT] == seen
    shift(client, **{SEEN_AT: 601})
    assert client.post("/videos/states/", {"ids": []}, content_type="application/json").status_code == 401


def test_activity_keeps_it(client, member, settings):
    settings.MEMPORTAL_SESSION_IDLE_SECONDS = 600
    client.force_login(member)
    shift(client, **{SEEN_AT: 500})
    assert client.get("/videos/").status_code == 200
    shift(client, **{SEEN_AT: 0})  # what the request above wrote, near enough
    assert client.get("/videos/").status_code == 200


def test_adding_a_key_asks_for_the_password_when_the_sign_in_is_not_recent(client, team_admin, team, settings):
    settings.MEMPORTAL_REAUTH_SECONDS = 300
    client.force_login(team_admin)
    assert client.get("/admin/uploads/apikey/add/").status_code == 200  # just signed in
    shift(client, **{CONFIRMED_AT: 301})
    response = client.get("/admin/uploads/apikey/add/")
    assert response.status_code == 302 and "/admin/uploads/apikey/confirm/" in response.url
    confirm = response.url
    assert "That is not your password" in client.post(confirm, {"password": "wrong"}).content.decode()
    response = client.post(confirm, {"password": PASSWORD})
    assert response.status_code == 302 and response.url == "/admin/uploads/apikey/add/"
    assert client.get("/admin/uploads/apikey/add/").status_code == 200


def test_the_confirmation_never_sends_anyone_elsewhere(client, team_admin, settings):
    client.force_login(team_admin)
    response = client.post("/admin/uploads/apikey/confirm/?next=https://evil.example/", {"password": PASSWORD})
    assert response.url == "/admin/uploads/apikey/"
