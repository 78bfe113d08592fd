"""Every portal page, in a real browser: axe-core finds no serious or critical violation, nothing
is wider than 375 px, and no Content-Security-Policy violation (strict_page fails the test on one).
The pages' own behaviour is tested beside them (test_browser_library, test_browser_account, ...)."""

import pytest

from uploads.models import Video

from .browser import fits_375px, no_serious_violations, sign_in
from .conftest import PASSWORD, make_video

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def check(page, url, expect_status=200):
    answer = page.goto(url)
    assert answer.status == expect_status, url
    first = "document.querySelector('a[href], button, input:not([type=hidden]), select, textarea')"
    assert page.evaluate(f"{first}.textContent.trim()") == "Skip to content", url  # first in keyboard order
    page.focus("a.skip-link")
    assert page.evaluate("document.querySelector('a.skip-link').getBoundingClientRect().height") > 10, url
    no_serious_violations(page)
    fits_375px(page)


def test_every_page_signed_out(strict_page, live_server):
    for path in ("/accounts/login/", "/accounts/password_reset/", "/accounts/password_reset/done/"):
        check(strict_page, live_server.url + path)


def test_every_page_of_a_member_and_a_team_admin(strict_page, live_server, member, team_admin, team, api_key):
    page = strict_page
    base = live_server.url
    long_name = "a-very-long-file-name-without-any-spaces-that-must-wrap-on-a-phone-screen-2026-12-02.mp4"
    video = make_video(member, team, name=long_name, status=Video.Status.FAILED)
    make_video(member, team, name="queued.mp4")
    sign_in(page, base, member.username, PASSWORD)
    page.wait_for_url(f"{base}/videos/")
    for path in ("/videos/", "/videos/?q=nothing", "/videos/upload/", f"/videos/{video.pk}/",
                 f"/videos/{video.pk}/delete/", "/account/", "/accounts/password_change/"):
        check(page, base + path)
    check(page, base + "/videos/no-such-page/", 404)
    check(page, base + "/videos/team/", 404)
    check(page, base + "/videos/states/", 405)  # a form's address, opened
    page.goto(base + "/videos/")
    page.check(f"#pick-{video.pk}")
    page.click("button:has-text('Delete selected')")
    no_serious_violations(page)
    fits_375px(page)
    page.goto(base + "/videos/")
    page.click("text=Sign out")
    no_serious_violations(page)
    fits_375px(page)

    sign_in(page, base, team_admin.username, PASSWORD)
    page.wait_for_url(f"{base}/videos/")
    check(page, base + "/videos/team/")
    check(page, base + f"/videos/team/?member={member.pk}&sort=state")
