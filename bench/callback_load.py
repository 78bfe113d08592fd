"""The callback endpoint under load: gunicorn as the Procfile runs it, PostgreSQL, wrk.

    .venv/bin/python bench/callback_load.py [--duration 20] [--repeat 3] [--configs 2x8] [--clients 50]
                                            [--videos 200] [--warmup 3] [--quiet-wait 300] [--no-reference] [--json]
    .venv/bin/python bench/callback_load.py --duration 3 --repeat 1 --quiet-wait 0 --no-reference  # quick

Needs wrk (apt-get install wrk) and PostgreSQL at 127.0.0.1:5432, user postgres, trust auth (its
database memportal_bench_callback_load is dropped, created, migrated). Each run, once other processes
use < 0.3 cores (waiting at most --quiet-wait s): a team of --videos videos in `processing` (UNPARSE, a
videoNo each) and a warm-up team of 50; the Procfile's `web` line (WEB_CONCURRENCY, --threads from
--configs) on a free port; --warmup s of load on the warm-up team, then --duration s of --clients
keep-alive wrk clients (2 threads, callback_load.lua) POSTing {"videoNo", "status"}, 5% PARSE, to
random videos. Prints per run: requests sent (counted in wrk's request()) and answered, requests/s,
latency, non-2xx, 5xx, CallbackRecord rows and outcomes once no more arrive; CPU s of gunicorn,
PostgreSQL (this database's backends, its background processes), wrk and the machine (/proc); the
medians per configuration; GET /healthz on the first run's server, for scale. Any 5xx: exit 1.
"""

import argparse
import json
import os
import re
import shlex
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import benchlib
from benchlib import ROOT, children, cpu_snapshot, cpu_spent, postgres_pids, seed_callback_team

DB_NAME = "memportal_bench_callback_load"
VAR = ROOT / "var" / "bench-callback_load"
LUA = ROOT / "bench" / "callback_load.lua"
CORES = os.cpu_count()
PARSE_SHARE = 0.05  # the rest say UNPARSE: most callbacks are repeats, as memories.ai sends them


def start_gunicorn(workers, threads, label):
    """The Procfile's web line, ${NAME:-default} expanded, with the thread count replaced."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = benchlib.bench_env(DB_NAME, VAR, MEMPORTAL_BIND=f"127.0.0.1:{port}", WEB_CONCURRENCY=workers,
                             PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    argv = benchlib.procfile_web_argv(env)
    argv[argv.index("--threads") + 1] = str(threads)
    log = VAR / f"gunicorn-{label}.log"
    return benchlib.start_web(argv, env, log), f"http://127.0.0.1:{port}", argv


def wrk(base, targets, args, seconds, seed):
    spec = VAR / "targets.lua"
    spec.write_text(f"return {{seed = {seed}, share = {PARSE_SHARE},\n"
                    f"  paths = {{{', '.join(json.dumps(t['path']) for t in targets)}}},\n"
                    f"  nos = {{{', '.join(json.dumps(t['video_no']) for t in targets)}}}}}\n")
    proc = subprocess.Popen(["wrk", "-t2", f"-c{args.clients}", f"-d{seconds}s", "--timeout", "10s", "-s", str(LUA),
                             base + "/", "--", str(spec)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)  # wait4: wrk's own CPU time
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode or not (found := re.search(r"BENCH (\{.*\})", out)):
        raise SystemExit(f"invalid run: wrk failed: {out}")
    return {**json.loads(found.group(1)), "wrk_cpu": usage.ru_utime + usage.ru_stime}


def healthz(proc, base, args):
    """For scale: GET /healthz (one `SELECT 1`, same middleware) on the same gunicorn, same clients."""
    benchlib.run(["wrk", "-t2", f"-c{args.clients}", "-d2s", base + "/healthz"])  # warm
    groups = {"gunicorn": [proc.pid, *children(proc.pid)]}
    before = cpu_snapshot(groups)
    out = benchlib.run(["wrk", "-t2", f"-c{args.clients}", "-d10s", "--timeout", "10s", base + "/healthz"]).stdout
    after = cpu_snapshot(groups)
    answered, bad = int(re.search(r"(\d+) requests in", out).group(1)), re.search(r"Non-2xx.*: (\d+)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), "non2xx": int(bad[1]) if bad else 0,
            "gunicorn_ms": cpu_spent(before, after, "gunicorn") / answered * 1000,
            "busy": (after["machine"] - before["machine"]) / (CORES * (after["at"] - before["at"]))}


def settled_outcomes(team):
    """The team's CallbackRecord outcomes once no more rows arrive (for 1 s; at most 60 s)."""
    from uploads.models import CallbackRecord

    seen = []
    while len(seen) < 240 and (len(seen) < 5 or seen[-5] != seen[-1]):
        seen.append(Counter(CallbackRecord.objects.filter(video__team=team).values_list("outcome", flat=True)))
        time.sleep(0.25)
    return dict(seen[-1])


def wait_for_quiet(limit):
    """Cores other processes use (this bench's are idle between runs), once < 0.3 or after `limit` s."""
    deadline = time.monotonic() + limit
    while (cores := benchlib.busy_cores(3)) >= 0.3 and time.monotonic() < deadline:
        pass
    return cores


def run_once(args, workers, threads, index):
    label = f"{workers}x{threads}"
    warm_team, warm_targets = seed_callback_team(f"warmup-{index}", 50)
    team, targets = seed_callback_team(f"load-{index}", args.videos)
    proc, base, argv = start_gunicorn(workers, threads, f"{index}-{label}")
    try:
        reference = healthz(proc, base, args) if args.reference and index == 0 else None
        if args.warmup:
            wrk(base, warm_targets, args, args.warmup, 1000 + index)
            settled_outcomes(warm_team)
        groups = {"gunicorn": [proc.pid, *children(proc.pid)], "postgres": postgres_pids(DB_NAME)}
        before = cpu_snapshot(groups)
        load = wrk(base, targets, args, args.duration, 2000 + index)
        after = cpu_snapshot({**groups, "postgres": {*groups["postgres"], *postgres_pids(DB_NAME)}})
        outcomes = settled_outcomes(team)
    finally:
        benchlib.stop(proc, 40)
    cpu = {"wall": after["at"] - before["at"], "machine": after["machine"] - before["machine"], "wrk": load["wrk_cpu"],
           **{k: cpu_spent(before, after, k) for k in ("gunicorn", "postgres")},
           "per_worker": [after["gunicorn"][pid] - before["gunicorn"][pid] for pid in groups["gunicorn"][1:]]}
    cpu["total"] = cpu["gunicorn"] + cpu["postgres"] + cpu["wrk"]
    cpu["other"] = max(cpu["machine"] - cpu["total"], 0)
    return {"config": label, "run": index + 1, "argv": argv, "rps": load["completed"] / load["seconds"], **load,
            "non2xx": load["completed"] - load["c2xx"], "records": sum(outcomes.values()), "outcomes": outcomes,
            "cpu": cpu, "healthz": reference, "ms_per_callback": {
                k: cpu[k] / max(load["completed"], 1) * 1000 for k in ("total", "gunicorn", "postgres", "wrk")}}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=20, help="seconds of load per run (default 20)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each configuration (default 3)")
    parser.add_argument("--configs", default="2x8", help="gunicorn WORKERSxTHREADS,... (default 2x8, the Procfile's)")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--videos", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=3, help="seconds of warm-up load, on its own videos")
    parser.add_argument("--quiet-wait", type=int, default=300, help="most seconds to wait for a quiet machine")
    parser.add_argument("--no-reference", dest="reference", action="store_false", help="skip GET /healthz")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    configs = [tuple(int(x) for x in c.lower().split("x")) for c in args.configs.split(",")]
    machine = benchlib.machine("postgres", "wrk")
    env = benchlib.bench_env(DB_NAME, VAR)
    benchlib.setup_database(DB_NAME, env)
    benchlib.django_setup(env)
    runs = []
    for index, (workers, threads) in enumerate(configs * args.repeat):
        runs.append({"other_cores_before": wait_for_quiet(args.quiet_wait), **run_once(args, workers, threads, index)})
        print(f"run {index + 1} ({workers}x{threads}): {runs[-1]['rps']:.0f} requests/s", file=sys.stderr, flush=True)

    name = lambda r: f"{r['config']} (run {r['run']})"  # noqa: E731
    lines = [machine, f"gunicorn: {shlex.join(runs[0]['argv'])}", ""] + benchlib.table(
        ["run", "sent", "answered", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "non-2xx", "5xx",
         "socket errors", "records", "outcomes"],
        [[name(r), r["sent"], r["completed"], f"{r['rps']:.0f}", f"{r['p50_ms']:.1f}", f"{r['p90_ms']:.1f}",
          f"{r['p99_ms']:.1f}", f"{r['max_ms']:.0f}", r["non2xx"], r["c5xx"], r["socket_errors"], r["records"],
          ", ".join(f"{k} {v}" for k, v in sorted(r["outcomes"].items()))] for r in runs])
    lines += [""] + benchlib.table(
        ["run", "wall s", "gunicorn CPU s (per worker)", "PostgreSQL CPU s", "wrk CPU s",
         f"machine busy s (of {CORES} x wall)", "other s", "CPU ms/callback = gunicorn + PostgreSQL + wrk",
         "other cores before"],
        [[name(r), f"{c['wall']:.1f}", f"{c['gunicorn']:.1f} ({', '.join(f'{w:.1f}' for w in c['per_worker'])})",
          f"{c['postgres']:.1f}", f"{c['wrk']:.1f}", f"{c['machine']:.1f}", f"{c['other']:.1f}",
          f"{ms['total']:.2f} = {ms['gunicorn']:.2f} + {ms['postgres']:.2f} + {ms['wrk']:.2f}",
          f"{r['other_cores_before']:.2f}"]
         for r in runs for c, ms in [(r["cpu"], r["ms_per_callback"])]])
    lines.append("")
    for config in dict.fromkeys(r["config"] for r in runs):
        rs = [r for r in runs if r["config"] == config]
        med = lambda f, rs=rs: statistics.median(f(r) for r in rs)  # noqa: E731
        ms = {k: med(lambda r, k=k: r["ms_per_callback"][k]) for k in ("total", "gunicorn", "postgres", "wrk")}
        lines.append(f"{config}: median {med(lambda r: r['rps']):.0f} requests/s over {len(rs)} runs "
                     f"({', '.join(f'{r['rps']:.0f}' for r in rs)}), p50 {med(lambda r: r['p50_ms']):.0f} ms, "
                     f"p99 {med(lambda r: r['p99_ms']):.0f} ms (medians); CPU ms per callback {ms['total']:.1f} = "
                     f"{ms['gunicorn']:.1f} + {ms['postgres']:.1f} + {ms['wrk']:.2f}; machine "
                     f"{med(lambda r: r['cpu']['machine'] / (CORES * r['cpu']['wall'])):.0%} busy")
    if ref := runs[0]["healthz"]:
        lines.append(f"GET /healthz ({runs[0]['config']}): {ref['rps']:.0f} requests/s, {ref['non2xx']} non-2xx, "
                     f"{ref['gunicorn_ms']:.2f} ms gunicorn CPU per request, machine {ref['busy']:.0%} busy")
    benchlib.report({"machine": machine, "args": vars(args), "runs": runs}, lines, args.json)
    if failed := sum(r["c5xx"] for r in runs):
        raise SystemExit(f"invalid run: {failed} answers 5xx (see {VAR.relative_to(ROOT)}/gunicorn-*.log)")


if __name__ == "__main__":
    sys.exit(main())
