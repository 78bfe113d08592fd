"""The whole path with nothing inline: HTTP upload to the running site, a real db_worker process
relays to the emulator, the emulator's callback reaches the site, and the list shows `ready`."""

import hashlib
import re

import pytest
import requests

from uploads.models import Video

from .conftest import PASSWORD, TEST_KEY, sample, start_worker_process, stop_worker, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def signed_in_session(base_url, username):
    session = requests.Session()
    session.get(f"{base_url}/accounts/login/").raise_for_status()
    response = session.post(f"{base_url}/accounts/login/", data={
        "username": username, "password": PASSWORD, "csrfmiddlewaretoken": session.cookies["csrftoken"],
    })
    assert response.url.endswith("/videos/"), "sign-in failed"
    return session


def test_upload_relay_callback_ready(live_server, member, team, api_key, emulator, settings):
    settings.MEMPORTAL_PUBLIC_URL = live_server.url
    session = signed_in_session(live_server.url, member.username)
    content = sample("sample-hevc.mov").read_bytes()
    response = session.post(f"{live_server.url}/videos/upload/", data={
        "csrfmiddlewaretoken": session.cookies["csrftoken"], "title": "Launch video",
    }, files={"files": ("launch.mov", content, "video/quicktime")})
    assert "1 video stored and queued for memories.ai." in response.text
    video = Video.objects.get()

    worker = start_worker_process("relay", MEMORIES_API_BASE_URL=emulator.base_url,
                                  MEMPORTAL_PUBLIC_URL=live_server.url, MEMPORTAL_UPLOAD_INTERVAL_SECONDS=0)
    try:
        wait_until(lambda: Video.objects.get().status in ("processing", "ready"), message="the relay")
    finally:
        output = stop_worker(worker)

    upload = emulator.uploads[-1]
    assert upload.headers.get("Authorization") == "…" + TEST_KEY[-4:]
    assert upload.filename == "launch.mov" and upload.content_type == "video/quicktime"
    assert upload.sha256 == hashlib.sha256(content).hexdigest()
    assert upload.fields["callback"] == f"{live_server.url}/callbacks/memories/{video.callback_token}/"

    wait_until(lambda: Video.objects.get().status == "ready", message="the PARSE callback")
    assert [c["status_code"] for c in emulator.callbacks_sent] == [200, 200]
    video.refresh_from_db()
    # The UNPARSE callback repeats what the relay's answer said: recorded, no new event.
    assert [(e.source, e.to_status) for e in video.events.all()] == [
        ("upload", "queued"), ("relay", "sending"), ("relay", "processing"), ("callback", "ready")]
    assert sorted(video.callbacks.values_list("outcome", flat=True)) == ["applied", "duplicate"]

    listing = session.get(f"{live_server.url}/videos/").text
    row = re.search(r'<tr data-video-id="%s"[^>]*>.*?</tr>' % video.pk, listing, re.S).group(0)
    assert "Launch video" in row and "Ready" in row
    assert TEST_KEY not in output
