"""Relay pacing across teams: queued videos of several teams, relay workers, a 1 s upload interval.

    .venv/bin/python bench/relay_teams.py [--teams 10] [--per-team 10] [--interval 1] [--workers 2]
                                          [--timeout 180] [--json]
    .venv/bin/python bench/relay_teams.py --teams 3 --per-team 3       # a quick run

Needs PostgreSQL at 127.0.0.1:5432, user postgres with trust auth: the database
memportal_bench_relay_teams is dropped, created and migrated. Each team gets its own API key and
a member, who uploads --per-team copies of tests/data/sample-h264-aac.mp4 (32 KB, so the time
is pacing, not bytes) through the upload page (/videos/upload/, Django's test client), team
after team. The memories.ai emulator (memories_emulator.MemoriesEmulator, in this process, every
team's key known, no callbacks) answers 0429 to a key's upload closer than --interval to its
last. Then --workers relay workers start as the Procfile runs them, with a 0.1 s poll interval
(`manage.py db_worker --queue-name relay --no-reload --interval 0.1`,
MEMPORTAL_UPLOAD_INTERVAL_SECONDS=--interval); the clock starts right before they do.

Prints, in seconds after the workers' start: when all videos were `processing` (the last
sending -> processing event), the first task run, the first upload, the last team's first
upload; the gaps between one team's upload starts (as the emulator saw them) and between its
claims (`sending` events); gaps of 2 intervals or more; how long a claim took to reach
memories.ai; relay task runs by result (django-tasks-db rows, queue `relay`); and per team.
"""

import argparse
import secrets
import statistics
import sys
import time
from collections import Counter, defaultdict

import benchlib
from benchlib import ROOT

DB_NAME = "memportal_bench_relay_teams"
VAR = ROOT / "var" / "bench-relay_teams"
SAMPLE = ROOT / "tests" / "data" / "sample-h264-aac.mp4"
WORKER = ["manage.py", "db_worker", "--queue-name", "relay", "--no-reload", "--interval", "0.1"]
MAX_FILES = 50  # per upload form post


def seed(teams, per_team):
    """Teams with a key and a member each; the member uploads the team's videos through the page."""
    from django.contrib.auth import get_user_model
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.test import Client

    from uploads.models import ApiKey, Membership, Team, Video

    data = SAMPLE.read_bytes()
    created = []
    for t in range(teams):
        raw_key = f"sk-mavi-bench-{secrets.token_hex(12)}-T{t:03d}"
        team = Team.objects.create(name=f"team {t:02d}", slug=f"relay-team-{t:02d}")
        key = ApiKey(team=team, label="bench key")
        key.set_secret(raw_key)
        key.save()
        member = get_user_model().objects.create_user(username=f"relay-member-{t:02d}",
                                                      password=secrets.token_urlsafe(16))
        Membership.objects.create(user=member, team=team, role=Membership.Role.MEMBER)
        client = Client(HTTP_HOST="127.0.0.1")
        client.force_login(member)
        for first in range(0, per_team, MAX_FILES):
            files = [SimpleUploadedFile(f"clip-{t:02d}-{i:02d}.mp4", data, content_type="video/mp4")
                     for i in range(first, min(first + MAX_FILES, per_team))]
            answer = client.post("/videos/upload/", {"files": files, "title": f"bench {t:02d}"})
            if answer.status_code != 302:
                raise SystemExit(f"invalid run: the upload page answered {answer.status_code}")
        created.append({"team": team, "key": raw_key})
    if Video.objects.filter(status=Video.Status.QUEUED).count() != teams * per_team:
        raise SystemExit("invalid run: not every uploaded video is queued")
    return created


def measure(args, created):
    from django.db import connection
    from django_tasks_db.models import DBTaskResult

    from memories_emulator import MemoriesEmulator, key_tail
    from uploads.models import Video, VideoEvent

    total = args.teams * args.per_team
    emulator = MemoriesEmulator([c["key"] for c in created], "127.0.0.1", 0,
                                upload_interval=args.interval, send_callbacks=False).start()
    env = benchlib.bench_env(DB_NAME, VAR, MEMPORTAL_UPLOAD_INTERVAL_SECONDS=args.interval,
                             MEMORIES_API_BASE_URL=emulator.base_url)
    workers = []
    try:
        t0 = time.time()
        workers = [benchlib.start([sys.executable, *WORKER], env, VAR / f"worker-{i}.log")
                   for i in range(args.workers)]
        deadline = time.monotonic() + args.timeout
        while Video.objects.filter(status=Video.Status.PROCESSING).count() < total:
            if time.monotonic() > deadline or any(w.poll() is not None for w in workers):
                statuses = Counter(Video.objects.values_list("status", flat=True))
                raise SystemExit(f"invalid run: after {time.time() - t0:.0f} s the videos are {dict(statuses)}")
            time.sleep(0.05)
        uploads = emulator.uploads
    finally:
        for worker in workers:
            benchlib.stop(worker)
        emulator.stop()
    connection.close()

    team_of_video = {str(pk): team_id for pk, team_id in Video.objects.values_list("pk", "team_id")}
    claims, processing = defaultdict(list), []
    for team_id, to_status, from_status, at in VideoEvent.objects.values_list(
            "video__team_id", "to_status", "from_status", "created_at"):
        if to_status == Video.Status.SENDING:
            claims[team_id].append(at.timestamp() - t0)
        elif to_status == Video.Status.PROCESSING and from_status == Video.Status.SENDING:
            processing.append(at.timestamp() - t0)
    runs = list(DBTaskResult.objects.filter(queue_name="relay").values_list("args_kwargs", "return_value",
                                                                            "started_at"))
    runs_per_team = Counter(team_of_video.get(a["args"][0]) for a, _, _ in runs)
    by_tail = {key_tail(c["key"]): c["team"] for c in created}
    starts = defaultdict(list)  # team -> (upload start, answer code)
    for upload in uploads:
        starts[by_tail[upload.key_tail].pk].append((upload.started_at - t0, upload.code))

    teams, to_request = [], []
    for c in created:
        pk = c["team"].pk
        accepted = sorted(at for at, code in starts[pk] if code == "0000")
        gaps = [b - a for a, b in zip(accepted, accepted[1:])]
        team_claims = sorted(claims[pk])
        to_request += [at - claim for claim, at in zip(team_claims, sorted(at for at, _ in starts[pk]))]
        teams.append({"team": c["team"].name, "accepted": len(accepted), "first": accepted[0], "last": accepted[-1],
                      "gaps": gaps, "claim_gaps": [b - a for a, b in zip(team_claims, team_claims[1:])],
                      "task_runs": runs_per_team[pk]})
    return {"all_processing": max(processing), "videos": total,
            "first_task_run": min(s.timestamp() for _, _, s in runs if s) - t0,
            "first_upload": min(t["first"] for t in teams), "last_team_first_upload": max(t["first"] for t in teams),
            "answers": dict(Counter(u.code for u in uploads)),
            "task_runs": dict(Counter(str(rv) for _, rv, _ in runs), total=len(runs)),
            "claim_to_request": to_request, "teams": teams}


def spread(values, digits=3):
    """"smallest / mean / largest" of `values`, as text."""
    if not values:
        return "-"
    return " / ".join(f"{v:.{digits}f}" for v in (min(values), statistics.mean(values), max(values)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--teams", type=int, default=10)
    parser.add_argument("--per-team", type=int, default=10)
    parser.add_argument("--interval", type=int, default=1, help="MEMPORTAL_UPLOAD_INTERVAL_SECONDS (whole s)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=180, help="give up after this many seconds")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    if min(args.teams, args.per_team, args.workers, args.interval) < 1:
        parser.error("teams, per-team, workers and interval must be at least 1")
    machine = benchlib.machine("postgres")
    env = benchlib.bench_env(DB_NAME, VAR)
    benchlib.setup_database(DB_NAME, env)
    benchlib.django_setup(env)
    r = measure(args, seed(args.teams, args.per_team))

    gaps = [g for t in r["teams"] for g in t["gaps"]]
    claim_gaps = [g for t in r["teams"] for g in t["claim_gaps"]]
    median_max = lambda xs: f"{statistics.median(xs):.3f} / {max(xs):.3f}" if xs else "-"  # noqa: E731
    summary = {
        f"all {r['videos']} `processing` after (s)": f"{r['all_processing']:.2f}",
        "first task run / first upload (s)": f"{r['first_task_run']:.2f} / {r['first_upload']:.2f}",
        "last team's first upload (s)": f"{r['last_team_first_upload']:.2f}",
        "gap between a team's uploads: smallest / mean / largest (s)": spread(gaps),
        "gap between a team's claims (`sending` events): median / max (s)": median_max(claim_gaps),
        f"gaps of {2 * args.interval} s or more": sum(1 for g in gaps if g >= 2 * args.interval),
        "claim -> memories.ai starts reading: median / max (s)": median_max(r["claim_to_request"]),
        "upload answers": ", ".join(f"{code} x {n}" for code, n in r["answers"].items()),
        "relay task runs": f"{r['task_runs']['total']} ("
                           + ", ".join(f"{k} {v}" for k, v in r["task_runs"].items() if k != "total") + ")"}
    width = max(map(len, summary))
    lines = [machine, f"{args.teams} teams x {args.per_team} videos, {args.workers} relay workers, interval "
             f"{args.interval} s; times in seconds after the workers' start", ""]
    lines += [f"{label:{width}}  {value}" for label, value in summary.items()] + [""] + benchlib.table(
        ["team", "uploads accepted", "first upload", "last upload", "gap smallest / mean / largest", "relay task runs"],
        [[t["team"], t["accepted"], f"{t['first']:.2f}", f"{t['last']:.2f}", spread(t["gaps"]), t["task_runs"]]
         for t in r["teams"]])
    benchlib.report({"machine": machine, "args": vars(args), "summary": summary, **r}, lines, args.json)

if __name__ == "__main__":
    sys.exit(main())
