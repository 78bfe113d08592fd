"""Every video has one owner at a time: a randomized invariant test (issue 8).

A Hypothesis state machine drives the real portal: the database with real transactions, the
memories.ai emulator on a loopback port with fault injection, relays run by django-tasks-db's own
worker step (on threads, so memories.ai can hold one mid-body or before its answer while other
steps run, and so a worker can die), callbacks, the pages, the admin, reconcile and purge. Time
moves by shifting stored times backwards. After every step the invariants of issue 8 must hold;
when faults stop and time moves on, every video must come to rest within DRAIN_ROUNDS rounds.

Budgets (examples x steps): profile `ci` (loaded when CI=true; derandomized, no example database)
CI_EXAMPLES x CI_STEPS; `dev` (the default) the same, random; `fuzz`
(MEMPORTAL_HYPOTHESIS_PROFILE=fuzz, `make fuzz`) FUZZ_EXAMPLES x FUZZ_STEPS with a random seed.
"""

import json
import logging
import os
import struct
import sys
import threading
import time
from io import StringIO

import hypothesis
import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client, override_settings
from hypothesis import HealthCheck, strategies as st
from hypothesis.stateful import initialize, invariant, precondition, rule

from memories_emulator import MemoriesEmulator
from tests.conftest import PASSWORD, TEST_KEY, sample
from tests.invariants import checks
from tests.invariants.world import (
    DEFAULT_FAULTS, RELAY_FAULTS, STALE, STATS, WATCHDOG, Hold, RelayRun, WorldMachine, claim_next, move_time,
    reset_world, run_default_task,
)
from uploads.models import ApiKey, Membership, Team, Video

CI_EXAMPLES, CI_STEPS = 60, 40
FUZZ_EXAMPLES, FUZZ_STEPS = 200, 50
_common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])
hypothesis.settings.register_profile("ci", derandomize=True, database=None, max_examples=CI_EXAMPLES,
                                     stateful_step_count=CI_STEPS, **_common)
hypothesis.settings.register_profile("dev", max_examples=CI_EXAMPLES, stateful_step_count=CI_STEPS, **_common)
hypothesis.settings.register_profile("fuzz", max_examples=FUZZ_EXAMPLES, stateful_step_count=FUZZ_STEPS,
                                     print_blob=True, **_common)
PROFILE = os.environ.get("MEMPORTAL_HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") == "true" else "dev")
hypothesis.settings.load_profile(PROFILE)

pytestmark = pytest.mark.django_db(transaction=True)

MAX_ATTEMPTS = 2
MAX_VIDEOS = 4
DRAIN_ROUNDS, DRAIN_ROUND_SECONDS = 12, 6 * 3600  # 72 simulated hours: past the status max age (48 h)
SHIFTS = [20, 400, 5000, 3 * 86400, 8 * 86400]  # past: a first check, a stale heartbeat, any backoff, the status max age, retention
# ~260 KiB, so a relay can be held mid-body: the sample and a "free" box (valid MP4 padding).
CONTENT = sample("sample-h264-aac.mp4").read_bytes() + struct.pack(">I4s", 8 + 230400, b"free") + bytes(230400)
STATUS_WORDS = ["UNPARSE", "PARSE", "FAIL", "PARSE_ERROR", "FAILED", "SOMETHING_NEW"]
pick = st.integers(0, MAX_VIDEOS - 1)


class PortalMachine(WorldMachine):
    django_settings = None  # pytest-django's `settings` fixture, set by the test below

    @initialize()
    def fresh_world(self):
        STATS["examples"] += 1
        reset_world()
        self.emulator = MemoriesEmulator(keys=[TEST_KEY], upload_interval=0, parse_delay=10**9,
                                         send_callbacks=False).start()
        self.django_settings.MEMORIES_API_BASE_URL = self.emulator.base_url
        team = Team.objects.create(name="Team One", slug="team-one")
        self.key = ApiKey(team=team, label="Main key")
        self.key.set_secret(TEST_KEY)
        self.key.save()
        self.owner_client, self.admin_client, self.anyone = Client(), Client(), Client()
        for client, username, role in ((self.owner_client, "mia", "member"), (self.admin_client, "ada", "admin")):
            user = get_user_model().objects.create_user(username, password=PASSWORD)
            Membership.objects.create(user=user, team=team, role=role)
            client.force_login(user)
        self.ids, self.hold, self.hung = [], None, []
        self.elapsed, self.reconciled_at = 0, None  # seconds time has moved; when reconcile last ran
        self.dead = {}  # task row id -> clock when its worker died before claiming the video
        self.lost = set()  # copies memories.ai accepted whose answer never reached the portal
        self.upload()  # the world starts with one video, queued
        assert self.ids, "the first upload was refused"

    def teardown(self):
        if not hasattr(self, "emulator"):
            return
        try:
            if sys.exc_info()[0] is None:  # no invariant failed: faults stop, time moves on
                self.settle()
        finally:
            if self.hold is not None:
                self.hold.release.set()
                self.hold.run.wait(10)
            self.emulator.clear_faults()  # and releases whatever it still holds
            self.emulator.stop()

    def settle(self):
        """Faults stop (the key works, memories.ai finishes parsing) and time moves on: every video
        must come to rest within DRAIN_ROUNDS rounds of DRAIN_ROUND_SECONDS, invariants holding."""
        if self.hold is not None:
            self.held_relay_ends("released")
        self.emulator.clear_faults()
        self.emulator.set_upload_time_unit("ms")
        self.emulator.add_key(TEST_KEY)
        if ApiKey.objects.get(pk=self.key.pk).is_failing:
            self.the_key("re-enabled in the admin")
        if checks.relays_held():  # the operator fixed the setting and clears the hold
            call_command("relay_hold", clear=True, stdout=StringIO())
        for round_ in range(DRAIN_ROUNDS + 1):
            for video_no, remote in self.emulator.videos.items():
                if remote.status == "UNPARSE" and not remote.deleted:
                    self.emulator.set_status(video_no, "PARSE", send_callback=False)
            check_rows = checks.task_rows(checks.CHECK)
            restless = [v for v in self.videos() if not checks.resting(v, check_rows)]
            if not restless or round_ == DRAIN_ROUNDS:
                break
            self.time_passes(DRAIN_ROUND_SECONDS)
            self.run_reconcile()
            self.work(limit=100)
            self.check_all()
        assert not restless, (f"not at rest after {DRAIN_ROUNDS} rounds: "
                              + "; ".join(f"{v.original_name} {v.status}" for v in restless))

    def check_all(self):
        """Each check asserts on a line of its own, so Hypothesis tells their failures apart."""
        self.relays_end()
        self.at_most_one_live_relay_per_video()
        self.at_most_one_live_check_chain_per_video()
        self.attempts_are_bounded()
        self.no_attempt_is_spent_on_trouble_that_is_not_the_files()
        self.every_video_has_a_way_forward()
        self.timeline_replays_to_the_state()
        self.a_video_that_may_be_sent_keeps_its_file()
        self.every_accepted_copy_is_kept_or_deleted()
        self.callbacks_do_not_stay_pending()

    # --- people --------------------------------------------------------------------------

    def upload(self):
        """The owner uploads a file through the upload page (refused while the key is failing)."""
        name = f"clip-{len(self.ids)}.mp4"
        self.owner_client.post("/videos/upload/", {"files": SimpleUploadedFile(name, CONTENT, "video/mp4"),
                                                   "title": ""})
        self.ids += Video.objects.filter(original_name=name).values_list("pk", flat=True)

    @precondition(lambda self: len(self.ids) < MAX_VIDEOS)
    @rule()
    def owner_uploads(self):
        self.upload()

    @rule(index=pick, action=st.sampled_from(["retry", "cancel", "check", "delete"]))
    def owner_acts(self, index, action):
        """Retry, Cancel, Check now or Delete on the video's page."""
        self.owner_client.post(f"/videos/{self.video(index).pk}/{action}/")

    @rule(event=st.sampled_from(["revoked at memories.ai", "valid again at memories.ai",
                                 "re-enabled in the admin", "label edited in the admin"]))
    def the_key(self, event):
        """The key fails at memories.ai (0401 from then on), works again, or a team admin acts on it."""
        if event == "revoked at memories.ai":
            self.emulator.remove_key(TEST_KEY)
        elif event == "valid again at memories.ai":
            self.emulator.add_key(TEST_KEY)
        elif event == "re-enabled in the admin":
            self.admin_client.post("/admin/uploads/apikey/", {"action": "reenable_keys",
                                                              "_selected_action": [self.key.pk]})
        else:
            self.admin_client.post(f"/admin/uploads/apikey/{self.key.pk}/change/",
                                   {"label": f"Main key {STATS['steps']}", "secret": "", "is_active": "on"})

    # --- memories.ai, storage and the workers ----------------------------------------------

    @rule(fault=st.sampled_from(["none", *RELAY_FAULTS]))
    def relay(self, fault):
        """memories.ai will play `fault` on the next upload; a relay worker runs its next due task."""
        self.fault("upload", fault, RELAY_FAULTS)
        before = set(self.emulator.videos)
        with override_settings(MEMORIES_READ_TIMEOUT=0.5 if fault == "slow_past_read_timeout" else 60):
            ran = self.relay_step()
        if ran and fault == "slow_past_read_timeout":
            time.sleep(0.8)  # memories.ai accepts the copy after the portal gave up waiting
            self.lost |= set(self.emulator.videos) - before

    @precondition(lambda self: self.hold is None)
    @rule(kind=st.sampled_from(["body", "answer"]))
    def relay_held_by_memories(self, kind):
        """A relay runs on a thread and memories.ai holds it, mid-body or before its answer."""
        row = claim_next("relay", f"held-{STATS['steps']}")
        if row is None:
            return
        held, release = threading.Event(), threading.Event()
        if kind == "body":
            self.emulator.inject("upload", "stall_after", bytes=64 * 1024, event=held, release=release, seconds=60)
        else:
            fault = self.emulator.inject("upload", "hold_answer", event=held, release=release, seconds=60)
        run = RelayRun(row)
        deadline = time.monotonic() + WATCHDOG
        while not (held.is_set() or run.done.is_set()) and time.monotonic() < deadline:
            time.sleep(0.005)
        if held.is_set():
            STATS["faults"][f"upload:held_{kind}"] += 1
            self.hold = Hold(run, kind, release, fault.held_video_no if kind == "answer" else None)
            return
        self.emulator.clear_faults()  # it never reached memories.ai (paced, stale, no key, a fault)
        if not run.wait(WATCHDOG):
            self.hung.append(f"relay of {row.args_kwargs['args']} still running after {WATCHDOG} s")
            run.kill()

    @precondition(lambda self: self.hold is not None)
    @rule(how=st.sampled_from(["released", "its worker dies"]))
    def held_relay_ends(self, how):
        """memories.ai lets the held relay go (mid-body it hangs up, before the answer it answers),
        or the worker holding it is killed: its heartbeat goes stale, the video stays sending."""
        hold, self.hold = self.hold, None
        if how == "released":
            hold.release.set()
            if not hold.run.wait(WATCHDOG):
                self.hung.append("a released relay did not end")
                hold.run.kill()
        elif hold.run.kill(then=hold.release.set):
            STATS["faults"][f"worker:killed_held_{hold.kind}"] += 1
            if hold.kind == "answer":
                self.lost.add(hold.video_no)  # memories.ai kept the copy; the portal never heard of it

    @rule()
    def relay_worker_dies_before_claiming(self):
        """A relay worker takes the next task row and dies before it claims the video."""
        row = claim_next("relay", "dead-worker")
        if row is not None:
            STATS["faults"]["worker:killed_before_claim"] += 1
            self.dead[str(row.pk)] = self.elapsed

    @rule(endpoint=st.sampled_from(["list", "delete"]), fault=st.sampled_from(["none", *DEFAULT_FAULTS]))
    def default_worker(self, endpoint, fault):
        """memories.ai will play `fault` on `endpoint`; the default-queue worker runs its next task
        (a status check or a remote delete)."""
        self.fault(endpoint, fault, DEFAULT_FAULTS)
        run_default_task()

    @rule(index=st.integers(0, 7), status=st.sampled_from(["PARSE", "FAIL", "PARSE_ERROR"]))
    def memories_finishes(self, index, status):
        """memories.ai finishes processing one of its copies (no callback: see `callback`)."""
        copies = sorted(no for no, remote in self.emulator.videos.items() if not remote.deleted)
        if copies:
            self.emulator.set_status(copies[index % len(copies)], status, send_callback=False)

    @rule(index=pick, number=st.sampled_from(["current", "latest copy", "held", "another video's"]),
          status=st.sampled_from(STATUS_WORDS), times=st.integers(1, 3))
    def callback(self, index, number, status, times):
        """memories.ai (or anyone) POSTs a status to the video's callback URL: duplicated (`times`),
        in any order, early (the held copy, before the relay's answer) or late."""
        video = self.video(index)
        copies = sorted((r.create_time, no) for no, r in self.emulator.videos.items()
                        if r.video_name == video.original_name[:-4])
        video_no = {"current": video.video_no, "latest copy": copies[-1][1] if copies else "",
                    "held": self.hold.video_no if self.hold else "",
                    "another video's": self.video(index + 1).video_no}[number]
        for _ in range(times if video_no else 0):
            self.anyone.post(video.callback_path, json.dumps({"videoNo": video_no, "status": status}),
                             content_type="application/json")

    @rule(unit=st.sampled_from(["s", "ms"]))
    def memories_writes_upload_times_in(self, unit):
        """memories.ai writes uploadTime in seconds (defect 8), or in milliseconds as documented."""
        self.emulator.set_upload_time_unit(unit)
        if unit == "s":
            STATS["faults"]["upload:time_in_seconds"] += 1

    @rule(index=pick)
    def stored_file_emptied(self, index):
        """Storage trouble: the stored file is truncated to 0 bytes."""
        video = self.video(index)
        if video.file and video.file.storage.exists(video.file.name):
            open(video.file.path, "wb").close()
            STATS["faults"]["storage:emptied"] += 1

    # --- the clock ----------------------------------------------------------------------

    def time_passes(self, seconds):
        move_time(seconds)
        self.elapsed += seconds

    @rule(what=st.sampled_from(["time passes", "reconcile", "purge_uploads", "tick"]),
          seconds=st.sampled_from(SHIFTS))
    def clock(self, what, seconds):
        """Time moves on (stored times shift back); `manage.py reconcile` or `purge_uploads` runs;
        or a tick of it all: time passes, reconcile, the workers run whatever is due."""
        if what in ("time passes", "tick"):
            self.time_passes(seconds)
        if what in ("reconcile", "tick"):
            self.run_reconcile()
        if what == "purge_uploads":
            call_command("purge_uploads", stdout=StringIO())
        if what == "tick":
            self.work()

    # --- the invariants -------------------------------------------------------------------

    @invariant()
    def invariants_hold(self):
        STATS["steps"] += 1
        self.check_all()

    def relays_end(self):
        assert not self.hung, self.hung

    def at_most_one_live_relay_per_video(self):
        rows = checks.task_rows(checks.RELAY)
        doubled = {v.original_name: len(checks.live_relays(v, rows, self.dead)) for v in self.videos()}
        assert all(n <= 1 for n in doubled.values()), f"live relay tasks per video: {doubled}"

    def at_most_one_live_check_chain_per_video(self):
        rows = checks.task_rows(checks.CHECK)
        for video in self.videos():
            chains = len(checks.live_checks(video, rows))
            copies = video.events.filter(message__startswith="memories.ai accepted it as").count()
            if copies > 1:
                assert chains <= 1, f"{video.original_name}: {chains} live check chains after {copies} accepted copies"
            assert chains <= 1, f"{video.original_name}: {chains} live check chains"

    def attempts_are_bounded(self):
        """No video is sent more than MEMPORTAL_MAX_ATTEMPTS times, nor has a relay planned that
        would send it once more (a live relay for attempt n sends attempt n + 1)."""
        rows = checks.task_rows(checks.RELAY)
        over = {v.original_name: v.attempts for v in self.videos()
                if v.attempts > MAX_ATTEMPTS or v.attempts >= MAX_ATTEMPTS and checks.live_relays(v, rows, self.dead)}
        assert not over, f"attempts spent (MEMPORTAL_MAX_ATTEMPTS={MAX_ATTEMPTS}) yet sent or to be sent again: {over}"

    def every_video_has_a_way_forward(self):
        relay_rows, check_rows = checks.task_rows(checks.RELAY), checks.task_rows(checks.CHECK)
        stuck = {v.original_name: why for v in self.videos()
                 if (why := checks.no_way_forward(v, relay_rows, check_rows, self.dead, self.waiting_for_reconcile(v)))}
        assert not stuck, stuck

    def no_attempt_is_spent_on_trouble_that_is_not_the_files(self):
        problems = {v.original_name: p for v in self.videos() if (p := checks.attempts_problems(v))}
        assert not problems, problems

    def timeline_replays_to_the_state(self):
        problems = {v.original_name: p for v in self.videos() if (p := checks.timeline_problems(v))}
        assert not problems, problems

    def a_video_that_may_be_sent_keeps_its_file(self):
        missing = {v.original_name: why for v in self.videos() if (why := checks.missing_file(v))}
        assert not missing, missing

    def every_accepted_copy_is_kept_or_deleted(self):
        by_name = {v.original_name[:-4]: v for v in self.videos()}
        in_flight = self.lost | ({self.hold.video_no} if self.hold and self.hold.video_no else set())
        overwritten, forgotten, undeleted = checks.unaccounted_copies(self.emulator, by_name, in_flight)
        assert not overwritten, f"a copy replaced by another, neither kept nor deleted: {overwritten}"
        assert not forgotten, f"a copy the video no longer names, not deleted: {forgotten}"
        assert not undeleted, f"a deleted video's copy not deleted at memories.ai: {undeleted}"

    def callbacks_do_not_stay_pending(self):
        stale = checks.stale_pending_callbacks()
        assert not stale, stale


def test_every_video_has_one_owner_at_a_time(settings):
    settings.MEMPORTAL_MAX_ATTEMPTS = MAX_ATTEMPTS
    settings.MEMPORTAL_HEARTBEAT_STALE_SECONDS = STALE
    settings.MEMPORTAL_UPLOAD_INTERVAL_SECONDS = 60
    settings.MEMORIES_CONNECT_TIMEOUT = settings.MEMORIES_READ_TIMEOUT = 60  # a held relay waits
    PortalMachine.django_settings = settings
    emulator_log = logging.getLogger("memportal.emulator")
    propagate, emulator_log.propagate = emulator_log.propagate, False  # its lines are not worth printing
    started = time.monotonic()
    try:
        hypothesis.stateful.run_state_machine_as_test(PortalMachine, settings=hypothesis.settings())
    finally:
        emulator_log.propagate = propagate
        print(f"\ninvariants [{PROFILE}]: {STATS['examples']} examples, {STATS['steps']} steps in "
              f"{time.monotonic() - started:.0f} s; faults injected: {sum(STATS['faults'].values())} "
              f"{dict(sorted(STATS['faults'].items()))}")
