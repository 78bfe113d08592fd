"""Recover what background work can lose: relays whose worker died, and overdue status checks.

Run once at worker start and every minute by the Procfile's `clock` process. Recovery comes from
the Video's own state, not from task rows (a killed worker leaves its task row RUNNING forever).
"""

import logging
import time
from datetime import timedelta

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import close_old_connections
from django.utils import timezone

from uploads import actions
from uploads.models import Video
from uploads.removal import purge_uploads
from uploads.tasks import perform

logger = logging.getLogger(__name__)
S = Video.Status
PURGE_EVERY_SECONDS = 24 * 3600


def reconcile(stale_after=None):
    """One pass; returns (re-queued relays, status checks enqueued)."""
    now = timezone.now()
    stale_after = settings.MEMPORTAL_HEARTBEAT_STALE_SECONDS if stale_after is None else stale_after
    stale_before = now - timedelta(seconds=stale_after)
    stale = Video.objects.alive().filter(status=S.SENDING, heartbeat_at__lte=stale_before)
    requeued = sum(perform(actions.requeue_stale, pk, stale_after=stale_after)
                   for pk in stale.values_list("pk", flat=True))
    # A check is overdue when its task should have run a while ago (its task row was lost).
    overdue = Video.objects.alive().filter(status=S.PROCESSING, next_check_at__lte=now - timedelta(seconds=60))
    checks = sum(perform(actions.check_overdue, pk) for pk in overdue.values_list("pk", flat=True))
    return requeued, checks


class Command(BaseCommand):
    help = "Re-queue relays whose worker stopped and enqueue overdue status checks."

    def add_arguments(self, parser):
        parser.add_argument("--every", type=int, default=0,
                            help="Repeat every N seconds (the clock process); 0 runs once.")
        parser.add_argument("--stale-after", type=int, default=None,
                            help="Seconds without a heartbeat before a relay counts as dead "
                                 "(default MEMPORTAL_HEARTBEAT_STALE_SECONDS). Use 0 only when no "
                                 "worker can be running, as `make demo` does before it starts them.")

    def handle(self, *args, every, stale_after, **options):
        last_purge = None
        while True:
            requeued, checks = reconcile(stale_after)
            if requeued or checks or options["verbosity"] > 1:
                self.stdout.write(f"reconcile: {requeued} relay(s) re-queued, {checks} status check(s) enqueued")
            if not every:
                return
            # The clock also runs retention, at its start and then once a day, and drops
            # finished task rows older than a week (every paced relay leaves one).
            if last_purge is None or time.monotonic() - last_purge >= PURGE_EVERY_SECONDS:
                call_command("prune_db_task_results", queue_name="*", min_age_days=7, verbosity=0)
                removed = purge_uploads()
                self.stdout.write(f"purge_uploads: removed {removed} stored file(s); finished task rows "
                                  "older than 7 days pruned")
                last_purge = time.monotonic()
            close_old_connections()
            time.sleep(every)
