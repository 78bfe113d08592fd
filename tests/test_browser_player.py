"""In a real browser (Debian's Chromium): the video page plays the stored H.264 MP4 through the
capped range view, a seek makes the browser ask for a range answered 206, under the strict CSP,
axe-clean, and fitting 375 px."""

import re

import pytest

from uploads import lifecycle
from uploads.models import Video
from uploads.probe import probe

from .browser import fits_375px, no_serious_violations, sign_in
from .conftest import PASSWORD
from .test_browser import shot
from .test_thumbnails import long_mp4

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
CAP = 256 * 1024


def sent(content_range):
    """How many bytes a 206 carried, from its Content-Range ("bytes 0-262143/9087133")."""
    first, last = map(int, re.fullmatch(r"bytes (\d+)-(\d+)/\d+", content_range).groups())
    return last - first + 1


def test_the_player_plays_and_a_seek_is_a_range_answered_206(strict_page, live_server, member, team, settings,
                                                             tmp_path):
    settings.MEMPORTAL_MEDIA_RANGE_BYTES = CAP  # 9 MB in 256 KiB answers: the browser must come back
    from django.core.files.base import ContentFile

    content = long_mp4(tmp_path / "long.mp4")  # 10 s of H.264, a keyframe a second
    video = Video(owner=member, team=team, original_name="all-hands.mp4", content_type="video/mp4",
                  size=len(content), sha256="0" * 64, title="All-hands")
    video.file.save("all-hands.mp4", ContentFile(content), save=False)
    video.save()
    lifecycle.record_media(video.pk, probe(video.file.path))  # what the relay worker's probe leaves
    video.refresh_from_db()
    assert video.thumbnail

    page = strict_page
    answers = []
    page.on("response", lambda response: answers.append(
        (response.status, response.request.headers.get("range", ""), response.headers.get("content-range", "")))
        if "/media/" in response.url else None)
    sign_in(page, live_server.url, member.username, PASSWORD)
    page.wait_for_url(f"{live_server.url}/videos/")
    page.goto(f"{live_server.url}/videos/{video.pk}/")

    player = page.locator("video#player")
    player.wait_for()
    page.wait_for_function("() => document.getElementById('player').readyState >= 1")  # its metadata came
    assert page.evaluate("Math.round(document.getElementById('player').duration)") == 10
    page.evaluate("() => { const p = document.getElementById('player'); p.muted = true; return p.play(); }")
    # It plays: the clock moves.
    page.wait_for_function("() => document.getElementById('player').currentTime > 0.3", timeout=30_000)
    page.evaluate("document.getElementById('player').pause()")
    assert answers and all(status == 206 and length for status, _, length in answers)
    assert all(sent(content_range) <= CAP for _, _, content_range in answers)

    before = len(answers)
    page.evaluate("""() => new Promise(done => {
        const p = document.getElementById('player');
        p.addEventListener('seeked', done, {once: true});
        p.currentTime = 8;
    })""")

    def far():  # the answers to ranges asked after the seek, from past the file's middle
        return [(status, asked) for status, asked, _ in answers[before:]
                if asked.startswith("bytes=") and int(asked[6:].split("-")[0]) > len(content) // 2]

    for _ in range(100):  # Playwright reports responses as they come: give the last one a moment
        if far():
            break
        page.wait_for_timeout(100)
    assert far() and all(status == 206 for status, _ in far()), answers
    assert page.evaluate("document.getElementById('player').currentTime") >= 7.9

    no_serious_violations(page)
    fits_375px(page)
    shot(page, "video-player")


def test_a_format_that_does_not_play_shows_its_still_and_a_download_link(strict_page, live_server, member,
                                                                       team):
    from django.core.files.base import ContentFile

    from .conftest import sample

    content = sample("sample-hevc.mov").read_bytes()
    video = Video(owner=member, team=team, original_name="keynote.mov", content_type="video/quicktime",
                  size=len(content), sha256="0" * 64)
    video.file.save("keynote.mov", ContentFile(content), save=False)
    video.save()
    lifecycle.record_media(video.pk, probe(video.file.path))

    page = strict_page
    sign_in(page, live_server.url, member.username, PASSWORD)
    page.wait_for_url(f"{live_server.url}/videos/")
    page.goto(f"{live_server.url}/videos/{video.pk}/")
    assert "This format does not play in the browser" in page.inner_text(".player")
    page.wait_for_function("() => document.querySelector('.player-fallback img').naturalWidth === 320")
    with page.expect_download() as download:
        page.click(".player-fallback a")
    assert download.value.suggested_filename == "keynote.mov"
    no_serious_violations(page)
    fits_375px(page)
