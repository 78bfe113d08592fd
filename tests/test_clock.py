"""The clock process (`reconcile --every 60`): at its start it recovers, purges and prunes."""

import subprocess
import sys
from datetime import timedelta

import pytest
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from uploads.health import ping
from uploads.models import Video
from uploads.tasks import check_video

from .conftest import ROOT, make_video, worker_env

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_clock_purges_old_files_and_prunes_old_task_rows(member, team):
    old_ready = make_video(member, team, status="ready")
    Video.objects.filter(pk=old_ready.pk).update(status_changed_at=timezone.now() - timedelta(days=30))
    old_task = check_video.enqueue(str(old_ready.pk))
    DBTaskResult.objects.filter(pk=old_task.id).update(status="SUCCESSFUL",
                                                       finished_at=timezone.now() - timedelta(days=10))
    fresh_task = check_video.enqueue(str(old_ready.pk))

    clock = subprocess.Popen([sys.executable, "manage.py", "reconcile", "--every", "60"], cwd=ROOT,
                             env=worker_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        for line in clock.stdout:
            lines.append(line)
            if line.startswith("purge_uploads:"):
                break
    finally:
        clock.terminate()
        clock.communicate(timeout=20)
    assert any(line.startswith("purge_uploads: removed 1 stored file(s)") for line in lines), lines
    old_ready.refresh_from_db()
    assert not old_ready.file
    # Besides the health pings the clock enqueues each round (one per queue: tests/test_health.py).
    rows = DBTaskResult.objects.exclude(task_path=ping.module_path)
    assert [str(pk) for pk in rows.values_list("pk", flat=True)] == [str(fresh_task.id)]
