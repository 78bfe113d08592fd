"""The notices feed (/notices/): a user's own videos that became ready, failed or were refused after
the page's cursor, for static/memportal/notices.js; not activity (issue 13, "Notices")."""

import time
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from memportal.sessions import SEEN_AT
from uploads import reports
from uploads.lifecycle import Source
from uploads.models import Video

from .conftest import make_video

pytestmark = pytest.mark.django_db
S = Video.Status


def feed(client, after):
    response = client.get("/notices/", {"after": after})
    assert response.status_code == 200, response.content
    return response.json()


def finished(video, word="PARSE"):
    """What memories.ai's callback does: PARSE (ready) or FAIL (failed)."""
    assert reports.apply_remote_status(video.pk, word, Source.CALLBACK) == "applied"
    video.refresh_from_db()
    return video


def processing(owner, team, name):
    return make_video(owner, team, status=S.PROCESSING, video_no=f"VI{abs(hash(name))}", remote_status="UNPARSE",
                      name=name)


def test_it_tells_the_owner_what_finished_after_the_cursor(client, member, team):
    old = make_video(member, team, status=S.READY, name="old.mp4",
                     status_changed_at=timezone.now() - timedelta(hours=1))
    cursor = f"{time.time() - 60:.0f}"
    ready = finished(processing(member, team, "ready.mp4"))
    failed = finished(processing(member, team, "failed.mp4"), "FAIL")
    refused = make_video(member, team, status=S.REJECTED, name="refused.mp4")
    still = processing(member, team, "still.mp4")
    gone = finished(processing(member, team, "gone.mp4"))
    Video.objects.filter(pk=gone.pk).update(deleted_at=timezone.now())
    client.force_login(member)
    data = feed(client, cursor)
    assert [n["id"] for n in data["notices"]] == [str(ready.pk), str(failed.pk), str(refused.pk)]  # oldest first
    first = data["notices"][0]
    assert first == {"id": str(ready.pk), "name": "ready.mp4", "status": "ready", "label": "Ready", "text": "is ready.",
                     "url": f"/videos/{ready.pk}/", "changed_at": f"{ready.status_changed_at.timestamp():.6f}"}
    assert "retry" in data["notices"][1]["text"] and data["notices"][2]["label"] == "Rejected"
    assert str(old.pk) not in str(data) and str(still.pk) not in str(data)
    # The cursor handed back moves on, but lags behind now (a change committed late is not lost).
    assert float(cursor) <= float(data["cursor"]) <= time.time() - 29
    assert feed(client, f"{time.time():.6f}")["notices"] == []


def test_it_takes_an_iso_time_too(client, member, team):
    video = finished(processing(member, team, "clip.mp4"))
    client.force_login(member)
    before = (video.status_changed_at - timedelta(seconds=1)).isoformat()
    assert [n["id"] for n in feed(client, before)["notices"]] == [str(video.pk)]
    # A "+" that was not escaped in the query string arrives as a space.
    assert "+" in before and client.get("/notices/?after=" + before).json()["notices"]
    assert feed(client, video.status_changed_at.isoformat())["notices"] == []  # strictly after
    assert feed(client, video.status_changed_at.replace(tzinfo=None).isoformat())["notices"] == []  # naive: UTC


def test_a_teammate_and_the_team_admin_get_nothing_of_it(client, member, teammate, team_admin, team):
    cursor = f"{time.time() - 60:.0f}"
    finished(processing(member, team, "mine.mp4"))
    for other in (teammate, team_admin):
        client.force_login(other)
        assert feed(client, cursor)["notices"] == []


def test_it_needs_a_cursor(client, member):
    client.force_login(member)
    for bad in ("", "yesterday", "nan-ish"):
        assert client.get("/notices/", {"after": bad}).status_code == 400
    assert client.get("/notices/").status_code == 400
    assert client.post("/notices/", {"after": "1"}).status_code == 405


def test_signed_out_it_answers_401_not_a_sign_in_page(member):
    response = Client().get("/notices/", {"after": "1"})
    assert response.status_code == 401 and response.json() == {"error": "the session ended: sign in again"}


def test_it_is_not_activity_and_an_ended_session_gets_401(client, member, settings):
    settings.MEMPORTAL_SESSION_IDLE_SECONDS = 600
    client.force_login(member)
    session = client.session
    session[SEEN_AT] = time.time() - 500
    session.save()
    seen = client.session[SEEN_AT]
    for _ in range(3):
        feed(client, "1")
    assert client.session[SEEN_AT] == seen
    session = client.session
    session[SEEN_AT] = time.time() - 601
    session.save()
    assert client.get("/notices/", {"after": "1"}).status_code == 401


def test_it_costs_one_query_and_is_never_cached(client, member, team, django_assert_max_num_queries):
    for n in range(5):
        finished(processing(member, team, f"clip-{n}.mp4"))
    client.force_login(member)
    feed(client, "1")  # the session learns the user's zone
    with django_assert_max_num_queries(3):  # the session, the user, the videos
        response = client.get("/notices/", {"after": "1"})
    assert len(response.json()["notices"]) == 5
    assert "no-cache" in response.headers["Cache-Control"] and "private" in response.headers["Cache-Control"]


def test_every_page_of_a_signed_in_user_carries_the_cursor(client, member):
    client.force_login(member)
    html = client.get("/account/").content.decode()
    assert 'data-notices-url="/notices/"' in html and 'role="status" aria-live="polite"' in html
    cursor = float(html.split('data-cursor="', 1)[1].split('"', 1)[0])
    assert abs(cursor - time.time()) < 5
    assert "memportal/notices.js" in html
    assert "notices.js" not in Client().get("/accounts/login/").content.decode()
