"""The settings page (time zone, outcome emails), the zone on every page, the account pages and the
error pages (issue 13, "Account pages" and the time zone of "My videos")."""

import re
from datetime import UTC, datetime

import pytest
from django.db import connection
from django.template import loader
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import path

from memportal.middleware import SESSION_ZONE
from memportal.urls import urlpatterns
from uploads.models import Profile

from .conftest import PASSWORD, make_video

pytestmark = pytest.mark.django_db


def save_settings(client, **fields):
    return client.post("/account/", {"time_zone": "", **fields})


def test_the_settings_page_shows_the_defaults_and_the_address(client, member):
    member.email = "mia@example.com"
    member.save()
    client.force_login(member)
    page = client.get("/account/")
    html = page.content.decode()
    assert page.status_code == 200 and page.headers["Cache-Control"].startswith("max-age=0")
    assert '<option value="" selected>UTC (the portal&#x27;s default)</option>' in html
    assert html.index('value=""') < html.index('value="Africa/Abidjan"') < html.index('value="Europe/Paris"')
    assert "mia@example.com" in html and "no email can be sent" not in html
    assert "data-browser-zone hidden" in html and "memportal/profile.js" in html
    assert '<a href="/account/" aria-current="page">Settings</a>' in html
    assert not Profile.objects.exists()  # looking is not saving


def test_it_saves_the_zone_and_the_emails(client, member):
    client.force_login(member)
    response = save_settings(client, time_zone="Europe/Paris", email_when_ready="on")
    assert response.status_code == 302 and response.url == "/account/"
    profile = Profile.objects.get(user=member)
    assert (profile.time_zone, profile.email_when_ready, profile.email_when_failed) == ("Europe/Paris", True, False)
    assert client.session[SESSION_ZONE] == "Europe/Paris"
    page = client.get("/account/").content.decode()
    assert "Your settings are saved." in page and '<option value="Europe/Paris" selected>' in page
    assert "Times are shown in Europe/Paris" in page
    save_settings(client, email_when_failed="on")
    profile.refresh_from_db()
    assert (profile.time_zone, profile.email_when_ready, profile.email_when_failed) == ("", False, True)
    assert Profile.objects.count() == 1


def test_it_refuses_a_zone_it_does_not_know(client, member):
    client.force_login(member)
    response = save_settings(client, time_zone="Mars/Olympus_Mons", email_when_ready="on")
    html = response.content.decode()
    assert response.status_code == 200 and not Profile.objects.exists()
    assert "There is a problem" in html and 'aria-invalid="true"' in html
    assert "“Mars/Olympus_Mons” is not a time zone the portal knows: pick one from the list." in html


def test_it_says_when_no_email_can_be_sent(client, member):
    member.email = ""
    member.save()
    client.force_login(member)
    assert "Your account has no email address, so no email can be sent." in client.get("/account/").content.decode()


def test_times_are_shown_in_the_chosen_zone_with_its_name(client, member, team):
    video = make_video(member, team, created_at=datetime(2026, 1, 15, 12, 0, tzinfo=UTC))
    client.force_login(member)
    assert re.search(r"2026-01-15 12:00(:00)? UTC", client.get(f"/videos/{video.pk}/").content.decode())
    save_settings(client, time_zone="Asia/Tokyo")
    page = client.get(f"/videos/{video.pk}/").content.decode()
    assert re.search(r"2026-01-15 21:00(:00)? JST", page), "the video page shows its upload time in Tokyo's zone"
    assert re.search(r"Times are shown in Asia/Tokyo \(now \d\d:\d\d JST\)", client.get("/account/").content.decode())


def test_the_zone_is_read_once_per_session_and_follows_the_profile(client, member, team):
    Profile.objects.create(user=member, time_zone="America/New_York")  # set in another session
    client.force_login(member)
    video = make_video(member, team, created_at=datetime(2026, 1, 15, 12, 0, tzinfo=UTC))
    assert re.search(r"2026-01-15 07:00(:00)? EST", client.get(f"/videos/{video.pk}/").content.decode())
    assert client.session[SESSION_ZONE] == "America/New_York"
    with CaptureQueriesContext(connection) as queries:
        client.get("/account/")
    assert not [q for q in queries.captured_queries if "uploads_profile" in q["sql"]][1:], "one read of the profile"
    with CaptureQueriesContext(connection) as queries:
        client.get(f"/videos/{video.pk}/")
    assert not [q for q in queries.captured_queries if "uploads_profile" in q["sql"]], "kept in the session"


def test_a_signed_out_page_uses_the_portals_zone(client, settings):
    settings.TIME_ZONE = "Europe/Paris"
    page = client.get("/accounts/login/")
    assert page.status_code == 200 and "Settings" not in page.content.decode()


def test_the_password_change_pages(client, member):
    client.force_login(member)
    form = client.get("/accounts/password_change/").content.decode()
    assert '<label for="id_old_password">' in form and 'autocomplete="current-password"' in form
    assert 'aria-current="page">Change password</a>' in form
    wrong = client.post("/accounts/password_change/", {"old_password": "nope", "new_password1": "x",
                                                       "new_password2": "y"}).content.decode()
    assert "There is a problem" in wrong and 'href="#id_old_password"' in wrong
    done = client.post("/accounts/password_change/", {"old_password": PASSWORD, "new_password1": "another-long-pass-81",
                                                      "new_password2": "another-long-pass-81"}, follow=True)
    assert "Your password was changed." in done.content.decode()


def test_signing_out_says_so(client, member):
    client.force_login(member)
    response = client.post("/accounts/logout/")
    html = response.content.decode()
    assert response.status_code == 200 and "You are signed out" in html
    assert '<a class="button" href="/accounts/login/">Sign in again</a>' in html
    assert "Sign out (" not in html and "data-notices-url" not in html
    assert client.get("/videos/").status_code == 302


def boom(request):
    raise RuntimeError("a bug")


def forbidden(request):
    from django.core.exceptions import PermissionDenied

    raise PermissionDenied


urlpatterns += [path("test-boom/", boom), path("test-forbidden/", forbidden)]


@pytest.fixture
def production(settings):
    settings.DEBUG = False
    settings.ROOT_URLCONF = __name__


def landmarks(html):
    return "<header" in html and '<main id="main"' in html and 'href="#main">Skip to content' in html


def test_an_unknown_address_gets_the_portals_404(client, member, production):
    client.force_login(member)
    response = client.get("/no-such-page/")
    html = response.content.decode()
    assert response.status_code == 404 and "Page not found" in html and landmarks(html)
    assert "Go to my videos" in html and "data-notices-url" in html
    anonymous = Client().get("/no-such-page/")
    assert anonymous.status_code == 404 and "Sign in" in anonymous.content.decode()


def test_a_refusal_gets_the_portals_403(client, member, production):
    client.force_login(member)
    response = client.get("/test-forbidden/")
    assert response.status_code == 403 and "You may not do that" in response.content.decode()
    assert landmarks(response.content.decode())


def test_a_crash_gets_the_portals_500(client, member, production):
    client.force_login(member)
    client.raise_request_exception = False
    response = client.get("/test-boom/")
    html = response.content.decode()
    assert response.status_code == 500 and "Something went wrong on our side" in html and landmarks(html)
    assert "a bug" not in html and "RuntimeError" not in html


def test_the_500_page_needs_no_context_and_no_database(django_assert_num_queries):
    with django_assert_num_queries(0):
        html = loader.get_template("500.html").render()  # as Django renders it: no context, no request
    assert "Something went wrong on our side" in html and landmarks(html)
