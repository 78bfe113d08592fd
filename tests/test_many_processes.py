"""Many processes, one truth: the Procfile's processes, twice over, agree through PostgreSQL.

Two web processes (the Procfile's `web` line, each its own gunicorn master with one gthread
worker of 8 threads, on a loopback port of its own: two machines behind a load balancer), two
relay workers and one default worker (the Procfile's `worker-relay` and `worker` lines), all on
the test's PostgreSQL database, the emulator on loopback. Everything a person or memories.ai
does goes through real HTTP to either web process:

- two members of two teams (each team its own key, so its own memories.ai account) sign in
  through the form and upload videos, alternating between the two web processes;
- each video reaches memories.ai exactly once, with its bytes (sha256), and never answered 0429;
- each account's uploads start at least the interval apart, while the two accounts go side by
  side (their uploads interleave; one after the other would take twice as long);
- each relay worker gives memories.ai the callback address of "its" web process, so memories.ai's
  callbacks arrive at both; every PARSE is also posted by the test, twice to each web process, in
  the same instant as memories.ai's: exactly one is applied, the rest are duplicates;
- "Check now", pressed on both web processes in the same instant, leaves one check chain.

While they run, the processes' PostgreSQL connections are counted (pg_stat_activity) against
the budget: web processes x gunicorn workers x threads + one per db_worker (+ the test's own).

PostgreSQL only: SQLite is one file on one machine, and locks the whole database.
"""

import hashlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import requests
from django.contrib.auth.hashers import make_password
from django.db import connection
from django_tasks_db.models import DBTaskResult

from uploads import tasks
from uploads.models import CallbackRecord, Membership, Video

from .conftest import (
    OTHER_KEY,
    PASSWORD,
    ROOT,
    TEST_KEY,
    padded,
    sample,
    wait_until,
    worker_env,
)

pytestmark = pytest.mark.django_db(transaction=True)

INTERVAL = 2  # MEMPORTAL_UPLOAD_INTERVAL_SECONDS: whole seconds; the slot is 2.2 s
PER_TEAM = 4
THREADS = 8  # the Procfile's --threads
COPIES_PER_WEB = 2  # the test's own copies of each PARSE, to each web process
SAMPLE = sample("sample-h264-aac.mp4").read_bytes()
PROCFILE = {name: command for name, _, command in
            (line.partition(": ") for line in (ROOT / "Procfile").read_text().splitlines())
            if command and not name.startswith("#")}


@pytest.fixture(autouse=True)
def fast_password_hashing():
    """Not here: the web processes verify passwords with the real hashers (settings.py), so the
    users get a real hash (made once, below) and not the suite's fast MD5 one."""


@pytest.fixture
def postgres():
    if connection.vendor != "postgresql":
        pytest.skip("many processes on one database: PostgreSQL (set DATABASE_URL=postgres://...); "
                    "SQLite is one file on one machine and locks the whole database")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Processes:
    """The Procfile's lines, started with `sh -c` as a process manager would, each in a process
    group of its own (stopped by that group's id), output into a log file each."""

    def __init__(self, log_dir):
        self.log_dir = Path(log_dir)
        self.procs = {}

    def start(self, label, procfile_name, **env):
        env = worker_env(**env)
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # python, gunicorn
        log = open(self.log_dir / f"{label}.log", "w")
        self.procs[label] = (subprocess.Popen(["sh", "-c", PROCFILE[procfile_name]], cwd=ROOT, env=env,
                                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True), log)

    def running(self):
        return {label: proc.poll() is None for label, (proc, _) in self.procs.items()}

    def output(self, label):
        return (self.log_dir / f"{label}.log").read_text(errors="replace")

    def stop(self):
        for proc, _ in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc, log in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            log.close()


def sign_in(base, username):
    """Through the sign-in form, as a browser does; returns the session."""
    session = requests.Session()
    session.get(f"{base}/accounts/login/", timeout=30).raise_for_status()
    answer = session.post(f"{base}/accounts/login/", timeout=30, data={
        "username": username, "password": PASSWORD, "csrfmiddlewaretoken": session.cookies["csrftoken"]})
    assert answer.status_code == 200 and answer.url.endswith("/videos/"), (username, answer.status_code, answer.url)
    return session


def same_session(session):
    """Another client with the same cookies (one person, a second tab; requests.Session is not
    thread-safe). Cookies of 127.0.0.1 go to every port: the Django session is in the database."""
    other = requests.Session()
    other.cookies.update(session.cookies)
    return other


def at_once(calls):
    """Run each call on a thread of its own, released together; return their results in order."""
    barrier = threading.Barrier(len(calls))
    results = [None] * len(calls)

    def run(i, call):
        barrier.wait(timeout=30)
        try:
            results[i] = call()
        except Exception as exc:  # asserted on with the others
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a request never finished"
    return results


def connections():
    """This database's connections by state, the test's own included."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT coalesce(state, '?'), count(*) FROM pg_stat_activity "
                       "WHERE datname = current_database() GROUP BY 1")
        return dict(cursor.fetchall())


def check_rows(video, statuses=("READY", "RUNNING")):
    return [row for row in DBTaskResult.objects.filter(task_path="uploads.tasks.check_video", status__in=statuses)
            if row.args_kwargs["args"][0] == str(video.pk)]


def test_two_web_processes_two_relay_workers_one_default_worker_agree(
        postgres, django_user_model, team, api_key, other_team, other_api_key, emulator, tmp_path):
    t_start = time.monotonic()
    # memories.ai: 0429 to a key's upload closer than the interval to its last; callbacks 0.2 s after
    # an upload (UNPARSE); PARSE only when the test says so (set_status, below).
    emulator.upload_interval = INTERVAL
    emulator.parse_delay = 3600

    hashed = make_password(PASSWORD)  # the real hasher, once
    people = {}
    for username, team_ in (("mia", team), ("otto", other_team)):
        people[username] = django_user_model.objects.create(username=username, password=hashed,
                                                             email=f"{username}@example.com")
        Membership.objects.create(user=people[username], team=team_, role=Membership.Role.MEMBER)
    assert api_key.pacing_account_id() != other_api_key.pacing_account_id()  # two accounts

    ports = [free_port(), free_port()]
    webs = [f"http://127.0.0.1:{port}" for port in ports]
    common = {"MEMORIES_API_BASE_URL": emulator.base_url, "MEMPORTAL_UPLOAD_INTERVAL_SECONDS": INTERVAL,
              "MEMPORTAL_RETRY_BASE_SECONDS": 1,  # a failure shows in seconds, not minutes
              "MEMPORTAL_STATUS_FIRST_CHECK_SECONDS": 600,  # only "Check now" asks within this test
              "MEMPORTAL_DB_CONN_MAX_AGE": 60}  # production's default (tests/testenv.py says 0)
    procs = Processes(tmp_path)
    try:
        for i, port in enumerate(ports):
            procs.start(f"web-{i}", "web", MEMPORTAL_BIND=f"127.0.0.1:{port}", WEB_CONCURRENCY=1,
                        MEMPORTAL_PUBLIC_URL=webs[i], **common)
        for i, web in enumerate(webs):  # each relay worker hands memories.ai another web's address
            procs.start(f"relay-{i}", "worker-relay", MEMPORTAL_PUBLIC_URL=web, **common)
        procs.start("default", "worker", **common)

        def up(base):
            try:
                return requests.get(f"{base}/healthz", timeout=5).status_code == 200
            except requests.RequestException:
                return False

        wait_until(lambda: all(up(web) for web in webs) or not all(procs.running().values()), timeout=40,
                   message="both web processes answering /healthz")
        assert all(procs.running().values()), procs.running()
        t_up = time.monotonic()

        # --- Sign in and upload, alternating between the web processes -------------------------------
        sessions = {"mia": sign_in(webs[0], "mia"), "otto": sign_in(webs[1], "otto")}
        contents = {}
        for i in range(2 * PER_TEAM):
            username, web = ("mia", "otto")[i % 2], webs[(i // 2) % 2]
            name = f"{username}-{i // 2}.mp4"
            contents[name] = padded(SAMPLE, f"{name} {i}".encode() * 100)
            session = sessions[username]
            answer = session.post(f"{web}/videos/upload/", timeout=30,
                                  data={"csrfmiddlewaretoken": session.cookies["csrftoken"], "title": ""},
                                  files={"files": (name, contents[name], "video/mp4")})
            assert "1 video stored and queued for memories.ai." in answer.text, (web, answer.status_code)
        videos = {v.original_name: v for v in Video.objects.all()}
        assert sorted(videos) == sorted(contents)

        # --- Relayed exactly once, paced per account, the two accounts side by side ------------------
        wait_until(lambda: any(u.code not in (None, "0000") for u in emulator.uploads)
                   or not Video.objects.exclude(status="processing").exists() or not all(procs.running().values()),
                   timeout=60, message="every video relayed")
        t_relayed = time.monotonic()
        assert all(procs.running().values()), procs.running()
        uploads = emulator.uploads
        assert [u.code for u in uploads] == ["0000"] * len(contents), [(u.filename, u.code) for u in uploads]
        assert Counter(u.sha256 for u in uploads) == Counter(hashlib.sha256(c).hexdigest() for c in contents.values())
        assert sorted(u.filename for u in uploads) == sorted(contents)
        for video in Video.objects.all():
            assert video.status == "processing" and video.attempts == 1, (video.original_name, video.status)
            assert video.sha256 == hashlib.sha256(contents[video.original_name]).hexdigest()
        assert len(set(Video.objects.values_list("video_no", flat=True))) == len(contents)

        starts = {tail: sorted(u.started_at for u in uploads if u.key_tail == tail)
                  for tail in ("…" + TEST_KEY[-4:], "…" + OTHER_KEY[-4:])}
        gaps = {tail: [b - a for a, b in zip(s, s[1:])] for tail, s in starts.items()}
        assert [len(s) for s in starts.values()] == [PER_TEAM, PER_TEAM], starts
        assert all(gap >= INTERVAL for g in gaps.values() for gap in g), gaps
        # The two accounts go side by side, each at its own pace: their uploads interleave, some
        # two of them (one of each account) start closer than one interval, and all of them take
        # less time than one account's pace would for all eight.
        a, b = starts.values()
        assert a[0] < b[-1] and b[0] < a[-1], starts
        assert min(abs(x - y) for x in a for y in b) < INTERVAL, starts
        assert max(a[-1], b[-1]) - min(a[0], b[0]) < (2 * PER_TEAM - 1) * INTERVAL, starts

        # Each relay worker's videos carry the callback address of "its" web process.
        callback_of = {u.video_no: u.fields["callback"] for u in uploads}
        for video in Video.objects.all():
            assert callback_of[video.video_no] in {web + video.callback_path for web in webs}

        # --- "Check now" on both web processes at the same moment -> one check chain ----------------
        checked = videos["mia-0.mp4"]
        checked.refresh_from_db()
        before = {row.pk for row in check_rows(checked, ("READY", "RUNNING", "SUCCESSFUL"))}
        clients = [same_session(sessions["mia"]) for _ in webs]

        def press(client, web):
            return lambda: client.post(f"{web}/videos/{checked.pk}/check/", timeout=30,
                                       data={"csrfmiddlewaretoken": client.cookies["csrftoken"]})

        presses = at_once([press(client, web) for client, web in zip(clients, webs)])
        for answer in presses:
            assert not isinstance(answer, Exception), answer
            assert answer.status_code == 200 and "will be asked again" in answer.text, answer.status_code
        requested = checked.events.filter(source="user", message="status check requested")
        assert requested.count() == 2, list(requested.values_list("source", "message"))

        def chain():
            """Rows that can still run and carry the video's current token: its check chain."""
            checked.refresh_from_db()
            return [row for row in check_rows(checked) if row.args_kwargs["args"][1] == checked.check_token]

        assert len(chain()) == 1, [(r.status, r.args_kwargs) for r in check_rows(checked)]

        # The default worker runs the check that was asked for, which plans its one successor.
        def new():
            """The check rows the presses made, once the default worker has run them."""
            return [r for r in check_rows(checked, ("SUCCESSFUL",)) if r.pk not in before]

        def due_rows_left():
            return [r for r in check_rows(checked) if r.pk not in before
                    and (r.run_after is None or r.run_after.timestamp() <= time.time())]

        wait_until(lambda: any(r.return_value == "UNPARSE" for r in new()) and not due_rows_left(), timeout=20,
                   message="the checks the presses asked for, run")
        assert len(chain()) == 1, [(r.status, r.return_value, r.args_kwargs) for r in check_rows(checked)]
        assert checked.check_token in tasks.live_checks()[str(checked.pk)]
        asked = [r["path"] for r in emulator.requests if "list_videos" in r.get("path", "")]
        assert 1 <= len(asked) <= 2, asked  # 2 if the worker ran the first press's check before the second
        assert Counter(r.return_value for r in new())["UNPARSE"] == len(asked)

        # --- PARSE from memories.ai and the test's copies to both web processes, at once ------------
        results = {}
        for video in Video.objects.order_by("original_name"):
            body = {"videoNo": video.video_no, "status": "PARSE"}
            calls = [lambda: emulator.set_status(video.video_no, "PARSE")]  # its callback to the video's web
            calls += [lambda web=web: requests.post(web + video.callback_path, json=body, timeout=30)
                      for web in webs for _ in range(COPIES_PER_WEB)]
            results[video.original_name] = at_once(calls)[1:]
        # And one video gets a storm: 8 copies to each web process at once (each of their 8 threads busy).
        storm = Video.objects.get(original_name="otto-0.mp4")
        results["storm"] = at_once([lambda web=web: requests.post(
            web + storm.callback_path, json={"videoNo": storm.video_no, "status": "PARSE"}, timeout=30)
            for web in webs for _ in range(THREADS)])
        for name, answers in results.items():
            assert [getattr(a, "status_code", a) for a in answers] == [200] * len(answers), (name, answers)
            assert {a.json()["message"] for a in answers} <= {"applied", "duplicate"}, (name, answers)
        counted = connections()

        expected_parse = {v.pk: 1 + 2 * COPIES_PER_WEB + (2 * THREADS if v.pk == storm.pk else 0)
                          for v in Video.objects.all()}
        wait_until(lambda: all(CallbackRecord.objects.filter(video=pk, remote_status="PARSE").count() == n
                               for pk, n in expected_parse.items()), timeout=20,
                   message="memories.ai's PARSE callbacks stored")
        sent = emulator.callbacks_sent
        assert [c["status_code"] for c in sent] == [200] * len(sent), sent
        assert Counter(c["body"]["status"] for c in sent) == {"UNPARSE": len(contents), "PARSE": len(contents)}
        for video in Video.objects.all():
            assert video.status == "ready" and video.remote_status == "PARSE", (video.original_name, video.status)
            ready = [(e.source, e.from_status) for e in video.events.all() if e.to_status == "ready"]
            assert ready == [("callback", "processing")], (video.original_name, ready)
            moves = [e.to_status for e in video.events.all() if e.from_status != e.to_status]
            assert moves == ["queued", "sending", "processing", "ready"], (video.original_name, moves)
            parse = Counter(video.callbacks.filter(remote_status="PARSE").values_list("outcome", flat=True))
            assert parse == {"applied": 1, "duplicate": expected_parse[video.pk] - 1}, (video.original_name, parse)
            unparse = Counter(video.callbacks.filter(remote_status="UNPARSE").values_list("outcome", flat=True))
            assert sum(unparse.values()) == 1 and set(unparse) <= {"duplicate", "applied"}, unparse
        t_done = time.monotonic()

        # --- PostgreSQL connections: within the budget -----------------------------------------------
        budget = 2 * 1 * THREADS + 3  # 2 web processes x 1 gunicorn worker x 8 threads + 3 db_workers
        total = sum(counted.values()) - 1  # less the test's own
        print(f"\nconnections of the processes after the storm: {total} ({counted}, the test's own "
              f"included), budget {budget}; up {t_up - t_start:.1f} s, relayed {t_relayed - t_start:.1f} s, "
              f"done {t_done - t_start:.1f} s; upload starts {starts}; gaps {gaps}; callbacks per web "
              f"{Counter(c['url'].split('/callbacks')[0] for c in sent)}")
        assert 3 + 2 <= total <= budget, counted  # every process has one, no process has more than its share
        running = procs.running()
    finally:
        procs.stop()

    assert all(running.values()), running
    for label in procs.procs:
        assert "Traceback" not in procs.output(label), (label, procs.output(label)[-3000:])
    for i, web in enumerate(webs):  # each web process served uploads and callbacks itself
        log = procs.output(f"web-{i}")
        assert re.search(r'POST /videos/upload/ HTTP/1.1\\" 302', log), log[-2000:]  # access log, as JSON
        assert re.search(r'POST /callbacks/memories/…/ HTTP/1.1\\" 200', log), log[-2000:]
    assert TEST_KEY not in "".join(procs.output(label) for label in procs.procs)
