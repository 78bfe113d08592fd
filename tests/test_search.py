"""Search (uploads/search.py), through HTTP against the emulator with its published rate limits on,
and a real database: what a member, a team admin and another team's member may find; the older
family's shared namespace searched and its foreign results dropped; batches of 100 video_nos; the
account's one-search-a-second slot under concurrent users, said in words; each refusal in words;
nothing at all while the setting is off."""

import html
import threading
from urllib.parse import parse_qs, urlparse

import pytest
import requests
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from uploads.models import UnderstandingSlot, Video, VideoTranscript

from .conftest import OTHER_KEY, TEST_KEY, OtherConnection, give_key, make_video, ready_video

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def switched_on(settings):
    settings.MEMPORTAL_UNDERSTANDING = True
    settings.MEMORIES_API_FAMILY = "v1"  # namespaces per team, moments with times
    return settings


def search(client, **params):
    UnderstandingSlot.objects.update(search_at=None)  # each search its own second
    return client.get(reverse("search"), {"q": "safety", **params})


def text_of(response):
    return html.unescape(response.content.decode())


def search_calls(emulator):
    return [r for r in emulator.requests if r["path"].endswith("/search")]


def test_a_member_finds_moments_of_their_own_ready_videos_only(client, emulator, member, teammate, team, api_key):
    mine = ready_video(emulator, member, team, api_key)  # the kitchen safety briefing
    theirs = ready_video(emulator, teammate, team, api_key, name="sample-h264-aac.mov")  # forklift safety
    make_video(member, team, status=Video.Status.PROCESSING, name="later.mp4")
    VideoTranscript.objects.create(video=mine, state="fetched", lines=[
        {"index": 0, "start": 0.0, "end": 0.7, "text": "Welcome to the kitchen safety briefing."}])
    client.force_login(member)

    page = text_of(search(client))

    assert mine.display_name in page and theirs.display_name not in page
    assert f'href="/videos/{mine.pk}/?t=0"' in page  # opens the video page with its player at the moment
    assert "Welcome to the kitchen safety briefing." in page  # the line said then
    assert "1 more is not ready yet" in page
    call = search_calls(emulator)[-1]
    assert call["json"]["video_nos"] == [mine.video_no]  # only what the member may see is asked
    assert call["json"]["unique_id"] == mine.namespace


def test_a_search_by_what_is_seen_shows_what_is_seen_then(client, emulator, member, team, api_key):
    mine = ready_video(emulator, member, team, api_key)
    VideoTranscript.objects.create(video=mine, state="fetched", lines=[
        {"index": 0, "start": 0.0, "end": 0.7, "text": "Welcome to the kitchen safety briefing."}], scenes=[
        {"index": 0, "start": 0.0, "end": 1.0, "text": "A chef stands at a steel counter in a bright kitchen."}])
    client.force_login(member)

    seen = text_of(search(client, by="visual"))
    assert "Seen:</span> A chef stands at a steel counter in a bright kitchen." in seen
    assert "Welcome to the kitchen safety briefing." in seen  # and what is said then
    emulator.understanding.rate_limits.clear()  # a second search within the second
    said = text_of(search(client, by="speech"))
    assert "Welcome to the kitchen safety briefing." in said and "A chef stands" not in said


def test_a_team_admin_searches_the_teams_namespace(client, emulator, member, team_admin, team, api_key):
    members = ready_video(emulator, member, team, api_key)
    client.force_login(team_admin)

    own_only = text_of(search(client))
    assert members.display_name not in own_only  # "My videos" by default: the admin has none
    team_wide = text_of(search(client, scope="team"))

    assert members.display_name in team_wide
    call = search_calls(emulator)[-1]
    assert "video_nos" not in call["json"] and call["json"]["unique_id"] == members.namespace


def test_the_team_namespace_answers_only_what_the_admin_may_see_now(client, emulator, member, team_admin, team,
                                                                     api_key):
    """memories.ai's namespace still holds a video the portal deleted (its delete there comes later,
    or failed): the admin's namespace-wide search gets it back, and the page drops it."""
    kept = ready_video(emulator, member, team, api_key)
    deleted = ready_video(emulator, member, team, api_key, name="sample-h264-aac.mov")
    Video.objects.filter(pk=deleted.pk).update(deleted_at=timezone.now())
    client.force_login(team_admin)

    page = text_of(search(client, scope="team"))

    call = search_calls(emulator)[-1]
    assert "video_nos" not in call["json"]
    UnderstandingSlot.objects.update(search_at=None)
    emulator.understanding.rate_limits.clear()
    answered = requests.post(emulator.base_url + call["path"], headers={"Authorization": TEST_KEY},
                             json=call["json"], timeout=5).json()
    assert deleted.video_no in str(answered)  # what memories.ai answered the portal
    assert kept.display_name in page
    assert deleted.display_name not in page and f"/videos/{deleted.pk}/" not in page


def test_another_teams_videos_never_appear(client, emulator, member, outsider, team, other_team, api_key,
                                           other_api_key):
    ready_video(emulator, member, team, api_key)
    foreign = ready_video(emulator, outsider, other_team, other_api_key, name="sample-h264-aac.mov", raw_key=OTHER_KEY)
    client.force_login(member)
    assert foreign.display_name not in text_of(search(client))
    refused = search(client, team=other_team.pk)  # not a team of theirs: refused, nothing searched
    calls = len(search_calls(emulator))
    assert refused.context["form"].errors["team"] and foreign.display_name not in text_of(refused)
    assert len(search_calls(emulator)) == calls
    client.force_login(outsider)
    assert foreign.display_name in text_of(search(client))


def test_the_older_familys_shared_namespace_is_searched_by_video_no_and_filtered(
        client, settings, emulator, member, outsider, team, other_team, api_key):
    """The older family has one namespace per account and takes no video_nos: another team using the
    same memories.ai account gets its videos in the answer, which the portal drops."""
    settings.MEMORIES_API_FAMILY = "video"
    other_key = give_key(other_team, TEST_KEY)  # the same account
    mine = ready_video(emulator, member, team, api_key)
    foreign = ready_video(emulator, outsider, other_team, other_key, name="sample-h264-aac.mov")
    client.force_login(member)

    answered = requests.post(emulator.base_url + "/serve/api/video/search", headers={"Authorization": TEST_KEY},
                             json={"search_param": "safety", "search_type": "BY_CLIP"}, timeout=5).json()
    assert foreign.video_no in str(answered)  # what memories.ai answers any search of the account
    UnderstandingSlot.objects.all().delete()
    emulator.understanding.rate_limits.clear()

    page = text_of(search(client))

    assert mine.display_name in page and foreign.display_name not in page
    assert f"/videos/{foreign.pk}/" not in page


def test_more_than_100_videos_are_searched_in_batches_a_second_apart(client, settings, emulator, member, team,
                                                                     api_key):
    videos = [ready_video(emulator, member, team, api_key, name=f"Safety walk {n:03d}.mp4") for n in range(101)]
    client.force_login(member)

    first = search(client)
    assert len(search_calls(emulator)[-1]["json"]["video_nos"]) == 100
    assert "searched in 2 parts of up to 100 (this is part 1)" in first.text
    next_url = first.context["next_url"]
    assert parse_qs(urlparse(next_url).query)["batch"] == ["1"]

    busy = client.get(next_url)  # at once: the account's search slot is still taken
    assert "allows one search a second" in busy.text and len(search_calls(emulator)) == 1
    settings.MEMPORTAL_SEARCH_INTERVAL_SECONDS = 3  # an account with a stricter limit: the page says that one
    assert "allows one search every 3 seconds" in client.get(next_url).text
    settings.MEMPORTAL_SEARCH_INTERVAL_SECONDS = 1
    UnderstandingSlot.objects.update(search_at=None)  # a second later (the stored time moves, not the clock)
    emulator.understanding.rate_limits.clear()
    second = client.get(next_url)
    assert search_calls(emulator)[-1]["json"]["video_nos"] == [videos[0].video_no]  # the oldest, last
    assert videos[0].display_name in second.text


def test_concurrent_users_are_paced_not_rate_limited(emulator, member, teammate, team, api_key):
    ready_video(emulator, member, team, api_key)
    ready_video(emulator, teammate, team, api_key, name="sample-h264-aac.mov")
    pages, start = {}, threading.Barrier(2)

    def search_as(user):
        client = Client()
        client.force_login(user)
        start.wait()
        pages[user.username] = client.get(reverse("search"), {"q": "safety"}).text

    for thread in [OtherConnection(search_as, user) for user in (member, teammate)]:
        thread.result()

    waited = [name for name, page in pages.items() if "searching again in" in page]
    assert len(waited) == 1 and len(search_calls(emulator)) == 1  # one call this second, never a 0429
    assert 'data-retry-after="' in pages[waited[0]]  # the page searches again by itself


@pytest.mark.parametrize("code, words", [
    ("0401", "memories.ai refused the API key (authorization invalid) (code 0401): a team admin can fix the team's"),
    ("0402", "a team admin can add credits"),
    ("0429", "memories.ai is busy for your team's account: searching again in"),
])
def test_refusals_are_said_in_words(client, emulator, member, team, api_key, code, words):
    ready_video(emulator, member, team, api_key)
    emulator.inject("search", "code", code=code)
    client.force_login(member)
    page = text_of(search(client))
    assert words in page
    assert TEST_KEY not in page


def test_switched_off_there_is_no_search(client, settings, member):
    settings.MEMPORTAL_UNDERSTANDING = False
    client.force_login(member)
    assert client.get(reverse("search"), {"q": "x"}).status_code == 404
    assert 'href="/search/"' not in client.get(reverse("video-list")).text


def test_what_cannot_be_searched_is_said(client, emulator, member, team, other_team, api_key):
    client.force_login(member)
    assert "You have no videos in Team One yet" in text_of(search(client))
    ready_video(emulator, member, team, api_key)
    assert "A search can be at most 200 characters long." in text_of(search(client, q="x" * 201))
    assert "That is not a team of yours" in text_of(search(client, team=other_team.pk))
    assert "This search has 1 part: there is no part 1000." in text_of(search(client, batch=999))
    assert search_calls(emulator) == []  # none of them asked memories.ai
