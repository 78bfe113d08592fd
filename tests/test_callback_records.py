"""Callback records: stored first, replayed from the admin, pruned by age."""

import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.utils import timezone

from uploads.models import CallbackRecord, Video

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_record_keeps_body_headers_and_address_but_not_the_token(processing):
    Client().post(processing.callback_path, data=json.dumps({"videoNo": processing.video_no, "status": "PARSE"}),
                  content_type="application/json", HTTP_USER_AGENT="memories-bot/1.0")
    record = CallbackRecord.objects.get()
    assert json.loads(record.body) == {"videoNo": processing.video_no, "status": "PARSE"}
    assert record.headers["User-Agent"] == "memories-bot/1.0" and record.remote_addr == "127.0.0.1"
    assert processing.callback_token not in json.dumps(record.headers) + record.body + record.detail
    assert record.received_at <= timezone.now()


def refuse_video_updates():
    """Make the database itself refuse any change to a video (as a failing database would)."""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("CREATE TRIGGER refuse_video_update BEFORE UPDATE ON uploads_video "
                           "BEGIN SELECT RAISE(ABORT, 'database hiccup'); END")
        else:
            cursor.execute("CREATE FUNCTION refuse_video_update() RETURNS trigger AS $$ BEGIN "
                           "RAISE EXCEPTION 'database hiccup'; END $$ LANGUAGE plpgsql")
            cursor.execute("CREATE TRIGGER refuse_video_update BEFORE UPDATE ON uploads_video "
                           "FOR EACH ROW EXECUTE FUNCTION refuse_video_update()")


def allow_video_updates():
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("DROP TRIGGER refuse_video_update")
        else:
            cursor.execute("DROP TRIGGER refuse_video_update ON uploads_video")
            cursor.execute("DROP FUNCTION refuse_video_update()")


def test_a_failure_to_apply_is_recorded_with_its_traceback_and_can_be_replayed(processing, client, team_admin):
    parsed = json.dumps({"videoNo": processing.video_no, "status": "PARSE"})
    refuse_video_updates()
    response = Client().post(processing.callback_path, data=parsed, content_type="application/json")
    allow_video_updates()
    assert response.status_code == 200  # stored and logged; memories.ai need not send it again
    record = CallbackRecord.objects.get()
    assert record.outcome == "error" and "database hiccup" in record.detail and "Traceback" in record.detail
    processing.refresh_from_db()
    assert processing.status == "processing"

    client.force_login(team_admin)
    response = client.post("/admin/uploads/callbackrecord/", {
        "action": "replay_callbacks", "_selected_action": [record.pk]}, follow=True)
    assert "Replayed: 1 applied." in response.content.decode()
    processing.refresh_from_db()
    record.refresh_from_db()
    assert processing.status == "ready" and record.outcome == "applied"


def test_prune_callbacks_removes_old_records_only(processing, capsys):
    for days, outcome in [(40, "applied"), (40, "pending"), (5, "duplicate")]:
        record = CallbackRecord.objects.create(video=processing, body="{}", outcome=outcome)
        CallbackRecord.objects.filter(pk=record.pk).update(received_at=timezone.now() - timedelta(days=days))
    call_command("prune_callbacks", days=30)
    assert "deleted 1 record(s) older than 30 days" in capsys.readouterr().out
    assert sorted(CallbackRecord.objects.values_list("outcome", flat=True)) == ["duplicate", "pending"]
    assert Video.objects.filter(pk=processing.pk).exists()
