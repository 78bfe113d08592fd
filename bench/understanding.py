"""Search and ask (issue 14) through the portal beside the memories.ai emulator's own answer, in one run.

    .venv/bin/python bench/understanding.py [--searches 200] [--asks 50] [--sizes 10,100] [--json]
    .venv/bin/python bench/understanding.py --quick            # about a minute: 15 searches, 8 asks
    .venv/bin/python bench/understanding.py --sqlite           # SQLite in a temporary folder, not PostgreSQL
    .venv/bin/python bench/understanding.py --quick --nginx    # also ask through nginx (CI: a check)

Starts, on loopback: the emulator (`python -m memories_emulator --no-rate-limits --stream-delay
0.05 --no-callbacks --upload-interval 0`, a process of its own) and gunicorn as the Procfile's
`web` line (2 workers x 8 threads) on database memportal_bench_understanding (PostgreSQL
127.0.0.1:5432, dropped at the end) or --sqlite. The portal runs with MEMPORTAL_UNDERSTANDING=true,
MEMORIES_API_FAMILY=v1, MEMPORTAL_SEARCH_INTERVAL_SECONDS=0, MEMPORTAL_CHAT_INTERVAL_SECONDS=0 and
MEMPORTAL_CHAT_QUESTIONS_PER_DAY=1000000: memories.ai's limits (search 1/s, chat 2/min per
account) are off on both sides, so what is measured is the portal's own cost, not the limits.
The call slots still hold each account for their 0.1 s margin (uploads/call_slots.py MARGIN):
the bench waits 0.15 s between two of one account's calls through the portal.

Per --sizes n: a team of its own with its own key (one account), one member with n ready videos
(a sample MP4 padded with its name, "Safety walk 007.mp4", uploaded to the emulator for real and
set PARSE there; the Video rows ready with their video_no, key, api_family and v1 namespace, as
tests/conftest.py's ready_video makes them), signed in through the login form.

- search: GET /search/?q=... through gunicorn vs. the emulator's POST /serve/api/v1/search with
  the body the portal sent (read back from the emulator's /_emulator/state after a first round):
  the client's time from connect to the last byte, p50 / p95 (nearest rank), their difference
  ("overhead") and the median of the differences of the calls made side by side ("paired");
  both answers must hold the same number of moments;
- ask (the first size's member, one video): POST /ask/ with `Accept: text/event-stream` vs. the
  emulator's POST /serve/api/v1/chat_stream with the portal's body: time to the first event
  (the portal's `started`, the emulator's first `thinking` frame), to the first `content` event
  (frame) and to the end of the answer (`done`, the SUCCESS frame), from connect.
Portal and emulator calls alternate (which goes first changes every round), a new connection
each, after --warmup rounds. The CPU each process took meanwhile is printed, to judge the noise.
--nginx puts deploy/nginx/memportal.conf (rendered for loopback by bench/nginxlib.py) in front of
the same gunicorn and asks through it too, a third side of each round: the answer must come through
in pieces, not buffered whole (nginx's proxy_buffering is on; the portal's `X-Accel-Buffering: no`
turns it off for the stream). The check: through nginx, the median time from the first `content`
event to the end is at least half of what it is straight from gunicorn; else the run exits 1.
The logs (gunicorn.log, emulator.log, nginx/logs/) stay in var/bench-understanding/.
"""

import argparse
import contextlib
import http.client
import io
import json
import math
import os
import re
import secrets
import shutil
import statistics
import sys
import tempfile
import time
import urllib.parse
import urllib.request

import benchlib
import nginxlib
from benchlib import ROOT

DB_NAME = "memportal_bench_understanding"
VAR = ROOT / "var" / "bench-understanding"
SAMPLE = ROOT / "tests" / "data" / "sample-h264-aac.mp4"
QUERY = "safety walk"
QUESTION = "What is said about the safety walk?"
PASSWORD = "bench-understanding-pass-42"
SLOT_GAP = 0.15  # seconds between two calls of one account through the portal (its slot holds 0.1 s)
PORTAL = dict(MEMPORTAL_UNDERSTANDING="true", MEMORIES_API_FAMILY="v1", MEMPORTAL_SEARCH_INTERVAL_SECONDS="0",
              MEMPORTAL_CHAT_INTERVAL_SECONDS="0", MEMPORTAL_CHAT_QUESTIONS_PER_DAY="1000000")


def nearest_rank(values, share):
    ordered = sorted(values)
    return ordered[max(math.ceil(share * len(ordered)) - 1, 0)]


def start_emulator(keys, stream_delay):
    port = nginxlib.free_port()
    argv = [sys.executable, "-m", "memories_emulator", "--port", str(port), "--no-rate-limits", "--no-callbacks",
            "--upload-interval", "0", "--stream-delay", str(stream_delay)]
    proc = benchlib.start(argv, {**os.environ, "MEMORIES_EMULATOR_KEYS": ",".join(keys)}, VAR / "emulator.log",
                          start_new_session=True)
    nginxlib.wait_port(port, proc, VAR / "emulator.log")
    return proc, port, argv[1:]


def emulator_json(port, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


def seed(sizes, emulator_port, keys):
    """Per size a team, its key, a member with that many ready videos; [(user, key, team, [videos])]."""
    from django.contrib.auth import get_user_model
    from django.core.files.base import ContentFile

    from uploads import lifecycle, memories
    from uploads.models import ApiKey, Membership, Team, Video

    mp4 = SAMPLE.read_bytes()
    made = []
    for n, raw in zip(sizes, keys):
        team = Team.objects.create(name=f"Bench {n}", slug=f"bench-understanding-{n}")
        key = ApiKey(team=team, label="bench key")
        key.set_secret(raw)
        key.save()
        user = get_user_model().objects.create_user(username=f"bench-member-{n}", password=PASSWORD)
        Membership.objects.create(user=user, team=team, role=Membership.Role.MEMBER)
        place = lifecycle.place_for_team(team.pk)
        videos = []
        for i in range(n):
            name = f"Safety walk {i:03d}.mp4"
            payload = name.encode()  # tests/conftest.py padded(): a "free" box the emulator names the content by
            content = mp4 + (8 + len(payload)).to_bytes(4, "big") + b"free" + payload
            sent = memories.upload(raw, io.BytesIO(content), size=len(content), filename=name,
                                   content_type="video/mp4", callback_url=None, place=place)
            emulator_json(emulator_port, "/_emulator/status",
                          {"video_no": sent.video_no, "status": "PARSE", "send_callback": False})
            video = Video(owner=user, team=team, original_name=name, content_type="video/mp4", size=len(content),
                          sha256="0" * 64, status=Video.Status.READY, remote_status="PARSE", video_no=sent.video_no,
                          api_key=key, api_family=place.family, namespace=place.namespace)
            video.file.save(name, ContentFile(content), save=False)
            video.save()
            videos.append(video)
        made.append((user, raw, team, place, videos))
    return made


def sign_in(port, username):
    """Signed in through the login form: the Cookie header and the CSRF token."""
    import requests

    base, session = f"http://127.0.0.1:{port}", requests.Session()
    session.get(f"{base}/accounts/login/", timeout=30).raise_for_status()
    answer = session.post(f"{base}/accounts/login/", allow_redirects=False, timeout=30, data={
        "username": username, "password": PASSWORD, "csrfmiddlewaretoken": session.cookies["csrftoken"]})
    if answer.status_code != 302 or "sessionid" not in session.cookies:
        raise SystemExit(f"invalid run: sign-in of {username} answered {answer.status_code}")
    return nginxlib.cookie_header(session), session.cookies["csrftoken"]


def timed(port, method, path, body=None, headers=None, marks=None):
    """One request on a new connection: (seconds to the last byte, status, body, {mark: seconds}).
    `marks(event)` names a server-sent event worth a time (the first of each name is kept)."""
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        answer = conn.getresponse()
        seen, chunks, pending = {}, [], b""
        while chunk := (answer.read1(65536) if marks else answer.read()):
            chunks.append(chunk)
            if marks:
                pending += chunk
                *events, pending = pending.split(b"\n\n")
                for event in events:
                    if event.startswith(b"data: "):
                        seen.setdefault("first event", time.perf_counter() - t0)
                        name = marks(json.loads(event[6:]))
                        if name and name not in seen:
                            seen[name] = time.perf_counter() - t0
        return time.perf_counter() - t0, answer.status, b"".join(chunks), seen
    finally:
        conn.close()


def portal_mark(event):
    return {"content": "first content", "done": "end"}.get(event.get("type"))


def emulator_mark(frame):
    if frame.get("type") == "content":
        return "first content"
    return "end" if frame.get("code") == "SUCCESS" else None


def last_calls(port, suffix):
    """The JSON bodies of the emulator's last calls ending in `suffix`, by namespace (unique_id)."""
    found = {}
    for request in emulator_json(port, "/_emulator/state")["requests"]:
        if request["path"].endswith(suffix) and request.get("json"):
            found[request["json"].get("unique_id")] = request["json"]
    return found


class Bench:
    def __init__(self, args, made, web_port, emu_port, front_port=None):
        self.args, self.made, self.web, self.emu, self.front = args, made, web_port, emu_port, front_port
        self.cookies = {u.username: sign_in(web_port, u.username) for u, *_ in made}
        self.last_portal = {}

    @contextlib.contextmanager
    def paced(self, team):
        """SLOT_GAP after the end of the account's last call through the portal, which claimed its
        slot before it answered: counted from the start instead, a slow claim then a quick one
        came closer than the slot holds, and the portal rightly said to wait."""
        wait = self.last_portal.get(team.pk, 0) + SLOT_GAP - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        try:
            yield
        finally:
            self.last_portal[team.pk] = time.monotonic()

    def portal_search(self, user, team):
        path = "/search/?" + urllib.parse.urlencode({"q": QUERY})
        with self.paced(team):
            seconds, status, body, _ = timed(self.web, "GET", path, headers={"Cookie": self.cookies[user.username][0]})
        page = body.decode()
        found = re.search(r"(\d+) moments? found", page)
        if status != 200 or not found or "search-wait" in page or 'class="warning"' in page:
            words = re.sub(r"<[^>]+>|\s+", " ", page)
            raise SystemExit(f"invalid run: the portal's search answered {status}: {words[:600]}")
        return seconds, int(found.group(1))

    def emulator_call(self, raw, path, body, marks=None):
        headers = {"Authorization": raw, "Content-Type": "application/json"}
        if marks:
            headers["Accept"] = "text/event-stream"
        seconds, status, answer, seen = timed(self.emu, "POST", path, json.dumps(body).encode(), headers, marks)
        if status != 200:
            raise SystemExit(f"invalid run: the emulator answered {status} {answer[:300]!r}")
        if not marks:
            data = json.loads(answer)
            if data.get("code") != "0000":
                raise SystemExit(f"invalid run: the emulator's search answered {data.get('code')} {data.get('msg')}")
            return seconds, len(data["data"])
        return seconds, seen

    def portal_ask(self, user, team, video, port=None):
        cookie, csrf = self.cookies[user.username]
        body = urllib.parse.urlencode({"question": QUESTION, "video": str(video.pk)}).encode()
        with self.paced(team):
            seconds, status, answer, seen = timed(port or self.web, "POST", "/ask/", body, {
                "Cookie": cookie, "X-CSRFToken": csrf, "Accept": "text/event-stream",
                "Content-Type": "application/x-www-form-urlencoded"}, portal_mark)
        if status != 200 or set(seen) != {"first event", "first content", "end"}:
            raise SystemExit(f"invalid run: the portal's ask answered {status}: {answer[:400]!r}")
        return seconds, seen

    def searches(self, bodies, rounds, record):
        out = {len(videos): {"portal": [], "emulator": [], "moments": set()} for *_, videos in self.made}
        for r in range(rounds):
            for user, raw, team, place, videos in self.made:
                calls = [("portal", lambda: self.portal_search(user, team))]
                if bodies is not None:
                    calls.append(("emulator", lambda: self.emulator_call(raw, place.path("search"),
                                                                         bodies[place.namespace])))
                for side, call in (calls if r % 2 == 0 else calls[::-1]):
                    seconds, moments = call()
                    if record:
                        out[len(videos)][side].append(seconds)
                        out[len(videos)]["moments"].add(f"{side} {moments}")
        return out

    def asks(self, body, rounds, record):
        user, raw, team, place, videos = self.made[0]
        out = {"portal": [], "emulator": [], "nginx": []}
        for r in range(rounds):
            calls = [("portal", lambda: self.portal_ask(user, team, videos[0]))]
            if self.front:
                calls.append(("nginx", lambda: self.portal_ask(user, team, videos[0], self.front)))
            if body is not None:
                calls.append(("emulator", lambda: self.emulator_call(raw, place.path("chat_stream"), body,
                                                                     emulator_mark)))
            for side, call in (calls if r % 2 == 0 else calls[::-1]):
                seconds, seen = call()
                if record:
                    out[side].append(seen)
        return out


def observed(groups, work, refresh):
    """`work()` with the CPU seconds each group of pids and the machine took meanwhile; `refresh()`
    gives the groups again after it (a gunicorn thread opens its PostgreSQL connection when it
    first serves a request: a backend that started meanwhile counts whole)."""
    load0, before = os.getloadavg(), benchlib.cpu_snapshot(groups)
    result = work()
    after = benchlib.cpu_snapshot(refresh())
    wall = after["at"] - before["at"]
    cpu = {name: benchlib.cpu_spent(before, after, name) for name in groups}
    busy = after["machine"] - before["machine"]
    return result, {"seconds": wall, "load_before": load0, "load_after": os.getloadavg(),
                    "cpu": cpu, "machine": busy, "others": max(busy - sum(cpu.values()), 0.0)}


def row(label, n, portal, emulator):
    p = [nearest_rank(portal, s) * 1000 for s in (0.5, 0.95)]
    e = [nearest_rank(emulator, s) * 1000 for s in (0.5, 0.95)]
    pairs = sorted(a - b for a, b in zip(portal, emulator))
    return {"measure": label, "n": n, "portal_p50_ms": p[0], "portal_p95_ms": p[1], "emulator_p50_ms": e[0],
            "emulator_p95_ms": e[1], "overhead_p50_ms": p[0] - e[0], "overhead_p95_ms": p[1] - e[1],
            "paired_overhead_p50_ms": nearest_rank(pairs, 0.5) * 1000}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10,100", help="ready videos of each member (default 10,100; at most 100)")
    parser.add_argument("--searches", type=int, default=200, help="measured searches per size and side (200)")
    parser.add_argument("--asks", type=int, default=50, help="measured questions per side (50)")
    parser.add_argument("--warmup", type=int, default=5, help="rounds before measuring (5)")
    parser.add_argument("--stream-delay", type=float, default=0.05, help="the emulator's seconds between frames")
    parser.add_argument("--sqlite", action="store_true", help="SQLite in a temporary folder instead of PostgreSQL")
    parser.add_argument("--quick", action="store_true", help="--searches 15 --asks 8 --warmup 2")
    parser.add_argument("--nginx", action="store_true", help="also ask through nginx, and check it streams")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    if args.quick:
        args.searches, args.asks, args.warmup = 15, 8, 2
    sizes = [int(s) for s in args.sizes.split(",")]
    if not all(1 <= n <= 100 for n in sizes) or len(set(sizes)) != len(sizes):
        parser.error("--sizes: different numbers from 1 to 100 (one search call each)")
    shutil.rmtree(VAR, ignore_errors=True)
    VAR.mkdir(parents=True)
    machine = benchlib.machine(*([] if args.sqlite else ["postgres"]))
    busy_before = benchlib.busy_cores(2)
    print(f"{machine}; {busy_before:.2f} cores busy in the 2 s before", file=sys.stderr, flush=True)
    keys = [f"sk-mavi-bench-{secrets.token_hex(12)}-U{n:03d}" for n in sizes]
    sqlite_dir = tempfile.mkdtemp(prefix="memportal-bench-understanding-") if args.sqlite else None
    emulator = web = nginx = front = None
    try:
        emulator, emu_port, emu_argv = start_emulator(keys, args.stream_delay)
        extra = {**PORTAL, "MEMORIES_API_BASE_URL": f"http://127.0.0.1:{emu_port}",
                 **({"DJANGO_BEHIND_PROXY": "true"} if args.nginx else {})}
        if sqlite_dir:
            extra["DATABASE_URL"] = f"sqlite:///{sqlite_dir}/memportal.sqlite3"
        env = benchlib.bench_env(DB_NAME, VAR, **extra)
        if sqlite_dir:
            benchlib.run([sys.executable, "manage.py", "migrate", "--no-input", "-v0"], env=env)
            database = f"SQLite {sqlite_dir}/memportal.sqlite3 (WAL)"
        else:
            benchlib.setup_database(DB_NAME, env)
            database = f"PostgreSQL 127.0.0.1:5432/{DB_NAME}"
        benchlib.django_setup(env)
        t0 = time.monotonic()
        made = seed(sizes, emu_port, keys)
        seeded = time.monotonic() - t0
        web_port = nginxlib.free_port()
        web, web_argv = nginxlib.start_gunicorn(env, web_port, VAR / "gunicorn.log")
        print(f"seeded {sum(sizes)} videos in {seeded:.1f} s; gunicorn: {' '.join(web_argv)}", file=sys.stderr)
        if args.nginx:
            front = nginxlib.free_port()
            nginx = nginxlib.start_nginx(nginxlib.render(VAR, port=front, redirect_port=nginxlib.free_port(),
                                                         upstream_port=web_port), front)
        bench = Bench(args, made, web_port, emu_port, front)
        bench.searches(None, 1, False)  # the portal's bodies, read back from the emulator
        bench.asks(None, 1, False)
        search_bodies, ask_body = last_calls(emu_port, "/search"), last_calls(emu_port, "/chat_stream")
        ask_body = ask_body[made[0][3].namespace]
        bench.searches(search_bodies, args.warmup, False)
        def groups():
            return {"gunicorn": nginxlib.pids_of(web), "emulator": [emulator.pid], "bench": [os.getpid()],
                    "postgres": [] if sqlite_dir else benchlib.postgres_pids(DB_NAME)}
        found, search_load = observed(groups(), lambda: bench.searches(search_bodies, args.searches, True), groups)
        print("searches done; asking", file=sys.stderr, flush=True)
        bench.asks(ask_body, max(1, args.warmup // 2), False)
        asked, ask_load = observed(groups(), lambda: bench.asks(ask_body, args.asks, True), groups)
    finally:
        if nginx:
            benchlib.stop(nginx)
        if web:
            benchlib.stop(web)
        if emulator:
            benchlib.stop(emulator)
        shutil.rmtree(VAR / "media", ignore_errors=True)  # the videos' copies; the logs stay
        if sqlite_dir:
            shutil.rmtree(sqlite_dir, ignore_errors=True)
        else:
            benchlib.run(["dropdb", *benchlib.PG, "--if-exists", "--force", DB_NAME], check=False)

    rows = []
    for n in sizes:
        if len(found[n]["moments"]) != 2 or len({m.split()[1] for m in found[n]["moments"]}) != 1:
            raise SystemExit(f"invalid run: moments differ between portal and emulator: {found[n]['moments']}")
        rows.append({**row("search", f"{n} videos", found[n]["portal"], found[n]["emulator"]),
                     "moments": int(next(iter(found[n]["moments"])).split()[1])})
    for mark, label in (("first event", "ask: first event"), ("first content", "ask: first content"),
                        ("end", "ask: end of answer")):
        rows.append(row(label, "1 video", [s[mark] for s in asked["portal"]], [s[mark] for s in asked["emulator"]]))
        if args.nginx:
            rows.append(row(label + " through nginx", "1 video", [s[mark] for s in asked["nginx"]],
                            [s[mark] for s in asked["emulator"]]))
    phases = {"search": search_load, "ask": ask_load}
    lines = [machine, f"{busy_before:.2f} cores busy in the 2 s before", f"database: {database}",
             f"emulator: python {' '.join(emu_argv)} (its own process; rate limits off)",
             "portal: gunicorn as the Procfile's web line, " + ", ".join(f"{k}={v}" for k, v in PORTAL.items()),
             f"seeded: {', '.join(f'a member with {n} ready videos' for n in sizes)} (each its own team and key) "
             f"in {seeded:.1f} s; {args.searches} searches per size and side, {args.asks} questions per side, "
             f"after {args.warmup} warm-up rounds; search q={QUERY!r} (top_k 20); question {QUESTION!r}", ""]
    lines += benchlib.table(
        ["measure", "scope", "portal p50 ms", "portal p95 ms", "emulator p50 ms", "emulator p95 ms",
         "overhead p50 ms", "overhead p95 ms", "paired overhead p50 ms"],
        [[r["measure"] + (f" ({r['moments']} moments)" if "moments" in r else ""), r["n"],
          *(f"{r[k]:.1f}" for k in ("portal_p50_ms", "portal_p95_ms", "emulator_p50_ms", "emulator_p95_ms",
                                    "overhead_p50_ms", "overhead_p95_ms", "paired_overhead_p50_ms"))] for r in rows])
    lines.append("")
    calls = {"search": args.searches * len(sizes), "ask": args.asks}
    for name, p in phases.items():
        p["gunicorn_cpu_ms_per_call"] = p["cpu"]["gunicorn"] / calls[name] * 1000
        lines.append(f"{name} phase: {p['seconds']:.0f} s, load {p['load_before'][0]:.2f} -> {p['load_after'][0]:.2f}; "
                     f"gunicorn {p['gunicorn_cpu_ms_per_call']:.0f} CPU ms per {name} through the portal; "
                     f"CPU s: " + ", ".join(f"{k} {v:.1f}" for k, v in p["cpu"].items() if k != "postgres" or v)
                     + f", other processes {p['others']:.1f} (machine busy {p['machine']:.1f} of "
                     f"{os.cpu_count() * p['seconds']:.0f})")
    streamed = None
    if args.nginx:  # the time the answer's pieces take to come, straight from gunicorn and through nginx
        spread_ = {side: statistics.median(s["end"] - s["first content"] for s in asked[side])
                   for side in ("portal", "nginx")}
        streamed = spread_["nginx"] >= spread_["portal"] / 2
        lines.append(f"check: the answer streams through nginx (first content to end: {spread_['nginx'] * 1000:.0f} ms"
                     f" through nginx, {spread_['portal'] * 1000:.0f} ms straight from gunicorn; buffered whole "
                     f"it would be about 0): {'PASS' if streamed else 'FAIL'}")
    benchlib.report({"machine": machine, "database": database, "busy_cores_before": busy_before, "rows": rows,
                     "phases": phases, "portal_env": PORTAL, "emulator": emu_argv, "gunicorn": web_argv,
                     "sizes": sizes, "searches": args.searches, "asks": args.asks,
                     "streams_through_nginx": streamed}, lines, args.json)
    return 1 if streamed is False else 0


if __name__ == "__main__":
    sys.exit(main())
