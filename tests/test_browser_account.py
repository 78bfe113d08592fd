"""In a real browser: the notice of a video that became ready while a page is open (no reload), the
settings page's browser-zone button, and the account and error pages: axe-core finds no serious
violation, nothing breaks the CSP, all fit 375 px (issue 13)."""

import pytest

from uploads import reports
from uploads.lifecycle import Source
from uploads.models import Profile, Video

from .browser import fits_375px, no_serious_violations, sign_in
from .conftest import PASSWORD, make_video
from .test_browser import shot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
S = Video.Status


def processing(owner, team, name, video_no):
    return make_video(owner, team, status=S.PROCESSING, video_no=video_no, remote_status="UNPARSE", name=name)


def becomes(video, word):
    """What memories.ai's callback does with PARSE (ready) or FAIL (failed)."""
    assert reports.apply_remote_status(video.pk, word, Source.CALLBACK) == "applied"


def signed_in(page, live_server, user):
    sign_in(page, live_server.url, user.username, PASSWORD)
    page.wait_for_url(f"{live_server.url}/videos/")


def looks_right(page):
    no_serious_violations(page)
    fits_375px(page)


def test_a_notice_says_a_video_is_ready_without_a_reload(strict_page, live_server, member, team):
    page = strict_page
    page.clock.install()  # the poll's timers: moved on below instead of waited for
    clip = processing(member, team, "All-hands.mp4", "VI1")
    other = processing(member, team, "Retro.mp4", "VI2")
    signed_in(page, live_server, member)
    page.goto(f"{live_server.url}/account/")
    page.evaluate("window.marker = 1")
    polls = []
    page.on("request", lambda request: polls.append(request.url) if "/notices/" in request.url else None)

    becomes(clip, "PARSE")
    page.clock.run_for(16_000)
    notice = page.locator(".notice").filter(has_text="All-hands.mp4 is ready.")
    notice.wait_for()
    link = notice.get_by_role("link", name="All-hands.mp4")
    assert link.get_attribute("href") == f"/videos/{clip.pk}/"
    assert page.title() == "(1) Settings · memportal"
    assert page.locator("#notices[role=status][aria-live=polite] .notice").count() == 1
    assert page.evaluate("window.marker") == 1, "no reload"
    looks_right(page)
    shot(page, "notice")

    becomes(other, "FAIL")
    page.clock.run_for(16_000)
    page.locator(".notice-failed").filter(has_text="Retro.mp4 could not be processed").wait_for()
    assert page.title() == "(2) Settings · memportal"
    page.get_by_role("button", name="Dismiss the notice about Retro.mp4").click()
    assert page.title() == "(1) Settings · memportal" and page.locator(".notice").count() == 1
    assert page.evaluate("window.marker") == 1

    # The notice stays on the tab's next page; visiting the video clears it.
    page.click("text=My videos")
    page.locator(".notice").filter(has_text="All-hands.mp4").wait_for()
    assert page.title().startswith("(1) ")
    page.locator(".notice").get_by_role("link", name="All-hands.mp4").click()
    page.wait_for_url(f"{live_server.url}/videos/{clip.pk}/")
    assert page.locator(".notice").count() == 0 and not page.title().startswith("(")

    # Signed out elsewhere: the next poll gets 401 and the page stops asking, quietly.
    page.context.clear_cookies()
    polls.clear()
    page.clock.run_for(20_000)
    page.wait_for_timeout(300)
    page.clock.run_for(120_000)
    page.wait_for_timeout(300)
    assert len(polls) == 1 and page.locator(".notice").count() == 0


def test_the_poll_slows_down_when_nothing_happens_and_stops_while_hidden(strict_page, live_server, member):
    page = strict_page
    page.clock.install()
    signed_in(page, live_server, member)
    polls = []
    page.on("request", lambda request: polls.append(1) if "/notices/" in request.url else None)
    page.goto(f"{live_server.url}/account/")
    for wait in (15_000, 22_500, 33_750, 50_625, 60_000, 60_000):
        before = len(polls)
        page.clock.run_for(wait - 1_500)
        page.wait_for_timeout(200)
        assert len(polls) == before, f"not before {wait} ms"
        page.clock.run_for(3_000)
        page.wait_for_timeout(300)
        assert len(polls) == before + 1, f"after {wait} ms"
    # A hidden tab is not asked for; back on it, it asks at once.
    visibility = "Object.defineProperty(document, 'hidden', {value: %s, configurable: true});" \
                 "document.dispatchEvent(new Event('visibilitychange'))"
    page.evaluate(visibility % "true")
    before = len(polls)
    page.clock.run_for(300_000)
    page.wait_for_timeout(200)
    assert len(polls) == before
    page.evaluate(visibility % "false")
    page.wait_for_timeout(300)
    assert len(polls) == before + 1


def test_the_settings_page_offers_the_browsers_zone(strict_page, live_server, member):
    page = strict_page
    cdp = page.context.new_cdp_session(page)
    cdp.send("Emulation.setTimezoneOverride", {"timezoneId": "Europe/Paris"})
    signed_in(page, live_server, member)
    page.click("nav >> text=Settings")
    page.wait_for_url(f"{live_server.url}/account/")
    assert page.locator("nav a[aria-current=page]").inner_text() == "Settings"
    assert "Times are shown in UTC" in page.inner_text("main")
    looks_right(page)
    button = page.get_by_role("button", name="Use my browser's zone (Europe/Paris)")
    button.click()
    assert page.locator("#id_time_zone").input_value() == "Europe/Paris"
    page.get_by_label("Email me when a video of mine is ready").check()
    shot(page, "settings")
    page.click("button:has-text('Save settings')")
    assert "Your settings are saved." in page.inner_text("main")
    assert "Times are shown in Europe/Paris" in page.inner_text("main")
    profile = Profile.objects.get(user=member)
    assert (profile.time_zone, profile.email_when_ready) == ("Europe/Paris", True)


def test_the_account_and_error_pages_are_accessible_and_fit(strict_page, live_server, member):
    page = strict_page
    signed_in(page, live_server, member)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.goto(f"{live_server.url}/account/")
    page.get_by_role("button", name="Save settings").focus()
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none", "focus is visible"
    page.goto(f"{live_server.url}/accounts/password_change/")
    looks_right(page)
    page.click("button:has-text('Change my password')")  # empty: every field says what is missing
    assert "There is a problem" in page.inner_text("main")
    looks_right(page)
    page.fill("#id_old_password", PASSWORD)
    page.fill("#id_new_password1", "another-long-password-77")
    page.fill("#id_new_password2", "another-long-password-77")
    page.click("button:has-text('Change my password')")
    assert "Your password was changed" in page.inner_text("main")
    looks_right(page)
    page.goto(f"{live_server.url}/no-such-page/")
    assert "Page not found" in page.inner_text("main")
    looks_right(page)
    page.click("text=Sign out")
    assert "You are signed out" in page.inner_text("main")
    looks_right(page)
    shot(page, "signed-out")
    page.goto(f"{live_server.url}/no-such-page/")
    looks_right(page)
    page.locator("main").get_by_role("link", name="Sign in").click()
    page.wait_for_url(f"{live_server.url}/accounts/login/**")
