"""The callback endpoint (uploads/callbacks.py) under load: gunicorn as the Procfile runs it,
PostgreSQL, 50 keep-alive clients. Target (the issue): >= 500 callbacks/s, 0 answers 5xx.

    .venv/bin/python bench/callback_load.py [--duration 20] [--repeat 2] [--configs 2x8,4x4]
                                            [--clients 50] [--videos 200] [--generator auto|wrk|python]
                                            [--profile] [--write-docs] [--docs-from-json]

What it does, in its own database (memportal_bench_callback_load on 127.0.0.1:5432, dropped,
recreated and migrated):

* Round trips. One callback of each kind (repeat to a processing video, the PARSE that moves it
  to `ready`, repeats to the ready video) goes through Django in this process with libpq's
  protocol trace on; the trace's queries and commits are counted exactly.
* Service time. --inprocess callbacks of each repeat kind, one at a time through Django's WSGI
  handler in this process: CPU ms of this process and of its PostgreSQL backend per callback.
* Load, for each gunicorn configuration WORKERSxTHREADS (default: the Procfile's, then 4x4),
  --repeat times, alternating, each after waiting (bounded) until other processes are quiet:
  1. a fresh team of --videos videos in `processing` (remote status UNPARSE, a videoNo each, as
     after an accepted relay), and a warm-up team of 50 such videos;
  2. the Procfile's `web` line exactly (`${VAR:-x}` expanded; WEB_CONCURRENCY sets the workers,
     only a non-default thread count replaces the `--threads` value) on 127.0.0.1:<free port>;
  3. --warmup seconds against the warm-up team, then --duration seconds against the fresh videos:
     each client POSTs `{"videoNo": ..., "status": "UNPARSE"|"PARSE"}` (--parse-share PARSE) to a
     random video's callback path, so most callbacks are repeats, as memories.ai sends them;
  4. gunicorn stopped, the database is checked exactly: CallbackRecord rows == requests sent,
     no pending/refused/error, at most one `ready` event per video, every video sent a PARSE is
     `ready`, as many `applied` as videos made ready; no 5xx, no traceback in gunicorn's log.
  CPU seconds of gunicorn, PostgreSQL (this database's backends and its background processes)
  and the load generator, and the machine's busy time, are read from /proc during the load.
  The first run also measures `GET /healthz` on the same server, for reference (--no-reference).

The generator is `wrk` with a generated Lua script that counts every request it writes and every
answer by class, or, without wrk, Python clients (http.client, keep-alive) in --gen-procs
processes. --profile adds a run with py-spy (installed into var/bench-tools, never the venv) on
one gunicorn worker, its samples summed by where they are. --write-docs replaces the
callback_load section of docs/benchmarks.md; --docs-from-json rewrites it from the last run's
var/bench-callback_load/results.json.
"""

import argparse
import io
import json
import os
import random
import re
import secrets
import shlex
import shutil
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

import benchlib
from benchlib import CLK_TCK, DOCS, PG, ROOT, run

NAME = "callback_load"
DB_NAME = "memportal_bench_callback_load"
VAR = ROOT / "var" / f"bench-{NAME}"
TOOLS = ROOT / "var" / "bench-tools"
TARGET_RPS = 500
WARMUP_VIDEOS = 50
CORES = os.cpu_count()


# --- environment -------------------------------------------------------------------------------

def bench_env(port=None, workers=None):
    """gunicorn is found on PATH (the venv's bin first); the Procfile's web line reads MEMPORTAL_BIND
    and WEB_CONCURRENCY, set here only when given."""
    extra = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    if port is not None:
        extra["MEMPORTAL_BIND"] = f"127.0.0.1:{port}"
    if workers is not None:
        extra["WEB_CONCURRENCY"] = workers
    return benchlib.bench_env(DB_NAME, VAR, unset=("MEMPORTAL_BIND", "WEB_CONCURRENCY"), **extra)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def machine():
    wrk = shutil.which("wrk")
    return benchlib.machine(
        wrk=run([wrk, "--version"], check=False).stdout.split(" [")[0] if wrk else "not installed")


# --- seeding and checking (ORM, in this process) -----------------------------------------------

def seed(label, count, ready=False):
    """A team with `count` videos as an accepted relay leaves them (processing, UNPARSE), or with
    ready=True as a PARSE leaves them (ready, PARSE); returns the team and the callback targets."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from uploads.models import Team, Video, token_digest

    team = Team.objects.create(name=f"bench {label}", slug=f"bench-{label}")
    owner = get_user_model().objects.create_user(username=f"bench-{label}", password=secrets.token_urlsafe(16))
    videos = []
    for i in range(count):
        video = Video(team=team, owner=owner, original_name=f"clip-{i}.mp4", content_type="video/mp4",
                      size=1000, sha256="0" * 64, status=Video.Status.READY if ready else Video.Status.PROCESSING,
                      remote_status="PARSE" if ready else "UNPARSE",
                      video_no=f"VI{secrets.randbelow(10**17) + 10**17}", remote_uploaded_at=timezone.now())
        video.callback_digest = token_digest(video.callback_token)
        videos.append(video)
    Video.objects.bulk_create(videos)
    return team, [{"path": v.callback_path, "video_no": v.video_no} for v in videos]


def check_team(team, sent):
    """Exact counts after a run: the facts, and the problems (empty when every check holds)."""
    from django.db.models import Count

    from uploads.models import CallbackRecord, Video, VideoEvent

    records = CallbackRecord.objects.filter(video__team=team)
    outcomes = dict(records.values_list("outcome").annotate(n=Count("pk")).order_by())
    ready_events = (VideoEvent.objects.filter(video__team=team, to_status=Video.Status.READY)
                    .values("video").annotate(n=Count("pk")))
    videos = Video.objects.filter(team=team)
    facts = {"records": records.count(), "sent": sent, "outcomes": outcomes,
             "by_status": dict(records.values_list("remote_status").annotate(n=Count("pk")).order_by()),
             "ready_videos": videos.filter(status=Video.Status.READY).count(), "videos": videos.count(),
             "videos_sent_parse": records.filter(remote_status="PARSE").values("video").distinct().count(),
             "videos_with_ready_event": len(ready_events),
             "max_ready_events_per_video": max((row["n"] for row in ready_events), default=0)}
    ready = facts["ready_videos"]
    problems = []
    if facts["records"] != sent:
        problems.append(f"CallbackRecord rows {facts['records']} != requests sent {sent}")
    problems += [f"{outcomes[bad]} callbacks with outcome {bad}" for bad in ("pending", "error", "refused")
                 if outcomes.get(bad)]
    if facts["max_ready_events_per_video"] > 1:
        problems.append(f"a video has {facts['max_ready_events_per_video']} ready events")
    if ready != facts["videos_sent_parse"] or facts["videos_with_ready_event"] != ready:
        problems.append(f"{ready} videos ready, {facts['videos_sent_parse']} were sent PARSE, "
                        f"{facts['videos_with_ready_event']} have a ready event")
    if outcomes.get("applied", 0) != ready:
        problems.append(f"{outcomes.get('applied', 0)} callbacks applied but {ready} videos became ready")
    return facts, problems


def wait_for_records(team, expected, timeout=60):
    """Requests written just before the generator stopped may still be in gunicorn: wait for them."""
    from uploads.models import CallbackRecord

    deadline, last, stable_since = time.monotonic() + timeout, -1, time.monotonic()
    while time.monotonic() < deadline:
        count = CallbackRecord.objects.filter(video__team=team).count()
        if count != last:
            last, stable_since = count, time.monotonic()
        elif time.monotonic() - stable_since >= (1.0 if count >= expected else 5.0):
            return count
        time.sleep(0.25)
    return last


# --- one callback at a time, in this process ---------------------------------------------------

ROUND_TRIP_KINDS = [("UNPARSE, duplicate (video processing)", "UNPARSE"),
                    ("PARSE, applied (-> ready)", "PARSE"),
                    ("PARSE, duplicate (video ready)", "PARSE"),
                    ("UNPARSE, stale (video ready)", "UNPARSE")]
INPROCESS_KINDS = {"repeat to a processing video (UNPARSE, duplicate)": (False, "UNPARSE"),
                   "repeat to a ready video (PARSE, duplicate)": (True, "PARSE")}


def round_trips_per_callback():
    """Exact PostgreSQL round trips and commits of one callback of each kind, in turn on one video
    (libpq protocol trace of a request through Django's test client)."""
    import psycopg
    from django.db import close_old_connections, connection
    from django.test import Client

    _, [target] = seed("roundtrips", 1)
    client = Client(HTTP_HOST="127.0.0.1")
    client.get("/healthz")  # connection open, first-request work done
    trace_path = VAR / "pq-trace.txt"
    results = {}
    for label, status in ROUND_TRIP_KINDS:
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
        words = [line.split("\t", 3)[3].strip().strip('"').split()[0].upper()
                 for line in trace_path.read_text().splitlines() if line.startswith("F\t") and "\tQuery\t" in line]
        commits, in_txn = 0, False  # BEGIN..COMMIT blocks, plus writes in autocommit
        for word in words:
            if word == "BEGIN":
                in_txn = True
            elif word == "COMMIT":
                in_txn, commits = False, commits + 1
            elif word in ("INSERT", "UPDATE", "DELETE") and not in_txn:
                commits += 1
        results[label] = {"status_code": response.status_code, "answer": response.json().get("message"),
                          "round_trips": len(words), "kinds": dict(Counter(words)), "commits": commits}
    trace_path.unlink(missing_ok=True)
    return results


def inprocess_service_time(count, blocks=5):
    """Callbacks one at a time through Django's WSGI handler (all middleware and request signals,
    so the health check too): CPU ms of this process and of its PostgreSQL backend, and wall ms,
    per callback of each kind; the kinds alternate in `blocks` so drift hits both alike."""
    from django.core.handlers.wsgi import WSGIHandler
    from django.db import connection

    from uploads.models import CallbackRecord

    app, rng, statuses = WSGIHandler(), random.Random(7), []
    teams = {kind: seed(f"inprocess-{i}", 200, ready=ready)
             for i, (kind, (ready, _)) in enumerate(INPROCESS_KINDS.items())}

    def call(target, status):
        body = json.dumps({"videoNo": target["video_no"], "status": status}).encode()
        environ = {"REQUEST_METHOD": "POST", "PATH_INFO": target["path"], "SERVER_NAME": "127.0.0.1",
                   "SERVER_PORT": "80", "HTTP_HOST": "127.0.0.1", "CONTENT_TYPE": "application/json",
                   "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body), "wsgi.url_scheme": "http",
                   "REMOTE_ADDR": "127.0.0.1", "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.errors": sys.stderr}
        answer = app(environ, lambda status, headers: statuses.append(status))
        b"".join(answer)
        answer.close()

    for kind, (_, targets) in teams.items():  # warm: imports, connection, first-use caches
        for target in targets[:5]:
            call(target, INPROCESS_KINDS[kind][1])
    totals = defaultdict(Counter)
    per_block = max(count // blocks, 1)
    for _ in range(blocks):
        for kind, (_, targets) in teams.items():
            connection.ensure_connection()
            with connection.cursor() as cursor:
                cursor.execute("select pg_backend_pid()")
                backend = cursor.fetchone()[0]
            pg0, c0, w0 = proc_cpu(backend), time.process_time(), time.perf_counter()
            for _ in range(per_block):
                call(rng.choice(targets), INPROCESS_KINDS[kind][1])
            totals[kind].update({"wall": time.perf_counter() - w0, "cpu": time.process_time() - c0,
                                 "pg": proc_cpu(backend) - pg0, "n": per_block})
    if any(not s.startswith("200") for s in statuses):
        raise SystemExit(f"in-process callbacks answered {Counter(statuses)}")
    return {kind: {"n": t["n"], "cpu_ms": t["cpu"] / t["n"] * 1000, "pg_ms": t["pg"] / t["n"] * 1000,
                   "wall_ms": t["wall"] / t["n"] * 1000,
                   "outcomes": dict(Counter(CallbackRecord.objects.filter(video__team=teams[kind][0])
                                            .values_list("outcome", flat=True)))}
            for kind, t in totals.items()}


# --- CPU accounting ----------------------------------------------------------------------------

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


class CpuWindow:
    """CPU seconds of gunicorn (master + workers), PostgreSQL and the whole machine in a window."""

    def __init__(self, gunicorn_pid):
        self.gpids = [gunicorn_pid, *children(gunicorn_pid)]
        self.ppids = postgres_pids()
        self.g0 = {pid: proc_cpu(pid) for pid in self.gpids}
        self.p0 = {pid: proc_cpu(pid) for pid in self.ppids}
        self.m0, self.t0 = benchlib.busy_seconds(), time.monotonic()

    def close(self):
        self.seconds = time.monotonic() - self.t0
        self.machine = benchlib.busy_seconds() - self.m0
        self.per_worker = [proc_cpu(pid) - self.g0[pid] for pid in self.gpids[1:]]
        self.gunicorn = proc_cpu(self.gpids[0]) - self.g0[self.gpids[0]] + sum(self.per_worker)
        # Backends that connect during the window (a gunicorn thread's first request) count whole.
        self.postgres = sum(max(proc_cpu(pid) - self.p0.get(pid, 0.0), 0) for pid in {*self.ppids, *postgres_pids()})
        return self


def other_load(seconds=3.0):
    """Cores used by processes other than PostgreSQL's (idle between runs) over `seconds`."""
    pg = postgres_pids()
    pg0, m0 = sum(proc_cpu(p) for p in pg), benchlib.busy_seconds()
    time.sleep(seconds)
    return max(benchlib.busy_seconds() - m0 - (sum(proc_cpu(p) for p in pg) - pg0), 0) / seconds


def wait_for_quiet(limit):
    """Other people's test runs share the cores: wait (bounded) until they are quiet."""
    deadline = time.monotonic() + limit
    while True:
        load_ = other_load()
        if load_ < 0.3 or time.monotonic() >= deadline:
            if load_ >= 0.3:
                print(f"  (machine still busy: other processes use {load_:.1f} cores; measuring anyway)", flush=True)
            return load_
        print(f"  waiting: other processes use {load_:.1f} cores ...", flush=True)
        time.sleep(5)


# --- gunicorn ----------------------------------------------------------------------------------

def procfile_web_argv(env, threads=None):
    line = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:"))
    command = re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: env.get(m.group(1)) or m.group(2), line.split(":", 1)[1])
    command = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: env.get(m.group(1) or m.group(2), ""), command)
    argv = shlex.split(command)
    if threads is not None:
        argv[argv.index("--threads") + 1] = str(threads)
    return argv


def procfile_default(option):
    argv = procfile_web_argv({})
    return int(argv[argv.index(option) + 1])


class Gunicorn:
    def __init__(self, workers, threads, label):
        self.port = free_port()
        self.env = bench_env(port=self.port, workers=workers)
        self.argv = procfile_web_argv(self.env, None if threads == procfile_default("--threads") else threads)
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
        benchlib.stop_process(self.proc, 40)
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
    '"c5xx": %%d, "cother": %%d, "socket_errors": %%d, ' ..
    '"p50_us": %%d, "p90_us": %%d, "p99_us": %%d, "max_us": %%d}\n',
    t.sent, summary.requests, summary.duration, t.c2xx, t.c3xx, t.c4xx, t.c5xx, t.cother,
    e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


def run_wrk(base, targets, clients, seconds, parse_share, seed, label):
    lua = VAR / f"load-{label}.lua"
    lua.write_text(LUA % {"paths": ", ".join(json.dumps(t["path"]) for t in targets),
                          "nos": ", ".join(json.dumps(t["video_no"]) for t in targets),
                          "parse_share": parse_share, "seed": seed})
    argv = ["wrk", "-t2", f"-c{clients}", f"-d{seconds}s", "--timeout", "10s", "-s", str(lua), base + "/"]
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    timer = threading.Timer(seconds + 60, proc.kill)  # wrk stops itself; this is only a safety net
    timer.start()
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)  # wait4: the generator's own CPU time
    proc.returncode = os.waitstatus_to_exitcode(status)
    timer.cancel()
    found = re.search(r"BENCH_JSON (\{.*\})", out)
    if proc.returncode != 0 or not found:
        raise SystemExit(f"wrk failed ({proc.returncode}):\n{out}")
    r = json.loads(found.group(1))
    return {"generator": "wrk", "seconds": r.pop("duration_us") / 1e6,
            **{k.replace("_us", "_ms"): v / 1000 if k.endswith("_us") else v for k, v in r.items()},
            "generator_cpu": usage.ru_utime + usage.ru_stime}


def python_client_process(spec):
    """Runs in its own process: spec["threads"] keep-alive clients until the deadline; one JSON line out."""
    import http.client
    import resource

    lock, totals, latencies = threading.Lock(), Counter(), []
    start = time.monotonic()
    deadline = start + spec["seconds"]

    def client(index):
        rng = random.Random(spec["seed"] * 1000 + index)
        conn = http.client.HTTPConnection("127.0.0.1", spec["port"], timeout=10)
        mine, counts = [], Counter()
        while time.monotonic() < deadline:
            target = rng.choice(spec["targets"])
            status = "PARSE" if rng.random() < spec["parse_share"] else "UNPARSE"
            t0 = time.perf_counter()
            counts["sent"] += 1
            try:
                conn.request("POST", target["path"], body=json.dumps({"videoNo": target["video_no"], "status": status}),
                             headers={"Content-Type": "application/json"})
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
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"counts": totals, "seconds": time.monotonic() - start, "latencies": latencies,
                      "cpu": usage.ru_utime + usage.ru_stime}))


def run_python(base, targets, clients, seconds, parse_share, seed, label, procs):
    port = int(base.rsplit(":", 1)[1])
    running = []
    for i in range(procs):
        spec_path = VAR / f"client-{label}-{i}.json"
        spec_path.write_text(json.dumps({"targets": targets, "seconds": seconds, "parse_share": parse_share,
                                         "threads": clients // procs + (1 if i < clients % procs else 0),
                                         "seed": seed + i, "port": port}))
        running.append(subprocess.Popen([sys.executable, __file__, "_client", str(spec_path)], cwd=ROOT,
                                        stdout=subprocess.PIPE, text=True))
    results = []
    for proc in running:
        try:
            results.append(json.loads(proc.communicate(timeout=seconds + 60)[0]))
        except subprocess.TimeoutExpired:
            proc.kill()
            raise SystemExit("the Python load generator did not stop in time")
    total = sum((Counter(r["counts"]) for r in results), Counter())
    latencies = sorted(x * 1000 for r in results for x in r["latencies"]) or [0.0]
    pct = lambda p: latencies[min(int(len(latencies) * p / 100), len(latencies) - 1)]  # noqa: E731
    return {"generator": f"python ({procs} processes x threads)", "seconds": max(r["seconds"] for r in results),
            **{k: total[k] for k in ("sent", "completed", "c2xx", "c3xx", "c4xx", "c5xx", "cother", "socket_errors")},
            "p50_ms": pct(50), "p90_ms": pct(90), "p99_ms": pct(99), "max_ms": latencies[-1],
            "generator_cpu": sum(r["cpu"] for r in results)}


def load(args, base, targets, seconds, seed, label):
    if args.generator == "wrk":
        return run_wrk(base, targets, args.clients, seconds, args.parse_share, seed, label)
    return run_python(base, targets, args.clients, seconds, args.parse_share, seed, label, args.gen_procs)


def reference_healthz(server, args):
    """For scale: GET /healthz (one `SELECT 1`, same middleware) on the same gunicorn, same clients."""
    seconds = min(args.duration, 10)
    run(["wrk", "-t2", f"-c{args.clients}", "-d2s", server.base + "/healthz"], timeout=60)  # warm
    window = CpuWindow(server.proc.pid)
    out = run(["wrk", "-t2", f"-c{args.clients}", f"-d{seconds}s", "--timeout", "10s", server.base + "/healthz"],
              timeout=seconds + 60).stdout
    cpu = window.close()
    done = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), "seconds": seconds,
            "non2xx": int(bad.group(1)) if bad else 0, "gunicorn_ms": cpu.gunicorn / max(done, 1) * 1000,
            "busy": cpu.machine / (CORES * cpu.seconds)}


# --- one run -----------------------------------------------------------------------------------

def run_config(args, workers, threads, index, profile=False):
    label = f"{workers}x{threads}" + ("-profile" if profile else "")
    warm_team, warm_targets = seed(f"warmup-{index}-{label}", WARMUP_VIDEOS)
    team, targets = seed(f"load-{index}-{label}", args.videos)
    server = Gunicorn(workers, threads, f"{index}-{label}")
    reference = None
    try:
        if args.reference and args.generator == "wrk" and index == 0 and not profile:
            reference = reference_healthz(server, args)
        warm = load(args, server.base, warm_targets, args.warmup, 1000 + index, f"{label}-warmup")
        wait_for_records(warm_team, warm["sent"])
        spy = start_py_spy(children(server.proc.pid)[0], args.duration, label) if profile else None
        window = CpuWindow(server.proc.pid)
        result = load(args, server.base, targets, args.duration, 2000 + index, label)
        cpu = window.close()
        if spy is not None:
            spy.wait(timeout=args.duration + 60)
        wait_for_records(team, result["sent"])
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
    return {"label": label, "run": index, "workers": workers, "threads": threads, "argv": server.argv,
            "reference": reference, "load": result, "rps": result["completed"] / result["seconds"],
            "facts": facts, "warmup": {"sent": warm["sent"], "records": warm_facts["records"]},
            "cpu": {"seconds": cpu.seconds, "gunicorn": cpu.gunicorn, "per_worker": cpu.per_worker,
                    "postgres": cpu.postgres, "generator": result["generator_cpu"], "machine": cpu.machine},
            "problems": problems, "profile": summarize_py_spy(label) if profile else None}


# --- py-spy ------------------------------------------------------------------------------------

def start_py_spy(pid, seconds, label):
    binary = TOOLS / "bin" / "py-spy"
    if not binary.exists():
        print("installing py-spy into var/bench-tools (not the venv) ...", flush=True)
        run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--target",
             str(TOOLS), "py-spy"])
    return subprocess.Popen([str(binary), "record", "--pid", str(pid), "--duration", str(seconds), "--rate", "100",
                             "--gil", "--format", "raw", "--output", str(VAR / f"py-spy-{label}.txt"), "--nonblocking"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# Where a sample is: the innermost frame that matches one of these, checked in this order.
PROFILE_BUCKETS = [
    ("psycopg: adapting parameters, sending, reading results", re.compile(r"\(psycopg/|psycopg_binary|\(psycopg_c")),
    ("logging (access log, app log)", re.compile(r"\(logging/|glogging\.py|memportal/logs\.py")),
    ("Django ORM: SQL compile, model instances", re.compile(r"django/db/models/")),
    ("Django DB backend wrapper (cursor, atomic, health check)", re.compile(r"django/db/(backends|transaction|utils)")),
    ("json", re.compile(r"\(json/")),
    ("Django request/response, middleware, URLs",
     re.compile(r"django/(core|middleware|http|urls|contrib|utils|views|conf|dispatch)")),
    ("gunicorn HTTP parsing, socket I/O, thread pool",
     re.compile(r"gunicorn/|\(selectors|\(socket|\(concurrent/|\(threading")),
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
        n, frames = int(count), stack.split(";")
        total += n
        in_view += n if any("memories_callback" in f for f in frames) else 0
        where = next((name for frame in reversed(frames) for name, pattern in PROFILE_BUCKETS if pattern.search(frame)),
                     "other")
        buckets[where] += n
    return {"samples": total, "in_view": in_view, "buckets": dict(buckets.most_common())}


# --- tables ------------------------------------------------------------------------------------

def per_callback_ms(r, key):
    return r["cpu"][key] / max(r["load"]["completed"], 1) * 1000


def by_config(results):
    groups = defaultdict(list)
    for r in results:
        groups[r["label"]].append(r)
    return groups


def run_name(r):
    return f"{r['label']} (run {r['run'] + 1})"


def summary_table(results):
    lines = ["| gunicorn (workers x threads) | runs | requests/s per run | median requests/s | p50 ms (median) "
             "| p99 ms (median) | non-2xx | 5xx | CPU ms per callback: gunicorn + PostgreSQL + generator (median) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for label, runs in by_config(results).items():
        keys = ("gunicorn", "postgres", "generator")
        split = [statistics.median(per_callback_ms(r, k) for r in runs) for k in keys]
        total = statistics.median(sum(per_callback_ms(r, k) for k in keys) for r in runs)
        lines.append(
            f"| {label} | {len(runs)} | {', '.join(f'{r['rps']:.0f}' for r in runs)} | "
            f"{statistics.median(r['rps'] for r in runs):.0f} | "
            f"{statistics.median(r['load']['p50_ms'] for r in runs):.0f} | "
            f"{statistics.median(r['load']['p99_ms'] for r in runs):.0f} | "
            f"{sum(r['load']['completed'] - r['load']['c2xx'] for r in runs)} | "
            f"{sum(r['load']['c5xx'] for r in runs)} | "
            f"{total:.1f} = {split[0]:.1f} + {split[1]:.1f} + {split[2]:.2f} |")
    return "\n".join(lines)


def runs_table(results):
    lines = ["| gunicorn (workers x threads) | requests sent | completed | requests/s | p50 ms | p90 ms | p99 ms "
             "| max ms | non-2xx | 5xx | socket errors | CallbackRecord rows |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        x = r["load"]
        lines.append(f"| {run_name(r)} | {x['sent']} | {x['completed']} | {r['rps']:.0f} | {x['p50_ms']:.1f} | "
                     f"{x['p90_ms']:.1f} | {x['p99_ms']:.1f} | {x['max_ms']:.0f} | {x['completed'] - x['c2xx']} | "
                     f"{x['c5xx']} | {x['socket_errors']} | {r['facts']['records']} |")
    return "\n".join(lines)


def outcome_table(results):
    lines = ["| gunicorn | CallbackRecord rows (= sent) | applied | duplicate | stale | pending/refused/error "
             "| UNPARSE / PARSE sent | videos ready | videos sent a PARSE | max ready events per video | checks |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        f, o = r["facts"], r["facts"]["outcomes"]
        lines.append(f"| {run_name(r)} | {f['records']} (= {f['sent']}) | {o.get('applied', 0)} | "
                     f"{o.get('duplicate', 0)} | {o.get('stale', 0)} | "
                     f"{sum(o.get(k, 0) for k in ('pending', 'refused', 'error'))} | "
                     f"{f['by_status'].get('UNPARSE', 0)} / {f['by_status'].get('PARSE', 0)} | "
                     f"{f['ready_videos']} / {f['videos']} | {f['videos_sent_parse']} | "
                     f"{f['max_ready_events_per_video']} | {'PASS' if not r['problems'] else 'FAIL'} |")
    return "\n".join(lines)


def cpu_table(results):
    lines = [f"| gunicorn | wall s | gunicorn CPU s (per worker) | PostgreSQL CPU s | generator CPU s | "
             f"machine busy CPU s (of {CORES} x wall) | other processes CPU s | gunicorn CPU ms per callback |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        c = r["cpu"]
        lines.append(f"| {run_name(r)} | {c['seconds']:.1f} | {c['gunicorn']:.1f} "
                     f"({', '.join(f'{w:.1f}' for w in c['per_worker'])}) | {c['postgres']:.1f} | "
                     f"{c['generator']:.1f} | {c['machine']:.1f} of {CORES * c['seconds']:.0f} | "
                     f"{other_cpu(r):.1f} | {per_callback_ms(r, 'gunicorn'):.2f} |")
    return "\n".join(lines)


def other_cpu(r):
    c = r["cpu"]
    return max(c["machine"] - c["gunicorn"] - c["postgres"] - c["generator"], 0)


def describe_queries(r):
    return ", ".join(f"{k} {v}" for k, v in sorted(r["kinds"].items(), key=lambda kv: -kv[1]))


def round_trip_table(trips):
    lines = ["| callback | answer | round trips | of which | commits (WAL flushes) |", "|---|---|---|---|---|"]
    lines += [f"| {label} | {r['status_code']} {r['answer']} | {r['round_trips']} | {describe_queries(r)} | "
              f"{r['commits']} |" for label, r in trips.items()]
    return "\n".join(lines)


def inprocess_table(inprocess):
    lines = ["| callback | callbacks | CPU ms / callback (Django) | PostgreSQL backend CPU ms / callback "
             "| wall ms / callback | outcomes |", "|---|---|---|---|---|---|"]
    lines += [f"| {kind} | {r['n']} | {r['cpu_ms']:.2f} | {r['pg_ms']:.2f} | {r['wall_ms']:.2f} | "
              f"{', '.join(f'{k} {v}' for k, v in sorted(r['outcomes'].items()))} |" for kind, r in inprocess.items()]
    return "\n".join(lines)


def profile_table(profile):
    total = profile["samples"] or 1
    lines = [f"py-spy `--gil`, one gunicorn worker, 100 Hz: only the thread holding the GIL is sampled, so "
             f"this is where the worker's Python time goes. {profile['samples']} samples, "
             f"{profile['in_view'] / total:.0%} of them inside the callback view.", "",
             "| where (innermost matching frame) | share of the GIL-holding samples |", "|---|---|"]
    lines += [f"| {name} | {n / total:.0%} |" for name, n in profile["buckets"].items()]
    return "\n".join(lines)


# --- docs --------------------------------------------------------------------------------------

def render_docs(args, info, started, results, trips, inprocess, profiled):
    command = benchlib.command_line(NAME)
    medians = {label: statistics.median(r["rps"] for r in runs) for label, runs in by_config(results).items()}
    all_ok = all(not r["problems"] for r in results)
    total_5xx = sum(r["load"]["c5xx"] for r in results)
    ref = next((r["reference"] for r in results if r.get("reference")), None)
    generator = results[0]["load"]["generator"]
    parts = [
        f"## Callback endpoint under load (bench/{NAME}.py)", "",
        f"Measured {started:%Y-%m-%d %H:%M} UTC on {benchlib.machine_text(info)}, {info['wrk']}, "
        f"with `{command}`.", "",
        summary_table(results), "",
        "| target | measured | result |", "|---|---|---|",
        *[f"| ≥ {TARGET_RPS} callbacks/s ({label}, median) | {rps:.0f} | {'PASS' if rps >= TARGET_RPS else 'FAIL'} |"
          for label, rps in medians.items()],
        f"| 0 answers 5xx (all runs) | {total_5xx} | {'PASS' if not total_5xx else 'FAIL'} |",
        "| CallbackRecord rows == requests sent, no pending/refused/error, ≤ 1 ready event per video, "
        "every video sent a PARSE is ready (all runs) | "
        f"{'all hold' if all_ok else '; '.join(p for r in results for p in r['problems'])} | "
        f"{'PASS' if all_ok else 'FAIL'} |", "",
        analysis(results, medians, trips, inprocess, ref, profiled), "",
        "Every run" + (" (the configurations alternate)" if len(medians) > 1 else "") + ":", "",
        runs_table(results), "",
        "Outcomes, counted in the database after each run (the warm-up has its own team and videos and "
        "passes the same checks):", "",
        outcome_table(results), "",
        "Where the CPU went during each run (from /proc; PostgreSQL is this database's backends plus "
        "PostgreSQL's background processes; \"other\" is everything else on the machine, e.g. other "
        "people's test runs):", "",
        cpu_table(results), "",
        "PostgreSQL round trips of one callback, counted in libpq's protocol trace of a single request "
        "through Django (same middleware and settings; `SELECT 1` is `CONN_HEALTH_CHECKS`' check at the "
        "start of each request), the four in turn on one video:", "",
        round_trip_table(trips), "",
        "Service time of one callback, one at a time in the bench process through Django's WSGI handler "
        "(all middleware and request signals, no gunicorn, no concurrency), the two kinds alternating in "
        "5 blocks, each on its own 200 videos:", "",
        inprocess_table(inprocess),
    ]
    if ref:
        parts += ["", f"Reference, same gunicorn ({results[0]['label']}) and clients: `GET /healthz` (one `SELECT 1`, "
                      f"same middleware) serves {ref['rps']:.0f} requests/s ({ref['seconds']} s, "
                      f"{ref['non2xx']} non-2xx) at {ref['gunicorn_ms']:.2f} ms of gunicorn CPU per request, "
                      f"the machine {ref['busy']:.0%} busy."]
    if profiled and profiled.get("profile"):
        parts += ["", f"Profile run ({profiled['label']}, {profiled['rps']:.0f} callbacks/s with py-spy attached):",
                  "", profile_table(profiled["profile"])]
    parts += [
        "",
        "**What is measured.** "
        f"gunicorn runs the Procfile's `web` line as it is (`{shlex.join(results[0]['argv'])}`; another "
        "configuration changes only `WEB_CONCURRENCY` and the `--threads` value) against PostgreSQL on "
        "127.0.0.1, with `DJANGO_DEBUG=false` and the default log level (INFO: one app log line and one "
        f"access log line per callback). Each run gets a fresh team of {args.videos} videos in `processing` "
        "(remote status UNPARSE and a videoNo, as after an accepted relay) and a separate warm-up team of "
        f"{WARMUP_VIDEOS}; after {args.warmup} s of warm-up, {args.clients} keep-alive clients "
        f"({generator}{', 2 threads' if generator == 'wrk' else ''}, on the same {CORES} cores) POST for "
        f"{args.duration} s `{{\"videoNo\": ..., \"status\": ...}}` to random videos' callback paths, "
        f"{args.parse_share:.0%} of them PARSE and the rest UNPARSE: the first PARSE of a video moves it to "
        "`ready` (applied), everything else is a duplicate or stale, as when memories.ai repeats itself. "
        "Requests sent are counted in wrk's request() hook (its own summary counts only answered requests; "
        "the ones in flight when wrk stops are sent and processed but unanswered, about one per client); "
        "after gunicorn has finished, the team's CallbackRecord rows must equal that count exactly. "
        "Latency is per answered request, in a closed loop (a client sends its next request when the "
        f"answer came). Before each run the bench waits (at most {args.quiet_wait} s) until other "
        "processes use less than 0.3 cores.",
    ]
    return "\n".join(parts)


def analysis(results, medians, trips, inprocess, ref, profiled):
    groups = by_config(results)
    first = results[0]["label"]
    runs = groups[first]
    med = lambda f, rs=runs: statistics.median(f(r) for r in rs)  # noqa: E731
    g, p, w = (med(lambda r, k=k: per_callback_ms(r, k)) for k in ("gunicorn", "postgres", "generator"))
    busy = med(lambda r: r["cpu"]["machine"] / (CORES * r["cpu"]["seconds"]))
    other = med(lambda r: other_cpu(r) / r["cpu"]["seconds"])
    total = med(lambda r: sum(per_callback_ms(r, k) for k in ("gunicorn", "postgres", "generator")))
    ceiling = CORES * 1000 / total
    per_run = ", ".join(f"{r['rps']:.0f}" for r in runs)
    rows = ", ".join(str(r["facts"]["records"]) for r in runs)
    applied = sum(r["facts"]["outcomes"].get("applied", 0) for r in runs)
    records = sum(r["facts"]["records"] for r in runs)
    all_ok = all(not r["problems"] for r in runs)
    total_5xx = sum(r["load"]["c5xx"] for r in runs)
    met = medians[first] >= TARGET_RPS
    out = [
        (f"**Result: the target of {TARGET_RPS} callbacks/s is {'met' if met else 'missed'}.** The Procfile's "
         f"default ({first}) answers a median of {medians[first]:.0f} callbacks/s over {len(runs)} "
         f"run{'s' if len(runs) > 1 else ''} "
         f"({per_run}), with {total_5xx} answers 5xx"
         + (f"; every callback stored exactly once (CallbackRecord rows == requests sent: {rows}), none pending, "
            "refused or in error, every video sent a PARSE `ready` with exactly one `ready` event."
            if all_ok else f"; the database checks failed: {'; '.join(p for r in runs for p in r['problems'])}."))]
    cost = (f"Per answered callback (median of the runs) the load costs {g:.1f} ms of gunicorn CPU, "
            f"{p:.1f} ms of PostgreSQL CPU and {w:.2f} ms of {results[0]['load']['generator']} CPU: "
            f"{total:.1f} ms of CPU in all. During the load the machine's {CORES} cores were {busy:.0%} busy "
            f"(median), other processes taking {other:.2f} cores of it.")
    if met:
        out.append(f"**CPU.** {cost} At {total:.1f} ms per callback the {CORES} cores shared by gunicorn, "
                   f"PostgreSQL and the load generator allow at most about {ceiling:.0f}/s "
                   f"({CORES} × 1000 / {total:.1f}).")
    else:
        need, avail = CORES * 1000 / TARGET_RPS, (CORES - other) * 1000 / total
        text = (f"**Why it is below {TARGET_RPS}/s.** {cost} gunicorn, PostgreSQL and the load generator share "
                f"these {CORES} cores: {TARGET_RPS}/s needs at most {need:.1f} ms of CPU per callback with the "
                f"cores to themselves; at {total:.1f} ms the cores allow at most {ceiling:.0f}/s "
                f"({CORES} × 1000 / {total:.1f})"
                + (f", and about {avail:.0f}/s on the {CORES - other:.2f} cores other processes left. " if other >= 0.1
                   else ". "))
        if ceiling < TARGET_RPS and busy >= 0.9:
            text += ("The run is CPU-bound: more throughput on this machine needs fewer CPU-milliseconds per "
                     "callback, or more cores.")
        elif avail < TARGET_RPS and other >= 0.1:
            text += (f"The CPU per callback would allow the target on idle cores: the shortfall is the {other:.2f} "
                     "cores other processes took (other people's test runs).")
        else:
            text += (f"The CPU per callback would allow the target, so CPU alone does not explain the shortfall "
                     f"(cores {busy:.0%} busy); what else held it (GIL contention among the threads, waiting on "
                     "PostgreSQL) is not measured here.")
        out.append(text)
    settled = next((t for label, t in trips.items() if label.startswith("UNPARSE, duplicate")), None)
    moved = next((t for label, t in trips.items() if "applied" in label), None)
    if settled and moved:
        out.append(
            f"**Round trips.** A callback that changes nothing (a repeat to a processing video, or any callback "
            f"to a ready one) is settled from the row the view reads and stored with its outcome in one INSERT: "
            f"{settled['round_trips']} round trips ({describe_queries(settled)}), {settled['commits']} commit. "
            f"The PARSE that moves a video to `ready` makes {moved['round_trips']} ({describe_queries(moved)}), "
            f"{moved['commits']} commits: the record's INSERT, then one transaction that locks the video "
            "(`SELECT ... FOR UPDATE`), updates it, stamps its status change, records the event and writes the "
            f"callback's outcome. In these runs {applied} of {records} "
            f"callbacks ({applied / max(records, 1):.1%}) moved a video.")
    django_ms = max(r["cpu_ms"] for r in inprocess.values())
    out.append(
        f"**Where gunicorn's {g:.1f} ms go.** One at a time in-process, with nothing competing, "
        + ", ".join(f"a {kind.split(' (')[0]} costs {r['cpu_ms']:.2f} ms of CPU in Django and {r['pg_ms']:.2f} ms "
                    "in PostgreSQL" for kind, r in inprocess.items())
        + f". The other {max(g - django_ms, 0):.1f} ms or so per callback under load are "
        "spent outside that measurement: in gunicorn (HTTP parsing, the access log, its thread pool) and in "
        f"running {results[0]['workers'] * results[0]['threads']} threads on {CORES} cores; "
        + ("py-spy (below) shows the split inside a worker." if profiled and profiled.get("profile")
           else "this bench does not split it further without --profile.")
        + (f" For scale, `GET /healthz` on the same server costs {ref['gunicorn_ms']:.2f} ms of gunicorn CPU "
           f"per request ({ref['rps']:.0f}/s)." if ref else ""))
    if len(groups) > 1:
        out.append("**Configurations.** " + "; ".join(
            f"{label}: {', '.join(f'{r['rps']:.0f}' for r in rs)}/s (median {medians[label]:.0f}), gunicorn CPU "
            f"per callback {', '.join(f'{per_callback_ms(r, 'gunicorn'):.1f}' for r in rs)} ms"
            for label, rs in groups.items()) + ".")
    return "\n\n".join(out)


def write_docs(args, info, started, results, trips, inprocess, profiled):
    benchlib.write_section(NAME, render_docs(args, info, started, results, trips, inprocess, profiled).strip())


# --- main --------------------------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=20, help="seconds of load per run")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of warm-up load (own videos)")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--videos", type=int, default=200)
    parser.add_argument("--parse-share", type=float, default=0.05,
                        help="share of callbacks that say PARSE (the rest UNPARSE)")
    parser.add_argument("--configs", default=None, help="WORKERSxTHREADS,... (default: the Procfile's, then 4x4)")
    parser.add_argument("--generator", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--gen-procs", type=int, default=2, help="processes of the Python generator")
    parser.add_argument("--profile", action="store_true", help="add a py-spy run of the first configuration")
    parser.add_argument("--inprocess", type=int, default=1000,
                        help="callbacks of each kind for the in-process service time")
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
        saved = benchlib.load_results(VAR)
        write_docs(argparse.Namespace(**saved["args"]), saved["machine"], datetime.fromisoformat(saved["started"]),
                   saved["results"], saved["round_trips"], saved["inprocess"], saved["profile"])
        print(f"wrote the {NAME} section of {DOCS.relative_to(ROOT)} from the saved results")
        return 0
    if not (1 <= args.duration <= 600 and 1 <= args.clients <= 1000 and 0 <= args.warmup <= 60
            and 1 <= args.repeat <= 5):
        parser.error("duration 1..600 s, clients 1..1000, warm-up 0..60 s, repeat 1..5")
    if args.generator == "auto":
        args.generator = "wrk" if shutil.which("wrk") else "python"
    configs = args.configs or f"{procfile_default('--workers')}x{procfile_default('--threads')},4x4"
    configs = [tuple(int(x) for x in c.lower().split("x")) for c in configs.split(",")]

    VAR.mkdir(parents=True, exist_ok=True)
    info, started = machine(), datetime.now(UTC)
    print(f"setting up {DB_NAME} ...", flush=True)
    benchlib.setup_database(DB_NAME, bench_env())
    benchlib.django_setup(bench_env())
    trips = round_trips_per_callback()
    print(f"in-process service time: {args.inprocess} callbacks of each kind, one at a time ...", flush=True)
    inprocess = inprocess_service_time(args.inprocess)
    results = []
    for index, (workers, threads) in enumerate(configs * args.repeat):
        wait_for_quiet(args.quiet_wait)
        print(f"gunicorn {workers} workers x {threads} threads: {args.warmup}s warm-up, {args.duration}s load "
              f"({args.generator}, {args.clients} clients) ...", flush=True)
        r = run_config(args, workers, threads, index)
        results.append(r)
        print(f"  {r['rps']:.0f} requests/s, p50 {r['load']['p50_ms']:.1f} ms, p99 {r['load']['p99_ms']:.1f} ms, "
              f"5xx {r['load']['c5xx']}, records {r['facts']['records']} / sent {r['load']['sent']}, "
              f"other processes {other_cpu(r) / r['cpu']['seconds']:.2f} cores"
              + (f"; PROBLEMS: {r['problems']}" if r["problems"] else ""), flush=True)
    profiled = None
    if args.profile:
        workers, threads = configs[0]
        wait_for_quiet(args.quiet_wait)
        print(f"profile run: gunicorn {workers}x{threads} with py-spy on one worker ...", flush=True)
        profiled = run_config(args, workers, threads, len(results), profile=True)

    for text in (summary_table(results), runs_table(results), outcome_table(results), cpu_table(results),
                 round_trip_table(trips), inprocess_table(inprocess)):
        print(f"\n{text}")
    if profiled and profiled.get("profile"):
        print(f"\nprofile run: {profiled['rps']:.0f} requests/s with py-spy attached")
        print(profile_table(profiled["profile"]))
    benchlib.save_results(VAR, {"machine": info, "results": results, "round_trips": trips, "inprocess": inprocess,
                                "profile": profiled, "argv": sys.argv[1:], "started": started.isoformat(),
                                "args": vars(args)})
    if args.write_docs:
        write_docs(args, info, started, results, trips, inprocess, profiled)
        print(f"\nwrote the {NAME} section of {DOCS.relative_to(ROOT)}")
    return 1 if any(r["problems"] for r in results) else 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_client":
        python_client_process(json.loads(Path(sys.argv[2]).read_text()))
    else:
        sys.exit(main())
