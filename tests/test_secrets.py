"""The API key: encrypted at rest, shown only as its last four characters, never leaked."""

import logging

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django_tasks_db.models import DBTaskResult

from uploads.models import ApiKey, Video

from .conftest import TEST_KEY, run_worker, sample

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_key_is_encrypted_at_rest(api_key):
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret_encrypted, last4 FROM uploads_apikey")
        stored, last4 = cursor.fetchone()
    assert TEST_KEY not in stored and last4 == TEST_KEY[-4:]
    assert ApiKey.objects.get().reveal() == TEST_KEY
    assert str(api_key) == f"Main key (…{TEST_KEY[-4:]})"


def test_the_key_appears_in_no_page_log_emulator_log_or_task_row(client, member, team_admin, superuser,
                                                                 api_key, emulator, settings, caplog):
    caplog.set_level(logging.DEBUG)
    settings.MEMPORTAL_PUBLIC_URL = "http://127.0.0.1:9"  # callbacks go nowhere; that is logged too
    bodies = []
    client.force_login(member)
    response = client.post("/videos/upload/", {"files": [SimpleUploadedFile(
        "a.mp4", sample("sample-h264-aac.mp4").read_bytes())]}, follow=True)
    bodies.append(response.content)
    run_worker("relay")
    emulator.inject("upload", "code", code="0401", msg="bad key")
    client.post("/videos/upload/", {"files": [SimpleUploadedFile(
        "b.mp4", sample("sample-h264-aac.mp4").read_bytes())]})
    run_worker("relay")  # marks the key failing: its reason must not hold the key either
    for video in Video.objects.all():
        bodies.append(client.get(f"/videos/{video.pk}/").content)
    bodies.append(client.get("/videos/").content)
    bodies.append(client.get("/videos/upload/").content)
    for user in (team_admin, superuser):
        client.force_login(user)
        for path in ["/admin/", "/admin/uploads/apikey/", f"/admin/uploads/apikey/{api_key.pk}/change/",
                     f"/admin/uploads/apikey/{api_key.pk}/history/", "/admin/uploads/video/",
                     "/admin/uploads/team/", "/admin/django_tasks_database/dbtaskresult/"]:
            response = client.get(path)
            assert response.status_code in (200, 403), path
            bodies.append(response.content)

    assert all(TEST_KEY.encode() not in body for body in bodies)
    assert TEST_KEY not in caplog.text
    assert all(TEST_KEY not in line for line in emulator.log_lines)
    for task in DBTaskResult.objects.all():
        assert TEST_KEY not in repr((task.args_kwargs, task.return_value, task.exception_class_path,
                                     task.traceback))
    assert ApiKey.objects.get().is_failing


def test_callback_tokens_stay_out_of_the_logs(member, team):
    import io

    from django.test import Client

    from memportal.logs import RedactingFilter

    from .conftest import make_video

    # The console handler settings.LOGGING installed, writing into a buffer for this test.
    console = next(h for h in logging.getLogger().handlers
                   if any(isinstance(f, RedactingFilter) for f in h.filters))
    buffer = io.StringIO()
    old_stream = console.setStream(buffer)
    try:
        video = make_video(member, team, status=Video.Status.PROCESSING, video_no="VI1")
        response = Client().post(video.callback_path, data=b"{oops", content_type="application/json")
    finally:
        console.setStream(old_stream)
    assert response.status_code == 400
    err = buffer.getvalue()
    assert "Bad Request: /callbacks/memories/…" in err
    assert video.callback_token not in err


def test_the_gunicorn_access_log_redacts_callback_tokens():
    from datetime import timedelta
    from types import SimpleNamespace

    from gunicorn.config import Config

    from memportal.logs import GunicornLogger

    environ = {"REQUEST_METHOD": "POST", "RAW_URI": "/callbacks/memories/s3cr3t-token/",
               "PATH_INFO": "/callbacks/memories/s3cr3t-token/", "SERVER_PROTOCOL": "HTTP/1.1"}
    atoms = GunicornLogger(Config()).atoms(SimpleNamespace(status="200 OK", sent=10, headers=[]),
                                           SimpleNamespace(headers=[]), environ, timedelta(seconds=0))
    assert "s3cr3t-token" not in repr(atoms)
    assert atoms["r"] == "POST /callbacks/memories/…/ HTTP/1.1"
