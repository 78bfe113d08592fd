"""Relay workers against the pacing bound: how many relays start per second across many teams.

    .venv/bin/python bench/scaling.py [--teams 20] [--per-team 10] [--interval 1] [--workers 2]
                                      [--poll 1] [--timeout 300] [--quiet-wait 300] [--json]
    .venv/bin/python bench/scaling.py --workers 2,4      # one run per worker count, each on a fresh database
    .venv/bin/python bench/scaling.py --teams 5 --per-team 3    # a quick run
    .venv/bin/python bench/scaling.py --connections [--web-concurrency 2] [--idle-wait 65]

Every team has a key, and so a memories.ai account, of its own: each account may start one upload
per interval, so the bound is --teams / --interval starts per second (20 teams at 1 s: 20/s); the
portal's own slot is the interval plus its margin (pacing.slot_seconds(), 1.1 s at 1 s), so the
portal's bound is --teams / slot (18.2/s). Needs PostgreSQL at 127.0.0.1:5432, user postgres with
trust auth: the database memportal_bench_scaling is dropped, created and migrated for each run.
The teams' members upload their videos through the upload page (Django's test client, as
bench/relay_teams.py does: copies of tests/data/sample-h264-aac.mp4, 32 KB, so the time is pacing
and the relay's own work, not bytes), team after team. The emulator (`python -m memories_emulator`,
a process of its own, no callbacks) answers 0429 to a key's upload closer than --interval to its
last; its /_emulator/state gives the upload start times. Then the relay workers start as
the Procfile runs them (`manage.py db_worker --queue-name relay --no-reload --interval 1`, startup
delay included; --poll changes the interval), with PostgreSQL's connections reused
(MEMPORTAL_DB_CONN_MAX_AGE at its default, 60).

Prints, per run: upload starts per second achieved (the emulator's start times of the accepted
uploads, over the window from the first to the last, and over the middle 90 % of them), the steady
rate (teams / the mean gap between one team's starts: every account always with a video waiting)
against the bound, the upload answers (0000, 0429) and the closest two attempts of one key, the most and
the median starts in any
second of that window, the time until all are `processing`; the gaps between one team's
consecutive upload starts (pooled over the teams: min, p10, median, p90, max) and how many are
longer than the slot by 0.5 s or more; relay task runs by outcome with their median and p90 wall
time, and how busy the workers were (task run time / workers x window); the CPU seconds in that
window of the relay workers (with their probe children), PostgreSQL (this database's backends and
its background processes), the emulator, this process (its polling) and the machine;
and the PostgreSQL connections of this database seen during the run (the bench's own left out).

--connections instead counts the PostgreSQL connections of the Procfile's four processes, started
as `make run` starts them (`honcho -f Procfile start`, web on a free port, WEB_CONCURRENCY from
--web-concurrency, the default CONN_MAX_AGE of 60 s): once they are up and idle; after 5 s of wrk
(64 clients) on GET /healthz, which has every thread of every gunicorn worker serve requests; and
again after --idle-wait s without requests (longer than CONN_MAX_AGE: does an idle thread give
its connection back?). Each connection is put to the process holding it (ss -tnp: the client
side of the TCP connection to 127.0.0.1:5432) and so to its Procfile line.
"""

import argparse
import json
import os
import re
import socket
import statistics
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import benchlib
from benchlib import CLK_TCK, ROOT, children, spread

DB_NAME = "memportal_bench_scaling"
VAR = ROOT / "var" / "bench-scaling"
CORES = os.cpu_count()


def tree(pid):
    """`pid` and every process below it (a relay worker, its forkserver, the probe children)."""
    pids, todo = [], [pid]
    while todo:
        pids.append(todo.pop())
        todo += children(pids[-1])
    return pids


def tree_cpu(pid):
    """CPU seconds of `pid` and its descendants, with the children each has reaped (cutime, cstime):
    a probe child that has exited counts in its forkserver's figures."""
    total = 0.0
    for p in tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(f) for f in fields[11:15]) / CLK_TCK
    return total


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))] if values else float("nan")


def connections(cursor):
    cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                   "AND pid <> pg_backend_pid()")
    return cursor.fetchone()[0]


def measure(args, workers, created):
    from django.db import connection
    from django_tasks_db.models import DBTaskResult

    from uploads import pacing
    from uploads.models import Video, VideoEvent

    total = args.teams * args.per_team
    # The emulator in a process of its own: its clock (the upload start times it records, and its
    # 0429 decisions) is not held up by this process's polling.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    emulator_env = {**os.environ, "MEMORIES_EMULATOR_KEYS": ",".join(sorted({c["key"] for c in created}))}
    emulator = benchlib.start([sys.executable, "-m", "memories_emulator", "--port", str(port), "--no-callbacks",
                               "--upload-interval", str(args.interval)], emulator_env, VAR / f"emulator-{workers}.log")
    base_url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(base_url + "/_emulator/state", timeout=5).close()
            break
        except OSError:
            time.sleep(0.1)
    env = benchlib.bench_env(DB_NAME, VAR, MEMPORTAL_UPLOAD_INTERVAL_SECONDS=args.interval,
                             MEMORIES_API_BASE_URL=base_url)
    env.pop("MEMPORTAL_DB_CONN_MAX_AGE", None)  # the default (60), as in production
    argv = [sys.executable, "manage.py", "db_worker", "--queue-name", "relay", "--no-reload",
            "--interval", str(args.poll)]
    procs, samples, peak = [], [], 0
    try:
        t0 = time.time()
        procs = [benchlib.start(argv, env, VAR / f"worker-{workers}-{i}.log") for i in range(workers)]
        deadline = time.monotonic() + args.timeout
        with connection.cursor() as cursor:
            while True:
                # A CPU sample every 0.25 s, so the window from the first to the last upload can be cut out.
                pg = benchlib.postgres_pids(DB_NAME)
                samples.append({"at": time.time(), "machine": benchlib.busy_seconds(),
                                "workers": [tree_cpu(p.pid) for p in procs],
                                "postgres": {pid: benchlib.proc_cpu(pid) for pid in pg},
                                "bench": benchlib.proc_cpu(os.getpid()),
                                "emulator": benchlib.proc_cpu(emulator.pid)})
                peak = max(peak, connections(cursor))
                done = Video.objects.filter(status=Video.Status.PROCESSING).count()
                if done >= total:
                    break
                if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                    statuses = Counter(Video.objects.values_list("status", flat=True))
                    raise SystemExit(f"invalid run: after {time.time() - t0:.0f} s the videos are {dict(statuses)}")
                time.sleep(0.25)
        with urllib.request.urlopen(base_url + "/_emulator/state", timeout=30) as answer:
            uploads = json.load(answer)["uploads"]
    finally:
        for proc in procs:
            benchlib.stop(proc)
        benchlib.stop(emulator)
    connection.close()

    answers = Counter(u["code"] for u in uploads)
    if answers["0000"] != total or set(answers) - {"0000", "0429"}:
        raise SystemExit(f"invalid run: upload answers {dict(answers)}")
    accepted = [u for u in uploads if u["code"] == "0000"]
    starts = sorted(u["started_at"] for u in accepted)
    first, last = starts[0], starts[-1]
    window = last - first
    # The middle 90 % of the starts: the steady rate, without the start-up and the stragglers.
    lo, hi = starts[round(0.05 * (total - 1))], starts[round(0.95 * (total - 1))]
    middle = sum(1 for s in starts if lo <= s <= hi)
    per_second = Counter(int(s - first) for s in starts if s < first + int(window))  # whole seconds only
    by_tail = {}
    for u in accepted:
        by_tail.setdefault(u["key_tail"], []).append(u["started_at"])
    all_by_tail = {}
    for u in uploads:  # refused ones too: how close the portal let them come
        all_by_tail.setdefault(u["key_tail"], []).append(u["started_at"])
    team_gaps = [g for times in by_tail.values() for g in benchlib.gaps(times)]
    slot = pacing_slot(pacing, args.interval)

    processing = [at.timestamp() for at, in VideoEvent.objects.filter(
        from_status=Video.Status.SENDING, to_status=Video.Status.PROCESSING).values_list("created_at")]
    claims = {}  # video -> its claims (`sending` events)
    for video_id, at in VideoEvent.objects.filter(to_status=Video.Status.SENDING).values_list("video_id", "created_at"):
        claims.setdefault(video_id, []).append(at.timestamp())
    video_of = dict(Video.objects.exclude(video_no="").values_list("video_no", "pk"))
    claim_to_request = [u["started_at"] - max(c for c in claims[video_of[u["video_no"]]] if c <= u["started_at"] + 1)
                        for u in accepted]  # +1: the database's clock and this machine's may differ a little
    runs = list(DBTaskResult.objects.filter(queue_name="relay").values_list("return_value", "started_at",
                                                                            "finished_at"))
    durations = {}
    for outcome, started, finished in runs:
        if started and finished:
            durations.setdefault(str(outcome), []).append((finished - started).total_seconds())
    in_window = [max(0.0, min(f.timestamp(), last) - max(s.timestamp(), first)) for _, s, f in runs if s and f]

    def at(t):  # the sample nearest to time t
        return min(samples, key=lambda s: abs(s["at"] - t))

    a, b = at(first), at(last)
    wall = b["at"] - a["at"]
    pg = sum(max(cpu - a["postgres"].get(pid, 0.0), 0.0) for pid, cpu in b["postgres"].items())
    cpu = {"wall": wall, "workers": [y - x for x, y in zip(a["workers"], b["workers"])], "postgres": pg,
           "bench": b["bench"] - a["bench"], "emulator": b["emulator"] - a["emulator"],
           "machine": b["machine"] - a["machine"]}
    cpu["other"] = max(cpu["machine"] - sum(cpu["workers"]) - pg - cpu["bench"] - cpu["emulator"], 0.0)
    return {
        "workers": workers, "videos": total, "window": window, "rate": (total - 1) / window if window else 0,
        "middle_rate": (middle - 1) / (hi - lo) if hi > lo else 0, "answers": dict(answers),
        "closest_attempts": min((g for t in all_by_tail.values() for g in benchlib.gaps(t)), default=None),
        "bound": args.teams / args.interval, "portal_bound": args.teams / slot, "slot": slot,
        "max_in_a_second": max(per_second.values(), default=0),
        "median_in_a_second": statistics.median(per_second.values()) if per_second else 0,
        "first_upload": first - t0, "all_processing": max(processing) - t0,
        "team_gaps": team_gaps, "long_gaps": sum(1 for g in team_gaps if g >= slot + 0.5),
        "claim_to_request": claim_to_request,
        "steady_rate": args.teams / statistics.mean(team_gaps) if team_gaps else 0,
        "task_runs": {k: {"runs": len(v), "median_s": statistics.median(v), "p90_s": percentile(v, 0.9)}
                      for k, v in durations.items()},
        "workers_busy": sum(in_window) / (workers * window) if window else 0,
        "cpu": cpu, "connections_peak": peak,
    }


def pacing_slot(pacing, interval):
    from django.test import override_settings

    with override_settings(MEMPORTAL_UPLOAD_INTERVAL_SECONDS=interval):
        return pacing.slot_seconds()


def holders(db_name):
    """{role: connections} of `db_name`: each client backend's TCP peer port, found in ss's table
    of sockets connected to 127.0.0.1:5432, gives the pid holding it, and its command line the role."""
    sql = ("select client_port from pg_stat_activity where datname = '%s' and pid <> pg_backend_pid()" % db_name)
    ports = {int(p) for p in benchlib.run(["psql", *benchlib.PG, "-Atc", sql, "postgres"]).stdout.split()}
    owner = {}
    for line in benchlib.run(["ss", "-Htnp", "dst", "127.0.0.1:5432"]).stdout.splitlines():
        found = re.search(r"127\.0\.0\.1:(\d+)\s+127\.0\.0\.1:5432.*pid=(\d+)", line)
        if found:
            owner[int(found.group(1))] = int(found.group(2))
    roles, web = Counter(), {}  # web: gunicorn worker pid -> its connections
    for port in ports:
        pid = owner.get(port)
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode() if pid else ""
        except OSError:
            cmd = ""
        role = ("web (gunicorn workers)" if "gunicorn" in cmd else
                "worker-relay (db_worker relay)" if "relay" in cmd else
                "worker (db_worker default)" if "db_worker" in cmd else
                "clock (reconcile --every 60)" if "reconcile" in cmd else f"other ({cmd[:40] or 'not found'})")
        roles[role] += 1
        if "gunicorn" in cmd:
            web.setdefault(pid, 0)
            web[pid] += 1
    if web:
        roles["web (gunicorn workers)"] = " + ".join(str(n) for _, n in sorted(web.items()))
    return dict(sorted(roles.items()))


def connection_census(args):
    import signal
    import subprocess

    env0 = benchlib.bench_env(DB_NAME, VAR)
    benchlib.setup_database(DB_NAME, env0)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = benchlib.bench_env(DB_NAME, VAR, MEMPORTAL_BIND=f"127.0.0.1:{port}", WEB_CONCURRENCY=args.web_concurrency,
                             PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    env.pop("MEMPORTAL_DB_CONN_MAX_AGE", None)
    honcho = benchlib.start([str(Path(sys.executable).parent / "honcho"), "-f", "Procfile", "start"], env,
                            VAR / "honcho.log", start_new_session=True)
    base, counts = f"http://127.0.0.1:{port}", {}
    try:
        for _ in range(300):
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=5) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                if honcho.poll() is not None:
                    raise SystemExit(f"invalid run: the Procfile's processes did not start; see {VAR}/honcho.log")
            time.sleep(0.2)
        time.sleep(5)  # the workers have polled, the clock has done its first round
        counts["up, idle (one /healthz served)"] = holders(DB_NAME)
        out = benchlib.run(["wrk", "-t2", "-c64", "-d5s", base + "/healthz"]).stdout
        counts["after 5 s of wrk -c64 on /healthz"] = holders(DB_NAME)
        rps = re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)
        if args.idle_wait:
            time.sleep(args.idle_wait)
            counts[f"then {args.idle_wait:g} s without requests"] = holders(DB_NAME)
    finally:
        if honcho.poll() is None:
            os.killpg(honcho.pid, signal.SIGTERM)
            try:
                honcho.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(honcho.pid, signal.SIGKILL)
                honcho.wait()
    budget = args.web_concurrency * 8 + 3
    lines = [benchlib.machine("postgres"),
             f"honcho -f Procfile start, WEB_CONCURRENCY={args.web_concurrency}, --threads 8 (the Procfile's), "
             f"CONN_MAX_AGE 60; budget WEB_CONCURRENCY x threads + worker-relay + worker + clock = {budget}; "
             f"/healthz under wrk: {rps} requests/s", ""]
    roles = sorted({role for c in counts.values() for role in c})
    lines += benchlib.table(["when", "total", *roles],
                            [[when, sum(sum(map(int, str(n).split(" + "))) for n in c.values()),
                              *(c.get(role, 0) for role in roles)] for when, c in counts.items()])
    benchlib.report({"args": vars(args), "budget": budget, "counts": counts}, lines, args.json)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--teams", type=int, default=20)
    parser.add_argument("--per-team", type=int, default=10)
    parser.add_argument("--interval", type=int, default=1, help="MEMPORTAL_UPLOAD_INTERVAL_SECONDS (whole s)")
    parser.add_argument("--workers", default="2", help="relay workers; a comma-separated list runs each")
    parser.add_argument("--poll", type=float, default=1, help="db_worker --interval (the Procfile: 1)")
    parser.add_argument("--timeout", type=float, default=300, help="give up on a run after this many seconds")
    parser.add_argument("--quiet-wait", type=int, default=300,
                        help="most seconds to wait before each run for other processes to use < 0.3 cores")
    parser.add_argument("--connections", action="store_true",
                        help="count the Procfile's PostgreSQL connections instead (see above)")
    parser.add_argument("--web-concurrency", type=int, default=2, help="with --connections: WEB_CONCURRENCY")
    parser.add_argument("--idle-wait", type=float, default=65, help="with --connections: idle seconds, then count")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    if args.connections:
        return connection_census(args)
    counts = [int(w) for w in args.workers.split(",")]
    if min(args.teams, args.per_team, args.interval, *counts) < 1:
        parser.error("teams, per-team, interval and workers must be at least 1")
    import relay_teams  # its seed(): teams, keys, members, uploads through the page

    machine = benchlib.machine("postgres")
    env = benchlib.bench_env(DB_NAME, VAR)
    runs = []
    for index, workers in enumerate(counts):
        if index:
            from django.db import connection

            connection.close()  # dropdb --force would end it
        benchlib.setup_database(DB_NAME, env)
        if index == 0:
            benchlib.django_setup(env)
        created = relay_teams.seed(args.teams, args.per_team, 0)
        deadline = time.monotonic() + args.quiet_wait  # other processes' load, as callback_load waits for it
        while (other := benchlib.busy_cores(3)) >= 0.3 and time.monotonic() < deadline:
            pass
        runs.append({**measure(args, workers, created), "other_cores_before": other,
                     "load_before": os.getloadavg()})
        print(f"{workers} relay workers: {runs[-1]['rate']:.2f} starts/s", file=sys.stderr, flush=True)

    lines = [machine, "cores busy in the 3 s before each run (other processes): "
             + ", ".join(f"{r['other_cores_before']:.2f}" for r in runs) + f" of {CORES}; load average then: "
             + "; ".join(", ".join(f"{x:.2f}" for x in r["load_before"]) for r in runs),
             f"{args.teams} teams x {args.per_team} videos, every team its own key (account), interval "
             f"{args.interval} s (slot {runs[0]['slot']:.2f} s), db_worker --interval {args.poll}", ""]
    lines += benchlib.table(
        ["relay workers", "starts/s", "middle 90 %: starts/s", "steady: teams / mean gap", "bound (teams/interval)", "portal bound (teams/slot)",
         "% of bound",
         "most / median starts in 1 s", "window s", "all processing s", "team gaps min / p10 / median / p90 / max",
         "gaps >= slot + 0.5 s", "upload answers", "closest two attempts of a key s", "workers busy",
         "peak connections"],
        [[r["workers"], f"{r['rate']:.2f}", f"{r['middle_rate']:.2f}", f"{r['steady_rate']:.2f}", f"{r['bound']:.1f}", f"{r['portal_bound']:.1f}",
          f"{r['rate'] / r['bound']:.0%}", f"{r['max_in_a_second']} / {r['median_in_a_second']:g}",
          f"{r['window']:.2f}", f"{r['all_processing']:.2f}",
          spread(r["team_gaps"], (min, lambda v: percentile(v, 0.1), statistics.median,
                                  lambda v: percentile(v, 0.9), max), 2),
          f"{r['long_gaps']} of {len(r['team_gaps'])}",
          ", ".join(f"{k} x {v}" for k, v in sorted(r["answers"].items())), f"{r['closest_attempts']:.3f}",
          f"{r['workers_busy']:.0%}", r["connections_peak"]]
         for r in runs])
    lines += [""] + benchlib.table(
        ["relay workers", "window s", "workers CPU s (each)", "PostgreSQL CPU s", "emulator CPU s", "bench CPU s",
         f"machine busy s (of {CORES} x window)", "other s", "CPU ms per upload (workers + PostgreSQL)"],
        [[r["workers"], f"{c['wall']:.1f}", f"{sum(c['workers']):.1f} ({', '.join(f'{w:.1f}' for w in c['workers'])})",
          f"{c['postgres']:.1f}", f"{c['emulator']:.1f}", f"{c['bench']:.1f}", f"{c['machine']:.1f}",
          f"{c['other']:.1f}",
          f"{(sum(c['workers']) + c['postgres']) / r['videos'] * 1000:.0f}"]
         for r in runs for c in [r["cpu"]]])
    lines += [""] + benchlib.table(
        ["relay workers", "task outcome", "runs", "median s", "p90 s"],
        [[r["workers"], k, v["runs"], f"{v['median_s']:.3f}", f"{v['p90_s']:.3f}"]
         for r in runs for k, v in sorted(r["task_runs"].items(), key=lambda kv: -kv[1]["runs"])])
    lines += [""] + [f"{r['workers']} relay workers: claim -> memories.ai starts reading median / max "
                     f"{spread(r['claim_to_request'], (statistics.median, max))} s; first upload "
                     f"{r['first_upload']:.2f} s after the workers' start" for r in runs]
    benchlib.report({"machine": machine, "args": vars(args), "runs": runs},
                    lines, args.json)


if __name__ == "__main__":
    sys.exit(main())
