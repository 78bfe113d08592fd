"""Log lines: one JSON event a line, with the request id from the request to the tasks it enqueues
(run by a real worker process) and to gunicorn's access line; the plain format for a terminal."""

import io
import json
import logging
import re
import socket
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
import requests
from cryptography.fernet import Fernet
from django.test import Client
from django_tasks_db.models import DBTaskResult

from memportal import logs
from uploads.models import Video

from .conftest import ROOT, sample, start_worker_process, stop_worker, wait_until, worker_env
from .test_end_to_end import signed_in_session
from .test_settings import PRODUCTION, manage


def lines_of_the_root_handler(action):
    """What settings.LOGGING's console handler writes while `action` runs, line by line."""
    handler = logging.getLogger().handlers[0]
    stream = io.StringIO()
    old = handler.setStream(stream)
    try:
        action()
    finally:
        handler.setStream(old)
    return stream.getvalue().splitlines()


def json_events(text):
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_a_log_line_is_one_json_event_with_its_request_task_and_exception():
    def log():
        with logs.bound(request_id="req-1", task="relay_video", task_id="41", video_id="v-9"):
            try:
                raise ValueError("boom\nat /callbacks/memories/s3cr3t-token/")
            except ValueError:
                logging.getLogger("uploads.test").exception("relay of video %s failed", "v-9")
        logging.getLogger("uploads.test").warning("outside any request: “quoted” \u2028 and \x85")

    lines = lines_of_the_root_handler(log)
    assert len(lines) == 2  # a traceback and a line separator included
    failed, outside = (json.loads(line) for line in lines)
    assert datetime.fromisoformat(failed["time"]).utcoffset().total_seconds() == 0 and failed["time"].endswith("Z")
    assert {key: failed[key] for key in ("level", "logger", "message", "request_id", "task", "task_id", "video_id")} == {
        "level": "ERROR", "logger": "uploads.test", "message": "relay of video v-9 failed", "request_id": "req-1",
        "task": "relay_video", "task_id": "41", "video_id": "v-9"}
    assert failed["exception"].startswith("Traceback") and "ValueError: boom\nat /callbacks/memories/…/" in failed[
        "exception"]
    assert "s3cr3t-token" not in "".join(lines)
    assert outside["request_id"] is None and "task" not in outside
    assert outside["message"] == "outside any request: “quoted” \\u2028 and \\x85"  # readable, and one line


def test_the_plain_format_is_the_readable_line_with_the_short_request_id():
    record = logging.LogRecord("uploads.tasks", logging.INFO, __file__, 1, "relay of video %s failed", ("v-9",), None)
    record.request_id, record.task, record.video_id = "0123456789abcdef", "relay_video", "5f3e2a10-0000-4000"
    line = logs.PlainFormatter().format(record)
    assert line.endswith(" INFO uploads.tasks relay of video v-9 failed [req 01234567 relay_video video 5f3e2a10]")
    bare = logging.LogRecord("django", logging.WARNING, __file__, 1, "no context", (), None)
    assert logs.PlainFormatter().format(bare).endswith(" WARNING django no context")


def test_a_log_format_other_than_json_or_plain_is_refused():
    result = manage("check", **PRODUCTION, MEMPORTAL_FERNET_KEYS=Fernet.generate_key().decode(),
                    MEMPORTAL_LOG_FORMAT="xml")
    assert result.returncode != 0 and "MEMPORTAL_LOG_FORMAT must be json or plain, not 'xml'" in result.stderr


def test_each_response_has_a_request_id_of_its_own_that_a_client_cannot_choose(client, member):
    client.force_login(member)
    first = client.get("/videos/", HTTP_X_REQUEST_ID="chosen-by-the-client")
    second = client.get("/videos/")
    assert re.fullmatch(r"[0-9a-f]{32}", first["X-Request-ID"]) and first["X-Request-ID"] != second["X-Request-ID"]


@pytest.mark.parametrize("given, taken", [
    ("proxy-req.42_A", True), ("x" * 64, True), ("x" * 65, False), ("two words", False), ("é", False),
    ("a\nb", False), ("", False)])
def test_behind_the_proxy_its_request_id_is_taken_when_it_is_sane(client, db, settings, given, taken):
    settings.MEMPORTAL_BEHIND_PROXY = True
    answered = client.get("/accounts/login/", HTTP_X_REQUEST_ID=given)["X-Request-ID"]
    assert answered == given if taken else re.fullmatch(r"[0-9a-f]{32}", answered)


def test_djangos_line_about_an_error_response_carries_the_request_id(processing):
    responses = []
    lines = lines_of_the_root_handler(lambda: responses.append(
        Client().post(processing.callback_path, data=b"{oops", content_type="application/json")))
    bad = [event for event in map(json.loads, lines) if event["logger"] == "django.request"]
    assert [event["message"] for event in bad] == ["Bad Request: /callbacks/memories/…/"]
    assert bad[0]["request_id"] == responses[0]["X-Request-ID"]
    assert processing.callback_token not in "".join(lines)


@pytest.mark.django_db(transaction=True)
def test_an_uploads_request_id_is_in_the_log_lines_of_its_relay_in_a_worker_process(
        live_server, member, team, api_key, emulator):
    session = signed_in_session(live_server.url, member.username)
    upload = session.post(f"{live_server.url}/videos/upload/", data={
        "csrfmiddlewaretoken": session.cookies["csrftoken"]}, allow_redirects=False,
        files={"files": ("clip.mp4", sample("sample-h264-aac.mp4").read_bytes(), "video/mp4")})
    assert upload.status_code == 302
    request_id, video = upload.headers["X-Request-ID"], Video.objects.get()
    emulator.inject("upload", "http", status=503)  # one failed attempt the task logs, and a retry it plans

    worker = start_worker_process("relay", MEMORIES_API_BASE_URL=emulator.base_url,
                                  MEMPORTAL_UPLOAD_INTERVAL_SECONDS=0, MEMPORTAL_RETRY_BASE_SECONDS=1)
    try:
        wait_until(lambda: Video.objects.get().status == "processing", message="the relay, after one retry")
    finally:
        output = stop_worker(worker)

    relay_lines = [event for event in json_events(output) if event.get("task") == "relay_video"]
    assert relay_lines and {event["request_id"] for event in relay_lines} == {request_id}
    failed = [event for event in relay_lines if event["logger"] == "uploads.tasks"]
    assert failed[0]["message"].startswith(f"relay of video {video.pk} failed")
    assert failed[0]["video_id"] == str(video.pk) and failed[0]["task_id"]
    # The first attempt and the retry it enqueued: two task rows, one request.
    assert len({event["task_id"] for event in relay_lines}) == 2
    rows = DBTaskResult.objects.filter(task_path__in=["uploads.tasks.relay_video", "uploads.tasks.check_video"])
    assert {row.args_kwargs["kwargs"]["request_id"] for row in rows} == {request_id}
    assert all(row.args_kwargs["args"][0] == str(video.pk) for row in rows)  # positional arguments as before


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.django_db(transaction=True)
def test_gunicorns_access_line_is_json_with_the_request_id_and_without_the_token(processing):
    port, given = free_port(), "proxy-7.a_b"
    web = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "memportal.wsgi", "--bind", f"127.0.0.1:{port}",
         "--workers", "1", "--access-logfile", "-", "--logger-class", "memportal.logs.GunicornLogger"],
        cwd=ROOT, env=worker_env(DJANGO_BEHIND_PROXY="true"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)

    def answers():
        try:
            return requests.get(f"http://127.0.0.1:{port}/accounts/login/", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    try:
        wait_until(answers, timeout=30, message="gunicorn answering")
        response = requests.get(f"http://127.0.0.1:{port}{processing.callback_path}", headers={"X-Request-ID": given},
                                timeout=5)
    finally:
        web.terminate()
        out, err = web.communicate(timeout=20)
    assert response.status_code == 405 and response.headers["X-Request-ID"] == given
    assert out.strip() and all(line.startswith("{") for line in out.splitlines() + err.splitlines())
    access = next(event for event in json_events(out) if event["path"].startswith("/callbacks/"))
    assert {key: access[key] for key in ("logger", "request_id", "method", "path", "status")} == {
        "logger": "gunicorn.access", "request_id": given, "method": "GET", "path": "/callbacks/memories/…/",
        "status": 405}
    assert '"GET /callbacks/memories/…/ HTTP/1.1" 405' in access["message"]
    assert any(event["logger"] == "django.request" and event["request_id"] == given for event in json_events(err))
    assert any(event["logger"] == "gunicorn.error" for event in json_events(err))  # gunicorn's own lines too
    assert processing.callback_token not in out + err


def test_every_task_runs_in_its_log_context():
    from django.tasks import Task

    from uploads import tasks

    found = {name: value for name, value in vars(tasks).items() if isinstance(value, Task)}
    assert found and all(getattr(value.func, "__wrapped__", None) for value in found.values()), (
        "a @task without @logs.in_task_context under it: " + ", ".join(
            name for name, value in found.items() if not hasattr(value.func, "__wrapped__")))


@pytest.mark.parametrize("path, written", [
    ("/callbacks/memories/Zm9vYmFyYmF6cXV4cXV1eA/", "/callbacks/memories/…/"),
    ("/accounts/reset/MQ/cz7k1p-5b9d3e0f4a2c8e1d7f6b/", "/accounts/reset/MQ/…/"),
    ("/accounts/reset/MQ/set-password/", "/accounts/reset/MQ/set-password/"),  # no secret left in it
])
def test_a_path_holding_a_secret_is_written_without_it(path, written):
    assert logs.clean(f"GET {path} 302") == f"GET {written} 302"
