"""Moving up, as docs/deploy.md tells it: a portal on SQLite and the local folder, with videos
in every state, moved to PostgreSQL (deploy/sqlite_to_postgres.sh) and S3
(manage.py copy_stored_files); nothing lost, and the queued video is still sent, from S3.

Every step is the operator's command in a process of its own; the portal's old folder is gone
before the relay runs. Needs PostgreSQL at 127.0.0.1:5432 (both CI passes have it).
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys

import psycopg
import pytest

from .conftest import ROOT, TEST_KEY, sample, stop_worker, wait_until
from .test_storage import BUCKET, moto_endpoint  # noqa: F401 (the fixture: moto_server on loopback)

SEED = """
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from uploads import tasks
from uploads.followups import RelayVideo
from uploads.models import ApiKey, Membership, Team, Video
get_user_model().objects.create_user("gone", "gone@example.com", "a long enough password").delete()
user = get_user_model().objects.create_user("mia", "mia@example.com", "a long enough password")  # id 2
team = Team.objects.create(name="Team One", slug="team-one")
Membership.objects.create(user=user, team=team)
key = ApiKey(team=team, label="Main key")
key.set_secret({key!r})
key.save()
content = open({sample!r}, "rb").read()
for name, status in [("queued.mp4", "queued"), ("ready.mp4", "ready")]:
    video = Video(owner=user, team=team, api_key=key, original_name=name, content_type="video/mp4",
                  size=len(content), sha256="{sha256}", status=status,
                  video_no="VI1" if status == "ready" else "")
    video.file.save(name, ContentFile(content), save=False)
    if status == "ready":  # its still beside it (uploads/thumbnails.py), which moves with it
        video.thumbnail = video.file.storage.save(video.file.name.rsplit(".", 1)[0] + ".thumb.jpg",
                                                  ContentFile(b"\\xff\\xd8 a still"))
    video.save()
    if status == "queued":
        tasks.enqueue([RelayVideo(str(video.pk), 0, video.relay_token)])
"""

STATE = """
import json
from django.contrib.auth import get_user_model
from uploads.models import ApiKey, Video
print(json.dumps({"videos": {v.original_name: [v.status, v.file.name, v.file.storage.exists(v.file.name)]
                             for v in Video.objects.all()},
                  "key": ApiKey.objects.get().reveal() == KEY,
                  "users": list(get_user_model().objects.values_list("pk", "username"))}))
"""


def postgres_reachable():
    try:
        psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", connect_timeout=3).close()
        return True
    except psycopg.OperationalError:
        return False


pytestmark = pytest.mark.skipif(not postgres_reachable(), reason="needs PostgreSQL at 127.0.0.1:5432")


@pytest.fixture
def empty_postgres():
    name = f"memportal_moving_up_{os.getpid()}"
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"postgres://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def manage(env, *argv, **kwargs):
    done = subprocess.run([sys.executable, "manage.py", *argv], cwd=ROOT, env=env, capture_output=True, text=True,
                          **kwargs)
    assert done.returncode == 0, f"manage.py {argv[0]} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_a_portal_moves_to_postgresql_and_s3_with_nothing_lost_and_its_queue_still_sent(
        tmp_path, empty_postgres, moto_endpoint, emulator):  # noqa: F811
    content = sample("sample-h264-aac.mp4").read_bytes()
    old_var = tmp_path / "var"
    sqlite = f"sqlite:///{old_var / 'memportal.sqlite3'}"
    old = {**os.environ, "MEMPORTAL_VAR_DIR": str(old_var), "MEMPORTAL_UPLOAD_TEMP_DIR": str(old_var / "tmp"),
           "DATABASE_URL": sqlite}
    old.pop("MEMPORTAL_TEST_DB_NAME", None)
    manage(old, "migrate", "--no-input", "-v0")
    manage(old, "shell", "-v0", "-c", SEED.format(key=TEST_KEY, sample=str(sample("sample-h264-aac.mp4")),
                                                   sha256=hashlib.sha256(content).hexdigest()))

    # The database: the documented script, with the portal stopped.
    moved = subprocess.run(["sh", "deploy/sqlite_to_postgres.sh"], cwd=ROOT, capture_output=True, text=True,
                           env={**old, "FROM": sqlite, "TO": empty_postgres, "PYTHON": sys.executable})
    assert moved.returncode == 0, moved.stdout + moved.stderr
    assert "Moved:" in moved.stdout and empty_postgres not in moved.stdout + moved.stderr

    # The files: into S3, with the new storage configured and the old folder named. Twice: the
    # second run (the one with the portal stopped, in the docs) copies nothing again.
    new = {**old, "DATABASE_URL": empty_postgres, "MEMPORTAL_VAR_DIR": str(tmp_path / "new-var"),
           "MEMPORTAL_UPLOAD_TEMP_DIR": str(tmp_path / "new-var" / "tmp"), "MEMPORTAL_STORAGE": "s3",
           "MEMPORTAL_S3_BUCKET": BUCKET, "MEMPORTAL_S3_ENDPOINT_URL": moto_endpoint,
           "MEMPORTAL_S3_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "MEMORIES_API_BASE_URL": emulator.base_url, "MEMPORTAL_UPLOAD_INTERVAL_SECONDS": "0"}
    import boto3
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    if BUCKET not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
        s3.create_bucket(Bucket=BUCKET)
    for item in s3.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        s3.delete_object(Bucket=BUCKET, Key=item["Key"])
    media = str(old_var / "media")
    assert "copied 3, already there 0, missing 0" in manage(new, "copy_stored_files", "--from-folder", media)
    # Meanwhile a video copied in the first run was deleted: the final run (portal stopped)
    # copies nothing again and removes that copy.
    s3.put_object(Bucket=BUCKET, Key="videos/team-one/2026/01/deleted-since.mp4", Body=b"gone")
    assert "copied 0, already there 3, missing 0, removed 1 no video holds" in manage(
        new, "copy_stored_files", "--from-folder", media, "--prune")
    keys = {item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert "videos/team-one/2026/01/deleted-since.mp4" not in keys
    assert len([k for k in keys if k.endswith(".thumb.jpg")]) == 1  # the thumbnail is held: copied, kept
    shutil.rmtree(old_var)  # nothing of the old portal is left to read

    state = json.loads(manage(new, "shell", "-v0", "-c", STATE.replace("KEY", repr(TEST_KEY))))
    assert state["key"] is True  # the key still decrypts
    assert state["users"] == [[2, "mia"]]  # ids kept: sessions and task rows name users by id
    assert {name: (status, exists) for name, (status, _, exists) in state["videos"].items()} == {
        "queued.mp4": ("queued", True), "ready.mp4": ("ready", True)}

    # The queued video's relay task came along: a relay worker on the new setup sends it, from S3.
    worker = subprocess.Popen([sys.executable, "manage.py", "db_worker", "--queue-name", "relay", "--no-reload",
                               "--interval", "0.1", "--no-startup-delay"], cwd=ROOT, env=new,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until(lambda: any(u.code == "0000" for u in emulator.uploads), timeout=30, message="the relay")
    finally:
        output = stop_worker(worker)
    sent = [u for u in emulator.uploads if u.code == "0000"]
    assert [u.sha256 for u in sent] == [hashlib.sha256(content).hexdigest()], output
    state = json.loads(manage(new, "shell", "-v0", "-c", STATE.replace("KEY", repr(TEST_KEY))))
    assert state["videos"]["queued.mp4"][0] == "processing"
