"""In a real browser (Debian's Chromium): a ready video's transcript, fetched from the emulator by the
worker, shows on its page (what is said and what is seen); clicking a line's time puts the player at
that second; typing in the search box keeps the matching lines of both; under the strict CSP, axe-clean, and fitting 375 px."""

import io

import pytest
from django.core.files.base import ContentFile

from uploads import lifecycle, memories, transcripts
from uploads.models import Video, VideoTranscript
from uploads.probe import probe

from .browser import fits_375px, no_serious_violations, sign_in
from .conftest import PASSWORD, TEST_KEY
from .test_browser import shot
from .test_thumbnails import long_mp4
from .test_transcripts import fetch_all

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
NAME = "Harbour crane tour.mp4"  # the emulator's content from the name: lines at 0, 3, 6 and 9 s


def crane_video(emulator, owner, team, api_key, content):
    """A ready "Harbour crane tour" of `content` (10 s of H.264 that the player plays), uploaded to
    the emulator for real, probed as the worker would, and speaking (the emulator says its lines)."""
    place = lifecycle.place_for_team(team.pk)
    sent = memories.upload(TEST_KEY, io.BytesIO(content), size=len(content), filename=NAME, content_type="video/mp4",
                           callback_url=None, place=place)
    emulator.set_status(sent.video_no, "PARSE", send_callback=False)
    video = Video(owner=owner, team=team, original_name=NAME, content_type="video/mp4", size=len(content),
                  sha256="0" * 64, title="Harbour crane tour", status=Video.Status.READY, video_no=sent.video_no,
                  api_key=api_key, api_family=place.family, namespace=place.namespace)
    video.file.save("crane.mp4", ContentFile(content), save=False)
    video.save()
    lifecycle.record_media(video.pk, probe(video.file.path))
    Video.objects.filter(pk=video.pk).update(has_audio=True)
    return video


def test_click_a_line_to_seek_and_filter_the_lines(strict_page, live_server, member, team, api_key, emulator,
                                                   settings, tmp_path):
    settings.MEMPORTAL_UNDERSTANDING = True
    video = crane_video(emulator, member, team, api_key, long_mp4(tmp_path / "long.mp4"))
    assert transcripts.sweep_transcripts() == 1
    fetch_all()
    assert len(VideoTranscript.objects.get(video=video).lines) == 4

    page = strict_page
    sign_in(page, live_server.url, member.username, PASSWORD)
    page.wait_for_url(f"{live_server.url}/videos/")
    page.goto(f"{live_server.url}/videos/{video.pk}/")
    page.locator("#transcript").wait_for()
    page.wait_for_function("() => document.getElementById('player').readyState >= 1")
    lines = page.locator("#transcript-lines li")
    assert lines.count() == 4
    assert "Thanks for watching." in lines.nth(3).inner_text()

    page.evaluate("document.getElementById('player').muted = true")
    page.locator("#transcript-lines button[data-seek='6.0']").click()
    page.wait_for_function("() => document.getElementById('player').currentTime >= 6")
    page.evaluate("document.getElementById('player').pause()")
    at = page.evaluate("document.getElementById('player').currentTime")
    assert 6 <= at < 7.5, at  # that second (it plays on from there)

    search = page.locator("#transcript-filter")
    assert search.is_visible()  # shown by transcript.js; without JavaScript it stays hidden
    search.fill("thanks")
    page.wait_for_function("() => document.querySelectorAll('#transcript-lines li:not([hidden])').length === 1")
    assert page.locator("#transcript-lines li:not([hidden])").inner_text().endswith("Thanks for watching.")
    assert "1 of 7 lines" in page.locator("#transcript-count").inner_text()  # 4 said, 3 seen
    search.fill("title card")  # what is seen is searched too
    page.wait_for_function("() => document.querySelectorAll('#transcript-scenes li:not([hidden])').length === 1")
    assert page.locator("#transcript-lines li:not([hidden])").count() == 0
    assert "A title card reads Harbour crane tour." in page.locator("#transcript-scenes li:not([hidden])").inner_text()
    search.fill("")
    page.wait_for_function("() => document.querySelectorAll('#transcript-lines li:not([hidden])').length === 4")
    page.locator("#transcript-scenes button[data-seek='8.0']").click()  # a time of what is seen seeks too
    page.wait_for_function("() => document.getElementById('player').currentTime >= 8")
    page.evaluate("document.getElementById('player').pause()")
    assert page.locator(".chapters li").count() == 3  # the summary's chapters, each a time to seek to
    page.locator(".chapters button[data-seek='4.0']").click()  # back from 8 s to 4 s
    page.wait_for_function("() => { const t = document.getElementById('player').currentTime; return t >= 4 && t < 5.5; }")
    page.evaluate("document.getElementById('player').pause()")

    no_serious_violations(page)
    fits_375px(page)
    page.locator("#transcript").scroll_into_view_if_needed()
    shot(page, "video-transcript")
