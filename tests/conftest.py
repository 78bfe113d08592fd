"""Shared fixtures: people and teams, a memories.ai emulator on loopback, and real workers."""

import io
import os
import struct
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.db import connection, connections
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from memories_emulator import MemoriesEmulator
from uploads import actions, lifecycle, memories, removal, reports, tasks
from uploads.followups import RelayVideo
from uploads.models import ApiKey, MemoriesAccount, Membership, Team, Video
from uploads.views import create_video

from . import secret_audit

pytest_plugins = ["tests.browser"]  # the browser_page fixture

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).resolve().parent.parent
TEST_KEY = "sk-mavi-test-0123456789abcdef-K3Y9"
OTHER_KEY = "sk-mavi-other-fedcba9876543210-Z7Q2"
PASSWORD = "a-long-test-password-42"


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # The real hasher is slow on purpose; the tests sign in hundreds of times.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def make_user(django_user_model, username, **extra):
    return django_user_model.objects.create_user(username=username, password=PASSWORD,
                                                 email=f"{username}@example.com", **extra)


@pytest.fixture
def team(db):
    return Team.objects.create(name="Team One", slug="team-one")


@pytest.fixture
def other_team(db):
    return Team.objects.create(name="Team Two", slug="team-two")


@pytest.fixture
def api_key(team):
    key = ApiKey(team=team, label="Main key")
    key.set_secret(TEST_KEY)
    key.save()
    return key


@pytest.fixture
def other_api_key(other_team):
    key = ApiKey(team=other_team, label="Team two key")
    key.set_secret(OTHER_KEY)
    key.save()
    return key


@pytest.fixture
def member(django_user_model, team):
    user = make_user(django_user_model, "mia")
    Membership.objects.create(user=user, team=team, role=Membership.Role.MEMBER)
    return user


@pytest.fixture
def teammate(django_user_model, team):
    user = make_user(django_user_model, "tom")
    Membership.objects.create(user=user, team=team, role=Membership.Role.MEMBER)
    return user


@pytest.fixture
def team_admin(django_user_model, team):
    user = make_user(django_user_model, "ada")
    Membership.objects.create(user=user, team=team, role=Membership.Role.ADMIN)
    user.refresh_from_db()
    return user


@pytest.fixture
def outsider(django_user_model, other_team):
    user = make_user(django_user_model, "otto")
    Membership.objects.create(user=user, team=other_team, role=Membership.Role.MEMBER)
    return user


@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_superuser("root", "root@example.com", PASSWORD)


@pytest.fixture
def emulator(settings):
    """memories.ai on a loopback port, knowing both test keys; uploads not paced (pacing tests set it)."""
    emu = MemoriesEmulator(keys=[TEST_KEY, OTHER_KEY], upload_interval=0, callback_delay=0.2, parse_delay=0.6)
    emu.start()
    settings.MEMORIES_API_BASE_URL = emu.base_url
    settings.MEMPORTAL_UPLOAD_INTERVAL_SECONDS = 0
    yield emu
    emu.stop()


@pytest.fixture
def fast_pipeline(settings):
    settings.MEMPORTAL_RETRY_BASE_SECONDS = 1
    settings.MEMPORTAL_STATUS_FIRST_CHECK_SECONDS = 1
    return settings


def run_worker(queue="relay"):
    """Run one real db_worker in this process until no task is ready."""
    call_command("db_worker", queue_name=queue, batch=True, startup_delay=False, reload=False,
                 interval=0, verbosity=0)


def relay_tasks():
    """The relay task rows still waiting to run."""
    return DBTaskResult.objects.filter(queue_name="relay", status="READY")


def make_due(queue=None):
    """Move the clock past the planned retries and checks (of `queue`, or of every queue): their
    task rows, the videos' next attempts and the accounts' upload slots are due now. The database
    compares these times itself, so the stored times move, not the clock."""
    past = timezone.now() - timedelta(seconds=1)
    tasks = DBTaskResult.objects.filter(status="READY")
    if queue is not None:
        tasks = tasks.filter(queue_name=queue)
    tasks.update(run_after=past)
    Video.objects.filter(next_attempt_at__isnull=False).update(next_attempt_at=past)
    MemoriesAccount.objects.update(next_upload_at=past)


def give_key(team, raw, label="Key"):
    """Another key for `team` (active: it replaces the team's key)."""
    key = ApiKey(team=team, label=label)
    key.set_secret(raw)
    key.save()
    return key


def account_of(team):
    """The memories.ai account whose upload slot the team's active key uses."""
    key = team.api_keys.get(is_active=True)
    return MemoriesAccount.objects.get(pk=key.pacing_account_id())


def padded(mp4: bytes, payload: bytes) -> bytes:
    """A longer valid MP4: `payload` in a "free" box (padding players and memories.ai skip)."""
    return mp4 + struct.pack(">I4s", 8 + len(payload), b"free") + payload


def sample(name):
    return DATA / name


def make_video(owner, team, *, status=Video.Status.QUEUED, video_no="", name="clip.mp4", **extra):
    """A Video row as the upload would leave it, with a real stored file."""
    from django.core.files.base import ContentFile

    video = Video(owner=owner, team=team, original_name=name, content_type="video/mp4",
                  size=len(sample("sample-h264-aac.mp4").read_bytes()), sha256="0" * 64,
                  status=status, video_no=video_no, **extra)
    video.file.save(name, ContentFile(sample("sample-h264-aac.mp4").read_bytes()), save=False)
    video.save()
    return video


def ready_video(emulator, owner, team, api_key, name="sample-h264-aac.mp4", status="PARSE", raw_key=TEST_KEY,
                **extra):
    """A video memories.ai holds in its team's place (uploaded there for real), ready on the portal.
    A `name` that is no sample file is a sample padded with its name: the emulator then makes its
    content from the name ("Harbour crane tour.mp4" says "Welcome to Harbour crane tour.")."""
    place = lifecycle.place_for_team(team.pk)
    content = sample(name).read_bytes() if sample(name).is_file() else padded(
        sample("sample-h264-aac.mp4").read_bytes(), name.encode())
    sent = memories.upload(raw_key, io.BytesIO(content), size=len(content), filename=name, content_type="video/mp4",
                           callback_url=None, place=place)
    emulator.set_status(sent.video_no, status, send_callback=False)
    return make_video(owner, team, status=Video.Status.READY, video_no=sent.video_no, name=name, api_key=api_key,
                      api_family=place.family, namespace=place.namespace, **extra)


def queued_video(owner, team, name="clip.mp4"):
    """A stored, queued video with its first relay task, as an upload leaves it."""
    video = make_video(owner, team, name=name)
    tasks.enqueue([RelayVideo(str(video.pk), 0, video.relay_token)])
    return video


@pytest.fixture
def relayed(member, team, api_key, emulator, fast_pipeline):
    """A video relayed for real and accepted, with callbacks off: status checks are its only news."""
    emulator.send_callbacks = False
    video = queued_video(member, team)
    run_worker("relay")
    video.refresh_from_db()
    assert video.status == "processing"
    return video


@pytest.fixture
def processing(member, team, api_key):
    """A video memories.ai accepted and is still parsing: what its callbacks are about."""
    return make_video(member, team, status=Video.Status.PROCESSING, video_no="VI554046065381212160",
                      remote_status="UNPARSE")


def stored_files(storage=default_storage, folder=""):
    """Every file name in `storage` below `folder`, however deep (videos/<team>/YYYY/MM/...)."""
    try:
        folders, files = storage.listdir(folder)
    except FileNotFoundError:  # nothing stored yet
        return set()
    names = {f"{folder}/{name}" if folder else name for name in files}
    for sub in folders:
        names |= stored_files(storage, f"{folder}/{sub}" if folder else sub)
    return names


def store_video(owner, team, api_key, name, content):
    """What the upload view does: the file into storage, then the Video and its relay task."""
    import hashlib

    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile(name, content, content_type="video/mp4")
    return create_video(team=team, owner=owner, api_key=api_key, uploaded_file=upload, title="",
                        sha256=hashlib.sha256(content).hexdigest())


def accept_relay(video, result):
    """What the relay task does with memories.ai's 0000 answer (result: memories.UploadResult)."""
    tasks.perform(actions.relay_accepted, video.pk, result)
    reports.apply_pending_callbacks(video.pk)


def delete_videos(video_ids, user):
    """What the delete page does: soft-delete, remove the files, enqueue the remote deletions."""
    result = removal.delete_videos(video_ids, user)
    tasks.enqueue(result.work)
    return result.value


class OtherConnection(threading.Thread):
    """fn(*args) on a thread of its own: Django gives it a database connection of its own, and
    closes it when it ends (a PostgreSQL test database cannot be dropped with one still open)."""

    def __init__(self, fn, *args):
        super().__init__(daemon=True)
        self.fn, self.args, self.value, self.error = fn, args, None, None
        self.start()

    def run(self):
        try:
            self.value = self.fn(*self.args)
        except BaseException as error:  # raised again in the test by result()
            self.error = error
        finally:
            connections.close_all()

    def result(self, timeout=30):
        self.join(timeout)
        assert not self.is_alive(), f"{self.fn.__name__} never finished"
        if self.error is not None:
            raise self.error
        return self.value


def wait_until(predicate, timeout=15.0, interval=0.1, message="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


def worker_env(**extra):
    """Environment for a db_worker subprocess that uses this test's database."""
    env = dict(os.environ)
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        env["DATABASE_URL"] = f"sqlite:///{db['NAME']}"
    else:
        env["DATABASE_URL"] = (f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:"
                               f"{db['PORT'] or 5432}/{db['NAME']}")
    env.update({key: str(value) for key, value in extra.items()})
    return env


def stop_worker(worker):
    """Stop a worker process (if still running) and return what it printed (which the secret
    audit reads too)."""
    if worker.poll() is None:
        worker.terminate()
    output = worker.communicate(timeout=20)[0]
    secret_audit.scan_output(output, "a worker's output")
    return output


def relay_with_worker_process(emulator, interval, message, timeout=30):
    """Run one real relay worker until no video is left short of `processing`."""
    worker = start_worker_process("relay", MEMORIES_API_BASE_URL=emulator.base_url,
                                  MEMPORTAL_UPLOAD_INTERVAL_SECONDS=interval)
    try:
        wait_until(lambda: not Video.objects.exclude(status="processing").exists(), timeout=timeout,
                   message=message)
    finally:
        stop_worker(worker)


def start_worker_process(queue="relay", **env):
    return subprocess.Popen(
        [sys.executable, "manage.py", "db_worker", "--queue-name", queue, "--no-reload", "--interval", "0.1",
         "--no-startup-delay"],
        cwd=ROOT, env=worker_env(**env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
