"""Is the portal well? What `/healthz` answers (uploads/views.py), and the ping that tells whether
each queue's worker is alive.

django-tasks-db keeps no worker heartbeat. So the clock (`reconcile --every N`) enqueues `ping`
on every queue each round, unless that queue's previous ping has not run yet; the worker that
runs it records it in its queue's `WorkerPing` row (updated in place, one row per queue), with
the outcome of a small write to the storage. Health then says how long ago each queue's ping
last ran and how long it had waited.

Public answer, for load balancers: "ok" (200) or "unavailable" (503), nothing else. It fails
only for what makes this web process unable to serve: its database does not answer, or its
storage cannot be reached. Everything a load balancer cannot mend by taking this node out (a
worker elsewhere died, the clock stopped, a team's key fails, relays are held, a queue is old)
is a warning in the details, and the answer stays 200.

Storage "writable" without a write per probe: load balancers probe every few seconds from each
of their nodes, and django-health-check's default checks write a database row and a storage
object on every probe. Here the web process only looks (local: its folder is a writable
directory, nothing written; S3: one HEAD of the bucket, at most every STORAGE_CHECK_SECONDS per
process), and the ping, once a round per queue, writes, reads back and deletes a small object.
"""

import hashlib
import hmac
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path

from botocore.exceptions import ClientError
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, default_storage
from django.db import Error as DatabaseError
from django.db import connection, transaction
from django.db.models import Count, F, Min, Q
from django.db.models.functions import Now
from django.tasks import TaskResultStatus, task
from django.tasks.base import TASK_MAX_PRIORITY
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from .clock import database_time
from .models import ApiKey, RelayHold, Video, WorkerPing

logger = logging.getLogger(__name__)

CLOCK_SECONDS = 60  # the clock's interval when reconcile runs once (the Procfile's clock: --every 60)
STALE_ROUNDS = 3  # a ping (or the clock's round) older than this many intervals is a warning
QUEUED_WARN_SECONDS = 6 * 3600  # a video in `queued` this long (longer than the longest backoff, 1 h)
STORAGE_CHECK_SECONDS = 10  # a remote storage (S3) is asked at most this often per web process
PROBE_FOLDER = "health-probes"
PROBE_CONTENT = b"memportal storage probe: written, read back and deleted by a worker's ping\n"


def queues():
    return list(settings.TASKS["default"].get("QUEUES", ["default"]))


# --- the ping: the clock enqueues it, a worker of each queue runs it ---------------------------

@task(queue_name="default", priority=TASK_MAX_PRIORITY)
def ping(queue: str):
    """Run by a worker of `queue` (before any other ready task: highest priority): it ran, and
    whether the storage takes a write."""
    storage_ok, detail = probe_storage(queue)
    WorkerPing.objects.filter(queue=queue).update(
        ran_at=Now(), ran_enqueued_at=F("enqueued_at"), storage_ok=storage_ok, detail=detail[:200])
    return "ok" if storage_ok else f"storage: {detail}"


def enqueue_pings(every=CLOCK_SECONDS):
    """The clock's part, each round: a ping on every queue whose previous ping has run (a dead
    worker leaves one waiting row per queue, never one per round). Finished ping rows are
    dropped (their queue's WorkerPing keeps what they said). Returns the queues pinged."""
    every = every or CLOCK_SECONDS
    running_since = database_time(-STALE_ROUNDS * every)  # a ping running longer: its worker died
    pinged = []
    for queue in queues():
        WorkerPing.objects.bulk_create([WorkerPing(queue=queue)], ignore_conflicts=True)
        with transaction.atomic():
            WorkerPing.objects.select_for_update().get(queue=queue)  # two clocks: one at a time
            rows = DBTaskResult.objects.filter(task_path=ping.module_path, queue_name=queue)
            rows.filter(status__in=[TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED]).delete()
            waiting = rows.filter(Q(status=TaskResultStatus.READY)
                                  | Q(status=TaskResultStatus.RUNNING, started_at__gte=running_since)).exists()
            changes = {"clock_at": Now(), "interval_seconds": every}
            if not waiting:
                ping.using(queue_name=queue).enqueue(queue)
                changes["enqueued_at"] = Now()
                pinged.append(queue)
            WorkerPing.objects.filter(queue=queue).update(**changes)
    return pinged


def probe_storage(queue, storage=None):
    """Write a small object, read it back, delete it: (ok, why not)."""
    storage = storage or default_storage
    try:
        saved = storage.save(f"{PROBE_FOLDER}/{queue}-{uuid.uuid4().hex}.txt", ContentFile(PROBE_CONTENT))
        try:
            with storage.open(saved, "rb") as probe:
                read = probe.read()
        finally:
            storage.delete(saved)
    except Exception as error:  # whatever the storage raises (OSError, botocore's): recorded
        logger.warning("storage probe of the %s worker failed: %s", queue, error)
        return False, f"{type(error).__name__}: {error}"
    if read != PROBE_CONTENT:
        return False, "the probe object read back differs from what was written"
    return True, ""


# --- what the web process checks on every request: its database and its storage --------------

@dataclass
class Essentials:
    """The checks that decide the public answer."""

    database_ok: bool
    database_ms: float | None
    database_error: str
    storage_ok: bool
    storage_detail: str

    @property
    def failed(self):
        return not (self.database_ok and self.storage_ok)

    @property
    def http_status(self):
        return 503 if self.failed else 200


def essentials():
    database_ok, database_ms, database_error = database_round_trip()
    storage_ok, storage_detail = storage_reachable()
    return Essentials(database_ok, database_ms, database_error, storage_ok, storage_detail)


def database_round_trip():
    """(answers, round trip in ms, error class): one `SELECT 1`, its failure caught."""
    started = time.perf_counter()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as error:
        logger.warning("healthz: the database does not answer (%s)", type(error).__name__)
        return False, None, type(error).__name__
    return True, round((time.perf_counter() - started) * 1000, 2), ""


def storage_reachable(storage=None):
    """(reachable, why not), without writing anything."""
    storage = storage or default_storage
    if isinstance(storage, FileSystemStorage):
        return local_folder_writable(Path(storage.location))
    return _remote_reachable(storage)


def local_folder_writable(path):
    # A folder not made yet is made on the first upload, under the nearest one that exists.
    target = path
    while not target.exists() and target != target.parent:
        target = target.parent
    if not target.is_dir():
        return False, f"{target} is not a folder"
    if not os.access(target, os.W_OK | os.X_OK):
        return False, f"{target} is not writable by this process"
    return True, ""


_remote = {"at": float("-inf"), "answer": (True, "")}
_remote_lock = threading.Lock()


def _remote_reachable(storage):
    """A network storage is asked at most every STORAGE_CHECK_SECONDS, by one thread at a time;
    meanwhile, and while one thread waits for it, the others take the last answer."""
    if time.monotonic() - _remote["at"] < STORAGE_CHECK_SECONDS or not _remote_lock.acquire(blocking=False):
        return _remote["answer"]
    try:
        _remote["answer"] = _ask_remote(storage)
        _remote["at"] = time.monotonic()
        return _remote["answer"]
    finally:
        _remote_lock.release()


def _ask_remote(storage):
    try:
        if hasattr(storage, "bucket_name") and hasattr(storage, "connection"):  # django-storages' S3
            storage.connection.meta.client.head_bucket(Bucket=storage.bucket_name)
        else:
            storage.exists(PROBE_FOLDER)  # any other storage: it answers without raising
    except ClientError as error:
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status == 403:  # S3 answered; the credentials may not list the bucket (s3:ListBucket)
            return True, "the bucket answered HeadBucket with 403: reachable, not checked further"
        return False, f"the bucket answered HeadBucket with HTTP {status}"
    except Exception as error:  # connection refused, timeouts, DNS, credentials missing...
        return False, type(error).__name__
    return True, ""


# --- who may read the details ------------------------------------------------------------------

def _digest(value):
    return hashlib.sha256(value.encode()).digest()


def may_see_details(request, database_ok):
    """The health token (MEMPORTAL_HEALTH_TOKEN, as `Authorization: Bearer …`, compared in
    constant time; none configured: nobody by token), or a signed-in active superuser."""
    token = settings.MEMPORTAL_HEALTH_TOKEN
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(_digest(given.strip()), _digest(token)):
            return True
    if not database_ok:
        return False  # who the session belongs to cannot be read
    try:
        user = request.user
        return bool(user.is_authenticated and user.is_active and user.is_superuser)
    except DatabaseError:
        return False


# --- the details ---------------------------------------------------------------------------------

def _iso(moment):
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z") if moment else None


def _seconds(start, end):
    return round((end - start).total_seconds(), 1) if start and end else None


class _Verdict:
    def __init__(self):
        self.problems = []
        self.worst = "ok"

    def __call__(self, section, status, problem=""):
        section["status"] = status
        if status != "ok":
            self.problems.append(problem)
            if status == "fail" or self.worst == "ok":
                self.worst = status
        return section


def details(state):
    """The JSON for the token holder and superusers: every check, its status (ok, warn, fail)
    and the problems in words. Never a key, a fingerprint or a key's error text."""
    verdict = _Verdict()
    database = {"reachable": state.database_ok, "round_trip_ms": state.database_ms}
    if state.database_ok:
        verdict(database, "ok")
    else:
        database["error"] = state.database_error
        verdict(database, "fail", f"the database does not answer ({state.database_error})")
    storage = {"backend": settings.MEMPORTAL_STORAGE, "reachable": state.storage_ok, "detail": state.storage_detail}
    answer = {"status": "", "problems": verdict.problems, "checked_at": _iso(timezone.now()),
              "thresholds": {"stale_rounds": STALE_ROUNDS, "queued_warn_seconds": QUEUED_WARN_SECONDS},
              "database": database, "storage": storage}
    if state.database_ok:
        try:
            answer.update(_from_database(verdict, storage))
        except DatabaseError as error:  # it answered SELECT 1 a moment ago
            verdict(database, "fail", f"the database failed a query ({type(error).__name__})")
    if not state.storage_ok:
        verdict(storage, "fail", f"the storage cannot be reached: {state.storage_detail}")
    elif "status" not in storage:
        verdict(storage, "ok")
    for name in ("clock", "queues", "oldest_queued_relay", "failing_keys", "relay_hold"):
        answer.setdefault(name, {"status": "unknown"})
    answer["status"] = verdict.worst
    return answer


def _from_database(verdict, storage):
    pings = {p.queue: p for p in WorkerPing.objects.annotate(db_now=Now())}
    now = next(iter(pings.values())).db_now if pings else timezone.now()
    every = max((p.interval_seconds for p in pings.values()), default=CLOCK_SECONDS)
    limit = STALE_ROUNDS * every

    clock_at = max((p.clock_at for p in pings.values() if p.clock_at), default=None)
    clock = {"last_round_seconds_ago": _seconds(clock_at, now), "interval_seconds": every, "warn_after_seconds": limit}
    if clock_at is None:
        verdict(clock, "warn", "the clock has not run yet (reconcile --every)")
    elif _seconds(clock_at, now) > limit:
        verdict(clock, "warn", f"the clock's last round was {_seconds(clock_at, now):.0f} s ago")
    else:
        verdict(clock, "ok")

    queue_states = {}
    for queue in queues():
        queue_states[queue] = _queue(verdict, queue, pings.get(queue), now)

    latest = max((p for p in pings.values() if p.ran_at), key=lambda p: p.ran_at, default=None)
    storage.update({"writable": latest.storage_ok if latest else None,
                    "write_checked_seconds_ago": _seconds(latest.ran_at, now) if latest else None,
                    "write_checked_by": latest.queue if latest else None,
                    "write_detail": latest.detail if latest else ""})
    if latest and latest.storage_ok is False:
        verdict(storage, "warn", f"the {latest.queue} worker could not write to the storage: {latest.detail}")

    return {"clock": clock, "queues": queue_states, "oldest_queued_relay": _oldest_queued(verdict, now),
            "failing_keys": _failing_keys(verdict), "relay_hold": _relay_hold(verdict)}


def _queue(verdict, queue, ping_row, now):
    if ping_row is None:
        return verdict({"last_ran_seconds_ago": None, "last_waited_seconds": None, "ping_waiting_seconds": None},
                       "warn", f"queue {queue}: never pinged (is the clock running?)")
    limit = STALE_ROUNDS * ping_row.interval_seconds
    state = {"last_ran_seconds_ago": _seconds(ping_row.ran_at, now),
             "last_waited_seconds": _seconds(ping_row.ran_enqueued_at, ping_row.ran_at),
             "ping_waiting_seconds": _seconds(ping_row.enqueued_at, now) if ping_row.waiting else None,
             "storage_ok": ping_row.storage_ok, "warn_after_seconds": limit}
    waiting = (f", a ping waiting for {state['ping_waiting_seconds']:.0f} s"
               if state["ping_waiting_seconds"] is not None else "")
    if ping_row.ran_at is None:
        return verdict(state, "warn", f"queue {queue}: no worker has run a ping yet{waiting}")
    if state["last_ran_seconds_ago"] > limit:
        return verdict(state, "warn", f"queue {queue}: its last ping ran {state['last_ran_seconds_ago']:.0f} s ago"
                                      f"{waiting} (no worker, or a busy one)")
    return verdict(state, "ok")


def _oldest_queued(verdict, now):
    queued = Video.objects.alive().filter(status=Video.Status.QUEUED).aggregate(
        count=Count("pk"), created=Min("created_at"), entered=Min("status_changed_at"))
    state = {"count": queued["count"], "age_seconds": _seconds(queued["created"], now),
             "queued_for_seconds": _seconds(queued["entered"], now)}
    if state["queued_for_seconds"] is not None and state["queued_for_seconds"] > QUEUED_WARN_SECONDS:
        return verdict(state, "warn", f"a video has waited in queued for {state['queued_for_seconds']:.0f} s")
    return verdict(state, "ok")


def _failing_keys(verdict):
    keys = [{"id": key["pk"], "label": key["label"], "team_id": key["team_id"],
             "failing_since": _iso(key["failing_since"])}
            for key in ApiKey.objects.filter(is_active=True, failing_since__isnull=False)
            .order_by("failing_since").values("pk", "label", "team_id", "failing_since")]
    state = {"count": len(keys), "keys": keys}
    if keys:
        return verdict(state, "warn", f"{len(keys)} team key(s) failing: those teams' uploads wait")
    return verdict(state, "ok")


def _relay_hold(verdict):
    hold = RelayHold.in_force()
    if hold is None:
        return verdict({"in_force": False}, "ok")
    return verdict({"in_force": True, "since": _iso(hold.since), "reason": hold.reason}, "warn",
                   "every relay is held for the operator (manage.py relay_hold)")

