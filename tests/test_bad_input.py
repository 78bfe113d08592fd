"""Bad input ends in a clear 4xx or a form error, never a 500 or a stuck video; nothing from
outside writes a line of its own into the log (issue 10, findings 4 and 5)."""

import io
import json
import logging

import pytest
from django.test import Client

from uploads.models import ApiKey, CallbackRecord, Video

from .conftest import PASSWORD, queued_video, run_worker, sample

pytestmark = pytest.mark.django_db(transaction=True)


def callback(video, body):
    data = body if isinstance(body, bytes) else json.dumps(body)
    return Client().post(video.callback_path, data=data, content_type="application/json")


def test_an_api_key_with_a_character_no_http_header_carries_is_a_form_error(client, team_admin, team):
    client.force_login(team_admin)
    response = client.post("/admin/uploads/apikey/add/", {"team": team.pk, "label": "Pasted",
                                                           "secret": "sk-mavi-“0123456789abcdef”", "is_active": "on"})
    assert response.status_code == 200 and "plain letters, digits and punctuation" in response.content.decode()
    assert not ApiKey.objects.exists()


def test_a_stored_key_with_such_a_character_fails_as_key_trouble_not_a_stuck_relay(member, team, emulator):
    key = ApiKey(team=team, label="Old key")
    key.set_secret("sk-mavi-łódź-0123456789abcdef")  # stored before the form refused it
    key.save()
    video = queued_video(member, team)
    run_worker("relay")
    video.refresh_from_db()
    key.refresh_from_db()
    assert video.status == "queued" and video.attempts == 0 and key.is_failing
    assert "characters an HTTP header cannot carry" in key.last_error


def test_a_callback_nested_thousands_deep_is_400(processing):
    response = callback(processing, b"[" * 12000 + b"]" * 12000)
    assert response.status_code == 400 and "nested too deeply" in response.json()["message"]


def test_a_callback_with_a_nul_byte_is_refused_and_not_stored(processing):
    response = callback(processing, b'{"videoNo": "VI1", "status": "PARSE\x00"}')
    assert response.status_code == 400 and not CallbackRecord.objects.exists()


def test_the_admin_autocomplete_on_a_reverse_relation_is_403(client, superuser, team, api_key):
    client.force_login(superuser)
    response = client.get("/admin/autocomplete/", {"app_label": "uploads", "model_name": "team",
                                                   "field_name": "api_keys", "term": "a"})
    assert response.status_code == 403


def test_a_long_title_on_several_files_fits_with_its_number(client, member, team, api_key):
    from django.core.files.uploadedfile import SimpleUploadedFile

    client.force_login(member)
    files = [SimpleUploadedFile(f"clip{i}.mp4", sample("sample-h264-aac.mp4").read_bytes()) for i in range(3)]
    client.post("/videos/upload/", {"files": files, "title": "x" * 200})
    titles = sorted(Video.objects.values_list("title", flat=True))
    assert len(titles) == 3 and all(len(t) <= 200 for t in titles)
    assert [t[-4:] for t in titles] == [" (1)", " (2)", " (3)"]


def test_a_newline_from_outside_does_not_forge_a_log_line(processing):
    handler = logging.getLogger().handlers[0]  # the console handler of settings.LOGGING
    stream = io.StringIO()
    old = handler.setStream(stream)
    try:
        response = callback(processing, {"videoNo": "VI1\n2026-12-02 INFO uploads ready", "status": "PARSE"})
        logging.getLogger("uploads.test").warning("value from outside: %s", "a\nFORGED line\r\x1b[31m")
    finally:
        handler.setStream(old)
    assert response.status_code == 400
    lines = stream.getvalue().splitlines()
    assert not any(line.startswith(("2026-12-02 INFO uploads ready", "FORGED")) for line in lines)
    messages = [json.loads(line)["message"] for line in lines]  # each line one whole event
    assert "value from outside: a\\x0aFORGED line\\x0d\\x1b[31m" in messages


@pytest.mark.parametrize("path", ["/ask/", "/videos/states/", "/notices/"])
def test_a_form_only_address_opened_in_the_browser_says_so_in_words(client, member, path):
    """A reload or a bookmark of what only a form sends: a page that says what happened, not a blank 405."""
    client.force_login(member)
    method = client.post if path == "/notices/" else client.get
    response = method(path, HTTP_ACCEPT="text/html,application/xhtml+xml,*/*;q=0.8")
    assert response.status_code == 405 and response.headers["Allow"]
    page = response.content.decode()
    assert "This address is for a form" in page and 'href="/videos/"' in page
    # the page is a page as any other: its security headers, not kept by a cache for a program
    assert "default-src" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY" and "Accept" in response.headers["Vary"]
    assert "no-store" in response.headers["Cache-Control"]  # it names the user


def test_a_program_calling_with_the_wrong_method_gets_a_bare_405(processing):
    response = Client().get(processing.callback_path, HTTP_ACCEPT="application/json")
    assert response.status_code == 405 and response.content == b"" and response.headers["Allow"] == "POST"
