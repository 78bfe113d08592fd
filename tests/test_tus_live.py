"""The resumable endpoint over real HTTP, on both storages (the local folder, and S3 on moto_server
with its real 5 MiB minimum part): tuspy (a real tus client) uploads a file in chunks and resumes
it from another client; a web process killed with SIGKILL mid-chunk leaves an offset a fresh
process reports and the upload completes from, byte for byte; a connection cut mid-chunk keeps
what the storage can continue from; two PATCHes at once never both succeed. S3's own rules (part
sizes, cancel and expiry aborting the multipart upload) through Django's test client."""

import hashlib
import io
import os
import socket
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from django.utils import timezone
from tusclient.client import TusClient

from uploads.models import PartialUpload, Video
from uploads.resumable import expire_partial_uploads

from .conftest import run_worker, wait_until
from .test_storage import BUCKET, long_mp4, moto_endpoint, s3, stored  # noqa: F401 (fixtures)
from .test_storage import free_port
from .tus_client import MIB, TUS, Portal, create, head, patch, signed_in_headers

pytestmark = pytest.mark.django_db(transaction=True)
PART = 5 * MIB  # the chunk size: S3's least part, which moto enforces


@pytest.fixture
def portal(stored, settings, tmp_path):
    """Start a gunicorn on the test's database and storage (stored: local or S3)."""
    settings.MEMPORTAL_UPLOAD_CHUNK_BYTES = PART
    started = []

    def start(**env):
        web = Portal(free_port(), tmp_path, MEMPORTAL_UPLOAD_CHUNK_BYTES=PART, **env)
        started.append(web)
        return web.start()
    yield start
    for web in started:
        web.stop()


def tus_client(web, headers):
    return TusClient(f"{web.url}/uploads/tus/", headers=headers)


def offset_of(web, url, headers):
    answer = requests.head(f"{web.url}{url}", headers={**TUS, **headers}, timeout=10)
    assert answer.status_code == 200, answer.text
    return int(answer.headers["Upload-Offset"])


def start_patch(web, url, offset, length, headers):
    """A PATCH whose headers are sent, and none of its body yet: the test sends it bit by bit."""
    sock = socket.create_connection(("127.0.0.1", web.port), timeout=30)
    lines = [f"PATCH {url} HTTP/1.1", f"Host: 127.0.0.1:{web.port}", "Tus-Resumable: 1.0.0",
             f"Upload-Offset: {offset}", "Content-Type: application/offset+octet-stream",
             f"Content-Length: {length}", *(f"{name}: {value}" for name, value in headers.items())]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    return sock


def spooled(web, folder):
    """The bytes the web process holds in its spooled S3 part (an unlinked temporary file: only
    /proc shows it, as lsof would)."""
    most = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if os.getpgid(int(proc.name)) != web.proc.pid:
                continue
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd).startswith(str(folder)):
                    most = max(most, os.stat(fd).st_size)
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return most


def status_of(sock):
    return int(sock.recv(4096).split(b" ", 2)[1])


def multipart_uploads(client):
    return client.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])


def assert_stored_as_sent(stored, content, s3_client=None):
    video = Video.objects.get()
    assert (video.status, video.size, video.sha256) == ("queued", len(content), "")
    assert stored.read(video.file.name) == content
    assert stored.names() == {video.file.name}  # no partial file left, no stray object
    if stored.kind == "s3":
        assert video.file.name not in {u["Key"] for u in multipart_uploads(s3_client)}
    return video


def test_tuspy_uploads_in_chunks_and_another_client_resumes_from_the_servers_offset(client, member, api_key,
                                                                                    stored, portal, emulator):
    web = portal()
    content = long_mp4(12)  # chunks of 5, 5 and 2 MiB
    headers = signed_in_headers(client, member)
    first = tus_client(web, headers).uploader(file_stream=io.BytesIO(content), chunk_size=PART,
                                              metadata={"filename": "all-hands.mp4", "fingerprint": "fp-1"})
    first.upload(stop_at=PART)  # the page was closed after one chunk
    assert offset_of(web, first.url.removeprefix(web.url), headers) == PART

    again = tus_client(web, headers).uploader(file_stream=io.BytesIO(content), url=first.url, chunk_size=PART)
    assert again.offset == PART  # asked the server (HEAD)
    again.upload()

    video = assert_stored_as_sent(stored, content, getattr(stored, "s3", None))
    assert again.request.response_headers["memportal-video-url"] == f"/videos/{video.pk}/"
    upload = PartialUpload.objects.get()
    assert upload.finished_at is not None and upload.fingerprint == "fp-1"
    if stored.kind == "s3":
        assert [part["Size"] for part in upload.parts] == [PART, PART, len(content) - 2 * PART]
    run_worker("relay")  # and it goes on as a form upload does
    video.refresh_from_db()
    assert video.status == "processing" and video.video_codec == "H.264"
    assert emulator.uploads[-1].sha256 == hashlib.sha256(content).hexdigest()


def test_a_web_process_killed_mid_chunk_leaves_an_offset_the_upload_completes_from(client, member, api_key,
                                                                                   stored, portal, settings):
    web = portal(MEMPORTAL_UPLOAD_STALL_SECONDS=2)
    content = long_mp4(12)
    headers = signed_in_headers(client, member)
    uploader = tus_client(web, headers).uploader(file_stream=io.BytesIO(content), chunk_size=PART,
                                                 metadata={"filename": "all-hands.mp4"})
    uploader.upload(stop_at=PART)
    url = uploader.url.removeprefix(web.url)

    sock = start_patch(web, url, PART, PART, headers)
    sock.sendall(content[PART:PART + 3 * MIB])  # 3 MiB of the second chunk, then the crash
    if stored.kind == "local":
        partial = settings.MEDIA_ROOT / "partial" / f"{PartialUpload.objects.get().pk}.part"
        wait_until(lambda: partial.stat().st_size >= PART + 3 * MIB, message="the server writing the chunk")
    else:
        wait_until(lambda: spooled(web, settings.FILE_UPLOAD_TEMP_DIR) >= 3 * MIB, message="the server spooling the part")
    web.kill()
    sock.close()

    fresh = portal(MEMPORTAL_UPLOAD_STALL_SECONDS=2)
    assert offset_of(fresh, url, headers) == PART  # the last whole chunk: nothing of the killed one
    resumed = tus_client(fresh, headers).uploader(file_stream=io.BytesIO(content), url=f"{fresh.url}{url}",
                                                  chunk_size=PART, retries=10, retry_delay=1)
    assert resumed.offset == PART
    resumed.upload()  # 423 while the killed request's claim goes stale (2 s), then on
    assert_stored_as_sent(stored, content, getattr(stored, "s3", None))


def test_a_connection_cut_mid_chunk_keeps_what_the_storage_can_continue_from(client, member, api_key, stored,
                                                                            portal):
    web = portal(MEMPORTAL_UPLOAD_STALL_SECONDS=30)
    content = long_mp4(7)
    headers = signed_in_headers(client, member)
    url = requests.post(f"{web.url}/uploads/tus/", timeout=10, headers={
        **TUS, **headers, "Upload-Length": str(len(content)),
        "Upload-Metadata": "filename Y3V0Lm1wNA=="}).headers["Location"]  # cut.mp4
    sock = start_patch(web, url, 0, PART, headers)
    sock.sendall(content[:3 * MIB])
    sock.shutdown(socket.SHUT_RDWR)
    sock.close()

    kept = 3 * MIB if stored.kind == "local" else 0  # local: the bytes that arrived; S3: whole parts only
    # The cut request gives its claim back at once: the next try needs no wait for it to go stale.
    wait_until(lambda: PartialUpload.objects.filter(next_part=2, writer="").exists(), message="the cut request ending")
    assert offset_of(web, url, headers) == kept
    resumed = tus_client(web, headers).uploader(file_stream=io.BytesIO(content), url=f"{web.url}{url}",
                                                chunk_size=PART)
    assert resumed.offset == kept
    resumed.upload()
    assert_stored_as_sent(stored, content, getattr(stored, "s3", None))


def test_two_patches_at_once_never_both_succeed(client, member, api_key, stored, portal):
    web = portal(MEMPORTAL_UPLOAD_STALL_SECONDS=30)
    content = long_mp4(7)
    headers = signed_in_headers(client, member)
    url = requests.post(f"{web.url}/uploads/tus/", timeout=10, headers={
        **TUS, **headers, "Upload-Length": str(len(content)), "Upload-Metadata": "filename YS5tcDQ="}).headers["Location"]
    first = start_patch(web, url, 0, PART, headers)
    first.sendall(content[:MIB])
    wait_until(lambda: PartialUpload.objects.exclude(writer="").exists(), message="the first PATCH writing")
    second = requests.patch(f"{web.url}{url}", data=content[:PART], timeout=30, headers={
        **TUS, **headers, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"})
    assert second.status_code == 423 and second.headers["Retry-After"] == "30"
    first.sendall(content[MIB:PART])
    assert status_of(first) == 204
    first.close()
    late = requests.patch(f"{web.url}{url}", data=content[:PART], timeout=30, headers={
        **TUS, **headers, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"})
    assert late.status_code == 409 and late.headers["Upload-Offset"] == str(PART)
    assert offset_of(web, url, headers) == PART


# --- S3's rules, through Django's test client --------------------------------------------------

@pytest.fixture
def s3_chunks(s3, settings):
    settings.MEMPORTAL_UPLOAD_CHUNK_BYTES = PART
    for left in multipart_uploads(s3):  # an earlier test's unfinished upload (the bucket is the module's)
        s3.abort_multipart_upload(Bucket=BUCKET, Key=left["Key"], UploadId=left["UploadId"])
    return s3


def test_s3_every_chunk_but_the_last_is_a_part_of_at_least_5_mib(client, member, api_key, s3_chunks):
    content = long_mp4(6)
    client.force_login(member)
    url = create(client, "talk.mp4", len(content))["Location"]
    upload = PartialUpload.objects.get()
    assert [(u["Key"], u["UploadId"]) for u in multipart_uploads(s3_chunks)] == [
        (upload.storage_name, upload.s3_upload_id)]  # at the name the form would give, from the start
    assert upload.storage_name == f"videos/team-one/{timezone.now():%Y/%m}/{upload.video_uuid}.mp4"
    small = patch(client, url, 0, content[:MIB])
    assert small.status_code == 400 and "at least 5.0\xa0MB" in small.content.decode()
    assert patch(client, url, 0, content[:PART]).status_code == 204
    last = patch(client, url, PART, content[PART:])  # the last may be smaller
    assert last.status_code == 204 and last["Memportal-Video-Url"]
    video = Video.objects.get()
    assert video.file.name == upload.storage_name
    stored = s3_chunks.get_object(Bucket=BUCKET, Key=video.file.name)
    assert stored["Body"].read() == content and stored["ContentType"] == "video/mp4"
    assert multipart_uploads(s3_chunks) == []


def test_s3_cancel_and_expiry_abort_the_multipart_upload(client, member, api_key, s3_chunks):
    content = long_mp4(6)
    client.force_login(member)
    cancelled = create(client, "a.mp4", len(content))["Location"]
    expiring = create(client, "b.mp4", len(content))["Location"]
    for url in (cancelled, expiring):
        assert patch(client, url, 0, content[:PART]).status_code == 204
    assert len(multipart_uploads(s3_chunks)) == 2

    assert client.delete(cancelled, headers=TUS).status_code == 204
    assert [u["Key"] for u in multipart_uploads(s3_chunks)] == [PartialUpload.objects.get().storage_name]
    PartialUpload.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert expire_partial_uploads() == 1
    assert multipart_uploads(s3_chunks) == [] and not PartialUpload.objects.exists()
    assert s3_chunks.list_objects_v2(Bucket=BUCKET).get("Contents") is None
    assert head(client, cancelled).status_code == 404 and head(client, expiring).status_code == 404
