"""The callback endpoint under load: gunicorn as the Procfile runs it, PostgreSQL, 50 clients.

    .venv/bin/python bench/callback_load.py [--duration 20] [--clients 50] [--videos 200]
                                            [--configs 2x8,4x4] [--generator auto|wrk|python]
                                            [--profile] [--write-docs]

Sets up its own PostgreSQL database (memportal_bench_callback_load at 127.0.0.1:5432, dropped and
recreated, `manage.py migrate`), then for each gunicorn configuration (WORKERSxTHREADS; the first
one should be the Procfile's default):

1. seeds a fresh team with --videos videos in `processing` (remote status UNPARSE, a videoNo
   each, as after an accepted relay) and a separate warm-up team with 50 such videos;
2. starts the Procfile's `web` command exactly (its line is read from the Procfile, `${VAR:-x}`
   expanded; WEB_CONCURRENCY sets the workers, and only for a non-default thread count the
   `--threads` value is replaced) on 127.0.0.1:<free port>, access log and all;
3. warms up for --warmup seconds against the warm-up team's videos, then runs the load for
   --duration seconds against the fresh videos: --clients keep-alive connections, each POSTing
   `{"videoNo": ..., "status": "UNPARSE"|"PARSE"}` to a random video's callback path
   (--parse-share of them PARSE), so most callbacks are duplicates, as memories.ai repeats;
4. stops gunicorn and checks the database: CallbackRecord rows == requests sent (exactly, per
   team), outcomes by kind, no `pending`/`error`, at most one `ready` event per video, and every
   video that was sent a PARSE is `ready`.

The load generator is `wrk` (Debian package) with a generated Lua script that counts every
request it writes (request()) and every answer by class (response()), or, without wrk, a
Python generator (--gen-procs processes x threads, http.client keep-alive) in its own processes.
CPU seconds of gunicorn, PostgreSQL and the generator are read from /proc during the main run,
so it shows where the machine's cores went. Round trips to PostgreSQL per callback are counted
exactly with libpq's protocol trace on a single in-process request of each kind.

--profile adds a run with py-spy (installed with `pip install --target var/bench-tools py-spy`,
never into the venv) recording one gunicorn worker, and sums the samples by where they are.
Target (the issue): >= 500 requests/s with 0 responses 5xx.
"""

import argparse
import json
import os
import platform
import re
import secrets
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NAME = "callback_load"
DB_NAME = "memportal_bench_callback_load"
VAR = ROOT / "var" / f"bench-{NAME}"
TOOLS = ROOT / "var" / "bench-tools"
DOCS = ROOT / "docs" / "benchmarks.md"
START, END = f"<!-- {NAME}:start -->", f"<!-- {NAME}:end -->"
PG = ["-h", "127.0.0.1", "-p", "5432", "-U", "postgres"]
TARGET_RPS = 500
WARMUP_VIDEOS = 50
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- environment and database -----------------------------------------------------------------

def bench_env(port=None, workers=None):
    from cryptography.fernet import Fernet

    global _SECRETS
    if "_SECRETS" not in globals():
        _SECRETS = {"DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
                    "MEMPORTAL_FERNET_KEYS": Fernet.generate_key().decode()}
    env = {**os.environ, **_SECRETS,
           "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DB_NAME}",
           "DJANGO_SETTINGS_MODULE": "memportal.settings",
           "DJANGO_DEBUG": "false", "DJANGO_SECURE_SSL_REDIRECT": "false", "DJANGO_SECURE_COOKIES": "false",
           "DJANGO_SECURE_HSTS_SECONDS": "0", "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
           "MEMPORTAL_STATIC_MANIFEST": "false", "MEMPORTAL_VAR_DIR": str(VAR),
           "MEMPORTAL_PUBLIC_URL": "", "PYTHONUNBUFFERED": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    for name in ("MEMPORTAL_BIND", "WEB_CONCURRENCY", "MEMPORTAL_LOG_LEVEL"):
        env.pop(name, None)
    if port is not None:
        env["MEMPORTAL_BIND"] = f"127.0.0.1:{port}"
    if workers is not None:
        env["WEB_CONCURRENCY"] = str(workers)
    return env


def run(cmd, env=None, check=True, **kwargs):
    result = subprocess.run(cmd, cwd=ROOT, env=env, text=True, capture_output=True, **kwargs)
    if check and result.returncode != 0:
        raise SystemExit(f"failed: {shlex.join(cmd)}\n{result.stdout}\n{result.stderr}")
    return result


def setup_database():
    run(["dropdb", *PG, "--if-exists", "--force", DB_NAME])
    run(["createdb", *PG, DB_NAME])
    run([sys.executable, "manage.py", "migrate", "--no-input", "-v0"], env=bench_env())


def django_setup():
    os.environ.update(bench_env())
    sys.path.insert(0, str(ROOT))
    import logging

    import django

    django.setup()
    logging.getLogger("uploads").setLevel(logging.WARNING)  # this process only; gunicorn keeps INFO


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def machine():
    mem_kib = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
    pg = run(["psql", *PG, "-Atc", "show server_version", "postgres"]).stdout.strip()
    wrk = shutil.which("wrk")
    wrk_version = run([wrk, "--version"], check=False).stdout.split(" [")[0] if wrk else "not installed"
    return {"nproc": os.cpu_count(), "mem_gib": round(mem_kib / 1024 / 1024), "python": platform.python_version(),
            "postgres": pg, "kernel": platform.release(), "wrk": wrk_version}


# --- seeding and checking (ORM, in this process) ------------------------------------------------

def seed(label, count, ready=False):
    """A team with `count` videos as an accepted relay leaves them: processing, UNPARSE (or, with
    ready=True, as a PARSE leaves them: ready, PARSE)."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from uploads.models import Team, Video, token_digest

    team = Team.objects.create(name=f"bench {label}", slug=f"bench-{label}")
    owner = get_user_model().objects.create_user(username=f"bench-{label}", password=secrets.token_urlsafe(16))
    now = timezone.now()
    videos = []
    for i in range(count):
        video = Video(team=team, owner=owner, original_name=f"clip-{i}.mp4", content_type="video/mp4",
                      size=1000, sha256="0" * 64, status=Video.Status.READY if ready else Video.Status.PROCESSING,
                      remote_status="PARSE" if ready else "UNPARSE",
                      video_no=f"VI{secrets.randbelow(10**17) + 10**17}", remote_uploaded_at=now)
        video.callback_digest = token_digest(video.callback_token)
        videos.append(video)
    Video.objects.bulk_create(videos)
    targets = [{"path": v.callback_path, "video_no": v.video_no} for v in videos]
    return team, targets


def check_team(team, sent):
    """Exact counts after a run; returns a dict and a list of problems (empty when all hold)."""
    from django.db.models import Count

    from uploads.models import CallbackRecord, Video, VideoEvent

    records = CallbackRecord.objects.filter(video__team=team)
    outcomes = dict(records.values_list("outcome").annotate(n=Count("pk")).order_by())
    by_status = dict(records.values_list("remote_status").annotate(n=Count("pk")).order_by())
    ready_events = (VideoEvent.objects.filter(video__team=team, to_status=Video.Status.READY)
                    .values("video").annotate(n=Count("pk")))
    max_ready = max((row["n"] for row in ready_events), default=0)
    videos = Video.objects.filter(team=team)
    ready = videos.filter(status=Video.Status.READY).count()
    parsed = set(records.filter(remote_status="PARSE").values_list("video__video_no", flat=True))
    facts = {"records": records.count(), "sent": sent, "outcomes": outcomes, "by_status": by_status,
             "parse_duplicates": records.filter(remote_status="PARSE", outcome="duplicate").count(),
             "ready_videos": ready, "videos_sent_parse": len(parsed), "videos_with_ready_event": len(ready_events),
             "max_ready_events_per_video": max_ready, "videos": videos.count()}
    problems = []
    if facts["records"] != sent:
        problems.append(f"CallbackRecord rows {facts['records']} != requests sent {sent}")
    for bad in ("pending", "error", "refused"):
        if outcomes.get(bad):
            problems.append(f"{outcomes[bad]} callbacks with outcome {bad}")
    if max_ready > 1:
        problems.append(f"a video has {max_ready} ready events")
    if ready != len(parsed) or len(ready_events) != ready:
        problems.append(f"{ready} videos ready, {len(parsed)} were sent PARSE, {len(ready_events)} have a ready event")
    if outcomes.get("applied", 0) != ready:
        problems.append(f"{outcomes.get('applied', 0)} callbacks applied but {ready} videos became ready")
    return facts, problems


def round_trips_per_callback(label="shipped"):
    """Exact PostgreSQL round trips of one callback of each kind (libpq protocol trace)."""
    from django.db import close_old_connections, connection
    from django.test import Client

    import psycopg

    team, targets = seed(f"roundtrips-{label}", 1)
    target = targets[0]
    client = Client(HTTP_HOST="127.0.0.1")
    client.get("/healthz")  # connection open, first-request work done
    trace_path = VAR / "pq-trace.txt"
    results = {}
    for label, status in (("UNPARSE, duplicate", "UNPARSE"), ("PARSE, applied (-> ready)", "PARSE"),
                          ("PARSE, duplicate", "PARSE"), ("UNPARSE, stale (video ready)", "UNPARSE")):
        connection.ensure_connection()
        pgconn = connection.connection.pgconn
        with open(trace_path, "w") as trace:
            pgconn.trace(trace.fileno())
            pgconn.set_trace_flags(psycopg.pq.Trace.SUPPRESS_TIMESTAMPS)
            # What request_started does under gunicorn (the test client skips it): with
            # CONN_HEALTH_CHECKS the request's first query is preceded by a `SELECT 1`.
            close_old_connections()
            response = client.post(target["path"], data=json.dumps({"videoNo": target["video_no"], "status": status}),
                                   content_type="application/json")
            pgconn.untrace()
        queries = [line.split("\t", 3)[3].strip() for line in trace_path.read_text().splitlines()
                   if line.startswith("F\t") and "\tQuery\t" in line]
        words = [q.strip('"').split()[0].upper() for q in queries]
        commits, in_txn = 0, False  # transactions that commit: BEGIN..COMMIT blocks + autocommit writes
        for word in words:
            if word == "BEGIN":
                in_txn = True
            elif word == "COMMIT":
                in_txn, commits = False, commits + 1
            elif word in ("INSERT", "UPDATE", "DELETE") and not in_txn:
                commits += 1
        results[label] = {"status_code": response.status_code, "answer": response.json().get("message"),
                          "round_trips": len(queries), "kinds": dict(Counter(words)), "commits": commits}
    trace_path.unlink(missing_ok=True)
    return results


# --- PATCHED in-bench: a candidate with fewer round trips (NOT the shipped code) ---------------

class LeanCallbackPatch:
    """PATCHED in-bench, NOT shipped: two changes on top of the shipped callback view.

    1. Final video, no lock: when the video the view has just read is `ready` or `cancelled` (or
       deleted), nothing can change any more, so the outcome is decided from that read (`duplicate`
       for a repeated PARSE of a ready video, else `stale`, exactly what `apply_remote_status`
       answers) and stored in the record's INSERT: no `SELECT ... FOR UPDATE` transaction and no
       UPDATE of the outcome. memories.ai's repeats after PARSE are these.
    2. Otherwise the outcome UPDATE goes inside the transition's transaction (one commit, one WAL
       flush, fewer), instead of an autocommit UPDATE after it.
    The view is the shipped one otherwise (same checks, answers, logging; `deleted_at` added to its
    read); the transition is `lifecycle.apply_remote_status`'s body, copied, given the locked row."""

    def __enter__(self):
        from django.contrib.auth.decorators import login_not_required
        from django.db import transaction
        from django.views.decorators.cache import never_cache
        from django.views.decorators.csrf import csrf_exempt
        from django.views.decorators.http import require_POST

        from memportal import urls
        from uploads import callbacks, lifecycle
        from uploads.models import CallbackRecord, Video, token_digest

        S, Outcome, Source = lifecycle.S, lifecycle.Outcome, lifecycle.Source

        def apply_remote_status_locked(video, remote_status, source, message=""):
            # == lifecycle.apply_remote_status from `if video.deleted_at` on, `video` locked by the caller.
            if video.deleted_at is not None:
                return Outcome.STALE
            before = video.status
            if remote_status in lifecycle.PARSED:
                target = S.READY
            elif remote_status in lifecycle.FAILED:
                target = S.FAILED
            elif remote_status in lifecycle.UNPARSED:
                target = S.PROCESSING
            else:
                target = None
            if video.status == S.PROCESSING and target in (S.READY, S.FAILED):
                video.status = target
                video.remote_status = remote_status
                video.next_check_at = None
                if target == S.FAILED:
                    video.last_error = f"memories.ai could not process the video ({remote_status})."
                video.save()
                lifecycle.record(video, source, before, target, message, remote_status=remote_status)
                return Outcome.APPLIED
            if video.status == S.PROCESSING and video.remote_status != remote_status:
                video.remote_status = remote_status
                video.save(update_fields=["remote_status", "updated_at"])
                lifecycle.record(video, source, before, before, message or f"memories.ai reports {remote_status}",
                                 remote_status=remote_status)
                return Outcome.APPLIED
            if video.status == target or (video.status == S.PROCESSING and video.remote_status == remote_status):
                return Outcome.DUPLICATE
            return Outcome.STALE

        def final_outcome(video, video_no, status):
            """The outcome for a video that can no longer change, or None when it still can."""
            if video.video_no == "" and video.status in (S.QUEUED, S.SENDING):
                return None
            if video_no != video.video_no:
                return None  # refused by the shipped path, with its detail
            if video.deleted_at is not None:
                return Outcome.STALE
            if video.status not in Video.FINAL:
                return None
            if video.status == S.READY and status in lifecycle.PARSED:
                return Outcome.DUPLICATE
            return Outcome.STALE

        def apply_stored_callback(cb, video):
            if video.video_no == "" and video.status in (S.QUEUED, S.SENDING):
                CallbackRecord.objects.filter(pk=cb.pk).update(
                    outcome=Outcome.PENDING, detail="arrived before the relay's answer; applied when it comes")
                return Outcome.PENDING
            if cb.video_no != video.video_no:
                CallbackRecord.objects.filter(pk=cb.pk).update(
                    outcome=Outcome.REFUSED,
                    detail=f"names {cb.video_no}, the video is {video.video_no or 'unnumbered'}")
                return Outcome.REFUSED
            try:
                with transaction.atomic():
                    locked = lifecycle._locked(video.pk)
                    outcome = apply_remote_status_locked(locked, cb.remote_status, Source.CALLBACK,
                                                         f"callback: {cb.remote_status}")
                    CallbackRecord.objects.filter(pk=cb.pk).update(outcome=outcome, detail="")
                return outcome
            except Exception:
                import traceback

                lifecycle.logger.exception("callback %s could not be applied", cb.pk)
                CallbackRecord.objects.filter(pk=cb.pk).update(outcome=Outcome.ERROR,
                                                               detail=traceback.format_exc()[-4000:])
                return Outcome.ERROR

        @csrf_exempt
        @never_cache
        @require_POST
        def memories_callback(request, token):
            video = (Video.objects.filter(callback_digest=token_digest(token))
                     .only("pk", "callback_token", "video_no", "status", "deleted_at").first())
            if video is None or not callbacks.hmac.compare_digest(video.callback_token, token):
                callbacks.logger.warning("callback for an unknown token from %s", request.META.get("REMOTE_ADDR"))
                return callbacks.answer(404, "unknown callback address")
            body = callbacks.read_limited_body(request)
            if body is None:
                return callbacks.answer(413, "body too large")
            try:
                video_no, status = callbacks.parse_callback(body)
                refusal = ""
            except ValueError as error:
                video_no, status, refusal = "", "", str(error)
            decided = None if refusal else final_outcome(video, video_no, status)
            outcome_now = Outcome.REFUSED if refusal else (decided or Outcome.PENDING)
            cb = CallbackRecord.objects.create(
                video_id=video.pk, remote_addr=request.META.get("REMOTE_ADDR") or None,
                headers={n: request.headers[n] for n in callbacks.KEPT_HEADERS if n in request.headers},
                body=body.decode("utf-8", errors="replace"), video_no=video_no, remote_status=status,
                outcome=outcome_now, detail=refusal)
            if refusal:
                callbacks.logger.warning("callback %s for video %s refused: %s", cb.pk, video.pk, refusal)
                return callbacks.answer(400, refusal)
            outcome = decided or apply_stored_callback(cb, video)
            if outcome == Outcome.REFUSED:
                callbacks.logger.warning("callback %s names videoNo %s, not the video's", cb.pk, video_no)
                return callbacks.answer(409, "videoNo does not match this callback address")
            if outcome == Outcome.ERROR:
                return callbacks.answer(200, "recorded")
            callbacks.logger.info("callback %s for video %s: %s -> %s", cb.pk, video.pk, status, outcome)
            return callbacks.answer(200, outcome)

        self.pattern = next(p for p in urls.urlpatterns if getattr(p, "name", None) == "memories-callback")
        self.shipped = self.pattern.callback
        self.pattern.callback = login_not_required(memories_callback)
        return self

    def __exit__(self, *exc):
        self.pattern.callback = self.shipped


INPROCESS_KINDS = {
    "repeat to a processing video (UNPARSE, duplicate)": (False, "UNPARSE"),
    "repeat to a ready video (PARSE, duplicate)": (True, "PARSE"),
}


def inprocess_service_time(count, blocks=5):
    """Callbacks one at a time through Django's WSGI handler (all middleware, request signals, so
    the health check too) in this process: CPU ms of this process and of its PostgreSQL backend,
    and wall ms, per callback, for each kind; shipped and PATCHED alternate in blocks so drift hits
    both the same."""
    import io
    import random

    from django.core.handlers.wsgi import WSGIHandler
    from django.db import connection

    from uploads.models import CallbackRecord

    app = WSGIHandler()
    rng = random.Random(7)
    variants = {"shipped": None, "PATCHED (in-bench, not shipped)": LeanCallbackPatch}
    teams = {(name, kind): seed(f"inprocess-{v}-{k}", 200, ready=ready)
             for v, name in enumerate(variants) for k, (kind, (ready, _)) in enumerate(INPROCESS_KINDS.items())}
    totals = defaultdict(Counter)
    statuses = []

    def call(target, status):
        body = json.dumps({"videoNo": target["video_no"], "status": status}).encode()
        environ = {"REQUEST_METHOD": "POST", "PATH_INFO": target["path"], "SERVER_NAME": "127.0.0.1",
                   "SERVER_PORT": "80", "HTTP_HOST": "127.0.0.1", "CONTENT_TYPE": "application/json",
                   "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body), "wsgi.url_scheme": "http",
                   "REMOTE_ADDR": "127.0.0.1", "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.errors": sys.stderr}
        answer = app(environ, lambda status, headers: statuses.append(status))
        b"".join(answer)
        answer.close()

    for (name, kind), (_, targets) in teams.items():  # warm: imports, connection, first-use caches
        patch = variants[name]
        with patch() if patch else _nullcontext():
            for target in targets[:5]:
                call(target, INPROCESS_KINDS[kind][1])
    per_block = max(count // blocks, 1)
    for _ in range(blocks):
        for (name, kind), (_, targets) in teams.items():
            patch, status = variants[name], INPROCESS_KINDS[kind][1]
            with patch() if patch else _nullcontext():
                connection.ensure_connection()
                with connection.cursor() as cursor:
                    cursor.execute("select pg_backend_pid()")
                    backend = cursor.fetchone()[0]
                pg0, c0, w0 = proc_cpu(backend), time.process_time(), time.perf_counter()
                for _ in range(per_block):
                    call(rng.choice(targets), status)
                totals[(name, kind)].update({"wall": time.perf_counter() - w0, "cpu": time.process_time() - c0,
                                             "pg": proc_cpu(backend) - pg0, "n": per_block})
    if any(not s_.startswith("200") for s_ in statuses):
        raise SystemExit(f"in-process callbacks answered {Counter(statuses)}")
    out = {}
    for (name, kind), t in totals.items():
        team, _ = teams[(name, kind)]
        outcomes = Counter(CallbackRecord.objects.filter(video__team=team).values_list("outcome", flat=True))
        out.setdefault(name, {})[kind] = {
            "n": t["n"], "cpu_ms": t["cpu"] / t["n"] * 1000, "pg_ms": t["pg"] / t["n"] * 1000,
            "wall_ms": t["wall"] / t["n"] * 1000, "outcomes": dict(outcomes)}
    return out


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


# --- CPU accounting ---------------------------------------------------------------------------

def proc_cpu(pid):
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def children(pid):
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def postgres_pids():
    """This database's backends and PostgreSQL's own background processes (WAL writer, ...);
    other databases' backends (other people's test runs) count as "other"."""
    sql = ("select pid from pg_stat_activity where pid <> pg_backend_pid() and "
           f"(datname = '{DB_NAME}' or backend_type <> 'client backend')")
    return [int(p) for p in run(["psql", *PG, "-Atc", sql, "postgres"]).stdout.split()]


def machine_busy():
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields) - idle) / CLK_TCK


class CpuWindow:
    """CPU seconds of gunicorn (master + workers), PostgreSQL and the whole machine in a window."""

    def __init__(self, gunicorn_pid):
        self.gpids = [gunicorn_pid, *children(gunicorn_pid)]
        self.ppids = postgres_pids()
        self.t0 = time.monotonic()
        self.g0 = {pid: proc_cpu(pid) for pid in self.gpids}
        self.p0 = {pid: proc_cpu(pid) for pid in self.ppids}
        self.m0 = machine_busy()

    def close(self):
        self.seconds = time.monotonic() - self.t0
        self.gunicorn = sum(proc_cpu(pid) - self.g0[pid] for pid in self.gpids)
        self.per_worker = [proc_cpu(pid) - self.g0[pid] for pid in self.gpids[1:]]
        # Backends that connect during the window (a gunicorn thread's first request) count whole.
        self.postgres = sum(max(proc_cpu(pid) - self.p0.get(pid, 0.0), 0) for pid in {*self.ppids, *postgres_pids()})
        self.machine = machine_busy() - self.m0
        return self


# --- gunicorn ----------------------------------------------------------------------------------

def procfile_web_argv(env, threads=None):
    line = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:"))
    command = line.split(":", 1)[1].strip()
    command = re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: env.get(m.group(1)) or m.group(2), command)
    command = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: env.get(m.group(1) or m.group(2), ""), command)
    argv = shlex.split(command)
    if threads is not None:
        i = argv.index("--threads")
        argv[i + 1] = str(threads)
    return argv


def procfile_default_threads():
    argv = procfile_web_argv({})
    return int(argv[argv.index("--threads") + 1])


def procfile_default_workers():
    argv = procfile_web_argv({})
    return int(argv[argv.index("--workers") + 1])


class Gunicorn:
    def __init__(self, workers, threads, label):
        self.port = free_port()
        self.env = bench_env(port=self.port, workers=workers)
        default_threads = procfile_default_threads()
        self.argv = procfile_web_argv(self.env, None if threads == default_threads else threads)
        self.log_path = VAR / f"gunicorn-{label}.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(self.argv, cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(self.base + "/healthz", timeout=5) as answer:
                    if answer.status == 200 and len(children(self.proc.pid)) >= workers:
                        break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"gunicorn did not start:\n{self.log_path.read_text()[-3000:]}")
            time.sleep(0.2)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def server_errors_logged(self):
        text = self.log_path.read_text(errors="replace")
        return len(re.findall(r'" 5\d\d ', text)), text.count("Traceback")


# --- load generators ---------------------------------------------------------------------------

LUA = r"""
-- generated by bench/callback_load.py
local paths = {%(paths)s}
local nos = {%(nos)s}
local parse_share = %(parse_share)f
local threads = {}
local counter = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(%(seed)d + tid * 7919)
  sent, c2xx, c3xx, c4xx, c5xx, cother = 0, 0, 0, 0, 0, 0
end

function request()
  local i = math.random(#paths)
  local status = "UNPARSE"
  if math.random() < parse_share then status = "PARSE" end
  -- wrk calls request() once on thread 1, right after its init(), only to check the request
  -- (script_verify_request); that one is never sent, so it is not counted.
  if tid == 1 and not verified then verified = true else sent = sent + 1 end
  return wrk.format(nil, paths[i], nil, '{"videoNo": "' .. nos[i] .. '", "status": "' .. status .. '"}')
end

function response(status, headers, body)
  if status >= 200 and status < 300 then c2xx = c2xx + 1
  elseif status >= 300 and status < 400 then c3xx = c3xx + 1
  elseif status >= 400 and status < 500 then c4xx = c4xx + 1
  elseif status >= 500 and status < 600 then c5xx = c5xx + 1
  else cother = cother + 1 end
end

function done(summary, latency, requests)
  local t = {sent = 0, c2xx = 0, c3xx = 0, c4xx = 0, c5xx = 0, cother = 0}
  for _, thread in ipairs(threads) do
    for k, _ in pairs(t) do t[k] = t[k] + thread:get(k) end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"sent": %%d, "completed": %%d, "duration_us": %%d, "c2xx": %%d, "c3xx": %%d, "c4xx": %%d, ' ..
    '"c5xx": %%d, "cother": %%d, "err_connect": %%d, "err_read": %%d, "err_write": %%d, "err_status": %%d, ' ..
    '"err_timeout": %%d, "p50_us": %%d, "p90_us": %%d, "p99_us": %%d, "max_us": %%d, "mean_us": %%f}\n',
    t.sent, summary.requests, summary.duration, t.c2xx, t.c3xx, t.c4xx, t.c5xx, t.cother,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
"""


def run_wrk(base, targets, clients, seconds, parse_share, seed, label):
    lua = VAR / f"load-{label}.lua"
    lua.write_text(LUA % {
        "paths": ", ".join(json.dumps(t["path"]) for t in targets),
        "nos": ", ".join(json.dumps(t["video_no"]) for t in targets),
        "parse_share": parse_share, "seed": seed})
    argv = ["wrk", "-t2", f"-c{clients}", f"-d{seconds}s", "--timeout", "10s", "-s", str(lua), base + "/"]
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    # Bounded: wrk stops itself after `seconds`; the kill is only a safety net.
    timer = threading.Timer(seconds + 60, proc.kill)
    timer.start()
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    timer.cancel()
    found = re.search(r"BENCH_JSON (\{.*\})", out)
    if proc.returncode != 0 or not found:
        raise SystemExit(f"wrk failed ({proc.returncode}):\n{out}")
    result = json.loads(found.group(1))
    ms = {k: result[k] / 1000 for k in ("p50_us", "p90_us", "p99_us", "max_us", "mean_us")}
    return {"generator": "wrk", "sent": result["sent"], "completed": result["completed"],
            "seconds": result["duration_us"] / 1e6, "c2xx": result["c2xx"], "c3xx": result["c3xx"],
            "c4xx": result["c4xx"], "c5xx": result["c5xx"], "cother": result["cother"],
            "socket_errors": sum(result[k] for k in ("err_connect", "err_read", "err_write", "err_timeout")),
            "p50_ms": ms["p50_us"], "p90_ms": ms["p90_us"], "p99_ms": ms["p99_us"], "max_ms": ms["max_us"],
            "generator_cpu": usage.ru_utime + usage.ru_stime}


def python_client_process(spec):
    """Runs in its own process: spec["threads"] keep-alive clients until the deadline; one JSON line out."""
    import http.client
    import random

    targets, lock = spec["targets"], threading.Lock()
    totals = Counter()
    latencies = []
    start = time.monotonic()
    deadline = start + spec["seconds"]

    def client(index):
        rng = random.Random(spec["seed"] * 1000 + index)
        conn = http.client.HTTPConnection("127.0.0.1", spec["port"], timeout=10)
        mine, counts = [], Counter()
        while time.monotonic() < deadline:
            target = rng.choice(targets)
            status = "PARSE" if rng.random() < spec["parse_share"] else "UNPARSE"
            body = json.dumps({"videoNo": target["video_no"], "status": status})
            t0 = time.perf_counter()
            counts["sent"] += 1
            try:
                conn.request("POST", target["path"], body=body, headers={"Content-Type": "application/json"})
                answer = conn.getresponse()
                answer.read()
            except OSError:
                counts["socket_errors"] += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", spec["port"], timeout=10)
                continue
            mine.append(time.perf_counter() - t0)
            counts["completed"] += 1
            counts[f"c{answer.status // 100}xx" if 2 <= answer.status // 100 <= 5 else "cother"] += 1
        conn.close()
        with lock:
            totals.update(counts)
            latencies.extend(mine)

    workers = [threading.Thread(target=client, args=(i,)) for i in range(spec["threads"])]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=spec["seconds"] + 30)
    usage = __import__("resource").getrusage(__import__("resource").RUSAGE_SELF)
    print(json.dumps({**totals, "seconds": time.monotonic() - start, "latencies": latencies,
                      "cpu": usage.ru_utime + usage.ru_stime}))


def run_python(base, targets, clients, seconds, parse_share, seed, label, procs):
    port = int(base.rsplit(":", 1)[1])
    per = [clients // procs + (1 if i < clients % procs else 0) for i in range(procs)]
    runs = []
    for i, threads in enumerate(per):
        spec = {"targets": targets, "threads": threads, "seconds": seconds, "parse_share": parse_share,
                "seed": seed + i, "port": port}
        spec_path = VAR / f"client-{label}-{i}.json"
        spec_path.write_text(json.dumps(spec))
        proc = subprocess.Popen([sys.executable, __file__, "_client", str(spec_path)], cwd=ROOT,
                                stdout=subprocess.PIPE, text=True)
        runs.append(proc)
    results = []
    for proc in runs:
        try:
            out, _ = proc.communicate(timeout=seconds + 60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise SystemExit("the Python load generator did not stop in time")
        results.append(json.loads(out))
    total = Counter()
    latencies = []
    for r in results:
        latencies.extend(r.pop("latencies"))
        total.update({k: v for k, v in r.items() if k not in ("seconds", "cpu")})
    latencies.sort()

    def pct(p):
        return latencies[min(int(len(latencies) * p / 100), len(latencies) - 1)] * 1000 if latencies else 0.0

    return {"generator": f"python ({procs} processes x threads)", "sent": total["sent"],
            "completed": total["completed"], "seconds": max(r["seconds"] for r in results),
            "c2xx": total["c2xx"], "c3xx": total["c3xx"], "c4xx": total["c4xx"], "c5xx": total["c5xx"],
            "cother": total["cother"], "socket_errors": total["socket_errors"], "p50_ms": pct(50),
            "p90_ms": pct(90), "p99_ms": pct(99), "max_ms": latencies[-1] * 1000 if latencies else 0.0,
            "generator_cpu": sum(r["cpu"] for r in results)}


def reference_healthz(server, args):
    """The floor: GET /healthz (one `SELECT 1`, same middleware) on the same gunicorn, same clients."""
    if args.generator != "wrk":
        return None
    seconds = min(args.duration, 10)
    run(["wrk", "-t2", f"-c{args.clients}", "-d2s", server.base + "/healthz"], timeout=60)  # warm
    window = CpuWindow(server.proc.pid)
    out = run(["wrk", "-t2", f"-c{args.clients}", f"-d{seconds}s", "--timeout", "10s", "--latency",
               server.base + "/healthz"], timeout=seconds + 60).stdout
    cpu = window.close()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    done = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "seconds": seconds, "non2xx": int(bad.group(1)) if bad else 0,
            "gunicorn_ms": cpu.gunicorn / max(done, 1) * 1000, "busy": cpu.machine / (os.cpu_count() * cpu.seconds)}


def load(args, base, targets, seconds, seed, label):
    if args.generator == "wrk":
        return run_wrk(base, targets, args.clients, seconds, args.parse_share, seed, label)
    return run_python(base, targets, args.clients, seconds, args.parse_share, seed, label, args.gen_procs)


def wait_for_records(team, expected, timeout=60):
    """Requests written just before the generator stopped may still be in gunicorn: wait for them."""
    from uploads.models import CallbackRecord

    deadline, last, stable_since = time.monotonic() + timeout, -1, time.monotonic()
    while time.monotonic() < deadline:
        count = CallbackRecord.objects.filter(video__team=team).count()
        if count != last:
            last, stable_since = count, time.monotonic()
        elif count >= expected and time.monotonic() - stable_since >= 1.0:
            return count
        elif time.monotonic() - stable_since >= 5.0:
            return count
        time.sleep(0.25)
    return last


# --- one configuration -------------------------------------------------------------------------

def run_config(args, workers, threads, index, profile=False):
    label = f"{workers}x{threads}" + ("-profile" if profile else "")
    warm_team, warm_targets = seed(f"warmup-{index}-{label}", WARMUP_VIDEOS)
    team, targets = seed(f"load-{index}-{label}", args.videos)
    server = Gunicorn(workers, threads, f"{index}-{label}")
    spy = None
    try:
        reference = reference_healthz(server, args) if args.reference and index == 0 and not profile else None
        warm = load(args, server.base, warm_targets, args.warmup, 1000 + index, f"{label}-warmup")
        wait_for_records(warm_team, warm["sent"])
        if profile:
            spy = start_py_spy(children(server.proc.pid)[0], args.duration, label)
        window = CpuWindow(server.proc.pid)
        result = load(args, server.base, targets, args.duration, 2000 + index, label)
        cpu = window.close()
        if spy is not None:
            spy.wait(timeout=args.duration + 60)
        records = wait_for_records(team, result["sent"])
    finally:
        server.stop()
    logged_5xx, tracebacks = server.server_errors_logged()
    facts, problems = check_team(team, result["sent"])
    warm_facts, warm_problems = check_team(warm_team, warm["sent"])
    problems += [f"warm-up: {p}" for p in warm_problems]
    if result["c5xx"] or logged_5xx:
        problems.append(f"{result['c5xx']} answers 5xx ({logged_5xx} in gunicorn's access log)")
    if tracebacks:
        problems.append(f"{tracebacks} tracebacks in gunicorn's log ({server.log_path.relative_to(ROOT)})")
    return {"label": label, "run": index, "reference": reference, "workers": workers, "threads": threads,
            "argv": server.argv, "load": result,
            "rps": result["completed"] / result["seconds"], "records_after": records, "facts": facts,
            "warmup": {"sent": warm["sent"], "records": warm_facts["records"]},
            "cpu": {"seconds": cpu.seconds, "gunicorn": cpu.gunicorn, "per_worker": cpu.per_worker,
                    "postgres": cpu.postgres, "generator": result["generator_cpu"], "machine": cpu.machine},
            "problems": problems, "profile": summarize_py_spy(label) if profile else None}


# --- py-spy ------------------------------------------------------------------------------------

def py_spy_binary():
    binary = TOOLS / "bin" / "py-spy"
    if not binary.exists():
        print("installing py-spy into var/bench-tools (not the venv) ...", flush=True)
        run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--target",
             str(TOOLS), "py-spy"])
    return binary


def start_py_spy(pid, seconds, label):
    out = VAR / f"py-spy-{label}.txt"
    return subprocess.Popen([str(py_spy_binary()), "record", "--pid", str(pid), "--duration", str(seconds),
                             "--rate", "100", "--gil", "--format", "raw", "--output", str(out), "--nonblocking"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# Where a sample is, by the innermost frame that matches (checked from the innermost outwards).
PROFILE_BUCKETS = [
    ("psycopg: adapting parameters, sending, reading results", re.compile(r"\(psycopg/|psycopg_binary|\(psycopg_c")),
    ("logging (access log, app log)", re.compile(r"\(logging/|glogging\.py|memportal/logs\.py")),
    ("Django ORM: SQL compile, model instances", re.compile(r"django/db/models/")),
    ("Django DB backend wrapper (cursor, atomic, health check)", re.compile(r"django/db/(backends|transaction|utils)")),
    ("json", re.compile(r"\(json/")),
    ("Django request/response, middleware, URLs", re.compile(r"django/(core|middleware|http|urls|contrib|utils|views|conf|dispatch)")),
    ("gunicorn HTTP parsing, socket I/O, thread pool", re.compile(r"gunicorn/|\(selectors|\(socket|\(concurrent/|\(threading")),
]


def summarize_py_spy(label):
    path = VAR / f"py-spy-{label}.txt"
    if not path.exists():
        return None
    buckets, in_view, total = Counter(), 0, 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        if any("memories_callback" in f for f in frames):
            in_view += n
        for frame in reversed(frames):
            for name, pattern in PROFILE_BUCKETS:
                if pattern.search(frame):
                    buckets[name] += n
                    break
            else:
                continue
            break
        else:
            buckets["other"] += n
    return {"samples": total, "in_view": in_view, "buckets": dict(buckets.most_common())}


# --- report ------------------------------------------------------------------------------------

def table(results):
    lines = ["| gunicorn (workers x threads) | requests sent | completed | requests/s | p50 ms | p90 ms | p99 ms "
             "| max ms | non-2xx | 5xx | socket errors | CallbackRecord rows |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        load_ = r["load"]
        non2xx = load_["completed"] - load_["c2xx"]
        lines.append(f"| {r['label']} (run {r['run'] + 1}) | {load_['sent']} | {load_['completed']} | {r['rps']:.0f} | "
                     f"{load_['p50_ms']:.1f} | {load_['p90_ms']:.1f} | {load_['p99_ms']:.1f} | {load_['max_ms']:.0f} | "
                     f"{non2xx} | {load_['c5xx']} | {load_['socket_errors']} | {r['facts']['records']} |")
    return "\n".join(lines)


def cpu_table(results):
    lines = ["| gunicorn | wall s | gunicorn CPU s (per worker) | PostgreSQL CPU s | generator CPU s | "
             "machine busy CPU s (of 2 x wall) | other processes CPU s | gunicorn CPU ms per request |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        c = r["cpu"]
        other = max(c["machine"] - c["gunicorn"] - c["postgres"] - c["generator"], 0)
        per = c["gunicorn"] / max(r["load"]["completed"], 1) * 1000
        lines.append(f"| {r['label']} (run {r['run'] + 1}) | {c['seconds']:.1f} | {c['gunicorn']:.1f} "
                     f"({', '.join(f'{w:.1f}' for w in c['per_worker'])}) | {c['postgres']:.1f} | "
                     f"{c['generator']:.1f} | {c['machine']:.1f} of {os.cpu_count() * c['seconds']:.0f} | "
                     f"{other:.1f} | {per:.2f} |")
    return "\n".join(lines)


def outcome_table(results):
    lines = ["| gunicorn | CallbackRecord rows (= sent) | applied | duplicate | stale | pending/refused/error "
             "| UNPARSE / PARSE sent | videos ready | videos sent a PARSE | max ready events per video | checks |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        f, o = r["facts"], r["facts"]["outcomes"]
        bad = sum(o.get(k, 0) for k in ("pending", "refused", "error"))
        lines.append(f"| {r['label']} (run {r['run'] + 1}) | {f['records']} (= {f['sent']}) | {o.get('applied', 0)} | "
                     f"{o.get('duplicate', 0)} | {o.get('stale', 0)} | {bad} | "
                     f"{f['by_status'].get('UNPARSE', 0)} / {f['by_status'].get('PARSE', 0)} | "
                     f"{f['ready_videos']} / {f['videos']} | {f['videos_sent_parse']} | "
                     f"{f['max_ready_events_per_video']} | {'PASS' if not r['problems'] else 'FAIL'} |")
    return "\n".join(lines)


def round_trip_table(trips, patched):
    lines = ["| callback | answer | shipped: round trips | of which | commits (WAL flushes) "
             "| PATCHED in-bench: round trips | commits |",
             "|---|---|---|---|---|---|---|"]
    for label, r in trips.items():
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(r["kinds"].items(), key=lambda kv: -kv[1]))
        p = patched[label]
        same = "" if p["answer"] == r["answer"] else f" (answer {p['answer']}!)"
        lines.append(f"| {label} | {r['status_code']} {r['answer']} | {r['round_trips']} | {kinds} | "
                     f"{r['commits']} | {p['round_trips']}{same} | {p['commits']} |")
    return "\n".join(lines)


def inprocess_table(inprocess):
    lines = ["| callback code | callback | callbacks | CPU ms / callback (Django) "
             "| PostgreSQL backend CPU ms / callback | wall ms / callback | outcomes |",
             "|---|---|---|---|---|---|---|"]
    for name, kinds in inprocess.items():
        for kind, r in kinds.items():
            outcomes = ", ".join(f"{k} {v}" for k, v in sorted(r["outcomes"].items()))
            lines.append(f"| {name} | {kind} | {r['n']} | {r['cpu_ms']:.2f} | {r['pg_ms']:.2f} | "
                         f"{r['wall_ms']:.2f} | {outcomes} |")
    return "\n".join(lines)


def other_load(seconds=3.0):
    """Cores used by processes other than PostgreSQL's (idle between runs) over `seconds`."""
    pg = postgres_pids()
    pg0, m0 = sum(proc_cpu(p) for p in pg), machine_busy()
    time.sleep(seconds)
    return max(machine_busy() - m0 - (sum(proc_cpu(p) for p in pg) - pg0), 0) / seconds


def wait_for_quiet(limit):
    """Other people's test runs share the 2 cores: wait (bounded) until they are quiet."""
    deadline = time.monotonic() + limit
    while True:
        load_ = other_load()
        if load_ < 0.3 or time.monotonic() >= deadline:
            if load_ >= 0.3:
                print(f"  (machine still busy: other processes use {load_:.1f} cores; measuring anyway)", flush=True)
            return load_
        print(f"  waiting: other processes use {load_:.1f} cores ...", flush=True)
        time.sleep(5)


def profile_table(profile):
    if not profile:
        return ""
    total = profile["samples"] or 1
    lines = [f"py-spy `--gil`, one gunicorn worker, 100 Hz: only the thread holding the GIL is sampled, so "
             f"this is where the worker's Python time goes. {profile['samples']} samples, "
             f"{profile['in_view'] / total:.0%} of them inside the callback view.", "",
             "| where (innermost matching frame) | share of the GIL-holding samples |", "|---|---|"]
    for name, n in profile["buckets"].items():
        lines.append(f"| {name} | {n / total:.0%} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=20, help="seconds of load per configuration")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of warm-up load (own videos)")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--videos", type=int, default=200)
    parser.add_argument("--parse-share", type=float, default=0.05,
                        help="share of callbacks that say PARSE (the rest UNPARSE)")
    parser.add_argument("--configs", default=None,
                        help="WORKERSxTHREADS,... (default: the Procfile's, then 4x4)")
    parser.add_argument("--generator", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--gen-procs", type=int, default=2, help="processes of the Python generator")
    parser.add_argument("--profile", action="store_true", help="add a py-spy run of the first configuration")
    parser.add_argument("--inprocess", type=int, default=1000,
                        help="callbacks for the in-process service-time measurement (each variant)")
    parser.add_argument("--quiet-wait", type=int, default=300,
                        help="before each run, wait up to this many seconds for other processes to use < 0.3 cores")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each configuration, alternating")
    parser.add_argument("--no-reference", dest="reference", action="store_false",
                        help="skip the GET /healthz reference run")
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument("--docs-from-json", action="store_true",
                        help="write the docs section again from the last run's var/bench-callback_load/results.json")
    args = parser.parse_args()
    if args.docs_from_json:
        saved = json.loads((VAR / "results.json").read_text())
        sys.argv[1:] = saved["argv"]
        write_docs(argparse.Namespace(**saved["args"]), saved["machine"], datetime.fromisoformat(saved["started"]),
                   saved["results"], (saved["round_trips"], saved["round_trips_patched"]), saved["inprocess"],
                   saved["profile"])
        print(f"wrote the {NAME} section of {DOCS.relative_to(ROOT)} from the saved results")
        return 0
    if not (1 <= args.duration <= 600 and 1 <= args.clients <= 1000 and 0 <= args.warmup <= 60
            and 1 <= args.repeat <= 5):
        parser.error("duration 1..600 s, clients 1..1000, warm-up 0..60 s, repeat 1..5")
    if args.generator == "auto":
        args.generator = "wrk" if shutil.which("wrk") else "python"
    default_threads = procfile_default_threads()
    configs = args.configs or f"{procfile_default_workers()}x{default_threads},4x4"
    configs = [tuple(int(x) for x in c.lower().split("x")) for c in configs.split(",")]

    VAR.mkdir(parents=True, exist_ok=True)
    info = machine()
    started = datetime.now(UTC)
    print(f"setting up {DB_NAME} ...", flush=True)
    setup_database()
    django_setup()
    trips = round_trips_per_callback()
    with LeanCallbackPatch():
        trips_patched = round_trips_per_callback("patched")
    print(f"in-process service time: {args.inprocess} callbacks one at a time, shipped and PATCHED ...", flush=True)
    inprocess = inprocess_service_time(args.inprocess)
    results = []
    for index, (workers, threads) in enumerate(configs * args.repeat):
        wait_for_quiet(args.quiet_wait)
        print(f"gunicorn {workers} workers x {threads} threads: {args.warmup}s warm-up, {args.duration}s load "
              f"({args.generator}, {args.clients} clients) ...", flush=True)
        results.append(run_config(args, workers, threads, index))
        r = results[-1]
        print(f"  {r['rps']:.0f} requests/s, p50 {r['load']['p50_ms']:.1f} ms, p99 {r['load']['p99_ms']:.1f} ms, "
              f"5xx {r['load']['c5xx']}, records {r['facts']['records']} / sent {r['load']['sent']}"
              + (f"; PROBLEMS: {r['problems']}" if r["problems"] else ""), flush=True)
    profiled = None
    if args.profile:
        workers, threads = configs[0]
        print(f"profile run: gunicorn {workers}x{threads} with py-spy on one worker ...", flush=True)
        wait_for_quiet(args.quiet_wait)
        profiled = run_config(args, workers, threads, len(results), profile=True)

    print()
    print(table(results))
    print()
    print(outcome_table(results))
    print()
    print(cpu_table(results))
    print()
    print(round_trip_table(trips, trips_patched))
    print()
    print(inprocess_table(inprocess))
    if profiled:
        print()
        print(f"profile run: {profiled['rps']:.0f} requests/s with py-spy attached")
        print(profile_table(profiled["profile"]))
    (VAR / "results.json").write_text(json.dumps({"machine": info, "results": results, "round_trips": trips,
                                                  "round_trips_patched": trips_patched, "inprocess": inprocess,
                                                  "profile": profiled, "argv": sys.argv[1:],
                                                  "started": started.isoformat(), "args": vars(args)},
                                                 indent=2, default=str))
    if args.write_docs:
        write_docs(args, info, started, results, (trips, trips_patched), inprocess, profiled)
        print(f"\nwrote the {NAME} section of {DOCS.relative_to(ROOT)}")
    failed = [r for r in results if r["problems"]]
    return 1 if failed else 0


def write_docs(args, info, started, results, trips, inprocess, profiled):
    section = render_docs(args, info, started, results, trips, inprocess, profiled)
    text = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n"  # re-read right before writing
    block = f"{START}\n{section.strip()}\n{END}"
    if START in text and END in text:
        text = text[:text.index(START)] + block + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    DOCS.write_text(text)


def by_config(results):
    groups = defaultdict(list)
    for r in results:
        groups[r["label"]].append(r)
    return groups


def summary_table(results):
    lines = ["| gunicorn (workers x threads) | runs | requests/s per run | median requests/s | p50 ms (median) "
             "| p99 ms (median) | non-2xx | 5xx | CPU ms per callback: gunicorn + PostgreSQL + generator (median) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for label, runs in by_config(results).items():
        cpu = statistics.median((r["cpu"]["gunicorn"] + r["cpu"]["postgres"] + r["cpu"]["generator"])
                                / max(r["load"]["completed"], 1) * 1000 for r in runs)
        split = [statistics.median(r["cpu"][k] / max(r["load"]["completed"], 1) * 1000 for r in runs)
                 for k in ("gunicorn", "postgres", "generator")]
        lines.append(
            f"| {label} | {len(runs)} | {', '.join(f'{r['rps']:.0f}' for r in runs)} | "
            f"{statistics.median(r['rps'] for r in runs):.0f} | "
            f"{statistics.median(r['load']['p50_ms'] for r in runs):.0f} | "
            f"{statistics.median(r['load']['p99_ms'] for r in runs):.0f} | "
            f"{sum(r['load']['completed'] - r['load']['c2xx'] for r in runs)} | {sum(r['load']['c5xx'] for r in runs)} | "
            f"{cpu:.1f} = {split[0]:.1f} + {split[1]:.1f} + {split[2]:.2f} |")
    return "\n".join(lines)


def render_docs(args, info, started, results, all_trips, inprocess, profiled):
    trips, trips_patched = all_trips
    command = shlex.join([".venv/bin/python", "bench/callback_load.py", *sys.argv[1:]])
    groups = by_config(results)
    medians = {label: statistics.median(r["rps"] for r in runs) for label, runs in groups.items()}
    first_label = results[0]["label"]
    best_label = max(medians, key=medians.get)
    all_ok = all(not r["problems"] for r in results)
    total_5xx = sum(r["load"]["c5xx"] for r in results)
    verdict = [f"| ≥ {TARGET_RPS} callbacks/s ({label}, median) | {rps:.0f} | "
               f"{'PASS' if rps >= TARGET_RPS else 'FAIL'} |" for label, rps in medians.items()]
    verdict.append(f"| 0 answers 5xx (all runs) | {total_5xx} | {'PASS' if not total_5xx else 'FAIL'} |")
    verdict.append("| CallbackRecord rows == requests sent, no pending/refused/error, ≤ 1 ready event per video, "
                   f"every video sent a PARSE is ready (all runs) | "
                   f"{'all hold' if all_ok else '; '.join(p for r in results for p in r['problems'])} | "
                   f"{'PASS' if all_ok else 'FAIL'} |")
    ref = next((r["reference"] for r in results if r.get("reference")), None)
    parts = [
        f"## Callback endpoint under load (bench/{NAME}.py)",
        "",
        f"Measured {started:%Y-%m-%d %H:%M} UTC on {info['nproc']} CPUs, {info['mem_gib']} GiB RAM, "
        f"Linux {info['kernel']}, Python {info['python']}, PostgreSQL {info['postgres']}, {info['wrk']}, "
        f"with `{command}`.",
        "",
        summary_table(results),
        "",
        "| target | measured | result |",
        "|---|---|---|",
        *verdict,
        "",
        "Every run (the configurations alternate):",
        "",
        table(results),
        "",
        "Outcomes, counted in the database after each run (the warm-up has its own team and videos and "
        "passes the same checks):",
        "",
        outcome_table(results),
        "",
        "Where the CPU went during each run (from /proc; PostgreSQL is this database's backends plus "
        "PostgreSQL's background processes; \"other\" is everything else on the machine, e.g. other "
        "people's test runs):",
        "",
        cpu_table(results),
        "",
        "PostgreSQL round trips of one callback, counted in libpq's protocol trace of a single request "
        "through Django (same middleware and settings; `SELECT 1` is `CONN_HEALTH_CHECKS`' check at the "
        "start of each request):",
        "",
        round_trip_table(trips, trips_patched),
        "",
        "Service time of one callback, one at a time in the bench process through Django's WSGI handler "
        "(all middleware and request signals, no gunicorn, no concurrency); shipped and PATCHED alternate "
        "in 5 blocks, each kind on its own 200 videos:",
        "",
        inprocess_table(inprocess),
    ]
    if ref:
        parts += ["", f"Reference, same gunicorn ({first_label}) and clients: `GET /healthz` (one `SELECT 1`, "
                      f"same middleware) serves {ref['rps']:.0f} requests/s ({ref['seconds']} s, "
                      f"{ref['non2xx']} non-2xx) at {ref['gunicorn_ms']:.2f} ms of gunicorn CPU per request, "
                      f"the machine {ref['busy']:.0%} busy."]
    if profiled:
        parts += ["", f"Profile run ({profiled['label']}, {profiled['rps']:.0f} callbacks/s with py-spy attached):",
                  "", profile_table(profiled["profile"])]
    parts += [
        "",
        "**What is measured.** "
        f"gunicorn runs the Procfile's `web` line as it is (`{shlex.join(results[0]['argv'])}`; the "
        "alternative changes only `WEB_CONCURRENCY` and the `--threads` value) against PostgreSQL on "
        "127.0.0.1, with `DJANGO_DEBUG=false` and the default log level (INFO: one app log line and one "
        f"access log line per callback). Each run gets a fresh team of {args.videos} videos in `processing` "
        "(remote status UNPARSE and a videoNo, as after an accepted relay) and a separate warm-up team of "
        f"{WARMUP_VIDEOS}; after {args.warmup} s of warm-up, {args.clients} keep-alive clients "
        f"({results[0]['load']['generator'] + (', 2 threads' if results[0]['load']['generator'] == 'wrk' else '')}, "
        f"on the same 2 cores) POST for {args.duration} s "
        "`{\"videoNo\": ..., \"status\": ...}` to random videos' callback paths, "
        f"{args.parse_share:.0%} of them PARSE and the rest UNPARSE: the first PARSE of a video moves it to "
        "`ready` (applied), everything else is a duplicate or stale, as when memories.ai repeats itself. "
        "Requests sent are counted in wrk's request() hook (its own summary counts only answered requests; "
        "the ones in flight when wrk stops are sent and processed but unanswered, about one per client); "
        "after gunicorn has finished, the team's CallbackRecord rows must equal that count exactly. "
        "Latency is wrk's, per answered request, in a closed loop (a client sends its next request when "
        "the answer came). Before each run the bench waits (at most "
        f"{args.quiet_wait} s) until other processes use less than 0.3 cores.",
        "",
        analysis(args, results, medians, trips, trips_patched, inprocess, ref, profiled, best_label),
    ]
    return "\n".join(parts)


def final_share(runs):
    """Share of the load's callbacks that reached a video already ready: UNPARSE there is `stale`,
    PARSE there is a `duplicate` (a PARSE to a processing video is `applied`)."""
    hits = total = 0
    for r in runs:
        f = r["facts"]
        total += f["records"]
        hits += f["outcomes"].get("stale", 0) + f.get("parse_duplicates", 0)
    return hits / max(total, 1)


def analysis(args, results, medians, trips, trips_patched, inprocess, ref, profiled, best_label):
    first = results[0]
    first_label = first["label"]
    groups = by_config(results)
    runs = groups[first_label]
    med = lambda key, rs=runs: statistics.median(r["cpu"][key] / max(r["load"]["completed"], 1) * 1000 for r in rs)
    g, p, w = med("gunicorn"), med("postgres"), med("generator")
    busy = statistics.median(r["cpu"]["machine"] / (os.cpu_count() * r["cpu"]["seconds"]) for r in runs)
    ceiling = os.cpu_count() * 1000 / (g + p + w)
    kinds = list(INPROCESS_KINDS)
    on_processing, on_ready = kinds
    shipped = inprocess["shipped"]
    patched = next(v for k, v in inprocess.items() if k.startswith("PATCHED"))
    cost = lambda r: r["cpu_ms"] + r["pg_ms"]
    share = final_share(runs)
    saved = (share * (cost(shipped[on_ready]) - cost(patched[on_ready]))
             + (1 - share) * (cost(shipped[on_processing]) - cost(patched[on_processing])))
    projected = os.cpu_count() * 1000 / max(g + p + w - saved, 0.1)
    dup, app, rdy = "UNPARSE, duplicate", "PARSE, applied (-> ready)", "PARSE, duplicate"
    met = [label for label, rps in medians.items() if rps >= TARGET_RPS]
    out = []
    if met:
        out.append(f"**Result.** The target of {TARGET_RPS} callbacks/s is met by {', '.join(met)}.")
    else:
        out.append(
            f"**Result: the target of {TARGET_RPS} callbacks/s is missed.** The Procfile's default "
            f"({first_label}) answers {medians[first_label]:.0f}/s (median of {len(runs)} runs), every answer 2xx, "
            "every callback stored exactly once, no video moved to `ready` twice.")
    out.append(
        "**Where the time goes.** The machine is CPU-bound: during the load its "
        f"{os.cpu_count()} cores are {busy:.0%} busy, and each answered callback costs {g:.1f} ms of gunicorn "
        f"CPU, {p:.1f} ms of PostgreSQL CPU and {w:.2f} ms of wrk CPU, {g + p + w:.1f} ms in all, so "
        f"{os.cpu_count()} cores cannot do more than about {ceiling:.0f}/s whatever the worker/thread split. "
        f"Of gunicorn's {g:.1f} ms, Django's own handling of a repeated callback is "
        f"{shipped[on_processing]['cpu_ms']:.1f} ms (one at a time in-process, where nothing competes for the GIL); "
        "the rest is gunicorn (HTTP parsing, access log, handing connections to threads) and threads contending "
        f"for one GIL and two cores. A callback makes {trips[dup]['round_trips']} round trips to PostgreSQL "
        f"({trips[app]['round_trips']} when it moves the video) and commits {trips[dup]['commits']} times "
        f"({trips[app]['commits']} when it moves the video), each commit a WAL flush: the health check `SELECT 1`, "
        "the lookup by token, the record's INSERT, the transition's transaction (a `SELECT ... FOR UPDATE` even "
        "for a duplicate) and the UPDATE of the outcome after it. Each query is mostly Python in the ORM (building the SQL, "
        "making model instances)"
        + (f": py-spy finds {profile_share(profiled, 'Django ORM')} of a worker's GIL-holding samples in the ORM, "
           f"{profile_share(profiled, 'psycopg')} in psycopg, {profile_share(profiled, 'Django request')} in "
           f"request handling and middleware, {profile_share(profiled, 'gunicorn')} in gunicorn and "
           f"{profile_share(profiled, 'logging')} in logging" if profiled else "")
        + (". Waiting for PostgreSQL is not the limit: with the cores busy, there is always another request "
           "for a thread to run." if busy >= 0.9 else "."))
    if ref:
        out.append(f"For scale: on the same server, `GET /healthz` (no ORM, one `SELECT 1`) costs "
                   f"{ref['gunicorn_ms']:.2f} ms of gunicorn CPU per request ({ref['rps']:.0f}/s): that much of the "
                   f"callback's {g:.1f} ms is gunicorn + Django's middleware before the view does any work.")
    alt = [label for label in medians if label != first_label]
    busy_of = {label: statistics.median(r["cpu"]["machine"] / (os.cpu_count() * r["cpu"]["seconds"]) for r in rs)
               for label, rs in groups.items()}
    config_text = ("**Configuration.** Median callbacks/s: "
                   + ", ".join(f"{label} {rps:.0f} (cores {busy_of[label]:.0%} busy)" for label, rps in medians.items())
                   + ". ")
    default_runs = [r["rps"] for r in groups[first_label]]
    best_runs = [r["rps"] for r in groups[best_label]]
    consistent = best_label != first_label and min(best_runs) > max(default_runs)
    if consistent:
        w_, t_ = groups[best_label][0]["workers"], groups[best_label][0]["threads"]
        config_text += (
            f"{best_label} was ahead in every run ({', '.join(f'{x:.0f}' for x in best_runs)} against "
            f"{', '.join(f'{x:.0f}' for x in default_runs)}): it keeps the cores busier, since fewer threads take "
            f"turns at each process's GIL. Recommended on 2 cores: {w_} x {t_} (the same {w_ * t_} threads in all, so as many "
            "slow uploads in flight); the Procfile fixes `--threads 8`, so this needs `--threads "
            "${WEB_THREADS:-8}` there and `WEB_CONCURRENCY="
            f"{w_} WEB_THREADS={t_}` in the environment, at the price of {w_ - groups[first_label][0]['workers']} "
            "more worker processes' memory. It does not change the picture: CPU per callback is the limit.")
    else:
        if best_label != first_label:
            config_text += (f"{best_label} is ahead in the median, but the runs overlap. ")
        for label in alt:
            rs = groups[label]
            config_text += (
                f"Run by run, {label}: {', '.join(f'{r['rps']:.0f}' for r in rs)}/s, p99 "
                f"{', '.join(f'{r['load']['p99_ms']:.0f}' for r in rs)} ms, gunicorn CPU per callback "
                f"{', '.join(f'{r['cpu']['gunicorn'] / max(r['load']['completed'], 1) * 1000:.1f}' for r in rs)} ms; "
                f"{first_label}: {', '.join(f'{r['rps']:.0f}' for r in runs)}/s, p99 "
                f"{', '.join(f'{r['load']['p99_ms']:.0f}' for r in runs)} ms, "
                f"{', '.join(f'{r['cpu']['gunicorn'] / max(r['load']['completed'], 1) * 1000:.1f}' for r in runs)} ms. ")
        config_text += ("More processes keep the cores busier (fewer threads take turns at each GIL) but spend "
                        "more CPU per callback (more processes switching on 2 cores) and answer less evenly; no "
                        "split adds CPU that is not there. Recommended: keep the Procfile's default (one worker "
                        "per core, `WEB_CONCURRENCY` = cores on bigger machines, several threads each so a slow "
                        "3 GB upload does not hold up callbacks).")
    out.append(config_text)
    out.append(
        "**Recommendation (measured in-bench, not shipped).** "
        "(1) A callback to a video that can no longer change (`ready`, `cancelled` or deleted: the repeats "
        "memories.ai sends after PARSE) needs no lock: decide the outcome from the row the view has just "
        "read (`duplicate` for PARSE to a ready video, else `stale`, what `apply_remote_status` answers) and "
        "store it in the record's INSERT. (2) Otherwise write the outcome inside the transition's transaction "
        "instead of in an autocommit UPDATE after it (one commit fewer). Same outcomes and answers; the record "
        "is still stored before anything is applied. "
        f"Round trips / commits: {trips[rdy]['round_trips']}/{trips[rdy]['commits']} -> "
        f"{trips_patched[rdy]['round_trips']}/{trips_patched[rdy]['commits']} for a repeat to a ready video, "
        f"{trips[dup]['round_trips']}/{trips[dup]['commits']} -> {trips_patched[dup]['round_trips']}/"
        f"{trips_patched[dup]['commits']} for one to a processing video. One at a time in-process, Django + "
        f"PostgreSQL CPU per callback: {cost(shipped[on_ready]):.2f} -> {cost(patched[on_ready]):.2f} ms to a "
        f"ready video, {cost(shipped[on_processing]):.2f} -> {cost(patched[on_processing]):.2f} ms to a "
        f"processing one. {share:.0%} of this load's callbacks reached an already ready video, so the patch would "
        f"take about {saved:.1f} ms off the {g + p + w:.1f} ms measured under load: about {projected:.0f}/s on "
        "these 2 cores (a projection from the in-process numbers, not a gunicorn measurement"
        + (f"; it reaches {TARGET_RPS}/s only because half of this load's callbacks are repeats to ready videos, "
           "and only a run with the change shipped can confirm it). " if projected >= TARGET_RPS else "). ")
        + f"Without it, {TARGET_RPS}/s on 2 cores shared with PostgreSQL and the load generator needs fewer "
        "CPU-milliseconds per callback than gunicorn + Django + the ORM take for 7 round trips; otherwise more "
        "cores (the load is CPU-bound, PostgreSQL is not the limit). "
        "For scale: memories.ai sends two callbacks per video (UNPARSE, PARSE), sometimes repeated, so "
        f"{medians[first_label]:.0f}/s is far above what the portal receives.")
    return "\n\n".join(out)


def profile_share(profiled, prefix):
    if not profiled or not profiled.get("profile"):
        return "?"
    prof = profiled["profile"]
    n = sum(v for k, v in prof["buckets"].items() if k.startswith(prefix))
    return f"{n / max(prof['samples'], 1):.0%}"


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_client":
        python_client_process(json.loads(Path(sys.argv[2]).read_text()))
    else:
        sys.exit(main())
