"""Retention: finished videos' files go after MEMPORTAL_RETENTION_DAYS; waiting ones keep theirs."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from uploads.models import Video

from .conftest import make_video

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("status, purged", [
    ("ready", True), ("failed", True), ("cancelled", True),
    ("rejected", False), ("queued", False), ("processing", False),
])
def test_purge_removes_only_finished_videos_files(member, team, status, purged, capsys, settings):
    settings.MEMPORTAL_RETENTION_DAYS = 7
    old = make_video(member, team, status=status)
    fresh = make_video(member, team, status=status)
    Video.objects.filter(pk=old.pk).update(status_changed_at=timezone.now() - timedelta(days=8))
    Video.objects.filter(pk=fresh.pk).update(status_changed_at=timezone.now() - timedelta(days=6))
    storage, old_name, fresh_name = old.file.storage, old.file.name, fresh.file.name

    call_command("purge_uploads")

    assert f"removed {1 if purged else 0} stored file(s) older than 7 days" in capsys.readouterr().out
    assert storage.exists(old_name) is not purged
    assert storage.exists(fresh_name)
    old.refresh_from_db()
    assert bool(old.file) is not purged
    if purged:
        assert old.events.last().message == "stored file removed (kept 7 days)"


def test_a_purged_video_cannot_be_retried(client, member, team):
    video = make_video(member, team, status="failed")
    Video.objects.filter(pk=video.pk).update(status_changed_at=timezone.now() - timedelta(days=30))
    call_command("purge_uploads")
    client.force_login(member)
    assert "Retry" not in client.get(f"/videos/{video.pk}/").content.decode()
    client.post(f"/videos/{video.pk}/retry/")
    video.refresh_from_db()
    assert video.status == "failed"


def test_retention_counts_from_the_last_change_of_state(member, team, settings):
    video = make_video(member, team, status="processing")
    Video.objects.filter(pk=video.pk).update(status_changed_at=timezone.now() - timedelta(days=30))
    from uploads import reports

    reports.apply_remote_status(video.pk, "PARSE", reports.Source.CALLBACK)
    call_command("purge_uploads")
    video.refresh_from_db()
    assert video.status == "ready" and video.file  # ready since just now: kept
