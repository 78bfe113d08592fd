"""The S3 storage path, against a local S3-compatible server (moto_server on 127.0.0.1)."""

import hashlib
import runpy
import socket
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
import requests
from django.core.files.uploadedfile import SimpleUploadedFile

from uploads.models import Video

from .conftest import ROOT, delete_videos, run_worker, sample

pytestmark = pytest.mark.django_db(transaction=True)
BUCKET = "memportal-test"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def s3(settings, monkeypatch):
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
    # What an operator sets (README: MEMPORTAL_STORAGE and MEMPORTAL_S3_*, boto3's AWS_*).
    for name, value in {"MEMPORTAL_STORAGE": "s3", "MEMPORTAL_S3_BUCKET": BUCKET,
                        "MEMPORTAL_S3_ENDPOINT_URL": endpoint, "MEMPORTAL_S3_REGION": "us-east-1",
                        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    # memportal/settings.py run afresh in that environment, as a process starting with it would:
    # the storage under test is the one its S3 branch builds, not a copy of its options.
    settings.STORAGES = runpy.run_path(str(ROOT / "memportal" / "settings.py"))["STORAGES"]
    yield client
    server.terminate()
    server.wait(timeout=10)


def test_uploads_are_stored_in_s3_relayed_from_it_and_removed_on_delete(client, member, team, api_key, emulator,
                                                                        s3):
    content = sample("sample-vp9-opus.mkv").read_bytes()
    client.force_login(member)
    client.post("/videos/upload/", {"files": [SimpleUploadedFile("team-offsite.mkv", content)]})
    video = Video.objects.get()
    stored = s3.get_object(Bucket=BUCKET, Key=video.file.name)["Body"].read()
    assert stored == content and video.file.name.startswith("videos/team-one/")

    run_worker("relay")
    video.refresh_from_db()
    assert video.status == "processing"
    assert (video.video_codec, video.has_audio) == ("VP9", True)  # probed through range reads
    assert emulator.uploads[-1].sha256 == hashlib.sha256(content).hexdigest()

    delete_videos([video.pk], member)
    assert s3.list_objects_v2(Bucket=BUCKET).get("KeyCount", 0) == 0
