"""The upload page in a real browser (Debian's Chromium), through a TCP proxy of the test's own
that throttles the link, counts the bytes the browser sends and cuts the connection: files
refused before a byte is sent, progress, a cut link resumed from the server's offset (the bytes
sent after the cut are what the server lacked, not the whole file), a reload mid-upload resumed
by picking the file again, pause, cancel (the server's bytes gone), a session that ended, the
duplicate warning, a selection over the limit, JavaScript off; axe-core finds no serious or
critical violation, no page breaks its Content-Security-Policy, and the page works at 375 px.
From the review: a resume check refused by the gateway (502) is asked again, never a new upload,
and the link's drop and return are announced; a recognised upload still waiting its turn is
removed by Cancel, and one finished meanwhile becomes its video's link; another tab's upload is
said so, discarded only when confirmed, and goes on here once that tab stops; Pause during the
creation keeps the upload made, and the keyboard's focus follows Pause and Resume.

Small files and a small chunk (128 KiB; local storage takes chunks of 64 KiB and more)."""

import base64
import hashlib
import os
import re
import socket
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.sessions.models import Session
from django.core.files.storage import default_storage
from django.test import Client
from django.utils import timezone

from playwright.sync_api import TimeoutError as PlaywrightTimeout

from uploads.models import PartialUpload, Video

from .browser import no_serious_violations, sign_in
from .conftest import PASSWORD, make_video, padded, sample, wait_until
from .test_browser import shot
from .tus_client import create, patch, send_in_chunks

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
KIB = 1024
CHUNK = 128 * KIB
BAD_GATEWAY = (b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\nContent-Length: 24\r\nConnection: close\r\n"
               b"\r\n<h1>502 Bad Gateway</h1>")

class Link:
    """A TCP proxy in front of the live server: the browser's link. Bytes from the browser are
    counted as they are passed on (`sent`), at most `rate` bytes a second over all connections
    together; `cut()` closes every connection at once and refuses new ones for a while."""

    def __init__(self, port, rate=None):
        self.target, self.rate = ("127.0.0.1", port), rate
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.sent, self.free_at, self.down_until = 0, 0.0, 0.0
        # As a gateway would while the web process restarts: the next `fail_heads` resume checks
        # (HEAD) are answered 502 by the link itself; a creation (POST) is held `hold_posts` s.
        self.fail_heads, self.hold_posts = 0, 0.0
        self.lock, self.pairs, self.closed = threading.Lock(), [], False
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if time.monotonic() < self.down_until:
                client.close()  # the link is down: the browser gets no answer
                continue
            upstream = socket.create_connection(self.target)
            pair = (client, upstream)
            with self.lock:
                self.pairs.append(pair)
            threading.Thread(target=self.pipe, args=(client, upstream, True, pair), daemon=True).start()
            threading.Thread(target=self.pipe, args=(upstream, client, False, pair), daemon=True).start()

    def wait_for_link(self, size):
        if not self.rate:
            return
        with self.lock:
            now = time.monotonic()
            self.free_at = max(self.free_at, now) + size / self.rate
            delay = self.free_at - now
        time.sleep(delay)

    def pipe(self, source, target, from_browser, pair):
        try:
            while True:
                data = source.recv(8 * KIB if from_browser else 64 * KIB)
                if not data:
                    break
                if from_browser and data.startswith(b"HEAD /uploads/tus/") and self.fail_heads > 0:
                    self.fail_heads -= 1
                    source.sendall(BAD_GATEWAY)
                    break
                if from_browser and data.startswith(b"POST /uploads/tus/ ") and self.hold_posts:
                    time.sleep(self.hold_posts)
                if from_browser:
                    self.wait_for_link(len(data))
                target.sendall(data)
                if from_browser:
                    with self.lock:
                        self.sent += len(data)
        except OSError:
            pass
        finally:
            self.close_pair(pair)

    def close_pair(self, pair):
        for sock in pair:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        with self.lock:
            if pair in self.pairs:
                self.pairs.remove(pair)

    def cut(self, down_for=0.5):
        """Every connection closed at once, none accepted for `down_for` s."""
        self.down_until = time.monotonic() + down_for
        with self.lock:
            pairs, self.free_at = list(self.pairs), 0.0
        for pair in pairs:
            self.close_pair(pair)

    def close(self):
        self.closed = True
        self.listener.close()
        self.cut(0)


@pytest.fixture
def chunks(settings):
    settings.MEMPORTAL_UPLOAD_CHUNK_BYTES = CHUNK
    settings.MEMPORTAL_UPLOAD_STALL_SECONDS = 2
    return settings


@pytest.fixture
def link(live_server, chunks):
    made = []

    def make(rate=None):
        made.append(Link(int(live_server.url.rsplit(":", 1)[1]), rate))
        return made[-1]
    yield make
    for each in made:
        each.close()


@pytest.fixture
def page(strict_page):
    """The strict page (a CSP violation or a script error fails the test), logging what the tus
    requests got, for the message of a test that fails."""
    strict_page.tus_log = log = []

    def answered(response):
        if "/uploads/tus/" in response.url:
            log.append((response.request.method, response.url.rsplit("/", 2)[-2][:8], response.status,
                        response.headers.get("upload-offset")))

    def failed(request):
        if "/uploads/tus/" in request.url:
            log.append((request.method, request.url.rsplit("/", 2)[-2][:8], request.failure))
    strict_page.on("response", answered)
    strict_page.on("requestfailed", failed)
    return strict_page


def video_file(folder, name, size, seed=0):
    """A file of `size` bytes that opens as its extension's container says (the samples' heads)."""
    head = sample({".mkv": "sample-vp9-opus.mkv", ".mov": "sample-hevc.mov"}.get(Path(name).suffix,
                                                                                    "sample-h264-aac.mp4")).read_bytes()
    payload = bytes((seed + i) % 251 for i in range(size))
    content = padded(head, payload)[:size] if size > len(head) else head[:size]
    path = folder / name
    path.write_bytes(content)
    return path


def open_upload_page(page, base, user):
    sign_in(page, base, user.username, PASSWORD)
    page.wait_for_url(f"{base}/videos/")
    page.goto(f"{base}/videos/upload/")
    page.locator("form.enhanced").wait_for()


def row(page, name):
    return page.locator(".upload-row", has=page.locator(".upload-name", has_text=name)).last


def state_of(page, name):
    return row(page, name).get_attribute("data-state")


def wait_state(page, name, state, timeout=20_000):
    try:
        page.locator(f".upload-row[data-state={state}]", has=page.locator(".upload-name", has_text=name)).last.wait_for(
            timeout=timeout)
    except PlaywrightTimeout:
        raise AssertionError(f"{name} not {state} in {timeout / 1000:.0f} s: {state_of(page, name)}, "
                             f"{row(page, name).inner_text()!r}; the last tus requests: {page.tus_log[-20:]}") from None


def progress(page, name):
    return float(row(page, name).locator("progress").evaluate("p => p.value"))


def quiet(net, seconds=0.5):
    """Until the browser has sent nothing for `seconds`."""
    last, since = net.sent, time.monotonic()
    while time.monotonic() - since < seconds:
        time.sleep(0.05)
        if net.sent != last:
            last, since = net.sent, time.monotonic()


def offsets():
    return {u.filename: u.offset for u in PartialUpload.objects.filter(finished_at__isnull=True)}


def tus_creations(page):
    made = []
    page.on("request", lambda r: made.append(r.url) if r.method == "POST" and "/uploads/tus/" in r.url else None)
    return made


def drop_files(page, paths):
    """Drop these files on the upload page's drop zone, as a file manager would."""
    files = [{"name": path.name, "data": base64.b64encode(path.read_bytes()).decode()} for path in paths]
    transfer = page.evaluate_handle("""files => {
        const transfer = new DataTransfer();
        for (const file of files) {
            const bytes = Uint8Array.from(atob(file.data), c => c.charCodeAt(0));
            transfer.items.add(new File([bytes], file.name, {type: "video/mp4"}));
        }
        return transfer;
    }""", files)
    page.dispatch_event("#dropzone", "dragenter", {"dataTransfer": transfer})
    assert "dragging" in page.get_attribute("#dropzone", "class")
    page.dispatch_event("#dropzone", "drop", {"dataTransfer": transfer})


def test_three_files_one_refused_before_sending_progress_and_a_cut_link_resumed_from_the_servers_offset(
        page, link, member, api_key, tmp_path):
    net = link(rate=768 * KIB)
    open_upload_page(page, net.url, member)
    created = tus_creations(page)
    talk, demo = video_file(tmp_path, "talk.mp4", 1536 * KIB), video_file(tmp_path, "demo.mkv", 1536 * KIB, seed=7)
    page.set_input_files("#id_files", [str(talk), str(sample("not-a-video.mp4")), str(demo)])

    # Every file is a row at once; the one that is not a video is refused in the server's words.
    assert page.locator(".upload-row").count() == 3
    wait_state(page, "not-a-video.mp4", "refused")
    assert row(page, "not-a-video.mp4").inner_text().count(
        "“not-a-video.mp4” was not accepted: its content is not an MP4 video, whatever its name says.") == 1
    wait_state(page, "talk.mp4", "uploading")

    # Progress moves, with speed and time left.
    seen, figures = [], set()
    total = talk.stat().st_size + demo.stat().st_size
    before = net.sent
    while net.sent - before < 0.4 * total:
        seen.append(progress(page, "talk.mp4"))
        figures.add(row(page, "talk.mp4").locator(".upload-figures").inner_text())
        time.sleep(0.15)
    assert len(set(seen)) >= 3 and seen == sorted(seen) and seen[-1] < talk.stat().st_size
    assert any("/s" in text and "left" in text and "%" in text for text in figures), figures
    shot(page, "upload-progress")

    # The link is cut at about 40 %: the uploads resume from what the server has.
    net.cut(down_for=0.6)
    at_cut = net.sent
    time.sleep(0.4)
    kept = sum(offsets().values())
    assert 0.25 * total < kept < 0.6 * total, (kept, total)
    wait_state(page, "talk.mp4", "done")
    wait_state(page, "demo.mkv", "done")
    after_cut = net.sent - at_cut
    # What went after the cut is what the server lacked (and the requests' heads), not the files again.
    assert total - kept <= after_cut < total - kept + 48 * KIB, (after_cut, total - kept)
    assert after_cut < 0.75 * total

    # Two uploads made (the refused file never sent), each now a link to its video, queued.
    assert len(created) == 2
    videos = {v.original_name: v for v in Video.objects.all()}
    assert set(videos) == {"talk.mp4", "demo.mkv"}
    for name, path in (("talk.mp4", talk), ("demo.mkv", demo)):
        link_node = row(page, name).locator("a.upload-name")
        assert link_node.get_attribute("href") == f"/videos/{videos[name].pk}/"
        assert row(page, name).locator(".status").inner_text() == "Queued"
        assert videos[name].status == "queued" and videos[name].size == path.stat().st_size
        assert default_storage.open(videos[name].file.name).read() == path.read_bytes()
    assert not PartialUpload.objects.filter(finished_at__isnull=True).exists()
    no_serious_violations(page)


def test_pause_then_a_reload_mid_upload_offers_to_resume_and_the_same_file_goes_on(page, link, member, api_key,
                                                                                   tmp_path):
    net = link(rate=512 * KIB)
    open_upload_page(page, net.url, member)
    clip = video_file(tmp_path, "clip.mp4", 2 * 1024 * KIB)
    size = clip.stat().st_size
    page.set_input_files("#id_files", str(clip))
    wait_until(lambda: offsets().get("clip.mp4", 0) >= 0.25 * size, timeout=15, message="a quarter sent")

    # Pause: nothing more is sent, what the server has is kept; Resume goes on.
    row(page, "clip.mp4").get_by_role("button", name="Pause clip.mp4").click()
    wait_state(page, "clip.mp4", "paused")
    time.sleep(0.3)
    paused_at, kept = net.sent, offsets()["clip.mp4"]
    time.sleep(1.0)
    assert net.sent == paused_at and offsets()["clip.mp4"] == kept
    row(page, "clip.mp4").get_by_role("button", name="Resume clip.mp4").click()
    wait_until(lambda: offsets().get("clip.mp4", 0) >= 0.55 * size, timeout=15, message="more than half sent")

    # Leaving asks first; the reload goes ahead once confirmed.
    dialogs = []

    def confirm(dialog):
        dialogs.append(dialog.type)
        dialog.accept()
    page.on("dialog", confirm)
    page.reload()
    page.locator("form.enhanced").wait_for()
    assert dialogs == ["beforeunload"]

    # The page lists the unfinished upload with what the server has; the same file continues from there.
    entry = page.locator("#unfinished-list .upload-row", has_text="clip.mp4")
    entry.wait_for()
    shot(page, "upload-unfinished")
    shown = int(re.search(r"(\d+) % is on the portal", entry.inner_text()).group(1))
    quiet(net)  # the reload's cut request has ended, its bytes are committed
    kept = offsets()["clip.mp4"]
    assert 55 <= shown <= kept * 100 // size  # what the server had when the page asked
    before = net.sent
    page.set_input_files("#id_files", str(clip))
    wait_state(page, "clip.mp4", "done")
    resent = net.sent - before
    assert size - kept <= resent < size - kept + 32 * KIB, (resent, size - kept)
    assert page.locator("#unfinished").is_hidden()
    video = Video.objects.get()
    assert default_storage.open(video.file.name).read() == clip.read_bytes()


def test_cancel_removes_the_servers_bytes_and_a_session_that_ended_goes_on_after_signing_in(
        page, link, member, api_key, tmp_path):
    net = link(rate=512 * KIB)
    open_upload_page(page, net.url, member)
    first, second = video_file(tmp_path, "first.mp4", 1536 * KIB), video_file(tmp_path, "second.mov", 1024 * KIB, 3)
    page.set_input_files("#id_files", str(first))
    wait_until(lambda: offsets().get("first.mp4", 0) >= 2 * CHUNK, timeout=15, message="two chunks sent")
    upload = PartialUpload.objects.get()
    partial = Path(default_storage.path(f"partial/{upload.pk}.part"))
    assert partial.exists()
    row(page, "first.mp4").get_by_role("button", name="Cancel first.mp4").click()
    wait_state(page, "first.mp4", "cancelled")
    assert "the portal removed what it had" in row(page, "first.mp4").inner_text()
    assert not PartialUpload.objects.exists() and not partial.exists()

    # The session ends mid-upload: the row asks to sign in (another tab), then goes on by itself.
    page.set_input_files("#id_files", str(second))
    wait_until(lambda: offsets().get("second.mov", 0) >= CHUNK, timeout=15, message="a chunk sent")
    Session.objects.all().delete()
    wait_state(page, "second.mov", "signed-out")
    assert "Your session ended: sign in again, and the upload goes on from where it stopped." in (
        row(page, "second.mov").inner_text())
    quiet(net)  # the refused chunk's body has stopped flowing
    kept = offsets()["second.mov"]
    before = net.sent
    other = page.context.new_page()
    sign_in(other, net.url, member.username, PASSWORD)
    other.wait_for_url(f"{net.url}/videos/")
    other.close()
    wait_state(page, "second.mov", "done")
    assert net.sent - before < (second.stat().st_size - kept) + 64 * KIB  # not from zero (sign-in included)
    video = Video.objects.get()
    assert video.original_name == "second.mov" and default_storage.open(video.file.name).read() == second.read_bytes()


def test_duplicates_are_named_or_only_said_and_skipping_sends_nothing(page, link, member, teammate, api_key,
                                                                     tmp_path):
    net = link()
    mine = video_file(tmp_path, "mine.mp4", 300 * KIB)
    theirs = video_file(tmp_path, "theirs.mp4", 200 * KIB, seed=5)
    own = make_video(member, api_key.team, name="mine.mp4", title="Launch talk")
    Video.objects.filter(pk=own.pk).update(size=mine.stat().st_size, status="ready")
    teammates = make_video(teammate, api_key.team, name="theirs.mp4")
    Video.objects.filter(pk=teammates.pk).update(size=theirs.stat().st_size)
    open_upload_page(page, net.url, member)
    created = tus_creations(page)
    page.set_input_files("#id_files", str(mine))
    drop_files(page, [theirs])  # dropped on the zone rather than picked

    wait_state(page, "mine.mp4", "duplicate")
    text = row(page, "mine.mp4").inner_text()
    assert "You uploaded this file before: “Launch talk” (Ready," in text
    assert row(page, "mine.mp4").get_by_role("link", name="“Launch talk”").get_attribute("href") == f"/videos/{own.pk}/"
    wait_state(page, "theirs.mp4", "duplicate")
    text = row(page, "theirs.mp4").inner_text()
    assert "Your team already has this file." in text and "tom" not in text and "/videos/" not in (
        row(page, "theirs.mp4").inner_html())
    shot(page, "upload-duplicates")
    no_serious_violations(page)

    row(page, "mine.mp4").get_by_role("button", name="Skip mine.mp4").click()
    wait_state(page, "mine.mp4", "skipped")
    row(page, "theirs.mp4").get_by_role("button", name="Upload anyway theirs.mp4").click()
    wait_state(page, "theirs.mp4", "done")
    assert len(created) == 1 and Video.objects.filter(original_name="theirs.mp4", owner=member).exists()
    assert not Video.objects.filter(original_name="mine.mp4").exclude(pk=own.pk).exists()


def test_a_selection_over_the_limit_is_refused_before_sending_uploads_wait_for_the_in_flight_limit_and_375_px(
        page, link, member, api_key, tmp_path, chunks):
    chunks.MEMPORTAL_FILES_PER_SELECTION = 50
    chunks.MEMPORTAL_UPLOADS_IN_FLIGHT_PER_USER = 2
    client = Client()
    client.force_login(member)
    assert create(client, "old.mp4", 500 * KIB, fingerprint="mp1-elsewhere").status_code == 201
    PartialUpload.objects.update(updated_at=timezone.now() - timedelta(minutes=5))  # not being sent right now
    net = link()
    page.set_viewport_size({"width": 375, "height": 800})
    open_upload_page(page, net.url, member)
    created = tus_creations(page)
    unfinished = page.locator("#unfinished-list .upload-row", has_text="old.mp4")
    assert "0 % is on the portal" in unfinished.inner_text()

    # 51 files: every one refused, nothing sent.
    files = [str(video_file(tmp_path, f"part-{i:02}.mp4", 300 * KIB, seed=i)) for i in range(51)]
    page.set_input_files("#id_files", files)
    refused = page.locator(".upload-row[data-state=refused]")
    assert refused.count() == 51
    assert ("“part-00.mp4” was not accepted: one selection may hold at most 50 files: pick at most 50 at a time "
            "and try again.") in refused.first.inner_text()
    time.sleep(0.5)
    assert created == [] and PartialUpload.objects.count() == 1

    # Two: the first goes, the second waits, in the server's words, while the old upload counts;
    # discarding that one (the server removes it) lets the second go.
    page.get_by_role("button", name="Clear finished and refused").click()
    assert page.locator("#upload-rows .upload-row").count() == 0
    net.rate = 128 * KIB
    page.set_input_files("#id_files", files[:2])
    wait_state(page, "part-01.mp4", "waiting")
    row(page, "part-01.mp4").get_by_text("Waiting: you have 2 uploads under way, the most one person may have at "
                                         "once").wait_for()
    assert state_of(page, "part-00.mp4") == "uploading"
    no_serious_violations(page)
    shot(page, "upload-375px")
    unfinished.get_by_role("button", name="Discard old.mp4").click()
    unfinished.wait_for(state="detached")
    assert not PartialUpload.objects.filter(filename="old.mp4").exists()
    net.rate = None
    wait_state(page, "part-00.mp4", "done")
    wait_state(page, "part-01.mp4", "done")
    assert len(created) == 2

    # At 375 px nothing is wider than the screen, and every control is on it.
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    for control in [page.locator("#id_files"), page.locator("#id_title"), page.locator("a.upload-name").first]:
        box = control.bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= 375
    no_serious_violations(page)


def test_with_javascript_off_the_plain_form_uploads(browser_page, live_server, member, api_key):
    context = browser_page.context.browser.new_context(java_script_enabled=False)
    page = context.new_page()
    try:
        sign_in(page, live_server.url, member.username, PASSWORD)
        page.wait_for_url(f"{live_server.url}/videos/")
        page.goto(f"{live_server.url}/videos/upload/")
        assert page.locator("#resumable").is_hidden() and page.locator("#upload-submit").is_visible()
        page.set_input_files("#id_files", [str(sample("sample-h264-aac.mp4")), str(sample("not-a-video.mp4"))])
        page.click("#upload-submit")
        page.wait_for_url(f"{live_server.url}/videos/")
        text = page.inner_text("main")
        assert "1 video stored and queued for memories.ai." in text
        assert "“not-a-video.mp4” was not accepted: its content is not an MP4 video" in text
        assert Video.objects.get().original_name == "sample-h264-aac.mp4"
    finally:
        context.close()


# --- the review's findings (issue 12): the browser's side -------------------------------------

def browser_fingerprint(path):
    """What upload.js's fingerprintOf makes of this file: name, size, last change (ms) and the
    SHA-256 of three 64 KiB samples (start, middle, end), its first 16 bytes."""
    data, modified = path.read_bytes(), int(path.stat().st_mtime * 1000)
    starts = [0, max(0, len(data) // 2 - 32 * KIB), max(0, len(data) - 64 * KIB)]
    samples = b"".join(data[start:start + 64 * KIB] for start in dict.fromkeys(starts))
    label = "\0".join([path.name, str(len(data)), str(modified)]).encode()
    return f"mp1-{len(data)}-{modified}-{hashlib.sha256(label + samples).digest()[:16].hex()}"


def listen_to_announcements(page):
    page.evaluate("""() => {
        window.announced = [];
        const node = document.getElementById("upload-announcer");
        new MutationObserver(() => window.announced.push(node.textContent)).observe(node, {childList: true,
            characterData: true, subtree: true});
    }""")


def focused_label(page):
    return page.evaluate("document.activeElement && document.activeElement.getAttribute('aria-label')")


def test_a_failed_resume_check_is_asked_again_never_a_new_upload_and_the_link_is_announced(
        page, link, member, api_key, tmp_path):
    net = link(rate=512 * KIB)
    open_upload_page(page, net.url, member)
    created = tus_creations(page)
    listen_to_announcements(page)
    clip = video_file(tmp_path, "clip.mp4", 1536 * KIB)
    size = clip.stat().st_size
    page.set_input_files("#id_files", str(clip))
    wait_until(lambda: offsets().get("clip.mp4", 0) >= 2 * CHUNK, timeout=15, message="two chunks sent")

    # The link drops, and the gateway answers the resume checks 502 while the web process restarts.
    net.fail_heads = 2
    net.cut(down_for=0.3)
    at_cut = net.sent
    time.sleep(0.4)
    kept = offsets()["clip.mp4"]
    wait_state(page, "clip.mp4", "done", timeout=40_000)
    assert net.fail_heads == 0  # both resume checks were refused
    assert len(created) == 1, page.tus_log  # asked again: no second upload, nothing sent again from zero
    assert net.sent - at_cut < size - kept + 64 * KIB
    video = Video.objects.get()
    assert default_storage.open(video.file.name).read() == clip.read_bytes()
    assert not PartialUpload.objects.filter(finished_at__isnull=True).exists()
    announced = page.evaluate("window.announced")
    assert any(text.startswith("clip.mp4: The connection dropped") for text in announced), announced
    assert "clip.mp4: the link is back, the upload goes on." in announced


def test_cancelling_a_recognised_upload_still_waiting_removes_it_and_one_finished_meanwhile_is_its_video(
        page, link, member, api_key, tmp_path):
    busy = [video_file(tmp_path, f"busy-{i}.mp4", 1536 * KIB, seed=i) for i in range(3)]
    waiting, elsewhere = video_file(tmp_path, "waiting.mp4", 512 * KIB, 11), video_file(tmp_path, "elsewhere.mp4",
                                                                                      512 * KIB, 12)
    client = Client()
    client.force_login(member)
    urls = {}
    for path in (waiting, elsewhere):  # begun on this machine before (a crash, a closed tab)
        os.utime(path, (1_700_000_000, 1_700_000_000))
        content = path.read_bytes()
        urls[path.name] = create(client, path.name, len(content), fingerprint=browser_fingerprint(path))["Location"]
        assert patch(client, urls[path.name], 0, content[:CHUNK]).status_code == 204
    PartialUpload.objects.update(updated_at=timezone.now() - timedelta(minutes=5))
    gone = Path(default_storage.path(f"partial/{PartialUpload.objects.get(filename='waiting.mp4').pk}.part"))
    net = link(rate=96 * KIB)
    open_upload_page(page, net.url, member)
    page.locator("#unfinished-list .upload-row").nth(1).wait_for()
    page.set_input_files("#id_files", [str(path) for path in busy])
    for path in busy:
        wait_state(page, path.name, "uploading")

    # Both recognised; three uploads run already, so they wait their turn (nothing of theirs sent yet).
    page.set_input_files("#id_files", [str(waiting), str(elsewhere)])
    for name in ("waiting.mp4", "elsewhere.mp4"):
        wait_state(page, name, "waiting")
        assert "Recognised: it goes on from 25 %." in row(page, name).inner_text()
    send_in_chunks(client, urls["elsewhere.mp4"], elsewhere.read_bytes(), CHUNK, start=CHUNK)  # finished elsewhere

    row(page, "waiting.mp4").get_by_role("button", name="Cancel waiting.mp4").click()
    wait_state(page, "waiting.mp4", "cancelled")
    assert "the portal removed what it had" in row(page, "waiting.mp4").inner_text()
    assert not PartialUpload.objects.filter(filename="waiting.mp4").exists() and not gone.exists()

    # A cancel that comes after the last byte: it is a video now, and the row says so with its link.
    row(page, "elsewhere.mp4").get_by_role("button", name="Cancel elsewhere.mp4").click()
    wait_state(page, "elsewhere.mp4", "done")
    video = Video.objects.get(original_name="elsewhere.mp4")
    assert row(page, "elsewhere.mp4").locator("a.upload-name").get_attribute("href") == f"/videos/{video.pk}/"
    for path in busy:
        assert state_of(page, path.name) == "uploading"


def test_an_upload_another_tab_is_sending_is_said_so_kept_unless_confirmed_and_goes_on_here_when_it_stops(
        page, link, member, api_key, tmp_path):
    net = link(rate=256 * KIB)
    open_upload_page(page, net.url, member)
    created = tus_creations(page)
    clip = video_file(tmp_path, "clip.mp4", 2048 * KIB)
    page.set_input_files("#id_files", str(clip))
    wait_until(lambda: offsets().get("clip.mp4", 0) >= 2 * CHUNK, timeout=15, message="two chunks sent")

    other = page.context.new_page()  # a second tab, signed in too
    other.tus_log = []
    created_there = tus_creations(other)
    other.goto(f"{net.url}/videos/upload/")
    other.locator("form.enhanced").wait_for()
    entry = other.locator("#unfinished-list .upload-row", has_text="clip.mp4")
    entry.wait_for()
    assert "being sent from another tab or window" in entry.inner_text()
    entry.get_by_role("button", name="Discard clip.mp4").click()
    assert "Discarding it here stops it there" in entry.inner_text()
    entry.get_by_role("button", name="Keep it clip.mp4").click()
    before = offsets()["clip.mp4"]
    wait_until(lambda: offsets().get("clip.mp4", 0) > before, timeout=15, message="the first tab going on")
    assert state_of(page, "clip.mp4") == "uploading"

    # The same file picked in the second tab waits while the first sends it, and goes on once it stops.
    other.set_input_files("#id_files", str(clip))
    wait_state(other, "clip.mp4", "held")
    assert "being sent from another tab or window" in row(other, "clip.mp4").inner_text()
    row(page, "clip.mp4").get_by_role("button", name="Pause clip.mp4").click()
    wait_state(page, "clip.mp4", "paused")
    wait_state(other, "clip.mp4", "done", timeout=40_000)
    assert len(created) == 1 and created_there == []
    video = Video.objects.get()
    assert default_storage.open(video.file.name).read() == clip.read_bytes()


def test_pause_while_the_upload_is_being_made_keeps_it_and_the_keyboard_focus_follows_pause_and_resume(
        page, link, member, api_key, tmp_path):
    net = link(rate=512 * KIB)
    open_upload_page(page, net.url, member)
    created = tus_creations(page)
    clip = video_file(tmp_path, "clip.mp4", 1024 * KIB)
    net.hold_posts = 1.5  # the creation takes a while to get through
    with page.expect_request(lambda r: r.method == "POST" and "/uploads/tus/" in r.url):
        page.set_input_files("#id_files", str(clip))

    # Pressed from the keyboard while the upload is being made: paused, the focus on Resume.
    row(page, "clip.mp4").get_by_role("button", name="Pause clip.mp4").focus()
    page.keyboard.press("Enter")
    wait_state(page, "clip.mp4", "paused")
    assert focused_label(page) == "Resume clip.mp4"
    wait_until(lambda: PartialUpload.objects.exists(), timeout=10, message="the creation arrived")
    quiet(net)
    net.hold_posts = 0
    assert offsets() == {"clip.mp4": 0}

    page.keyboard.press("Enter")  # Resume: the upload the creation made goes on, not a second one
    wait_until(lambda: offsets().get("clip.mp4", 0) >= CHUNK, timeout=15, message="a chunk sent")
    assert focused_label(page) == "Pause clip.mp4"
    wait_state(page, "clip.mp4", "done")
    assert len(created) == 1, page.tus_log
    assert PartialUpload.objects.count() == 1 and Video.objects.count() == 1
