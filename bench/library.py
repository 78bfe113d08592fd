"""The video library at size: "My videos", "Team videos" and the live states feed, in-process.

    .venv/bin/python bench/library.py [--videos 100000 --mine 1000] [--json] [--explain]
    .venv/bin/python bench/library.py --quick           # 10,000 videos, fewer requests

Needs PostgreSQL at 127.0.0.1:5432, user postgres with trust auth: the database
memportal_bench_library is dropped, created, migrated and dropped again at the end. The table is
filled in two passes with COPY (the same rows as Video.save() would leave, callback_digest set
per row): first --small videos (10,000; the signed-in user's --mine among them), then the rest of
--videos, all of it the other users' and teams'; `VACUUM ANALYZE` after each pass. Every case is
measured after each pass, so the query counts at both sizes stand side by side.

Every request goes through Django's test client in this process (force_login, the full
middleware stack, sessions in PostgreSQL), with the production settings of the other benches.
Per case: server time (time.perf_counter around client.get / client.post; the client's own
request building is in it), its p50, p95 (nearest rank) and max over --requests requests after
--warmup, the cases taken in turn round after round (a burst of other load on the machine falls
on all of them alike); the SQL queries of a request (CaptureQueriesContext), their summed time,
the slowest one. Prints the figures; --explain adds EXPLAIN (ANALYZE, BUFFERS) of the slowest
query of the 5 cases whose slowest query took longest (and of any case past --list-target /
--states-target ms at p95 that spent half its time or more in SQL).
"""

import argparse
import itertools
import os
import math
import random
import re
import statistics
import sys
import time
import uuid
from collections import Counter, defaultdict
from datetime import timedelta

import benchlib
from benchlib import ROOT

DB_NAME = "memportal_bench_library"
VAR = ROOT / "var" / "bench-library"
SEED = 13

# The other users' videos, by state (the signed-in user's have exact counts: MINE_STATES).
OTHERS_MIX = {"ready": 0.9065, "failed": 0.04, "rejected": 0.015, "cancelled": 0.025, "processing": 0.01,
              "sending": 0.0005, "queued": 0.003}
MINE_STATES = {"queued": 30, "sending": 2, "processing": 15, "failed": 40, "rejected": 15, "cancelled": 25}
DELETED_SHARE = 0.01  # of the other users' videos: deleted (kept as rows, never listed)

COMMON, RARE, NO_MATCH = "meeting", "aurora", "zzqxv"
SUBJECTS = ["Quarterly review", "Team standup", "Product demo", "Customer interview", "Onboarding session",
            "All-hands", "Design critique", "Site visit", "Training", "Webinar", "Launch rehearsal", "Town hall",
            "Workshop", "Field recording", "Keynote", "Retrospective", "Sprint planning", "Safety briefing",
            "Lab walkthrough", "Board update", "Sales call", "Support escalation", "Hackathon", "Panel talk",
            "Studio session", "Drone footage", "Warehouse tour", "Press briefing", "Focus group", "Tutorial"]
TOPICS = ["Berlin", "Lisbon", "Osaka", "Nairobi", "Toronto", "Lima", "Oslo", "Dubai", "Austin", "Seoul",
          "project Falcon", "project Cedar", "project Atlas", "project Orion", "project Delta", "Q1", "Q2", "Q3",
          "Q4", "north plant", "south depot", "HQ", "new hires", "partners", "pricing", "roadmap", "mobile app",
          "checkout", "search", "billing", "reporting", "warehouse 7", "line 3", "kitchen", "the lab"]
TAILS = ["", "", "", "part 1", "part 2", "part 3", "draft", "final", "raw", "cut", "highlights", "full", "v2",
         "backup", "(copy)", "take 4", "director's cut"]
DEPARTMENTS = ["Marketing", "Research", "Sales", "Support", "Design", "Engineering", "Operations", "Legal",
               "Finance", "Training", "Product", "Field", "Studio", "Logistics", "Quality", "People", "Events"]
REGIONS = ["North", "South", "East", "West", "Central", "Europe", "Americas", "Asia", "Pacific", "Africa"]
FIRST = ["Ada", "Ben", "Chen", "Dana", "Emil", "Fatima", "Goran", "Hana", "Ivan", "Jo", "Kemal", "Lena", "Mateo",
         "Nia", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tara", "Uma", "Viktor", "Wen", "Yusuf", "Zoe"]
LAST = ["Andersen", "Baker", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia", "Haddad", "Ito", "Jansen",
        "Kowalski", "Lopez", "Moreau", "Nakamura", "Okafor", "Petrov", "Rossi", "Silva", "Tanaka", "Weber"]


def nearest_rank(values, share):
    ordered = sorted(values)
    return ordered[max(math.ceil(share * len(ordered)) - 1, 0)]


class World:
    """The teams, people and keys, made once; then videos added pass by pass with add_videos()."""

    def __init__(self, rng, team_count, user_count, team_share):
        from django.contrib.auth import get_user_model
        from django.contrib.auth.hashers import make_password
        from django.utils import timezone

        from uploads.models import ApiKey, Membership, Team

        self.rng, self.team_share, self.now = rng, team_share, timezone.now()
        names = [f"{d} {r}" for r in REGIONS for d in DEPARTMENTS]
        rng.shuffle(names)
        self.teams = Team.objects.bulk_create(
            [Team(name=names[i], slug=f"team-{i:02d}", created_at=self.now - timedelta(days=400))
             for i in range(team_count)])
        User = get_user_model()
        unusable = make_password(None)
        self.users = User.objects.bulk_create(
            [User(username=f"{rng.choice(FIRST).lower()}.{rng.choice(LAST).lower()}.{i:03d}", email=f"u{i}@example.com",
                  first_name=rng.choice(FIRST), password=unusable) for i in range(user_count)])
        self.me = User.objects.create(username="bench-me", email="me@example.com", password=unusable)
        self.admin = User.objects.create(username="bench-team-admin", email="admin@example.com", password=unusable)
        self.superuser = User.objects.create(username="bench-superuser", email="root@example.com", password=unusable,
                                             is_staff=True, is_superuser=True)
        # The signed-in user belongs to five teams, the last of them without a key; team 0 is the
        # team admin's (a fixed share of the table), teams 1 and 2 share one key (one account).
        self.my_teams = [self.teams[i] for i in (0, 1, 2, 3, team_count - 1)]
        self.members = defaultdict(list)
        memberships = []
        for i, user in enumerate(self.users):
            for team in {self.teams[i % team_count], rng.choice(self.teams)}:
                memberships.append(Membership(user=user, team=team))
                self.members[team.pk].append(user.pk)
        memberships += [Membership(user=self.me, team=t) for t in self.my_teams]
        Membership.objects.bulk_create(memberships)
        Membership.objects.create(user=self.admin, team=self.teams[0], role=Membership.Role.ADMIN)  # its signals
        self.members[self.teams[0].pk].append(self.admin.pk)
        self.keys = {}
        for i, team in enumerate(self.teams[:team_count - 5]):  # the last five teams have no key
            key = ApiKey(team=team, label=f"{team.name} key")
            key.set_secret("mk-bench-shared-1-2-key" if i in (1, 2) else f"mk-bench-{i:02d}-{rng.getrandbits(64):016x}")
            key.save()
            self.keys[team.pk] = key.pk
        failing = self.teams[team_count - 6]  # one team's key is marked failing: its queue waits
        ApiKey.objects.filter(team=failing).update(failing_since=self.now - timedelta(hours=2), last_error="0401")
        self.weights = [rng.uniform(0.3, 2.0) for _ in self.teams]
        self.weights[0] = 0
        self.rows = self.in_team0 = 0

    def video_rows(self, owners, teams, states, may_delete):
        """Rows for COPY, one per owner, team and state: dicts of the columns that differ from
        Video's defaults."""
        from uploads.models import token_digest

        rng, now = self.rng, self.now
        for owner, team, status in zip(owners, teams, states):
            vid = uuid.UUID(int=rng.getrandbits(128), version=4)
            if status == "queued":
                created = now - timedelta(seconds=rng.uniform(60, 3 * 3600))
            elif status == "sending":
                created = now - timedelta(seconds=rng.uniform(30, 600))
            elif status == "processing":
                created = now - timedelta(seconds=rng.uniform(600, 2 * 86400))
            else:
                created = now - timedelta(seconds=rng.uniform(3 * 3600, 365 * 86400))
            subject, topic, tail = rng.choice(SUBJECTS), rng.choice(TOPICS), rng.choice(TAILS)
            if rng.random() < 0.08:
                subject = f"{subject} {COMMON}" if rng.random() < 0.5 else f"{COMMON.capitalize()}: {subject}"
            if rng.random() < 0.002:
                topic = f"project {RARE.capitalize()}"
            day = f"{created:%Y-%m-%d}"
            kind = rng.randrange(6)
            slugged = re.sub(r"[^a-z0-9]+", "-", f"{subject} {topic}".lower()).strip("-")
            original = [f"IMG_{rng.randrange(10000):04d}.MOV", f"GX01{rng.randrange(10000):04d}.MP4",
                        f"VID_{created:%Y%m%d_%H%M%S}.mp4", f"{slugged}-{day}.mp4",
                        f"Screen Recording {day} at {created:%H.%M.%S}.mov", f"{slugged}.mkv"][kind]
            if kind in (0, 1, 2) and COMMON in subject.lower() and rng.random() < 0.5:
                original = f"{COMMON}-{original}"
            title = " ".join(f"{subject} – {topic} {tail}".split()) if rng.random() < 0.45 else ""
            sent = status in ("processing", "ready") or (status in ("failed", "rejected") and rng.random() < 0.5)
            has_media = status not in ("rejected",) and rng.random() < 0.97
            file = f"videos/{team.slug}/{created:%Y/%m}/{vid}{original[original.rfind('.'):].lower()}"
            changed = min(created + timedelta(seconds=rng.uniform(5, 900)), now)
            row = {
                "id": vid, "team_id": team.pk, "owner_id": owner, "title": title,
                "original_name": original, "file": file, "content_type": "video/mp4",
                "size": int(min(max(rng.lognormvariate(math.log(150e6), 1.2), 1e5), 3e9)),
                "sha256": f"{rng.getrandbits(256):064x}", "status": status,
                "api_key_id": self.keys.get(team.pk) if sent else None,
                "remote_status": {"ready": "PARSE", "processing": "UNPARSE"}.get(status, ""),
                "video_no": f"VI{rng.randrange(10**17, 10**18)}" if sent else "",
                "remote_uploaded_at": changed if sent else None,
                "callback_digest": token_digest(str(vid)),
                "created_at": created, "updated_at": changed, "status_changed_at": changed,
            }
            if has_media:
                row.update(media_checked_at=created, duration_seconds=round(rng.uniform(4, 5400), 1),
                           video_codec="h264", width=1920, height=1080, has_audio=True)
                if status in ("ready", "processing", "failed"):
                    row["thumbnail"] = file.rsplit(".", 1)[0] + ".thumb.jpg"
            if status == "queued":
                row["relay_token"] = f"{rng.getrandbits(64):016x}"
                if rng.random() < 0.15:
                    row.update(attempts=rng.randint(1, 3), last_error="memories.ai did not answer in time",
                               next_attempt_at=now + timedelta(seconds=rng.uniform(30, 900)))
            elif status == "sending":
                row.update(relay_token=f"{rng.getrandbits(64):016x}", heartbeat_at=now)
            elif status in ("failed", "rejected"):
                row.update(attempts=3 if status == "failed" else 1,
                           last_error="memories.ai refused the file" if status == "rejected"
                           else "0500 from memories.ai")
            if status in ("ready", "processing"):
                row.update(checks=rng.randint(0, 3), last_checked_at=changed)
            if may_delete and rng.random() < DELETED_SHARE:
                row["deleted_at"] = changed + timedelta(days=1)
            yield row

    def add_videos(self, mine, others):
        """The signed-in user's `mine` videos (exact state counts) and `others` of other users."""
        from django.db import connection

        from uploads.models import MemoriesAccount, Video

        rng, started = self.rng, time.perf_counter()
        batches = []
        in_team0 = round(self.team_share * (self.rows + mine + others)) - self.in_team0
        if mine:
            states = [s for s, n in MINE_STATES.items() for _ in range(n)]
            states += ["ready"] * (mine - len(states))
            rng.shuffle(states)
            teams = rng.choices(self.my_teams, [0.2, 0.3, 0.2, 0.2, 0.1], k=mine)
            in_team0 -= teams.count(self.teams[0])
            batches.append(self.video_rows([self.me.pk] * mine, teams, states, may_delete=False))
        if others:
            in_team0 = min(max(in_team0, 0), others)
            teams = [self.teams[0]] * in_team0 + rng.choices(self.teams, self.weights, k=others - in_team0)
            rng.shuffle(teams)
            owners = [rng.choice(self.members[t.pk]) for t in teams]
            states = rng.choices(list(OTHERS_MIX), list(OTHERS_MIX.values()), k=others)
            batches.append(self.video_rows(owners, teams, states, may_delete=True))
        fields = Video._meta.concrete_fields
        defaults = {f.attname: f.get_db_prep_save(f.get_default(), connection) for f in fields}
        columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
        copy_sql = f"COPY {connection.ops.quote_name(Video._meta.db_table)} ({columns}) FROM STDIN"
        for batch in batches:
            while chunk := [[row.get(f.attname, defaults[f.attname]) for f in fields]
                            for row in itertools.islice(batch, 5000)]:
                with connection.cursor() as cursor, cursor.cursor.copy(copy_sql) as copy:
                    for values in chunk:
                        copy.write_row(values)
        self.rows += mine + others
        self.in_team0 = Video.objects.filter(team=self.teams[0]).count()
        # Accounts' upload slots: about half taken for up to a minute, as the relay leaves them.
        for account in MemoriesAccount.objects.all():
            account.next_upload_at = (self.now + timedelta(seconds=rng.uniform(0, 60))) if rng.random() < 0.5 else None
            account.save(update_fields=["next_upload_at"])
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
        return time.perf_counter() - started


class Case:
    def __init__(self, group, label, client, path, query="", ids=None):
        self.group, self.label, self.client, self.path, self.query, self.ids = group, label, client, path, query, ids
        self.reset()

    def reset(self):
        self.times, self.counts, self.sql_ms, self.slowest = [], [], [], []
        self.rows = self.matches = None
        self.shapes = []

    def request(self):
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        timings = []
        connection.queries_log.clear()  # a deque of at most 9000: CaptureQueriesContext counts by its length

        def timed(execute, sql, params, many, context):  # Django's own record of a query's time is in whole ms
            started = time.perf_counter()
            try:
                return execute(sql, params, many, context)
            finally:
                timings.append((time.perf_counter() - started) * 1000)

        with CaptureQueriesContext(connection) as queries, connection.execute_wrapper(timed):
            started = time.perf_counter()
            if self.ids is None:
                answer = self.client.get(self.path + ("?" + self.query if self.query else ""))
            else:
                answer = self.client.post(self.path, {"ids": self.ids}, content_type="application/json")
            elapsed = time.perf_counter() - started
        if answer.status_code != 200:
            raise SystemExit(f"invalid run: {self.path}?{self.query} answered {answer.status_code}")
        # Django logs BEGIN, COMMIT and ROLLBACK among the queries too (no execute() of a cursor).
        statements = [q for q in queries.captured_queries if q["sql"] not in ("BEGIN", "COMMIT", "ROLLBACK")]
        if len(timings) != len(statements):
            raise SystemExit("invalid run: the queries timed are not the queries captured")
        timed_sql = iter(timings)
        return answer, elapsed, [(float(q["time"]) * 1000 if q not in statements else next(timed_sql), q["sql"])
                                 for q in queries.captured_queries]

    def measure(self, record):
        answer, elapsed, captured = self.request()
        if self.ids is None:
            body = answer.content.decode()
            self.rows = body.count('data-video-id="')
            found = re.search(r"<caption>(\d+) video", body)
            self.matches = int(found.group(1)) if found else 0
        else:
            self.rows = len(answer.json()["videos"])
            if self.rows != len(self.ids):
                raise SystemExit(f"invalid run: the states feed answered {self.rows} of {len(self.ids)} ids")
            self.matches = len(self.ids)
        if record:
            self.times.append(elapsed * 1000)
            self.counts.append(len(captured))
            self.sql_ms.append(sum(ms for ms, _ in captured))
            self.slowest.append(max(captured))
            self.shapes = [shortened(sql)[:160] for _, sql in captured]

    def figures(self):
        counts = Counter(self.counts)
        slowest = Counter(sql for _, sql in self.slowest).most_common(1)[0][0]
        return {"group": self.group, "label": self.label, "query": self.query, "ids": len(self.ids or ()),
                "rows": self.rows, "matches": self.matches, "requests": len(self.times),
                "p50_ms": statistics.median(self.times), "p95_ms": nearest_rank(self.times, 0.95),
                "max_ms": max(self.times), "sql_ms_p50": statistics.median(self.sql_ms),
                "queries": counts.most_common(1)[0][0], "queries_seen": dict(sorted(counts.items())),
                "slowest_query_ms_p50": statistics.median(ms for ms, _ in self.slowest), "slowest_query": slowest,
                "queries_of_the_last": self.shapes}


def last_page(client, path, query):
    answer = client.get(f"{path}?{query}")
    found = re.search(r"page 1 of (\d+)", answer.content.decode())
    return int(found.group(1)) if found else 1


def make_cases(world, me, admin, root):
    from uploads.models import Video

    cases = []
    mine = lambda label, query: cases.append(Case("My videos", label, me, "/videos/", query))  # noqa: E731
    for sort in ("newest", "oldest", "name", "name-desc", "largest", "smallest", "state"):
        for page in (1, 2, 20, 40):
            mine(f"sort {sort}, page {page}", f"sort={sort}&page={page}")
    for state in Video.Status.values:
        mine(f"state {state}", f"state={state}")
    mine("state queued, page 2", "state=queued&page=2")
    mine("state ready, sort name, page 20", "state=ready&sort=name&page=20")
    team = world.my_teams[1]
    mine("team filter, page 1", f"team={team.pk}")
    mine("team filter, last page", f"team={team.pk}&page={last_page(me, '/videos/', f'team={team.pk}')}")
    mine(f"search common word ({COMMON})", f"q={COMMON}")
    mine("search common word, last page", f"q={COMMON}&page={last_page(me, '/videos/', f'q={COMMON}')}")
    mine("search common word, sort largest", f"q={COMMON}&sort=largest")
    mine(f"search rare word ({RARE})", f"q={RARE}")
    mine(f"search, no match ({NO_MATCH})", f"q={NO_MATCH}")
    mine("search + state + team + sort name", f"q={COMMON}&state=ready&team={world.my_teams[0].pk}&sort=name")
    mine("page 999 (past the end: the last)", "page=999")

    team_case = lambda label, query: cases.append(Case("Team videos", label, admin, "/videos/team/", query))  # noqa
    for sort in ("newest", "name", "largest", "state"):
        team_case(f"sort {sort}, page 1", f"sort={sort}")
        team_case(f"sort {sort}, page 2", f"sort={sort}&page=2")
        team_case(f"sort {sort}, last page", f"sort={sort}&page={last_page(admin, '/videos/team/', f'sort={sort}')}")
    owners = Counter(Video.objects.filter(team=world.teams[0]).exclude(owner=world.me)
                     .values_list("owner_id", flat=True)).most_common(1)
    busiest = owners[0][0] if owners else world.me.pk
    team_case("member filter", f"member={busiest}")
    team_case("state failed", "state=failed")
    team_case("state queued", "state=queued")
    team_case(f"search common word ({COMMON})", f"q={COMMON}")
    team_case(f"search, no match ({NO_MATCH})", f"q={NO_MATCH}")

    # Beyond the targets: a superuser's Team videos is every team's, the whole table.
    every = lambda label, query: cases.append(  # noqa: E731
        Case("Team videos, superuser", label, root, "/videos/team/", query))
    every("sort newest, page 1", "sort=newest")
    every("sort newest, last page", f"sort=newest&page={last_page(root, '/videos/team/', 'sort=newest')}")
    every("sort name, page 1", "sort=name")
    every(f"search common word ({COMMON})", f"q={COMMON}")
    every(f"search, no match ({NO_MATCH})", f"q={NO_MATCH}")

    alive = Video.objects.filter(owner=world.me, deleted_at__isnull=True)
    queued = [str(pk) for pk in alive.filter(status="queued").order_by("created_at").values_list("pk", flat=True)]
    moving = [str(pk) for pk in alive.filter(status__in=["sending", "processing"]).values_list("pk", flat=True)]
    final = [str(pk) for pk in alive.exclude(status__in=["queued", "sending", "processing"])
             .order_by("-created_at").values_list("pk", flat=True)]
    hundred = queued[:30] + moving[:17] + final[:100 - 30 - len(moving[:17])]
    ten = queued[:3] + moving[:2] + final[:5]
    states = lambda label, ids: cases.append(Case("States feed", label, me, "/videos/states/", ids=ids))  # noqa
    states("10 ids (3 queued)", ten)
    states("100 ids (30 queued, 17 sending/processing)", hundred)
    states("100 ids, none queued", final[:100])
    states("1000 ids (all of the user's)", queued + moving + final)
    return cases


def run_pass(cases, rounds, warmup):
    for round_no in range(warmup + rounds):
        for case in cases:
            case.measure(record=round_no >= warmup)
    return {(c.group, c.label): c.figures() for c in cases}


def explain(sql):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
        return [shortened(row[0]) for row in cursor.fetchall()]


UUID = r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}"


def shortened(text):
    """SQL or a plan line to read: a select list of many columns and a list of ids in a few words."""
    text = re.sub(rf"'{UUID}'::uuid(, '{UUID}'::uuid)+", lambda m: f"<{m.group(0).count('::uuid')} ids>", text)
    text = re.sub(rf"'\{{{UUID}(,{UUID})+\}}'", lambda m: f"'{{<{m.group(0).count(',') + 1} ids>}}'", text)
    return re.sub(r"^SELECT ((?:(?!\(SELECT).){200,}?) FROM ",
                  lambda m: f"SELECT <{m.group(1).count(', ') + 1} columns> FROM ", text, count=1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--videos", type=int, default=100_000, help="videos in the table at the end (100000)")
    parser.add_argument("--mine", type=int, default=1000, help="of them the signed-in user's (1000)")
    parser.add_argument("--small", type=int, default=10_000, help="the table in the first pass (10000)")
    parser.add_argument("--teams", type=int, default=50)
    parser.add_argument("--users", type=int, default=500, help="other users (500)")
    parser.add_argument("--team-share", type=float, default=0.05,
                        help="the team admin's team's share of the table (0.05: 5,000 of 100,000)")
    parser.add_argument("--requests", type=int, default=30, help="measured requests per case (30)")
    parser.add_argument("--warmup", type=int, default=3, help="requests per case before (3)")
    parser.add_argument("--list-target", type=float, default=50.0, help="explained when a list's p95 is past it")
    parser.add_argument("--states-target", type=float, default=20.0, help="the same for the states feed")
    parser.add_argument("--quick", action="store_true", help="--videos 10000 --small 2000 --requests 10 --warmup 2")
    parser.add_argument("--explain", action="store_true", help="EXPLAIN ANALYZE the slowest cases' slowest query")
    parser.add_argument("--keep", action="store_true", help="leave the database (default: dropped at the end)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    if args.quick:
        args.videos, args.small, args.requests, args.warmup = 10_000, 2000, 10, 2
    if not sum(MINE_STATES.values()) < args.mine < args.small < args.videos:
        parser.error(f"need {sum(MINE_STATES.values())} < --mine < --small < --videos")
    machine = benchlib.machine("postgres")
    env = benchlib.bench_env(DB_NAME, VAR, DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost,testserver")
    benchlib.setup_database(DB_NAME, env)
    benchlib.django_setup(env)
    from django.db import connection
    from django.test import Client

    try:
        rng = random.Random(SEED)
        world = World(rng, args.teams, args.users, args.team_share)
        me, admin, root = Client(), Client(), Client()
        me.force_login(world.me)
        admin.force_login(world.admin)
        root.force_login(world.superuser)
        sizes, passes, seeding, cases = [args.small, args.videos], {}, {}, None
        for size in sizes:
            mine = 0 if passes else args.mine
            seeding[size] = world.add_videos(mine, size - world.rows - mine)
            print(f"{short(size)} videos in the table ({seeding[size]:.1f} s); measuring", file=sys.stderr)
            if cases is None:
                cases = make_cases(world, me, admin, root)
            else:  # the same cases again; Team videos' last page moves with the table
                for case in cases:
                    case.reset()
                    if case.group.startswith("Team videos") and case.label.endswith("last page"):
                        sort = case.query.split("&")[0]
                        case.query = f"{sort}&page={last_page(case.client, '/videos/team/', sort)}"
            connection.ensure_connection()
            backend = connection.connection.info.backend_pid
            load_before, started, machine0 = os.getloadavg(), time.perf_counter(), cpu_ticks()
            own0, pg0 = time.process_time(), benchlib.proc_cpu(backend)
            figures = run_pass(cases, args.requests, args.warmup)
            machine1, wall = cpu_ticks(), time.perf_counter() - started
            own, pg = time.process_time() - own0, benchlib.proc_cpu(backend) - pg0
            busy, steal = machine1[0] - machine0[0], machine1[1] - machine0[1]
            passes[size] = {"figures": figures, "seconds": wall, "load_before": load_before,
                            "load_after": os.getloadavg(), "bench_cpu_s": own, "postgres_backend_cpu_s": pg,
                            "machine_busy_cpu_s": busy, "steal_cpu_s": steal,
                            "other_processes_cpu_s": max(busy - steal - own - pg, 0.0)}
        from django.db.models import Count

        from uploads.models import Video

        by_state = dict(Video.objects.filter(deleted_at__isnull=True).values_list("status")
                        .annotate(n=Count("pk")).order_by())
        deleted = Video.objects.filter(deleted_at__isnull=False).count()
        team0 = Video.objects.filter(team=world.teams[0], deleted_at__isnull=True).count()
        feed = next(c for c in cases if c.group == "States feed" and "30 queued" in c.label)
        answer = feed.client.post(feed.path, {"ids": feed.ids}, content_type="application/json").json()["videos"]
        queued_lines = Counter(re.sub(r"\d+(st|nd|rd|th)\b|\d+ (min|h)", "N", v["line"])
                               for v in answer.values() if v["status"] == "queued")
        explained = []
        if args.explain:
            final = list(passes[args.videos]["figures"].values())
            # The queries that took longest, and any case past its target whose time is mostly SQL
            # (a case past it on Python time has no plan to show).
            target = {"My videos": args.list_target, "Team videos": args.list_target, "States feed": args.states_target}
            over = [f for f in final if f["group"] in target and f["p95_ms"] > target[f["group"]]
                    and f["sql_ms_p50"] >= f["p50_ms"] / 2]
            slowest = sorted(final, key=lambda f: f["slowest_query_ms_p50"], reverse=True)[:5]
            for f in over + [f for f in slowest if f not in over]:
                explained.append({"group": f["group"], "label": f["label"], "query_ms_p50": f["slowest_query_ms_p50"],
                                  "sql": shortened(f["slowest_query"]), "plan": explain(f["slowest_query"])})
    finally:
        connection.close()
        if not args.keep:
            benchlib.run(["dropdb", *benchlib.PG, "--if-exists", "--force", DB_NAME])

    small, full = (short(n) for n in sizes)
    loads = lambda p: "/".join(f"{x:.2f}" for x in p["load_before"]) + " before, " + "/".join(  # noqa: E731
        f"{x:.2f}" for x in p["load_after"]) + " after"
    lines = [machine, "",
             f"{args.videos} videos, alive: " + ", ".join(f"{k} {v}" for k, v in sorted(by_state.items()))
             + f"; deleted {deleted}. The signed-in user's {args.mine} in {len(world.my_teams)} teams; "
             f"{args.teams} teams, {args.users} other users; the team admin's team: {team0} videos",
             "filled: " + ", ".join(f"{short(n)} videos in {seeding[n]:.1f} s" for n in sizes),
             *(f"measured at {short(n)}: {args.requests} requests per case after {args.warmup}, "
               f"{passes[n]['seconds']:.0f} s, load average {loads(passes[n])}; CPU s: this process "
               f"{passes[n]['bench_cpu_s']:.0f}, its PostgreSQL backend {passes[n]['postgres_backend_cpu_s']:.0f}, "
               f"other processes {passes[n]['other_processes_cpu_s']:.0f} (of {os.cpu_count() * passes[n]['seconds']:.0f} on "
               f"{os.cpu_count()} cores), steal {passes[n]['steal_cpu_s']:.0f}" for n in sizes), ""]
    groups = ("My videos", "Team videos", "States feed", "Team videos, superuser")
    for group in groups:
        rows = []
        for key, f in passes[args.videos]["figures"].items():
            if key[0] == group:
                s = passes[args.small]["figures"][key]
                rows.append([f["label"], f"{f['ids']} ids" if f["ids"] else f["query"], f["rows"], f["matches"],
                             f"{f['p50_ms']:.1f}", f"{f['p95_ms']:.1f}", f"{f['max_ms']:.1f}",
                             f"{f['sql_ms_p50']:.1f}", f"{f['slowest_query_ms_p50']:.2f}", f"{s['p95_ms']:.1f}",
                             seen(s), seen(f)])
        lines += [f"{group}, at {full} videos (p95 and queries at {small} beside)"] + benchlib.table(
            ["case", "body" if group == "States feed" else "query string", "rows", "of", "p50 ms", "p95 ms",
             "max ms", "SQL ms p50", "slowest query ms", f"p95 ms {small}", f"queries {small}", f"queries {full}"],
            rows) + [""]
    final = passes[args.videos]["figures"].values()
    for group in groups:
        worst = max((f for f in final if f["group"] == group), key=lambda f: f["p95_ms"])
        counts = {seen(p["figures"][k]) for p in passes.values() for k in p["figures"] if k[0] == group}
        lines.append(f"{group}: slowest p95 {worst['p95_ms']:.1f} ms ({worst['label']}); "
                     f"queries per request seen: {', '.join(sorted(counts))}")
    lines.append("queued rows' lines in the states feed (100 ids): " + "; ".join(
        f"{n}x “{line}”" for line, n in queued_lines.most_common()))
    for e in explained:
        lines += ["", f"EXPLAIN (ANALYZE, BUFFERS): {e['group']}, {e['label']}, its slowest query "
                  f"(p50 {e['query_ms_p50']:.2f} ms):", e["sql"], *e["plan"]]
    benchlib.report({"machine": machine, "videos": args.videos, "alive_by_state": by_state, "deleted": deleted,
                     "team_admin_team_videos": team0, "seeding_seconds": seeding,
                     "queued_lines": dict(queued_lines),
                     "passes": {n: {**{k: v for k, v in p.items() if k != "figures"},
                                    "cases": list(p["figures"].values())} for n, p in passes.items()},
                     "explained": explained}, lines, args.json)


def cpu_ticks():
    """The machine's busy CPU seconds so far (all but idle, iowait and steal) and its steal seconds."""
    ticks = [int(n) for n in open("/proc/stat").readline().split()[1:]]
    steal = ticks[7] if len(ticks) > 7 else 0
    return (sum(ticks[:8]) - ticks[3] - ticks[4] - steal) / benchlib.CLK_TCK, steal / benchlib.CLK_TCK


def short(n):
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)


def seen(f):
    """The queries of the case's requests: "12", or "12 (13 x2)" when some request made another number."""
    others = [f"{q} x{n}" for q, n in f["queries_seen"].items() if q != f["queries"]]
    return f"{f['queries']}" + (f" ({', '.join(others)})" if others else "")

if __name__ == "__main__":
    sys.exit(main())
