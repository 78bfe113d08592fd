"""The video library (uploads/library.py, uploads/standing.py, uploads/timeline.py): sort, filters,
search and pages from the URL; queue places; the live states feed; bulk actions; team videos;
renaming; the timeline in words. Through Django's test client, on the real database."""

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from uploads.models import Membership, MemoriesAccount, RelayHold, Video, VideoEvent

from .conftest import account_of, make_video

S = Video.Status


def add(owner, team, name, *, size=1000, status=S.QUEUED, title="", minutes_ago=0, **extra):
    """A Video row with no stored file (the list needs none)."""
    video = Video(owner=owner, team=team, original_name=name, title=title, content_type="video/mp4", size=size,
                  sha256="0" * 64, status=status, created_at=timezone.now() - timedelta(minutes=minutes_ago), **extra)
    video.save()
    return video


def names(response):
    """The names of the rows listed, in order."""
    return re.findall(r'<td class="name"><a href="/videos/[0-9a-f-]+/">([^<]+)</a>', response.content.decode())


@pytest.fixture
def library(member, team, other_team, api_key):
    Membership.objects.create(user=member, team=other_team)
    made = []
    for i in range(30):
        made.append(add(member, team if i % 3 else other_team, f"clip-{i:02d}.mp4", size=1000 + i,
                        status=S.READY if i % 2 else S.FAILED, minutes_ago=100 - i,
                        title="Quarterly review" if i == 7 else ""))
    return made


def test_newest_first_25_a_page_and_the_second_page_has_the_rest(client, member, library):
    client.force_login(member)
    first = client.get("/videos/")
    assert names(first) == [f"clip-{i:02d}.mp4" if i != 7 else "Quarterly review" for i in range(29, 4, -1)]
    assert "30 videos, page 1 of 2." in first.content.decode()
    second = client.get("/videos/?page=2")
    assert names(second) == [f"clip-{i:02d}.mp4" for i in range(4, -1, -1)]
    assert names(client.get("/videos/?page=99")) == names(second)  # past the end: the last page


def test_sort_filter_and_search_come_from_the_url_and_links_keep_them(client, member, team, other_team, library):
    client.force_login(member)
    assert names(client.get("/videos/?sort=smallest"))[:3] == ["clip-00.mp4", "clip-01.mp4", "clip-02.mp4"]
    assert names(client.get("/videos/?sort=largest"))[0] == "clip-29.mp4"
    assert names(client.get("/videos/?sort=name"))[:2] == ["clip-00.mp4", "clip-01.mp4"]
    assert names(client.get("/videos/?sort=name&page=2"))[-1] == "Quarterly review"
    assert names(client.get("/videos/?sort=name-desc"))[0] == "Quarterly review"
    assert names(client.get("/videos/?q=quarterly")) == ["Quarterly review"]
    assert names(client.get("/videos/?q=clip-1")) == [f"clip-{i}.mp4" for i in range(19, 9, -1)]
    ready = names(client.get("/videos/?state=ready&sort=oldest"))
    assert ready[:2] == ["clip-01.mp4", "clip-03.mp4"] and len(ready) == 15
    in_two = names(client.get(f"/videos/?team={other_team.pk}&sort=oldest"))
    assert in_two[:3] == ["clip-00.mp4", "clip-03.mp4", "clip-06.mp4"] and len(in_two) == 10
    page = client.get(f"/videos/?state=ready&team={team.pk}&sort=oldest").content.decode()
    assert "10 videos matching the filters." in page
    both = client.get("/videos/?q=clip&sort=oldest").content.decode()
    assert 'href="?q=clip&amp;sort=oldest&amp;page=2"' in both  # the next page keeps the view
    assert 'href="?q=clip&amp;sort=newest"' in both  # the date column sorts the other way


def test_values_the_list_does_not_know_are_left_out_not_an_error(client, member, library):
    client.force_login(member)
    response = client.get("/videos/?sort=bogus&team=abc&state=nope&page=x")
    assert response.status_code == 200 and len(names(response)) == 25


def test_empty_states_say_what_to_do(client, member, team, api_key):
    client.force_login(member)
    page = client.get("/videos/").content.decode()
    assert "No videos yet" in page and "Upload your first video" in page
    add(member, team, "one.mp4")
    page = client.get("/videos/?q=nothing-like-this").content.decode()
    assert "No video matches these filters." in page


def test_times_are_shown_with_their_zone(client, member, team):
    client.force_login(member)
    video = add(member, team, "zoned.mp4")
    page = client.get("/videos/").content.decode()
    assert f"{timezone.localtime(video.created_at):%Y-%m-%d %H:%M} UTC" in page


def test_queued_videos_say_their_place_and_when_they_go(client, member, team, other_team, api_key, settings):
    settings.MEMPORTAL_UPLOAD_INTERVAL_SECONDS = 60
    client.force_login(member)
    first, second, third = (add(member, team, f"q{i}.mp4", minutes_ago=10 - i) for i in range(3))
    lines = {v: states(client, v)["line"] for v in (first, second, third)}
    assert lines[first] == "Next in Team One's queue, to be sent shortly."
    assert lines[second] == "2nd in Team One's queue, to be sent in about 1 min."
    assert lines[third] == "3rd in Team One's queue, to be sent in about 2 min."
    # The account's slot is taken for 2 more minutes: everyone waits that much longer.
    MemoriesAccount.objects.filter(pk=account_of(team).pk).update(next_upload_at=timezone.now() + timedelta(minutes=2))
    assert states(client, third)["line"] == "3rd in Team One's queue, to be sent in about 4 min."
    # A retry planned for later: it says so, and it holds no place ahead of the others.
    Video.objects.filter(pk=first.pk).update(next_attempt_at=timezone.now() + timedelta(minutes=5), attempts=1)
    assert states(client, first)["line"] == "Trying again about 5 min from now (1 attempt so far)."
    assert states(client, second)["line"].startswith("Next in Team One's queue")
    hold = RelayHold.objects.create(reason="wrong base URL")
    assert states(client, second)["line"] == "Waiting: an operator is fixing the portal's memories.ai settings."
    hold.delete()
    api_key.mark_failing("memories.ai refused the key (code 0401)")
    assert states(client, second)["line"] == "Waiting for a working memories.ai API key: a team admin can add one."


def states(client, *videos):
    answer = client.post("/videos/states/", {"ids": [str(v.pk) for v in videos]}, content_type="application/json")
    assert answer.status_code == 200
    found = answer.json()["videos"]
    return found[str(videos[0].pk)] if len(videos) == 1 else found


def test_the_states_feed_takes_hundreds_of_ids_in_its_body_and_answers_only_visible_ones(
        client, member, teammate, team, api_key):
    mine = [add(member, team, f"m{i}.mp4", minutes_ago=i) for i in range(150)]
    theirs = add(teammate, team, "theirs.mp4")
    client.force_login(member)
    found = states(client, *mine, theirs)
    assert set(found) == {str(v.pk) for v in mine}
    assert client.get("/videos/states/").status_code == 405
    assert client.post("/videos/states/", "not json", content_type="application/json").status_code == 400
    with CaptureQueriesContext(connection) as ten:
        states(client, *mine[:10])
    with CaptureQueriesContext(connection) as hundred:
        states(client, *mine[:100])
    Video.objects.filter(pk__in=[v.pk for v in mine[:10]]).update(status=S.READY)
    with CaptureQueriesContext(connection) as none_queued:
        states(client, *mine[:10])
    assert len(ten) == len(hundred) == len(none_queued)


def test_a_page_costs_the_same_queries_whatever_its_number_or_the_tables_size(client, member, team, api_key):
    for i in range(30):
        add(member, team, f"a{i}.mp4", minutes_ago=i, status=S.QUEUED if i % 2 else S.PROCESSING)
    client.force_login(member)
    client.get("/videos/")  # the session's first request loads what later ones find cached

    def count(path):
        with CaptureQueriesContext(connection) as queries:
            assert client.get(path).status_code == 200
        return len(queries)
    first, second = count("/videos/"), count("/videos/?page=2")
    for i in range(60):
        add(member, team, f"b{i}.mp4", minutes_ago=100 + i)
    assert count("/videos/") == first == second == count("/videos/?page=3&sort=state")
    assert count("/videos/?state=processing") == first  # a page with no queued video: the same queries


def test_bulk_retry_names_how_many_then_says_what_it_did(client, member, team, api_key):
    failed = [make_video(member, team, status=S.FAILED, name=f"f{i}.mp4") for i in range(2)]
    ready = make_video(member, team, status=S.READY, name="r.mp4")
    client.force_login(member)
    chosen = {"action": "retry", "video": [str(v.pk) for v in [*failed, ready]], "next": "/videos/?sort=name"}
    confirm = client.post("/videos/bulk/", chosen)
    assert confirm.status_code == 200 and "Retry 3 videos?" in confirm.content.decode()
    assert Video.objects.filter(status=S.FAILED).count() == 2  # nothing done before the confirmation
    done = client.post("/videos/bulk/", {**chosen, "confirmed": "yes"})
    assert done.status_code == 302 and done["Location"] == "/videos/?sort=name"
    assert Video.objects.filter(pk__in=[v.pk for v in failed], status=S.QUEUED).count() == 2
    page = client.get("/videos/").content.decode()
    assert "2 videos queued again." in page and "1 video could not be retried" in page


def test_bulk_cancel_and_delete_touch_only_videos_the_user_may_act_on(client, member, teammate, team, api_key):
    mine = [add(member, team, f"mine{i}.mp4") for i in range(2)]
    theirs = add(teammate, team, "theirs.mp4")
    client.force_login(member)
    chosen = {"action": "delete", "video": [str(v.pk) for v in [*mine, theirs]]}
    confirm = client.post("/videos/bulk/", chosen).content.decode()
    assert "Delete 2 videos?" in confirm and "theirs.mp4" not in confirm and "1 of the chosen videos is not yours" in confirm
    client.post("/videos/bulk/", {**chosen, "confirmed": "yes"})
    assert set(Video.objects.alive().values_list("original_name", flat=True)) == {"theirs.mp4"}
    assert "2 videos deleted, here and at memories.ai." in client.get("/videos/").content.decode()
    queued = add(member, team, "queued.mp4")
    client.post("/videos/bulk/", {"action": "cancel", "video": [str(queued.pk)], "confirmed": "yes"})
    assert Video.objects.get(pk=queued.pk).status == S.CANCELLED
    assert client.post("/videos/bulk/", {"action": "explode", "video": [str(queued.pk)]}).status_code == 400


def test_team_videos_are_the_team_admins_with_a_member_filter_and_a_404_for_members(
        client, member, teammate, team_admin, outsider, team, other_team):
    add(member, team, "members.mp4")
    add(teammate, team, "teammates.mp4")
    add(outsider, other_team, "outsiders.mp4")
    client.force_login(member)
    assert client.get("/videos/team/").status_code == 404
    assert "Team videos" not in client.get("/videos/").content.decode()
    client.force_login(team_admin)
    assert set(names(client.get("/videos/team/"))) == {"members.mp4", "teammates.mp4"}
    assert names(client.get(f"/videos/team/?member={teammate.pk}")) == ["teammates.mp4"]
    assert 'href="/videos/team/"' in client.get("/videos/").content.decode()


def test_rename_from_the_page_and_the_list_with_the_change_in_the_timeline(client, member, outsider, team, api_key):
    video = make_video(member, team, name="raw-cut.mp4")
    client.force_login(member)
    answer = client.post(f"/videos/{video.pk}/rename/", {"title": "  Launch   day ", "next": "/videos/"})
    assert answer.status_code == 302 and answer["Location"] == "/videos/"
    assert names(client.get("/videos/")) == ["Launch day"]
    page = client.get(f"/videos/{video.pk}/").content.decode()
    assert f"Renamed by {member.username}: from “raw-cut.mp4” to “Launch day”." in page
    client.post(f"/videos/{video.pk}/rename/", {"title": ""})
    assert Video.objects.get(pk=video.pk).display_name == "raw-cut.mp4"
    assert "not changed" in client.post(f"/videos/{video.pk}/rename/", {"title": "x" * 201},
                                        follow=True).content.decode()
    client.force_login(outsider)
    assert client.post(f"/videos/{video.pk}/rename/", {"title": "mine now"}).status_code == 404
    assert Video.objects.get(pk=video.pk).title == ""


def test_the_timeline_reads_in_words_with_the_raw_record_folded(client, member, team, api_key):
    video = make_video(member, team, name="story.mp4", status=S.READY, video_no="VI-1")
    for source, before, after, message, remote in [
            ("relay", "queued", "sending", "attempt 1: sending with key sk-…abcd", ""),
            ("relay", "sending", "queued", "will try again at 10:00:00 UTC: memories.ai answered with a server error "
                                           "(HTTP 503)", "HTTP 503"),
            ("relay", "sending", "processing", "memories.ai accepted it as VI-1", "UNPARSE"),
            ("callback", "processing", "ready", "", "PARSE")]:
        VideoEvent.objects.create(video=video, source=source, from_status=before, to_status=after, message=message,
                                  remote_status=remote)
    client.force_login(member)
    text = client.get(f"/videos/{video.pk}/").content.decode()
    for said in ("Being sent to memories.ai.",
                 "Sending did not work; it will be tried again. Memories.ai answered with a server error (HTTP 503).",
                 "Sent to memories.ai, which is processing it.",
                 "memories.ai finished processing: the video is ready."):
        assert said in text
    assert "<summary>Details" in text and "Relay · sending → processing · memories.ai: UNPARSE" in text


def test_a_removed_member_sees_their_videos_read_only_without_checkboxes(client, member, team, api_key):
    video = add(member, team, "left-behind.mp4")
    Membership.objects.filter(user=member, team=team).delete()
    client.force_login(member)
    page = client.get("/videos/").content.decode()
    assert "left-behind.mp4" in page and f'value="{video.pk}" form="bulk-form"' not in page



def test_a_form_sent_without_its_token_gets_the_portals_page_in_words(member, team):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(member)
    video = add(member, team, "old-tab.mp4")
    answer = client.post(f"/videos/{video.pk}/rename/", {"title": "new"})
    assert answer.status_code == 403 and "That form had expired" in answer.content.decode()
    assert Video.objects.get(pk=video.pk).title == ""


def test_team_admins_have_team_videos_in_the_navigation_members_do_not(client, member, team_admin):
    client.force_login(member)
    assert 'href="/videos/team/"' not in client.get("/account/").content.decode()
    client.force_login(team_admin)
    assert 'href="/videos/team/"' in client.get("/account/").content.decode()
