"""Relay pacing per memories.ai account: queued videos of several teams, two of them given one key.

    .venv/bin/python bench/relay_teams.py [--teams 10] [--per-team 10] [--shared 2] [--interval 2]
                                          [--workers 2] [--timeout 240] [--json]
    .venv/bin/python bench/relay_teams.py --shared 0      # every team its own key (account)
    .venv/bin/python bench/relay_teams.py --teams 3 --per-team 3       # a quick run

Needs PostgreSQL at 127.0.0.1:5432, user postgres with trust auth: the database
memportal_bench_relay_teams is dropped, created and migrated. Each team gets an API key and a
member, who uploads --per-team copies of tests/data/sample-h264-aac.mp4 (32 KB: the time is
pacing, not bytes) through the upload page (Django's test client), team after team. The first
--shared teams are given one and the same key (the portal puts their keys in one memories.ai
account by fingerprint); every other team has a key, and an account, of its own. The emulator
(memories_emulator.MemoriesEmulator, in this process, no callbacks) answers 0429 to a key's
upload closer than --interval to its last. Then --workers relay workers start as the Procfile
runs them, polling every 0.1 s (`manage.py db_worker --queue-name relay --no-reload --interval
0.1`, MEMPORTAL_UPLOAD_INTERVAL_SECONDS=--interval); the clock starts right before they do.

Prints, in seconds after the workers' start: when all videos were `processing` (the last sending
-> processing event), the first task run and upload, throughput; per account: uploads accepted,
0429s, first and last upload start (as the emulator saw them), gaps between consecutive upload
starts across its teams and between its claims (`sending` events), uploads per interval; per
team: its own uploads and relay task runs (django-tasks-db rows, queue `relay`).
"""

import argparse
import secrets
import statistics
import sys
import time
from collections import Counter, defaultdict

import benchlib
from benchlib import ROOT, spread

DB_NAME = "memportal_bench_relay_teams"
VAR = ROOT / "var" / "bench-relay_teams"
SAMPLE = ROOT / "tests" / "data" / "sample-h264-aac.mp4"
WORKER = ["manage.py", "db_worker", "--queue-name", "relay", "--no-reload", "--interval", "0.1"]
MAX_FILES = 50  # per upload form post
MIN_MED_MAX = (min, statistics.median, max)


def seed(teams, per_team, shared):
    """Teams with a key and a member each; the member uploads the team's videos through the page."""
    from django.contrib.auth import get_user_model
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.test import Client

    from uploads.models import ApiKey, Membership, Team, Video

    data = SAMPLE.read_bytes()
    shared_key = f"sk-mavi-bench-{secrets.token_hex(12)}-S{shared:03d}"
    created = []
    for t in range(teams):
        raw_key = shared_key if t < shared else f"sk-mavi-bench-{secrets.token_hex(12)}-T{t:03d}"
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
        created.append({"team": team, "key": raw_key, "account": key.account_id})
    if Video.objects.filter(status=Video.Status.QUEUED).count() != teams * per_team:
        raise SystemExit("invalid run: not every uploaded video is queued")
    if len({c["account"] for c in created}) != len({c["key"] for c in created}):
        raise SystemExit("invalid run: the portal did not give one account per distinct key")
    return created


def measure(args, created):
    from django.db import connection
    from django_tasks_db.models import DBTaskResult

    from memories_emulator import MemoriesEmulator, key_tail
    from uploads.models import Video, VideoEvent

    total = args.teams * args.per_team
    emulator = MemoriesEmulator(sorted({c["key"] for c in created}), "127.0.0.1", 0,
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
    team_of_no = dict(Video.objects.exclude(video_no="").values_list("video_no", "team_id"))
    claims, processing = defaultdict(list), []  # claims: team -> its `sending` times
    for team_id, to_status, from_status, at in VideoEvent.objects.values_list(
            "video__team_id", "to_status", "from_status", "created_at"):
        if to_status == Video.Status.SENDING:
            claims[team_id].append(at.timestamp() - t0)
        elif to_status == Video.Status.PROCESSING and from_status == Video.Status.SENDING:
            processing.append(at.timestamp() - t0)
    runs = list(DBTaskResult.objects.filter(queue_name="relay").values_list("args_kwargs", "return_value",
                                                                            "started_at"))
    runs_per_team = Counter(team_of_video.get(a["args"][0]) for a, _, _ in runs)
    account_of_tail = {key_tail(c["key"]): c["account"] for c in created}
    starts = defaultdict(list)  # account -> (upload start, answer code, team)
    for upload in uploads:
        starts[account_of_tail[upload.key_tail]].append(
            (upload.started_at - t0, upload.code, team_of_no.get(upload.video_no)))

    def figures(accepted, claimed):
        gaps = benchlib.gaps(accepted)
        return {"accepted": len(accepted), "first": min(accepted), "last": max(accepted), "gaps": gaps,
                "claim_gaps": benchlib.gaps(claimed), "per_interval": len(gaps) * args.interval / sum(gaps or [1])}

    accounts, teams, to_request = [], [], []
    for account in dict.fromkeys(c["account"] for c in created):
        mine, ups = [c for c in created if c["account"] == account], starts[account]
        claimed = sorted(at for c in mine for at in claims[c["team"].pk])
        accounts.append({"account": account, "teams": [c["team"].name for c in mine],
                         "videos": len(mine) * args.per_team, "0429": sum(1 for _, code, _ in ups if code == "0429"),
                         **figures([at for at, code, _ in ups if code == "0000"], claimed)})
        to_request += [at - claim for claim, at in zip(claimed, sorted(at for at, _, _ in ups))]
    for c in created:
        pk, account = c["team"].pk, c["account"]
        mine = [at for at, code, team in starts[account] if code == "0000" and team == pk]
        teams.append({"team": c["team"].name, "account": account, "task_runs": runs_per_team[pk],
                      **figures(mine, claims[pk])})
    accepted = sum(a["accepted"] for a in accounts)
    return {"all_processing": max(processing), "videos": total, "accepted": accepted,
            "throughput": accepted / max(processing), "first_upload": min(a["first"] for a in accounts),
            "first_task_run": min(s.timestamp() for _, _, s in runs if s) - t0,
            "answers": dict(Counter(u.code for u in uploads)),
            "task_runs": dict(Counter(str(rv) for _, rv, _ in runs), total=len(runs)),
            "claim_to_request": to_request, "accounts": accounts, "teams": teams}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--teams", type=int, default=10)
    parser.add_argument("--per-team", type=int, default=10)
    parser.add_argument("--shared", type=int, default=2, help="the first SHARED teams get one key (0: none)")
    parser.add_argument("--interval", type=int, default=2, help="MEMPORTAL_UPLOAD_INTERVAL_SECONDS (whole s)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=240, help="give up after this many seconds")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    bad_shared = args.shared == 1 or not 0 <= args.shared <= args.teams
    if min(args.teams, args.per_team, args.workers, args.interval) < 1 or bad_shared:
        parser.error("teams, per-team, workers and interval must be at least 1, --shared 0 or 2 to --teams")
    machine = benchlib.machine("postgres")
    env = benchlib.bench_env(DB_NAME, VAR)
    benchlib.setup_database(DB_NAME, env)
    benchlib.django_setup(env)
    r = measure(args, seed(args.teams, args.per_team, args.shared))

    gaps = [g for a in r["accounts"] for g in a["gaps"]]
    summary = {
        f"all {r['videos']} `processing` after (s)": f"{r['all_processing']:.2f}",
        "first task run / first upload (s)": f"{r['first_task_run']:.2f} / {r['first_upload']:.2f}",
        "uploads accepted per s (per interval)": f"{r['throughput']:.3f} ({r['throughput'] * args.interval:.2f})",
        f"gaps within an account of {2 * args.interval} s or more": sum(1 for g in gaps if g >= 2 * args.interval),
        "claim -> memories.ai starts reading: median / max (s)": spread(r["claim_to_request"], MIN_MED_MAX[1:]),
        "upload answers": ", ".join(f"{code} x {n}" for code, n in r["answers"].items()),
        "relay task runs": f"{r['task_runs']['total']} ("
                           + ", ".join(f"{k} {v}" for k, v in r["task_runs"].items() if k != "total") + ")"}
    width = max(map(len, summary))
    lines = [machine, f"{args.teams} teams x {args.per_team} videos, {args.shared} teams sharing one key, "
             f"{args.workers} relay workers, interval {args.interval} s; times in seconds after the workers' start", ""]
    lines += [f"{label:{width}}  {value}" for label, value in summary.items()] + [""] + benchlib.table(
        ["account", "teams", "videos", "accepted", "0429", "first upload", "last upload",
         "gap min / median / max", "claim gap median", "uploads per interval"],
        [[f"#{a['account']}", " + ".join(a["teams"]), a["videos"], a["accepted"], a["0429"], f"{a['first']:.2f}",
          f"{a['last']:.2f}", spread(a["gaps"], MIN_MED_MAX), spread(a["claim_gaps"], (statistics.median,)),
          f"{a['per_interval']:.3f}"] for a in r["accounts"]]) + [""] + benchlib.table(
        ["team", "account", "accepted", "first upload", "last upload", "gap min / median / max", "relay task runs"],
        [[t["team"], f"#{t['account']}", t["accepted"], f"{t['first']:.2f}", f"{t['last']:.2f}",
          spread(t["gaps"], MIN_MED_MAX), t["task_runs"]] for t in r["teams"]])
    benchlib.report({"machine": machine, "args": vars(args), "summary": summary, **r}, lines, args.json)


if __name__ == "__main__":
    sys.exit(main())
