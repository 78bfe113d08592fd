"""Asking (uploads/asking.py, uploads/ask_views.py), through HTTP against the emulator with its
published rate limits on, and a real database: the answer relayed in pieces as memories.ai sends
them, its cited moments at the right second, follow-ups in memories.ai's session, conversations kept
per user, what may be asked about, the account's chat slot under concurrent users, the team's budget,
the cap on streams, each refusal in words, and the upstream connection closed when the page goes."""

import json
import threading
import time

import pytest
from django.core import checks
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from uploads.models import Conversation, Question, UnderstandingSlot, Video, VideoTranscript

from .conftest import OTHER_KEY, TEST_KEY, OtherConnection, ready_video

pytestmark = pytest.mark.django_db(transaction=True)
STREAM = {"HTTP_ACCEPT": "text/event-stream"}


@pytest.fixture(autouse=True)
def switched_on(settings):
    settings.MEMPORTAL_UNDERSTANDING = True
    settings.MEMORIES_API_FAMILY = "v1"
    return settings


@pytest.fixture
def kitchen(emulator, member, team, api_key):
    return ready_video(emulator, member, team, api_key)  # "Always switch off the fryer…" said at 0.7 s


def next_second():
    """The account's chat slot free again, as half a minute later (the stored time moves, not the clock)."""
    UnderstandingSlot.objects.update(chat_at=None)


def events_of(response):
    return [json.loads(chunk.decode()[len("data: "):]) for chunk in response.streaming_content]


OPEN = []  # this test's streamed answers


@pytest.fixture(autouse=True)
def closed_answers():
    """Every streamed answer a test asked for is closed when it ends, as gunicorn closes each
    response; else the garbage collector closes it later, in another test's query."""
    yield
    while OPEN:
        OPEN.pop().close()


def ask(client, question, **fields):
    response = client.post(reverse("ask"), {"question": question, **fields}, **STREAM)
    if response.streaming:
        OPEN.append(response)
    return response


def chat_calls(emulator):
    return [r for r in emulator.requests if r["path"].endswith("/chat_stream")]


def test_the_answer_streams_in_pieces_as_memories_ai_sends_them(client, emulator, member, kitchen):
    emulator.understanding.stream_delay = 0.4
    client.force_login(member)
    response = ask(client, "What about the fryer?", video=kitchen.pk)

    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"].startswith("text/event-stream")
    assert response["X-Accel-Buffering"] == "no" and not response.has_header("Content-Encoding")
    pieces = iter(response.streaming_content)
    started = json.loads(next(pieces).decode()[6:])
    first = json.loads(next(pieces).decode()[6:])
    first_read_at = time.time()
    rest = [json.loads(chunk.decode()[6:]) for chunk in pieces]

    assert started["type"] == "started" and first["type"] == "thinking"
    sent_at = chat_calls(emulator)[-1]["frames_sent_at"]
    assert first_read_at < sent_at[-1] - 0.5  # the first piece was read long before the last was sent
    assert [e["type"] for e in rest][-1] == "done"
    text = "".join(e["text"] for e in rest if e["type"] == "content")
    assert "fryer" in text
    question = Question.objects.get()
    assert question.state == "answered" and question.answer == text and question.answered_at
    assert question.conversation.user == member and question.conversation.session_id


def test_cited_moments_point_at_the_right_second(client, emulator, member, kitchen):
    client.force_login(member)
    events = events_of(ask(client, "fryer", video=kitchen.pk))

    moments = [m for e in events if e["type"] == "moments" for m in e["moments"]]
    assert moments and moments[0]["start"] == 0.7 and moments[0]["clock"] == "0:00.7"
    assert moments[0]["href"] == f"/videos/{kitchen.pk}/?t=0.7" and moments[0]["seekable"]
    assert moments[0]["text"] == "Always switch off the fryer before cleaning it."
    page = client.get(moments[0]["href"]).text
    assert f'/videos/{kitchen.pk}/media/#t=0.7"' in page  # the player starts at that second


def test_a_follow_up_keeps_memories_ais_session(client, emulator, member, kitchen):
    client.force_login(member)
    events_of(ask(client, "fryer", video=kitchen.pk))
    conversation = Conversation.objects.get()
    next_second()
    emulator.understanding.rate_limits.clear()

    events = events_of(ask(client, "and the exit?", conversation=conversation.pk))

    assert chat_calls(emulator)[-1]["json"]["session_id"] == conversation.session_id
    assert "".join(e["text"] for e in events if e["type"] == "content").startswith("Following up:")
    assert conversation.questions.count() == 2
    page = client.get(reverse("conversation", args=[conversation.pk])).text
    assert "and the exit?" in page and "Ask a follow-up question" in page


def test_without_javascript_the_conversation_page_shows_the_answer(client, emulator, member, kitchen):
    client.force_login(member)
    response = client.post(reverse("ask"), {"question": "fryer", "video": kitchen.pk})
    conversation = Conversation.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("conversation", args=[conversation.pk])
    page = client.get(response["Location"]).text
    assert "I found" in page and f'href="/videos/{kitchen.pk}/?t=0.7"' in page


def test_conversations_are_each_users_own(client, emulator, member, teammate, team_admin, kitchen):
    client.force_login(member)
    events_of(ask(client, "fryer", video=kitchen.pk))
    conversation = Conversation.objects.get()
    for other in (teammate, team_admin):  # the team admin may see the video, not the member's chat
        client.force_login(other)
        assert client.get(reverse("conversation", args=[conversation.pk])).status_code == 404
        assert "fryer" not in client.get(reverse("conversations")).text
        assert ask(client, "and?", conversation=conversation.pk).status_code == 404


def test_only_ready_videos_the_user_may_see_can_be_asked_about(client, emulator, member, teammate, outsider, team,
                                                              other_team, api_key, other_api_key, kitchen):
    theirs = ready_video(emulator, teammate, team, api_key, name="sample-h264-aac.mov")
    foreign = ready_video(emulator, outsider, other_team, other_api_key, raw_key=OTHER_KEY)
    queued = Video.objects.create(owner=member, team=team, original_name="later.mp4", size=1)
    client.force_login(member)
    for video in (theirs, foreign):
        refused = ask(client, "fryer", video=video.pk)
        assert refused.status_code == 400 and "not yours to ask about" in refused.json()["message"]
    assert "is not ready yet" in ask(client, "fryer", video=queued.pk).json()["message"]
    assert "not yours to ask about" in ask(client, "x", video=[kitchen.pk, foreign.pk]).json()["message"]
    assert chat_calls(emulator) == [] and not Question.objects.exists()


def test_concurrent_users_are_paced_to_the_accounts_chat_slot(emulator, member, teammate, team, api_key):
    videos = {member: ready_video(emulator, member, team, api_key),
              teammate: ready_video(emulator, teammate, team, api_key, name="sample-h264-aac.mov")}
    answers, start = {}, threading.Barrier(2)

    def ask_as(user):
        client = Client()
        client.force_login(user)
        start.wait()
        response = ask(client, "safety", video=videos[user].pk)
        answers[user.username] = (response.status_code, events_of(response) if response.streaming else response.json())

    for thread in [OtherConnection(ask_as, user) for user in videos]:
        thread.result()

    codes = sorted(code for code, _ in answers.values())
    assert codes == [200, 429] and len(chat_calls(emulator)) == 1  # one question sent, never a 0429
    waited = next(body for code, body in answers.values() if code == 429)
    assert "questions a minute for your team's account" in waited["message"] and waited["retry_after"] > 20


def test_the_teams_chat_budget_is_kept_and_said(client, settings, emulator, member, kitchen):
    settings.MEMPORTAL_CHAT_QUESTIONS_PER_DAY = 1
    emulator.understanding.rate_limits.clear()
    client.force_login(member)
    emulator.inject("chat_stream", "code", code="0402")
    assert ask(client, "fryer", video=kitchen.pk).status_code == 502  # refused: not counted
    next_second()
    events_of(ask(client, "fryer", video=kitchen.pk))
    next_second()

    over = ask(client, "fryer again", video=kitchen.pk)

    assert over.status_code == 429
    assert "Team One has used its chat budget of 1 question in 24 hours" in over.json()["message"]
    frees = timezone.localtime(Question.objects.filter(state="answered").get().asked_at + timezone.timedelta(days=1))
    assert f"can be asked on {frees:%a} {frees.day} {frees:%b} at {frees:%H:%M}" in over.json()["message"]  # the day
    assert len(chat_calls(emulator)) == 2
    Question.objects.update(asked_at=timezone.now() - timezone.timedelta(hours=25))
    assert ask(client, "a day later", video=kitchen.pk).status_code == 200


def test_streams_at_once_are_capped(client, settings, emulator, member, kitchen):
    settings.MEMPORTAL_ASK_STREAMS_MAX = 1
    client.force_login(member)
    streaming = ask(client, "fryer", video=kitchen.pk)  # not read yet: still answering
    next_second()
    emulator.understanding.rate_limits.clear()
    capped = ask(client, "again", video=kitchen.pk)
    assert capped.status_code == 429 and "as many questions at once as it takes (1)" in capped.json()["message"]
    events_of(streaming)
    assert ask(client, "again", video=kitchen.pk).status_code == 200


@pytest.mark.parametrize("code, words", [
    ("0402", "a team admin can add credits"),
    ("0401", "refused the API key (authorization invalid) (code 0401): a team admin can fix"),
    ("0429", "memories.ai is busy for your team's account right now"),
])
def test_refusals_before_the_answer_are_said_in_words(client, emulator, member, kitchen, code, words):
    emulator.inject("chat_stream", "code", code=code)
    client.force_login(member)
    refused = ask(client, "fryer", video=kitchen.pk)
    assert refused.status_code == (429 if code == "0429" else 502) and words in refused.json()["message"]
    assert TEST_KEY not in refused.text
    assert Question.objects.get().state == "refused"


def test_an_answer_that_breaks_keeps_what_came_and_says_why(client, emulator, member, kitchen):
    emulator.inject("chat_stream", "stream_error", code="0500", msg="model overloaded", after=3)
    client.force_login(member)
    events = events_of(ask(client, "fryer", video=kitchen.pk))
    assert events[-1]["type"] == "error" and "could not be reached or answered strangely" in events[-1]["message"]
    assert Question.objects.get().state == "failed"

    next_second()
    emulator.understanding.rate_limits.clear()
    emulator.inject("chat_stream", "stream_cut", after=4)
    events = events_of(ask(client, "fryer", video=kitchen.pk))
    assert events[-1]["type"] == "error"
    cut = Question.objects.latest("asked_at")
    assert cut.state == "failed" and cut.answer  # the pieces that came are kept


def test_the_page_going_away_closes_the_connection_to_memories_ai(client, emulator, member, kitchen):
    emulator.understanding.stream_delay = 0.5
    client.force_login(member)
    response = ask(client, "fryer", video=kitchen.pk)
    pieces = iter(response.streaming_content)
    next(pieces), next(pieces)
    response.close()  # what the WSGI server does when the browser hangs up

    emulator.wait_for(lambda e: chat_calls(e)[-1].get("stream_end"), timeout=10)
    assert chat_calls(emulator)[-1]["stream_end"] == "client gone"
    question = Question.objects.get()
    assert question.state == "failed" and "page was closed" in question.error


def test_a_cited_video_whose_copy_is_gone_still_shows_its_moment(client, emulator, member, kitchen):
    client.force_login(member)
    client.post(reverse("ask"), {"question": "fryer", "video": kitchen.pk})
    Video.objects.filter(pk=kitchen.pk).update(file="", file_removed_at=timezone.now())
    page = client.get(reverse("conversation", args=[Conversation.objects.get().pk])).text
    assert "0:00.7" in page and "Always switch off the fryer before cleaning it." in page
    assert "no longer plays here" in page and "data-seek-video" not in page


def test_the_settings_of_asking_are_checked(settings):
    settings.MEMPORTAL_ASK_VIDEOS_MAX = 101
    settings.MEMPORTAL_CHAT_QUESTIONS_PER_DAY = -1
    settings.MEMORIES_V1_CHAT_STREAM_PATH = "serve/api/v1/chat_stream"
    found = {error.id for error in checks.run_checks()}
    assert {"memportal.E003", "memportal.E007", "memportal.E008"} <= found


def test_ask_about_videos_chosen_on_the_list(client, emulator, member, kitchen):
    client.force_login(member)
    assert "Ask about selected" in client.get(reverse("video-list")).text
    page = client.post(reverse("ask-about"), {"video": [kitchen.pk]}).text
    assert "Ask about 1 video" in page and f'name="video" value="{kitchen.pk}"' in page
    refused = client.post(reverse("ask-about"), {"video": []})
    assert refused.status_code == 302
    assert "Choose at least one video" in client.get(refused["Location"]).text

    # Without JavaScript a refused question comes back to this page (its link), in its box.
    again = f"/ask/about/?video={kitchen.pk}"
    assert f'name="next" value="{again}"' in page
    events_of(ask(client, "fryer", video=kitchen.pk))  # the account's chat slot is taken now
    waited = client.post(reverse("ask"), {"question": "And the exit?", "video": kitchen.pk, "next": again})
    assert waited.status_code == 302 and waited["Location"] == again
    back = client.get(again).text
    assert "ask again in" in back and ">And the exit?</textarea>" in back
    assert "></textarea>" in client.get(again).text  # once: the next visit starts empty


def test_a_question_typed_to_the_boxs_length_is_taken(client, emulator, member, kitchen):
    client.force_login(member)
    typed = "\r\n".join(["x" * 199] * 10) + "x"  # 2000 characters in the box; CRLF between lines as sent
    assert ask(client, typed, video=kitchen.pk).status_code == 200
    assert ask(client, typed + "x", video=kitchen.pk).status_code == 400


def test_what_was_heard_and_seen_at_one_second_is_one_moment(client, emulator, member, team, api_key):
    crane = ready_video(emulator, member, team, api_key, name="Harbour crane tour.mp4")
    client.force_login(member)  # it says "Welcome to Harbour crane tour." from 0 s and shows its title card 0–4 s
    events = events_of(ask(client, "crane tour", video=crane.pk))

    moments = [m for e in events if e["type"] == "moments" for m in e["moments"]]
    assert [m["clock"] for m in moments] == ["0:00", "0:06"]  # not 0:00 twice
    assert moments[0]["text"] == "Welcome to Harbour crane tour. · A title card reads Harbour crane tour."
    kept = Question.objects.get().moments
    assert len(kept) == 2 and kept[0]["end"] == 4.0  # the later end of the two


def test_a_first_question_memories_ai_refused_keeps_its_conversation_to_ask_again_in(
        client, emulator, member, kitchen):
    emulator.inject("chat_stream", "code", code="0402")
    client.force_login(member)
    refused = ask(client, "fryer", video=kitchen.pk).json()
    conversation = Conversation.objects.get()
    assert refused["conversation"] == str(conversation.pk)
    assert refused["url"] == reverse("conversation", args=[conversation.pk])

    next_second()
    emulator.understanding.rate_limits.clear()
    events = events_of(ask(client, "fryer", conversation=refused["conversation"]))  # what the page sends again
    assert events[-1]["type"] == "done"
    assert Conversation.objects.count() == 1  # not one per try
    assert [q.state for q in conversation.questions.order_by("asked_at")] == ["refused", "answered"]


def test_a_cited_moment_without_text_shows_the_kept_line_of_its_kind(client, emulator, member, kitchen):
    VideoTranscript.objects.create(video=kitchen, state="fetched", lines=[
        {"index": 0, "start": 0.7, "end": 1.4, "text": "Always switch off the fryer before cleaning it."}], scenes=[
        {"index": 0, "start": 1.0, "end": 2.0, "text": "Close-up of a red fire blanket on a white wall."}])
    client.force_login(member)
    client.post(reverse("ask"), {"question": "fryer", "video": kitchen.pk})
    question = Question.objects.get()
    question.moments = [{"video_no": kitchen.video_no, "start": 1.2, "end": None, "kind": kind, "text": ""}
                        for kind in ("keyframe", "audio_ts")]  # memories.ai gave no text
    question.save()
    page = client.get(reverse("conversation", args=[question.conversation_id])).text
    cited = page[page.index('class="moments ask-moments"'):]
    cited = cited[:cited.index("</ol>")]
    lines = [item.split('<q class="moment-line">')[1].split("</q>")[0] for item in cited.split("<li")[1:]]
    # the keyframe's is what is seen then, the heard moment's what is said then
    assert lines == ["Close-up of a red fire blanket on a white wall.", "Always switch off the fryer before cleaning it."]
