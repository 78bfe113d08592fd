"""In a real browser: sign in, upload through the form, see the video on the list become ready."""

import os

import pytest

from uploads.models import Video

from .browser import sign_in
from .conftest import PASSWORD, ROOT, sample, start_worker_process, stop_worker, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
# docs/screenshots/ is refreshed on request (MEMPORTAL_UPDATE_SCREENSHOTS=1 make test), so an
# ordinary test run does not rewrite the committed pictures.
SCREENSHOTS = ROOT / ("docs/screenshots" if os.environ.get("MEMPORTAL_UPDATE_SCREENSHOTS") else "var/test/screenshots")


def shot(page, name):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_sign_in_upload_and_watch_it_become_ready(browser_page, live_server, member, team, api_key, emulator,
                                                  settings):
    page = browser_page
    settings.MEMPORTAL_PUBLIC_URL = live_server.url
    sign_in(page, live_server.url, member.username, PASSWORD)
    page.wait_for_url(f"{live_server.url}/videos/")
    assert "No videos yet" in page.content()

    page.click("text=Upload videos")
    # The page sends each file on its own as soon as it is chosen (static/memportal/upload.js;
    # tests/test_browser_resumable.py has the rest, and the plain form without JavaScript).
    page.fill("#id_title", "All-hands")
    page.set_input_files("#id_files", [str(sample("sample-h264-aac.mp4")), str(sample("not-a-video.mp4"))])
    page.locator(".upload-row[data-state=done]").wait_for()
    text = page.inner_text("main")
    assert "Uploaded: stored and queued for memories.ai." in text
    assert "“not-a-video.mp4” was not accepted: its content is not an MP4 video" in text
    shot(page, "upload-form")
    page.click("text=My videos")
    row = page.locator("tr[data-video-id]")
    assert row.count() == 1 and "All-hands (1)" in row.inner_text() and "Queued" in row.inner_text()

    worker = start_worker_process("relay", MEMORIES_API_BASE_URL=emulator.base_url,
                                  MEMPORTAL_PUBLIC_URL=live_server.url, MEMPORTAL_UPLOAD_INTERVAL_SECONDS=0)
    try:
        wait_until(lambda: Video.objects.get().status == "ready", timeout=20, message="ready")
    finally:
        stop_worker(worker)
    # The list updates itself (static/memportal/live.js), no reload needed.
    page.locator("tr[data-video-id] .status-ready").wait_for(timeout=10_000)
    shot(page, "my-videos")
    page.click("text=All-hands (1)")
    text = page.inner_text("main")
    assert "Timeline" in text and "Sent to memories.ai, which is processing it." in text
    assert "memories.ai finished processing: the video is ready." in text
    shot(page, "video-page")


def test_sign_out_and_change_password(browser_page, live_server, member):
    page = browser_page
    sign_in(page, live_server.url, member.username, PASSWORD)
    page.click("text=Change password")
    page.fill("#id_old_password", PASSWORD)
    page.fill("#id_new_password1", "another-long-password-77")
    page.fill("#id_new_password2", "another-long-password-77")
    page.click("button:has-text('Change my password')")
    assert "Your password was changed" in page.inner_text("main")
    page.click("text=Sign out")
    assert "You are signed out" in page.inner_text("main")
    sign_in(page, live_server.url, member.username, "another-long-password-77")
    page.wait_for_url(f"{live_server.url}/videos/")

