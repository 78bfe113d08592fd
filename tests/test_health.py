"""/healthz: "ok" or 503 for load balancers and nothing more; the details (database, storage,
each queue's worker by its ping, the clock, the oldest queued relay, failing keys, the relay
hold) for the health token or a superuser; the clock's pings that never pile up."""

import json
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import boto3
import pytest
import requests
from django.db import connection
from django.utils import timezone
from django_tasks_db.models import DBTaskResult
from storages.backends.s3 import S3Storage

from uploads import health
from uploads.management.commands.reconcile import clock_round
from uploads.models import ApiKey, RelayHold, Video, WorkerPing

from .conftest import TEST_KEY, make_video, run_worker

pytestmark = pytest.mark.django_db(transaction=True)  # real workers run in the test (tests/conftest.py)
TOKEN = "health-token-0123456789abcdef-0123456789abcdef"
QUEUES = ("relay", "default")


@pytest.fixture
def token(settings):
    settings.MEMPORTAL_HEALTH_TOKEN = TOKEN
    return TOKEN


def details(client, token=TOKEN):
    response = client.get("/healthz", headers={"Authorization": f"Bearer {token}"})
    assert response["Content-Type"] == "application/json", response.content
    return response.status_code, response.json()


def public_headers(response):
    """The headers a response carries: every name, and the values of all but those that differ
    from one request to the next anyway (the moment, the request's id)."""
    return {k: "…" if k in ("Expires", "Date", "X-Request-ID") else v for k, v in response.headers.items()}


def shift_back(seconds):
    """Time passes for the pings (their stored times move back, as make_due does for tasks)."""
    back = timedelta(seconds=seconds)
    for ping in WorkerPing.objects.all():
        for field in ("clock_at", "enqueued_at", "ran_at", "ran_enqueued_at"):
            if getattr(ping, field):
                setattr(ping, field, getattr(ping, field) - back)
        ping.save()
    for row in DBTaskResult.objects.filter(task_path=health.ping.module_path):
        row.enqueued_at -= back
        row.save(update_fields=["enqueued_at"])


def ping_rows(queue, status=None):
    rows = DBTaskResult.objects.filter(task_path=health.ping.module_path, queue_name=queue)
    return rows.filter(status=status) if status else rows


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- in public: "ok" or 503, nothing else -------------------------------------------------------

def test_in_public_it_says_ok_and_nothing_else_whatever_is_wrong(client, token, member, team, api_key):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.content == b"ok"
    assert response["Content-Type"].startswith("text/plain")
    assert "no-store" in response["Cache-Control"] and "Authorization" in response["Vary"]
    # A hold, a failing key, an old queued video, no worker, no clock: warnings, for the details only.
    RelayHold.objects.create(reason="memories.ai answered HTTP 404 to POST /serve/api/video/upload")
    ApiKey.objects.filter(pk=api_key.pk).update(failing_since=timezone.now(), last_error="0401 refused")
    make_video(member, team)
    Video.objects.update(created_at=timezone.now() - timedelta(days=2),
                         status_changed_at=timezone.now() - timedelta(days=2))
    response = client.get("/healthz")
    assert response.status_code == 200 and response.content == b"ok"
    assert client.head("/healthz").status_code == 200


@pytest.mark.parametrize("header", [None, "Bearer wrong-token", f"Bearer {TOKEN}x", f"Basic {TOKEN}", TOKEN,
                                    "Bearer "])
def test_without_the_right_token_not_even_the_headers_differ(client, token, header):
    plain = client.get("/healthz")
    response = client.get("/healthz", headers={"Authorization": header} if header else {})
    assert (response.status_code, response.content) == (200, b"ok")
    assert public_headers(response) == public_headers(plain)
    assert TOKEN not in json.dumps(dict(response.headers))


def test_no_token_configured_gives_nobody_details_by_token(client, settings):
    settings.MEMPORTAL_HEALTH_TOKEN = ""
    for header in ("Bearer ", "Bearer", "Bearer  ", f"Bearer {TOKEN}"):
        assert client.get("/healthz", headers={"Authorization": header}).content == b"ok"


def test_details_are_for_the_token_and_superusers_not_members_or_team_admins(
        client, token, superuser, member, team_admin):
    status, answer = details(client)
    assert status == 200 and answer["database"]["reachable"] and answer["database"]["round_trip_ms"] >= 0
    assert set(answer) >= {"status", "problems", "database", "storage", "clock", "queues", "oldest_queued_relay",
                           "failing_keys", "relay_hold"}
    for user in (member, team_admin):
        client.force_login(user)
        assert client.get("/healthz").content == b"ok"
    client.force_login(superuser)
    assert client.get("/healthz").json()["database"]["status"] == "ok"


# --- fail: the database or the storage ----------------------------------------------------------

@pytest.fixture
def database_down():
    """The database stops answering, as an outage would: this process's next connection fails
    (SQLite: its file cannot be opened; PostgreSQL: nothing listens on the port)."""
    saved = dict(connection.settings_dict)
    connection.close()
    if connection.vendor == "sqlite":
        connection.settings_dict["NAME"] = str(Path(saved["NAME"]).parent / "gone" / "memportal.sqlite3")
    else:
        connection.settings_dict["PORT"] = str(free_port())
    yield
    connection.close()
    connection.settings_dict.update(saved)


def test_a_database_that_does_not_answer_is_503(client, token, database_down):
    response = client.get("/healthz")
    assert response.status_code == 503 and response.content == b"unavailable"
    status, answer = details(client)
    assert status == 503 and answer["status"] == "fail"
    assert answer["database"] == {"reachable": False, "round_trip_ms": None, "error": "OperationalError",
                                  "status": "fail"}
    assert answer["queues"] == {"status": "unknown"} and answer["problems"][0].startswith("the database")


def test_a_storage_that_cannot_be_reached_is_503_and_the_pings_say_it_takes_no_write(
        client, token, settings, tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    working = settings.STORAGES
    settings.STORAGES = {**working, "default": {"BACKEND": "django.core.files.storage.FileSystemStorage",
                                                "OPTIONS": {"location": tmp_path / "a-file" / "media"}}}
    response = client.get("/healthz")
    assert response.status_code == 503 and response.content == b"unavailable"
    status, answer = details(client)
    assert status == 503 and answer["storage"]["status"] == "fail" and not answer["storage"]["reachable"]
    clock_round(60)
    run_worker("default")
    settings.STORAGES = working  # the web process reaches it again; the worker's write had failed
    status, answer = details(client)
    assert status == 200 and answer["storage"]["status"] == "warn" and answer["storage"]["writable"] is False
    assert answer["storage"]["write_detail"].startswith(("NotADirectoryError", "FileExistsError"))


# --- the pings -----------------------------------------------------------------------------------

def test_the_clock_pings_each_queue_and_health_says_when_its_worker_last_ran(client, token):
    status, answer = details(client)
    assert answer["clock"]["status"] == "warn" and answer["queues"]["relay"]["status"] == "warn"

    clock_round(60)
    assert [ping_rows(q, "READY").count() for q in QUEUES] == [1, 1]
    shift_back(30)  # the pings wait 30 s for their workers
    run_worker("default")
    status, answer = details(client)
    default, relay = answer["queues"]["default"], answer["queues"]["relay"]
    assert default["status"] == "ok" and default["last_ran_seconds_ago"] < 5
    assert 29 <= default["last_waited_seconds"] < 35 and default["ping_waiting_seconds"] is None
    assert default["storage_ok"] is True and answer["storage"]["writable"] is True
    # No relay worker yet: its ping waits, a warning that leaves the public answer alone.
    assert relay["status"] == "warn" and relay["last_ran_seconds_ago"] is None and relay["ping_waiting_seconds"] >= 29
    assert status == 200 and answer["status"] == "warn" and any("relay" in p for p in answer["problems"])
    assert client.get("/healthz").content == b"ok"

    run_worker("relay")
    status, answer = details(client)
    assert answer["status"] == "ok" and answer["problems"] == [], answer
    assert all(answer["queues"][q]["status"] == "ok" for q in QUEUES)

    # Four minutes on (past 3 x 60 s) and no worker since: each queue's last ping is too old.
    shift_back(240)
    clock_round(60)
    status, answer = details(client)
    assert status == 200 and answer["clock"]["status"] == "ok"
    for queue in QUEUES:
        state = answer["queues"][queue]
        assert state["status"] == "warn" and state["last_ran_seconds_ago"] >= 240
        assert state["ping_waiting_seconds"] is not None and state["warn_after_seconds"] == 180
    shift_back(200)  # and the clock stopped too
    assert details(client)[1]["clock"]["status"] == "warn"


def test_pings_never_pile_up():
    for _ in range(20):  # twenty minutes without any worker
        clock_round(60)
    assert [ping_rows(q).count() for q in QUEUES] == [1, 1] and WorkerPing.objects.count() == 2
    for _ in range(5):  # with workers: each round's finished ping is dropped by the next
        run_worker("relay")
        run_worker("default")
        clock_round(60)
    assert [ping_rows(q).count() for q in QUEUES] == [1, 1] and WorkerPing.objects.count() == 2
    # A worker killed while running its ping leaves the row RUNNING: once it is older than
    # 3 rounds the next round pings again (one more row, not one per round).
    ping_rows("relay").update(status="RUNNING", started_at=timezone.now() - timedelta(minutes=10))
    clock_round(60)
    clock_round(60)
    assert ping_rows("relay", "READY").count() == 1 and ping_rows("relay").count() == 2


def test_the_oldest_queued_relay_is_told_and_warned_about_after_six_hours(client, token, member, team):
    make_video(member, team, name="old.mp4")
    make_video(member, team, name="new.mp4")
    gone = make_video(member, team, name="deleted.mp4")
    now = timezone.now()
    Video.objects.filter(original_name="old.mp4").update(created_at=now - timedelta(hours=30),
                                                         status_changed_at=now - timedelta(hours=2))
    Video.objects.filter(pk=gone.pk).update(deleted_at=now, created_at=now - timedelta(days=9),
                                            status_changed_at=now - timedelta(days=9))
    make_video(member, team, status=Video.Status.PROCESSING, video_no="VI1", name="sent.mp4")
    oldest = details(client)[1]["oldest_queued_relay"]
    assert oldest["count"] == 2 and oldest["status"] == "ok"
    assert 30 * 3600 - 5 <= oldest["age_seconds"] <= 30 * 3600 + 5  # since its upload
    assert 2 * 3600 - 5 <= oldest["queued_for_seconds"] <= 2 * 3600 + 5  # since it was last queued
    Video.objects.filter(original_name="old.mp4").update(status_changed_at=now - timedelta(hours=7))
    status, answer = details(client)
    assert status == 200 and answer["oldest_queued_relay"]["status"] == "warn"


def test_a_failing_key_is_counted_without_any_key_material(client, token, api_key, other_api_key):
    ApiKey.objects.filter(pk=api_key.pk).update(
        failing_since=timezone.now(), last_error="memories.ai refused the key (code 0401)")
    response = client.get("/healthz", headers={"Authorization": f"Bearer {TOKEN}"})
    failing = response.json()["failing_keys"]
    assert failing["status"] == "warn" and failing["count"] == 1
    assert failing["keys"] == [{"id": api_key.pk, "label": "Main key", "team_id": api_key.team_id,
                                "failing_since": failing["keys"][0]["failing_since"]}]
    api_key.refresh_from_db()
    text = response.content.decode()
    for secret in (TEST_KEY, TEST_KEY[-4:], api_key.masked, api_key.fingerprint, api_key.secret_encrypted, "0401"):
        assert secret not in text


def test_the_relay_hold_is_in_the_details(client, token):
    hold = RelayHold.objects.create(reason="memories.ai answered HTTP 404 to POST /serve/api/video/upload")
    answer = details(client)[1]
    assert answer["relay_hold"]["status"] == "warn" and answer["relay_hold"]["in_force"]
    assert answer["relay_hold"]["reason"] == hold.reason and answer["relay_hold"]["since"].endswith("Z")


def test_on_s3_the_web_process_asks_the_bucket_at_most_every_ten_seconds(monkeypatch):
    port = free_port()
    server = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 20
    try:
        while True:
            try:
                requests.get(endpoint, timeout=2)
                break
            except requests.RequestException:
                assert time.monotonic() < deadline, "moto_server did not start"
                time.sleep(0.1)
        credentials = {"region_name": "us-east-1", "access_key": "health", "secret_key": "health-secret"}
        storage = S3Storage(bucket_name="health-bucket", endpoint_url=endpoint, **credentials)
        monkeypatch.setitem(health._remote, "at", float("-inf"))
        assert health.storage_reachable(storage) == (False, "the bucket answered HeadBucket with HTTP 404")
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="health",
                     aws_secret_access_key="health-secret").create_bucket(Bucket="health-bucket")
        assert health.storage_reachable(storage)[0] is False  # the answer of a moment ago
        monkeypatch.setitem(health._remote, "at", float("-inf"))
        assert health.storage_reachable(storage) == (True, "")
        assert health.probe_storage("relay", storage) == (True, "")
        assert storage.listdir(health.PROBE_FOLDER) == ([], [])  # the probe object is gone again
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert health.storage_reachable(storage) == (True, "")  # still the cached answer
    monkeypatch.setitem(health._remote, "at", float("-inf"))
    assert health.storage_reachable(storage) == (False, "EndpointConnectionError")
    assert health.probe_storage("relay", storage)[0] is False
