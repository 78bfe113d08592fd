"""The video library in a real browser (Playwright, Debian's Chromium): sort, filter, search and
pages from the URL; a video becoming ready with no reload (on the list and on its page); queue
places; bulk retry, cancel and delete; team videos and their isolation; without JavaScript. Every
page is checked with axe-core, at 375 px, and any CSP violation fails the test."""

from datetime import timedelta

import pytest
from django.utils import timezone

from uploads import reports
from uploads.lifecycle import Source
from uploads.models import Video

from .browser import fits_375px, no_serious_violations, sign_in
from .conftest import PASSWORD, make_video
from .test_browser import shot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
S = Video.Status


def add(owner, team, name, *, status=S.READY, minutes_ago=0, size=1000, **extra):
    video = Video(owner=owner, team=team, original_name=name, content_type="video/mp4", size=size, sha256="0" * 64,
                  status=status, created_at=timezone.now() - timedelta(minutes=minutes_ago), **extra)
    video.save()
    return video


def listed(page):
    return page.locator("td.name > a").all_inner_texts()


def signed_in(page, base, user):
    sign_in(page, base, user.username, PASSWORD)
    page.wait_for_url(f"{base}/videos/")


def checked(page):
    no_serious_violations(page)
    fits_375px(page)


def test_sort_filter_search_and_pages_come_from_the_url(strict_page, live_server, member, team, api_key):
    page = strict_page
    for i in range(30):
        add(member, team, f"clip-{i:02d}.mp4", size=1000 + i, minutes_ago=100 - i,
            status=S.READY if i % 2 else S.FAILED, duration_seconds=60 + i)
    signed_in(page, live_server.url, member)
    assert listed(page)[0] == "clip-29.mp4" and len(listed(page)) == 25
    checked(page)
    shot(page, "my-videos-pages")
    page.set_viewport_size({"width": 375, "height": 800})  # a phone: the name keeps room to be read
    assert page.evaluate("document.querySelector('td.name').getBoundingClientRect().width") > 150
    shot(page, "my-videos-375px")
    page.set_viewport_size({"width": 1440, "height": 900})
    page.click("text=Next →")
    assert listed(page) == [f"clip-{i:02d}.mp4" for i in range(4, -1, -1)] and "page=2" in page.url
    # The form: search and a state, sorted by name; the URL holds it all.
    page.goto(f"{live_server.url}/videos/")
    page.fill("#id_q", "clip-1")
    page.select_option("#id_state", "ready")
    page.select_option("#id_sort", "name-desc")
    page.click("button:has-text('Show')")
    assert listed(page) == [f"clip-{i}.mp4" for i in (19, 17, 15, 13, 11)]
    assert "q=clip-1" in page.url and "state=ready" in page.url and "sort=name-desc" in page.url
    shared = page.url
    page.goto(shared)  # a bookmarked or shared view shows the same
    assert listed(page) == [f"clip-{i}.mp4" for i in (19, 17, 15, 13, 11)]
    page.click("th >> text=Size")  # a column header sorts by it
    assert listed(page)[0] == "clip-19.mp4" and "sort=largest" in page.url
    assert page.get_attribute("th:has-text('Size')", "aria-sort") == "descending"
    page.fill("#id_q", "nothing like this")
    page.click("button:has-text('Show')")
    assert "No video matches these filters." in page.inner_text("main")
    checked(page)


def test_a_video_becomes_ready_without_a_reload_on_the_list_and_on_its_page(strict_page, live_server, member, team,
                                                                           api_key):
    page = strict_page
    on_list = make_video(member, team, name="on-list.mp4", status=S.PROCESSING, video_no="VI-list")
    on_page = make_video(member, team, name="on-page.mp4", status=S.PROCESSING, video_no="VI-page")
    signed_in(page, live_server.url, member)
    page.evaluate("window.marker = 1")
    reports.apply_remote_status(on_list.pk, "PARSE", Source.CALLBACK, video_no="VI-list")
    page.locator(f"tr[data-video-id='{on_list.pk}'] .status-ready").wait_for(timeout=15_000)
    assert page.evaluate("window.marker") == 1  # no reload
    assert "“on-list.mp4” is now Ready." in page.inner_text("#live-announcer")

    page.goto(f"{live_server.url}/videos/{on_page.pk}/")
    page.evaluate("window.marker = 2")
    reports.apply_remote_status(on_page.pk, "PARSE", Source.CALLBACK, video_no="VI-page")
    page.locator("#video-live .status-ready").wait_for(timeout=15_000)
    page.locator("text=memories.ai finished processing: the video is ready.").wait_for()
    assert page.evaluate("window.marker") == 2
    checked(page)


def test_queued_videos_show_their_place_and_the_live_line_keeps_it(strict_page, live_server, member, team, api_key,
                                                                   settings):
    settings.MEMPORTAL_UPLOAD_INTERVAL_SECONDS = 60
    page = strict_page
    first = add(member, team, "first.mp4", status=S.QUEUED, minutes_ago=2)
    second = add(member, team, "second.mp4", status=S.QUEUED, minutes_ago=1)
    signed_in(page, live_server.url, member)
    assert page.inner_text(f"tr[data-video-id='{first.pk}'] [data-line]") == \
        "Next in Team One's queue, to be sent shortly."
    assert page.inner_text(f"tr[data-video-id='{second.pk}'] [data-line]") == \
        "2nd in Team One's queue, to be sent in about 1 min."
    Video.objects.filter(pk=first.pk).update(status=S.SENDING)  # the first goes: the second is next
    page.locator(f"tr[data-video-id='{second.pk}'] [data-line]", has_text="Next in Team One's queue").wait_for(
        timeout=15_000)
    # Only what changed is announced: the first went, the second is still queued.
    assert page.inner_text("#live-announcer") == "“first.mp4” is now Sending to memories.ai."


def test_bulk_retry_cancel_and_delete_with_a_page_that_names_how_many(strict_page, live_server, member, team,
                                                                      api_key):
    page = strict_page
    failed = [make_video(member, team, name=f"failed-{i}.mp4", status=S.FAILED) for i in range(2)]
    queued = add(member, team, "queued.mp4", status=S.QUEUED)
    signed_in(page, live_server.url, member)
    for video in failed:
        page.check(f"#pick-{video.pk}")
    page.click("button:has-text('Retry selected')")
    page.locator("h1:has-text('Retry 2 videos?')").wait_for()
    checked(page)
    page.click("button:has-text('Retry 2 videos')")
    page.wait_for_url(f"{live_server.url}/videos/")
    assert "2 videos queued again." in page.inner_text("main")
    assert set(Video.objects.filter(pk__in=[v.pk for v in failed]).values_list("status", flat=True)) == {S.QUEUED}

    page.check("#pick-all")  # the page's every video, then all but one
    assert page.inner_text("#selected-count") == "3 selected:"
    for video in failed:
        page.uncheck(f"#pick-{video.pk}")
    assert page.evaluate("document.getElementById('pick-all').indeterminate")
    page.click("button:has-text('Cancel selected')")
    page.click("button:has-text('Cancel 1 video')")
    assert Video.objects.get(pk=queued.pk).status == S.CANCELLED

    for video in failed:
        page.check(f"#pick-{video.pk}")
    page.click("button:has-text('Delete selected')")
    assert "This cannot be undone." in page.inner_text("main")
    page.click("button:has-text('Delete 2 videos')")
    assert "2 videos deleted, here and at memories.ai." in page.inner_text("main")
    assert listed(page) == ["queued.mp4"]


def test_team_videos_for_team_admins_only(strict_page, live_server, member, teammate, team_admin, outsider, team,
                                          other_team, api_key):
    page = strict_page
    add(member, team, "members.mp4")
    add(teammate, team, "teammates.mp4")
    add(outsider, other_team, "outsiders.mp4")
    signed_in(page, live_server.url, member)
    assert page.locator("a:has-text('Team videos')").count() == 0
    assert page.goto(f"{live_server.url}/videos/team/").status == 404
    page.context.clear_cookies()
    signed_in(page, live_server.url, team_admin)
    page.click("a:has-text('Team videos')")
    assert sorted(listed(page)) == ["members.mp4", "teammates.mp4"]
    page.select_option("#id_member", str(teammate.pk))
    page.click("button:has-text('Show')")
    assert listed(page) == ["teammates.mp4"]
    checked(page)


def test_without_javascript_filters_bulk_actions_and_rename_still_work(browser_page, live_server, member, team,
                                                                        api_key):
    context = browser_page.context.browser.new_context(java_script_enabled=False)
    page = context.new_page()
    try:
        video = make_video(member, team, name="plain.mp4", status=S.FAILED)
        add(member, team, "other.mp4")
        signed_in(page, live_server.url, member)
        page.fill("#id_q", "plain")
        page.click("button:has-text('Show')")
        assert listed(page) == ["plain.mp4"]
        page.click("summary:has-text('Rename')")
        page.fill(f"#title-{video.pk}", "Plain old title")
        page.click("button:has-text('Save')")
        assert "Renamed to “Plain old title”." in page.inner_text("main")
        page.check(f"#pick-{video.pk}")
        page.click("button:has-text('Retry selected')")
        page.click("button:has-text('Retry 1 video')")
        assert Video.objects.get(pk=video.pk).status == S.QUEUED
    finally:
        context.close()
