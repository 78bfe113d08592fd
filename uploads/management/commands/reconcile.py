"""Recover what background work can lose: every video that is not resting gets a way forward.

Run once at worker start and every minute by the Procfile's `clock` process. It sweeps every
non-final state: a `sending` video whose heartbeat stopped (worker killed) is queued again or,
its attempts spent, rejected; a `queued` video with no live relay task (a task that raised, a
worker killed between two steps) gets one, if its team has a usable key; a `processing` video
whose checks have not stopped and that has no live check chain gets one. A chain is live when a
task row carries the video's current token (uploads/tasks.py), so a lagging queue never gets a
second chain, and reconcile itself is bounded: at most one new task per video per pass.

With `--every` each round also pings every queue's worker (uploads/health.py), for /healthz.
"""

import logging
import time

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import close_old_connections

from uploads import actions, health, mail, reports, transcripts, understanding_limits
from uploads.models import RelayHold, Team, Video
from uploads.removal import purge_uploads
from uploads.resumable import expire_partial_uploads
from uploads.tasks import live_checks, live_relays, perform

logger = logging.getLogger(__name__)
S = Video.Status
PURGE_EVERY_SECONDS = 24 * 3600


def reconcile(stale_after=None):
    """One pass; returns (relays re-queued or resumed, check chains started)."""
    stale_after = settings.MEMPORTAL_HEARTBEAT_STALE_SECONDS if stale_after is None else stale_after
    alive = Video.objects.alive()
    stale = alive.heartbeat_stale(stale_after)
    requeued = sum(perform(actions.requeue_stale, pk, stale_after=stale_after)
                   for pk in stale.values_list("pk", flat=True))
    relays = live_relays()
    waiting = (alive.filter(status=S.QUEUED, team__in=Team.objects.with_usable_key())
               .values_list("pk", "relay_token"))
    # While relays are held for the operator, queued videos wait without a task on purpose.
    held = RelayHold.in_force() is not None
    stranded = [] if held else [pk for pk, token in waiting if token not in relays.get(str(pk), ())]
    requeued += perform(actions.resume_videos, stranded) if stranded else 0
    checks = live_checks()
    # Checks not stopped (next_check_at set) whose chain has no live row.
    processing = alive.filter(status=S.PROCESSING, next_check_at__isnull=False).values_list("pk", "check_token")
    started = sum(perform(actions.check_now, pk) for pk, token in processing
                  if token not in checks.get(str(pk), ()))
    reports.apply_pending_callbacks()  # callbacks left pending by a relay that ended otherwise
    return requeued, started


def clock_round(every, stale_after=None):
    """One round of the clock (`reconcile --every N`): the pass, then a ping on every queue whose
    previous ping has run, then expired resumable uploads removed (and finishes that died
    redone). Returns what reconcile() returns."""
    result = reconcile(stale_after)
    health.enqueue_pings(every)
    expire_partial_uploads()  # unfinished resumable uploads past MEMPORTAL_UPLOAD_EXPIRE_HOURS
    mail.sweep_outcome_mail()  # one email task per new outcome its owner opted in to (uploads/mail.py)
    transcripts.sweep_transcripts()  # a fetch per newly ready video, when MEMPORTAL_UNDERSTANDING (uploads/transcripts.py)
    understanding_limits.end_dead_answers()  # answers whose web process died mid-stream: failed, in words
    return result


class Command(BaseCommand):
    help = "Give every video that is not resting a way forward (dead relays, lost tasks, lost check chains)."

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
            requeued, checks = clock_round(every, stale_after) if every else reconcile(stale_after)
            if requeued or checks or options["verbosity"] > 1:
                self.stdout.write(f"reconcile: {requeued} relay(s) re-queued, {checks} status check chain(s) started")
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
