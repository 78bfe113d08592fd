"""What one callback costs, one at a time: PostgreSQL round trips and CPU, no gunicorn, no load.

    .venv/bin/python bench/callback_cost.py [--count 1000] [--json]
    .venv/bin/python bench/callback_cost.py --count 100           # a quick run

Needs PostgreSQL at 127.0.0.1:5432, user postgres with trust auth: the database
memportal_bench_callback_cost is dropped, created and migrated. Every callback goes through
Django's WSGI handler in this process (all middleware and request signals, so
CONN_HEALTH_CHECKS' `SELECT 1` too), with the production settings bench/callback_load.py uses.
Prints:

* round trips: one callback of each kind, in turn on one video, with libpq's protocol trace on:
  the queries it sent, by first word, and its commits (BEGIN..COMMIT blocks, writes in autocommit);
* service time: --count callbacks of each repeat kind (a repeat to a processing video, a repeat to
  a ready one), the kinds alternating in 5 blocks, each kind on its own 200 videos: CPU ms of this
  process and of its PostgreSQL backend, and wall ms, per callback.
"""

import argparse
import io
import json
import random
import sys
import time
from collections import Counter, defaultdict

import benchlib
from benchlib import ROOT, proc_cpu, seed_callback_team

DB_NAME = "memportal_bench_callback_cost"
VAR = ROOT / "var" / "bench-callback_cost"
ROUND_TRIP_KINDS = [("UNPARSE, duplicate (video processing)", "UNPARSE"), ("PARSE, applied (-> ready)", "PARSE"),
                    ("PARSE, duplicate (video ready)", "PARSE"), ("UNPARSE, stale (video ready)", "UNPARSE")]
SERVICE_KINDS = {"repeat to a processing video (UNPARSE)": (False, "UNPARSE"),
                 "repeat to a ready video (PARSE)": (True, "PARSE")}


def post(app, target, status):
    """One callback through the WSGI handler: "200 duplicate" and the like."""
    body, answer = json.dumps({"videoNo": target["video_no"], "status": status}).encode(), []
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": target["path"], "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80",
               "HTTP_HOST": "127.0.0.1", "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)),
               "wsgi.input": io.BytesIO(body), "wsgi.url_scheme": "http", "REMOTE_ADDR": "127.0.0.1",
               "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.errors": sys.stderr}
    response = app(environ, lambda line, headers: answer.append(line))
    content = b"".join(response)
    response.close()
    if not answer[0].startswith("200"):
        raise SystemExit(f"invalid run: a callback answered {answer[0]}")
    return f"{answer[0][:3]} {json.loads(content).get('message')}"


def round_trips(app):
    import psycopg
    from django.db import connection

    _, [warm, target] = seed_callback_team("roundtrips", 2)
    post(app, warm, "UNPARSE")  # connection open, first-request work done
    trace, out = VAR / "pq-trace.txt", {}
    for label, status in ROUND_TRIP_KINDS:
        connection.ensure_connection()
        pgconn = connection.connection.pgconn
        with open(trace, "w") as log:
            pgconn.trace(log.fileno())
            pgconn.set_trace_flags(psycopg.pq.Trace.SUPPRESS_TIMESTAMPS)
            answer = post(app, target, status)
            pgconn.untrace()
        # Django's psycopg cursors bind on the client: every query is one simple-protocol Query message.
        words = [line.split("\t", 3)[3].strip().strip('"').split()[0].upper()
                 for line in trace.read_text().splitlines() if line.startswith("F\t") and "\tQuery\t" in line]
        commits, in_txn = 0, False
        for word in words:
            in_txn = word == "BEGIN" or (in_txn and word != "COMMIT")
            commits += word == "COMMIT" or (word in ("INSERT", "UPDATE", "DELETE") and not in_txn)
        out[label] = {"answer": answer, "round_trips": len(words), "commits": commits,
                      "queries": dict(Counter(words).most_common())}
    trace.unlink()
    return out


def service_time(app, count, blocks=5):
    from django.db import connection

    rng, totals = random.Random(7), defaultdict(Counter)
    kinds = {kind: (seed_callback_team(f"service-{i}", 200, ready)[1], status)
             for i, (kind, (ready, status)) in enumerate(SERVICE_KINDS.items())}
    for targets, status in kinds.values():  # warm: imports, connection, first-use caches
        for target in targets[:5]:
            post(app, target, status)
    for _ in range(blocks):
        for kind, (targets, status) in kinds.items():
            connection.ensure_connection()
            backend = connection.connection.info.backend_pid
            pg0, cpu0, wall0 = proc_cpu(backend), time.process_time(), time.perf_counter()
            for _ in range(count // blocks):
                post(app, rng.choice(targets), status)
            totals[kind].update(wall=time.perf_counter() - wall0, cpu=time.process_time() - cpu0,
                                pg=proc_cpu(backend) - pg0, n=count // blocks)
    return {kind: {"callbacks": t["n"], **{f"{k}_ms": t[k] / t["n"] * 1000 for k in ("cpu", "pg", "wall")}}
            for kind, t in totals.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=1000, help="callbacks of each repeat kind (default 1000)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    machine = benchlib.machine("postgres")
    env = benchlib.bench_env(DB_NAME, VAR)
    benchlib.setup_database(DB_NAME, env)
    benchlib.django_setup(env)
    from django.core.handlers.wsgi import WSGIHandler

    app = WSGIHandler()
    trips, service = round_trips(app), service_time(app, max(args.count, 5))
    lines = [machine, ""] + benchlib.table(
        ["callback", "answer", "round trips", "commits", "queries"],
        [[label, r["answer"], r["round_trips"], r["commits"], ", ".join(f"{k} {v}" for k, v in r["queries"].items())]
         for label, r in trips.items()])
    lines += [""] + benchlib.table(
        ["one at a time", "callbacks", "CPU ms / callback", "PostgreSQL backend CPU ms", "wall ms"],
        [[kind, r["callbacks"], f"{r['cpu_ms']:.2f}", f"{r['pg_ms']:.2f}", f"{r['wall_ms']:.2f}"]
         for kind, r in service.items()])
    benchlib.report({"machine": machine, "round_trips": trips, "service_time": service}, lines, args.json)


if __name__ == "__main__":
    sys.exit(main())
