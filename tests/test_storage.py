"""Both storages, for real: the local folder and S3 (moto_server on 127.0.0.1, set up as an
operator would: MEMPORTAL_STORAGE=s3, MEMPORTAL_S3_*, boto3's AWS_*). Upload, relay with
identical bytes, streamed from S3 while it is sent, retention purge, delete."""

import hashlib
import os
import random
import runpy
import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import boto3
import pytest
import requests
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.utils import timezone

from uploads.models import Video

from .conftest import (ROOT, delete_videos, padded, run_worker, sample, start_worker_process, stop_worker, stored_files,
                       wait_until)

pytestmark = pytest.mark.django_db(transaction=True)
BUCKET = "memportal-test"
MIB = 1024 * 1024


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def moto_endpoint():
    port = free_port()
    server = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            requests.get(endpoint, timeout=2)
            break
        except requests.RequestException:  # not up yet, or still starting (slow to answer on a busy machine)
            if time.monotonic() > deadline:
                server.kill()
                raise
            time.sleep(0.1)
    yield endpoint
    server.terminate()
    server.wait(timeout=10)


class Stored:
    """What a test asks of the storage under test, read from outside the portal."""

    def __init__(self, kind, s3=None):
        self.kind, self.s3 = kind, s3
        self.before = self.everything()  # an earlier test's files (the local folder is the run's)

    def names(self):
        """The files stored since this test began."""
        return self.everything() - self.before

    def everything(self):
        if self.kind == "s3":
            return {item["Key"] for item in self.s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])}
        from django.core.files.storage import default_storage
        return stored_files(default_storage)

    def read(self, name):
        if self.kind == "s3":
            return self.s3.get_object(Bucket=BUCKET, Key=name)["Body"].read()
        from django.conf import settings
        return (Path(settings.MEDIA_ROOT) / name).read_bytes()


@pytest.fixture(params=["local", "s3"])
def stored(request, settings, monkeypatch):
    if request.param == "local":
        return Stored("local")
    return Stored("s3", use_s3(request.getfixturevalue("moto_endpoint"), settings, monkeypatch))


@pytest.fixture
def s3(moto_endpoint, settings, monkeypatch):
    """The project's S3 storage in use, on an empty bucket: its boto3 client."""
    return use_s3(moto_endpoint, settings, monkeypatch)


def use_s3(endpoint, settings, monkeypatch):
    for name, value in {"MEMPORTAL_STORAGE": "s3", "MEMPORTAL_S3_BUCKET": BUCKET,
                        "MEMPORTAL_S3_ENDPOINT_URL": endpoint, "MEMPORTAL_S3_REGION": "us-east-1",
                        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", []) if _exists(client) else []:
        client.delete_object(Bucket=BUCKET, Key=item["Key"])
    if not _exists(client):
        client.create_bucket(Bucket=BUCKET)
    # memportal/settings.py run afresh in that environment, as a process starting with it would:
    # the storage under test is the one its S3 branch builds, not a copy of its options.
    settings.STORAGES = runpy.run_path(str(ROOT / "memportal" / "settings.py"))["STORAGES"]
    return client


def _exists(client):
    return BUCKET in {bucket["Name"] for bucket in client.list_buckets()["Buckets"]}


def upload(client, member, name, content):
    client.force_login(member)
    response = client.post("/videos/upload/", {"files": [SimpleUploadedFile(name, content)]})
    assert response.status_code == 302
    return Video.objects.get(original_name=name)


def long_mp4(mib):
    """A valid MP4 of about `mib` MiB (random padding: nothing compresses or deduplicates it)."""
    return padded(sample("sample-h264-aac.mp4").read_bytes(), random.Random(mib).randbytes(mib * MIB))


def files_open(pid, stored_name):
    """The files a process holds open besides its code and the stored video itself: a temporary
    copy is unlinked at once (SpooledTemporaryFile), so only /proc shows it, as lsof would."""
    found = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed meanwhile
            continue
        if target.startswith("/") and not target.startswith(("/dev/", "/proc/")) \
                and not target.endswith((".so", ".py", ".pyc", stored_name)) and "sqlite3" not in target \
                and target != os.environ.get("MEMPORTAL_LOG_FILE"):  # its log file (tests/secret_audit.py)
            found.add(target)
    return found


def test_an_upload_is_stored_and_relayed_byte_for_byte_then_removed_on_delete(client, member, team, api_key,
                                                                             emulator, stored):
    content = sample("sample-vp9-opus.mkv").read_bytes()
    video = upload(client, member, "team-offsite.mkv", content)
    assert stored.read(video.file.name) == content and video.file.name.startswith("videos/team-one/")

    run_worker("relay")
    video.refresh_from_db()
    assert video.status == "processing"
    assert (video.video_codec, video.has_audio) == ("VP9", True)  # probed (on S3 through range reads)
    assert emulator.uploads[-1].sha256 == hashlib.sha256(content).hexdigest()

    delete_videos([video.pk], member)
    assert stored.names() == set()


def test_a_large_video_is_relayed_from_storage_as_it_is_read_with_no_copy_on_disk(client, member, team, api_key,
                                                                                emulator, stored):
    """The relay streams the stored file into the request to memories.ai: no temporary copy, and
    memories.ai has bytes while the rest is still in storage. (django-storages' S3File downloaded
    the whole object to a temporary file first, the request open and idle meanwhile.)"""
    content = long_mp4(24)
    video = upload(client, member, "all-hands.mp4", content)
    first_mib, release = threading.Event(), threading.Event()
    emulator.inject("upload", "stall_after", bytes=MIB, event=first_mib, release=release, seconds=60)
    worker = start_worker_process("relay", MEMORIES_API_BASE_URL=emulator.base_url)
    opened = set()
    try:
        assert first_mib.wait(30), "memories.ai got no byte of the upload"
        for _ in range(20):  # a second's look at what the relay holds while memories.ai has 1 MiB
            opened |= files_open(worker.pid, Path(video.file.name).name)
            time.sleep(0.05)
    finally:
        release.set()
        output = stop_worker(worker)
    assert opened == set(), f"the relay wrote a copy of the video to disk: {sorted(opened)}\n{output}"

    # The stall cost one attempt (memories.ai hung up); the next is sent whole, byte for byte.
    video.refresh_from_db()
    assert video.status == "queued" and video.attempts == 1
    emulator.clear_faults()
    Video.objects.filter(pk=video.pk).update(next_attempt_at=None)
    from .conftest import make_due
    make_due("relay")
    run_worker("relay")
    video.refresh_from_db()
    assert video.status == "processing"
    assert emulator.uploads[-1].sha256 == hashlib.sha256(content).hexdigest()
    assert emulator.uploads[-1].size == len(content)


def test_retention_purge_removes_the_stored_file_of_a_finished_video(client, member, team, api_key, stored,
                                                                     settings):
    settings.MEMPORTAL_RETENTION_DAYS = 7
    old = upload(client, member, "old.mp4", sample("sample-h264-aac.mp4").read_bytes())
    fresh = upload(client, member, "fresh.mp4", sample("sample-h264-aac.mp4").read_bytes())
    Video.objects.filter(pk__in=[old.pk, fresh.pk]).update(status="ready")
    Video.objects.filter(pk=old.pk).update(status_changed_at=timezone.now() - timedelta(days=8))

    call_command("purge_uploads", stdout=open("/dev/null", "w"))

    assert stored.names() == {fresh.file.name}
    old.refresh_from_db()
    assert not old.file and old.events.last().message == "stored file removed (kept 7 days)"
