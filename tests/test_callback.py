"""The callback endpoint memories.ai POSTs to: every answer it gives, and what it changes."""

import json

import pytest
from django.test import Client

from uploads.memories import UploadResult
from uploads.models import CallbackRecord, Video

from .conftest import accept_relay, make_video


def post(video_or_path, body, **extra):
    path = video_or_path if isinstance(video_or_path, str) else video_or_path.callback_path
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return Client().post(path, data=data, content_type="application/json", **extra)


def test_the_form_with_client_id_moves_the_video_to_ready(processing):
    response = post(processing, {"videoNo": processing.video_no, "clientId": "d7a7", "status": "PARSE"})
    assert response.status_code == 200
    processing.refresh_from_db()
    assert (processing.status, processing.remote_status) == ("ready", "PARSE")
    event = processing.events.get()
    assert (event.source, event.from_status, event.to_status) == ("callback", "processing", "ready")
    record = CallbackRecord.objects.get()
    assert (record.outcome, record.video_no, record.remote_status) == ("applied", processing.video_no, "PARSE")
    assert record.remote_addr == "127.0.0.1"


@pytest.mark.parametrize("status", ["FAIL", "PARSE_ERROR"])
def test_the_form_without_client_id_reports_failure(processing, status):
    assert post(processing, {"videoNo": processing.video_no, "status": status}).status_code == 200
    processing.refresh_from_db()
    assert processing.status == "failed" and processing.remote_status == status
    assert "could not process" in processing.last_error


def test_an_unknown_status_is_recorded_not_applied(processing):
    assert post(processing, {"videoNo": processing.video_no, "status": "QUEUEING"}).status_code == 200
    processing.refresh_from_db()
    assert processing.status == "processing" and processing.remote_status == "QUEUEING"


def test_a_repeated_callback_is_harmless(processing):
    for _ in range(3):
        assert post(processing, {"videoNo": processing.video_no, "status": "PARSE"}).status_code == 200
    assert processing.events.count() == 1
    assert list(CallbackRecord.objects.order_by("pk").values_list("outcome", flat=True)) == [
        "applied", "duplicate", "duplicate"]


def test_a_late_callback_never_moves_a_ready_video_back(processing):
    post(processing, {"videoNo": processing.video_no, "status": "PARSE"})
    for late in ["UNPARSE", "FAIL"]:
        assert post(processing, {"videoNo": processing.video_no, "status": late}).status_code == 200
    processing.refresh_from_db()
    assert processing.status == "ready" and processing.remote_status == "PARSE"
    assert CallbackRecord.objects.filter(outcome="stale").count() == 2


def test_an_unknown_secret_is_404(processing):
    assert post("/callbacks/memories/not-the-secret/", {"videoNo": "x", "status": "PARSE"}).status_code == 404
    assert post(processing.callback_path[:-2] + "/", {"videoNo": "x", "status": "PARSE"}).status_code == 404
    assert not CallbackRecord.objects.exists()


def test_the_secret_is_unguessable_and_unique(member, team, api_key):
    tokens = {make_video(member, team).callback_token for _ in range(5)}
    assert len(tokens) == 5 and all(len(token) >= 40 for token in tokens)


@pytest.mark.parametrize("body, reason", [
    (b"{not json", "not JSON"),
    (b"[1, 2]", "not a JSON object"),
    (json.dumps({"status": "PARSE"}), "videoNo"),
    (json.dumps({"videoNo": 42, "status": "PARSE"}), "videoNo"),
    (json.dumps({"videoNo": "VI1"}), "status"),
    (b"\xff\xfe", "not JSON"),
])
def test_a_malformed_body_is_400_and_logged(processing, body, reason, caplog):
    response = post(processing, body)
    assert response.status_code == 400 and reason in response.json()["message"]
    assert any("refused" in r.getMessage() for r in caplog.records)
    assert CallbackRecord.objects.get().outcome == "refused"
    processing.refresh_from_db()
    assert processing.status == "processing"


def test_a_body_over_64_kib_is_413(processing, settings):
    big = json.dumps({"videoNo": processing.video_no, "status": "PARSE", "pad": "x" * 70_000})
    assert post(processing, big).status_code == 413
    # A lying Content-Length is caught by reading at most 64 KiB + 1.
    response = post(processing, big, CONTENT_LENGTH="100")
    assert response.status_code in (400, 413)
    processing.refresh_from_db()
    assert processing.status == "processing"


def test_a_declared_length_over_64_kib_is_413_without_reading(processing):
    response = post(processing, b"{}", CONTENT_LENGTH=str(64 * 1024 + 1))
    assert response.status_code == 413


def test_another_videos_number_is_409(processing):
    response = post(processing, {"videoNo": "VI999", "status": "PARSE"})
    assert response.status_code == 409
    processing.refresh_from_db()
    assert processing.status == "processing"
    assert CallbackRecord.objects.get().outcome == "refused"


def test_only_post_is_accepted(processing):
    assert Client().get(processing.callback_path).status_code == 405


def test_it_needs_no_sign_in_and_no_csrf_token(processing):
    client = Client(enforce_csrf_checks=True)
    response = client.post(processing.callback_path, data=json.dumps(
        {"videoNo": processing.video_no, "status": "PARSE"}), content_type="application/json")
    assert response.status_code == 200


def test_a_callback_before_the_relay_answer_is_applied_when_it_comes(member, team, api_key):
    video = make_video(member, team, status=Video.Status.SENDING)
    response = post(video, {"videoNo": "VI77", "status": "PARSE"})
    assert response.status_code == 200
    video.refresh_from_db()
    assert video.status == "sending"
    assert CallbackRecord.objects.get().outcome == "pending"

    accept_relay(video, UploadResult("VI77", "clip", "UNPARSE", None))
    video.refresh_from_db()
    assert video.status == "ready" and video.video_no == "VI77"
    assert CallbackRecord.objects.get().outcome == "applied"
    assert [e.to_status for e in video.events.all()] == ["processing", "ready"]


def test_an_early_callback_for_another_number_is_refused_when_the_answer_comes(member, team, api_key):
    video = make_video(member, team, status=Video.Status.SENDING)
    post(video, {"videoNo": "VI-other", "status": "PARSE"})
    accept_relay(video, UploadResult("VI77", "clip", "UNPARSE", None))
    video.refresh_from_db()
    assert video.status == "processing"
    assert CallbackRecord.objects.get().outcome == "refused"


# Issue 10, finding 2: a leaked callback URL can be rotated by a team admin.
def test_a_team_admin_rotates_a_leaked_callback_address(client, team_admin, processing):
    from django_tasks_db.models import DBTaskResult

    leaked = processing.callback_path
    client.force_login(team_admin)
    response = client.post("/admin/uploads/video/", {"action": "rotate_callbacks",
                                                     "_selected_action": [processing.pk]}, follow=True)
    assert "1 callback address(es) rotated" in response.content.decode()
    assert post(leaked, {"videoNo": processing.video_no, "status": "PARSE"}).status_code == 404
    processing.refresh_from_db()
    assert processing.status == "processing" and processing.callback_path != leaked
    assert post(processing, {"videoNo": processing.video_no, "status": "PARSE"}).status_code == 200
    assert DBTaskResult.objects.filter(task_path="uploads.tasks.check_video").exists()  # checked at once
    event = processing.events.filter(message__startswith="callback address rotated").get()
    assert event.actor == team_admin


def test_the_page_says_status_checks_bring_a_rotated_videos_status(client, member, processing):
    from uploads import actions, tasks

    tasks.perform(actions.rotate_callback, processing.pk, member)
    client.force_login(member)
    assert "status checks bring its status" in client.get(f"/videos/{processing.pk}/").content.decode()
