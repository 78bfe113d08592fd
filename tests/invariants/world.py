"""The world the invariant machine drives: the database's clock, the worker's steps, relays on
threads that memories.ai (the emulator) holds, and the faults it injects.

Nothing here patches the portal: time moves by shifting stored timestamps backwards (the database
compares them with its own clock), a worker step is django-tasks-db's own claim and `run_task`, and
a worker "dies" the way SIGKILL makes it: nothing more runs in it, its task row stays RUNNING.
"""

import ctypes
import shutil
import threading
from collections import Counter
from datetime import timedelta
from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.db import connections
from django.db.models import F
from django_tasks_db.management.commands.db_worker import Worker
from django_tasks_db.models import DBTaskResult, get_date_max
from django_tasks_db.utils import exclusive_transaction

from hypothesis.stateful import RuleBasedStateMachine

from tests.invariants import checks
from uploads.management.commands.reconcile import reconcile
from uploads.models import ApiKey, CallbackRecord, MemoriesAccount, Membership, Team, Video, VideoEvent

# Figures for docs/reliability.md, summed over a whole run (printed by the test at its end).
STATS = {"examples": 0, "steps": 0, "faults": Counter(), "rules": Counter()}

STALE = 300  # MEMPORTAL_HEARTBEAT_STALE_SECONDS in the test
WATCHDOG = 10.0  # seconds a relay may take when nothing holds it (a normal one takes ~0.1 s with its probe;
# the first probe of a process starts the probe server, and a busy 2-core machine stretches both)

# Faults for a relay run by a worker on the main thread: name -> (emulator fault, params).
RELAY_FAULTS = {
    **{code: ("code", {"code": code}) for code in
       ("0001", "0003", "0409", "0401", "0402", "0403", "9009", "0429", "7777")},
    **{f"http{status}": ("http", {"status": status}) for status in (404, 413, 500, 502, 503)},
    "reset": ("reset", {"bytes": 16 * 1024}),
    "timeout_before_body": ("timeout_before_body", {"seconds": 0.2}),
    "stall_then_hang_up": ("stall_after", {"bytes": 64 * 1024, "seconds": 0.2}),
    "slow": ("slow", {"seconds": 0.2}),
    # memories.ai accepts the copy after the portal stopped waiting (MEMORIES_READ_TIMEOUT 0.5 s).
    "slow_past_read_timeout": ("slow", {"seconds": 1.0}),
    "malformed": ("malformed", {}),
    "wrong_content_type": ("wrong_content_type", {}),
}
# Faults for list_videos (status checks) and delete_videos, run by the default-queue worker.
DEFAULT_FAULTS = {
    **{code: ("code", {"code": code}) for code in ("0401", "0429", "7777")},
    # memories.ai answers 0409 "duplicate request" to a request it has done (a delete already done).
    "0409": ("code", {"code": "0409", "acted": True}),
    "http500": ("http", {"status": 500}),
    "reset": ("reset", {}),
    "timeout_before_body": ("timeout_before_body", {"seconds": 0.2}),
    "malformed": ("malformed", {}),
    "wrong_content_type": ("wrong_content_type", {}),
}


def reset_world():
    """Hypothesis does not reset the database between examples of a state machine: empty it."""
    for model in (DBTaskResult, CallbackRecord, VideoEvent, Video, ApiKey, Membership, LogEntry, Session):
        model.objects.all().delete()
    if apps.is_installed("uploads") and "relayhold" in apps.all_models["uploads"]:
        apps.get_model("uploads", "RelayHold").objects.all().delete()
    Team.objects.all().delete()
    MemoriesAccount.objects.all().delete()
    get_user_model().objects.all().delete()
    shutil.rmtree(Path(settings.MEDIA_ROOT) / "videos", ignore_errors=True)


def move_time(seconds):
    """Time moves on: every stored time goes `seconds` back (the database keeps its own clock)."""
    d = timedelta(seconds=seconds)
    shift = lambda *names: {name: F(name) - d for name in names}  # noqa: E731
    Video.objects.update(**shift("created_at", "status_changed_at", "heartbeat_at", "next_attempt_at",
                                 "next_check_at", "remote_uploaded_at", "last_checked_at", "deleted_at",
                                 "file_removed_at", "remote_deleted_at"))
    Team.objects.update(**shift("created_at"))
    MemoriesAccount.objects.update(**shift("next_upload_at", "created_at"))
    ApiKey.objects.update(**shift("failing_since", "last_used_at", "created_at"))
    VideoEvent.objects.update(**shift("created_at"))
    CallbackRecord.objects.update(**shift("received_at"))
    DBTaskResult.objects.update(**shift("enqueued_at", "started_at", "finished_at"))
    # A row enqueued without run_after carries the maximum date, which means "now": keep it.
    DBTaskResult.objects.exclude(run_after=get_date_max()).update(**shift("run_after"))


def worker(worker_id):
    return Worker(queue_names=["relay", "default"], interval=0, batch=True, backend_name="default",
                  startup_delay=False, max_tasks=1, worker_id=worker_id, excluded_queue_names=[])


def claim_next(queue, worker_id):
    """The first half of db_worker's loop: lock and claim the next ready task row of `queue`."""
    rows = DBTaskResult.objects.ready().filter(backend_name="default", queue_name=queue)
    with exclusive_transaction(rows.db):
        row = rows.get_locked()
        if row is not None:
            row.claim(worker_id)
    return row


def run_default_task():
    """One step of `db_worker --queue-name default` (claim the next ready row, run it), or None."""
    row = claim_next("default", "invariants-default")
    if row is not None:
        worker("invariants-default").run_task(row)
    return row


class Killed(BaseException):
    """Raised inside a relay's thread to kill it, as SIGKILL kills a worker process."""


class RelayRun:
    """A claimed relay task row run by the worker's own `run_task` on a thread of its own, so that
    other steps can go on while memories.ai holds it, and so that it can be killed."""

    def __init__(self, row):
        self.row = row
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"relay-{row.pk}", daemon=True)
        self.thread.start()

    def _run(self):
        try:
            worker(self.row.worker_ids[-1]).run_task(self.row)
        except Killed:
            pass
        finally:
            connections.close_all()
            self.done.set()

    def wait(self, seconds):
        return self.done.wait(seconds)

    def kill(self, then=None):
        """Kill the thread (at its next Python instruction), then `then()` to wake it; True when it
        died of it. Its task row is left RUNNING, as a killed worker process leaves it."""
        if self.done.is_set():
            return False
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self.thread.ident), ctypes.py_object(Killed))
        if then is not None:
            then()
        self.done.wait(10)
        row = DBTaskResult.objects.get(pk=self.row.pk)
        killed = row.exception_class_path.endswith(".Killed") or row.status == "RUNNING"
        if killed:  # run_task recorded the exception on its way out; a SIGKILLed worker never would
            DBTaskResult.objects.filter(pk=row.pk).update(status="RUNNING", finished_at=None,
                                                          exception_class_path="", traceback="")
        return killed


class Hold:
    """A relay memories.ai holds on its thread: mid-body ("body") or after accepting ("answer")."""

    def __init__(self, run, kind, release, video_no):
        self.run, self.kind, self.release, self.video_no = run, kind, release, video_no


class WorldMachine(RuleBasedStateMachine):
    """The invariant machine's plumbing: its videos, faults, worker steps and reconcile passes
    (the machine's own state is set up by its @initialize rule)."""

    def video(self, index):
        return Video.objects.select_related("team").get(pk=self.ids[index % len(self.ids)])

    def videos(self):
        return list(Video.objects.select_related("team").filter(pk__in=self.ids))

    def fault(self, endpoint, name, table):
        if name != "none":
            kind, params = table[name]
            self.emulator.inject(endpoint, kind, **params)
            STATS["faults"][f"{endpoint}:{name}"] += 1

    def relay_step(self):
        """One relay worker step on its own thread; a relay that does not end is killed and noted."""
        row = claim_next("relay", f"relay-{STATS['steps']}")
        if row is None:
            return False
        run = RelayRun(row)
        if not run.wait(WATCHDOG):
            self.hung.append(f"relay of {row.args_kwargs['args']} still running after {WATCHDOG} s")
            run.kill()
        return True

    def work(self, limit=30):
        """Workers run every due task (at most `limit`)."""
        for _ in range(limit):
            if not (self.relay_step() or run_default_task()):
                return

    def run_reconcile(self):
        reconcile()
        self.reconciled_at = self.elapsed

    def waiting_for_reconcile(self, video):
        """A dead worker holds this queued video's relay, and reconcile has not run since that
        worker's claim went stale."""
        held_by_dead = checks.live_relays(video, DBTaskResult.objects.filter(pk__in=self.dead))
        return any(self.reconciled_at is None or self.reconciled_at < self.dead[str(row.pk)] + STALE
                   for row in held_by_dead)
