"""The relay worker against the emulator: what memories.ai receives, and what each answer does."""

import hashlib
from datetime import timedelta

import pytest
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from uploads import actions, tasks
from uploads.tasks import relay_video
from uploads.models import Video

from .conftest import TEST_KEY, make_video, queued_video, relay_tasks, run_worker, sample

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def queued(member, team, api_key):
    return queued_video(member, team, name="Board meeting.mp4")


def test_it_sends_the_file_as_memories_ai_documents(queued, emulator, settings):
    settings.MEMPORTAL_PUBLIC_URL = "https://portal.example.com"
    run_worker()

    upload = emulator.uploads[-1]
    content = sample("sample-h264-aac.mp4").read_bytes()
    assert upload.sha256 == hashlib.sha256(content).hexdigest() and upload.size == len(content)
    assert upload.complete and upload.filename == "Board meeting.mp4"
    assert upload.content_type == "video/mp4"
    assert upload.key_tail == "…" + TEST_KEY[-4:]
    queued.refresh_from_db()
    assert upload.fields["callback"] == f"https://portal.example.com/callbacks/memories/{queued.callback_token}/"
    assert queued.status == "processing"
    assert queued.video_no == upload.video_no and queued.remote_status == "UNPARSE"
    assert queued.video_name == "Board meeting"
    assert abs(queued.remote_uploaded_at - timezone.now()) < timedelta(minutes=1)
    assert queued.api_key.last_used_at is not None
    check = DBTaskResult.objects.get(queue_name="default")
    queued.refresh_from_db()
    assert check.args_kwargs["args"] == [str(queued.pk), queued.check_token] and check.run_after > timezone.now()
    assert [e.to_status for e in queued.events.all()] == ["sending", "processing"]


def test_without_a_public_url_no_callback_is_given(queued, emulator):
    run_worker()
    assert "callback" not in emulator.uploads[-1].fields
    queued.refresh_from_db()
    assert queued.status == "processing"


@pytest.mark.parametrize("code", ["0429", "9999", "0500"])
def test_a_transient_code_requeues_with_backoff(queued, emulator, code):
    emulator.inject("upload", "code", code=code, msg="try later")
    run_worker()
    queued.refresh_from_db()
    assert queued.status == "queued" and queued.attempts == 1
    assert queued.next_attempt_at > timezone.now() + timedelta(seconds=10)
    assert f"code {code}" in queued.last_error
    retry_task = relay_tasks().get()
    assert retry_task.args_kwargs["args"] == [str(queued.pk), 1, queued.relay_token]
    assert retry_task.run_after == queued.next_attempt_at
    assert bool(queued.file) and queued.file.storage.exists(queued.file.name)


@pytest.mark.parametrize("status", [500, 502, 503])
def test_a_server_error_requeues(queued, emulator, status):
    emulator.inject("upload", "http", status=status)
    run_worker()
    queued.refresh_from_db()
    assert queued.status == "queued" and f"HTTP {status}" in queued.last_error
    assert relay_tasks().count() == 1


def test_a_timeout_requeues(queued, emulator, settings):
    settings.MEMORIES_READ_TIMEOUT = 0.5
    emulator.inject("upload", "slow", seconds=2)
    run_worker()
    queued.refresh_from_db()
    assert queued.status == "queued" and "did not answer in time" in queued.last_error


def test_a_connection_error_requeues(queued, settings, db):
    settings.MEMORIES_API_BASE_URL = "http://127.0.0.1:9"  # nothing listens on the discard port
    run_worker()
    queued.refresh_from_db()
    assert queued.status == "queued" and "could not connect" in queued.last_error


def test_after_the_last_attempt_the_video_is_rejected_and_retryable(queued, emulator, settings, member):
    settings.MEMPORTAL_MAX_ATTEMPTS = 2
    Video.objects.filter(pk=queued.pk).update(attempts=1)
    DBTaskResult.objects.all().delete()
    relay_video.enqueue(str(queued.pk), 1)
    emulator.inject("upload", "http", status=503)
    run_worker()
    queued.refresh_from_db()
    assert queued.status == "rejected" and "Gave up after 2 attempts" in queued.last_error
    assert not relay_tasks().exists()
    assert tasks.perform(actions.retry, queued.pk, member)
    run_worker()
    queued.refresh_from_db()
    assert queued.status == "processing"


@pytest.mark.parametrize("code, words", [
    ("0001", "memories.ai refused the file or a field of the request"),
    ("0003", "memories.ai refused a parameter of the request"),
    ("0409", "memories.ai says this is a duplicate upload"),
])
def test_a_refusal_rejects_the_video_with_the_reason(queued, emulator, code, words):
    emulator.inject("upload", "code", code=code, msg="bad video")
    run_worker()
    queued.refresh_from_db()
    assert queued.status == "rejected"
    assert words in queued.last_error and "bad video" in queued.last_error
    assert not relay_tasks().exists()
    assert queued.file.storage.exists(queued.file.name)


@pytest.mark.parametrize("code", ["0401", "0403", "9009", "0402"])
def test_a_key_problem_marks_the_key_failing_and_holds_the_video(queued, emulator, api_key, code, client,
                                                                  team_admin):
    emulator.inject("upload", "code", code=code, msg="no")
    run_worker()
    queued.refresh_from_db()
    api_key.refresh_from_db()
    assert queued.status == "queued" and queued.attempts == 0
    assert api_key.is_failing and f"code {code}" in api_key.last_error
    assert not relay_tasks().exists()  # it waits for the key, not for a timer

    # The team admin re-enables the key in the admin: the queue resumes.
    client.force_login(team_admin)
    client.post("/admin/uploads/apikey/", {"action": "reenable_keys", "_selected_action": [api_key.pk]})
    assert relay_tasks().count() == 1
    run_worker()
    queued.refresh_from_db()
    assert queued.status == "processing"


def test_replacing_the_key_resumes_the_queue_with_the_new_key(queued, emulator, api_key, team, client, team_admin):
    from uploads.models import ApiKey

    emulator.inject("upload", "code", code="0401")
    run_worker()
    emulator.add_key("sk-mavi-new-key-ABCD")
    client.force_login(team_admin)
    response = client.post("/admin/uploads/apikey/add/", {
        "team": team.pk, "label": "New key", "secret": "sk-mavi-new-key-ABCD", "is_active": "on"})
    assert response.status_code == 302
    new_key = ApiKey.objects.get(label="New key")
    api_key.refresh_from_db()
    assert not api_key.is_active
    run_worker()
    queued.refresh_from_db()
    assert queued.status == "processing" and queued.api_key == new_key
    assert emulator.uploads[-1].key_tail == "…ABCD"


def test_a_non_json_answer_requeues(queued, emulator):
    emulator.inject("upload", "malformed")
    run_worker()
    queued.refresh_from_db()
    assert queued.status == "queued" and "not its JSON envelope" in queued.last_error


def test_a_stale_task_does_not_send_twice(queued, emulator):
    relay_video.enqueue(str(queued.pk), 0)  # a second task row for the same attempt
    run_worker()
    assert len(emulator.uploads) == 1
    queued.refresh_from_db()
    assert queued.attempts == 1 and queued.status == "processing"


def test_a_cancelled_video_is_not_sent(queued, emulator, member):
    assert tasks.perform(actions.cancel, queued.pk, member)
    run_worker()
    assert emulator.uploads == []
    queued.refresh_from_db()
    assert queued.status == "cancelled"


def test_the_list_says_when_a_queued_video_is_tried_again_and_why_it_waits(queued, emulator, client, member,
                                                                          api_key):
    emulator.inject("upload", "http", status=503)
    run_worker()
    client.force_login(member)
    queued.refresh_from_db()
    assert queued.status == "queued" and queued.next_attempt_at > timezone.now()
    page = client.get("/videos/").content.decode()
    assert "Trying again under a minute from now (1 attempt so far)." in page
    states = client.post("/videos/states/", {"ids": [str(queued.pk)]}, content_type="application/json").json()
    entry = states["videos"][str(queued.pk)]
    assert {k: entry[k] for k in ("status", "label", "line", "final")} == {
        "status": "queued", "label": "Queued", "line": "Trying again under a minute from now (1 attempt so far).",
        "final": False}

    api_key.mark_failing("memories.ai refused the team's API key (code 0401)")
    assert "Waiting for a working memories.ai API key: a team admin can add one." in client.get("/videos/").content.decode()
