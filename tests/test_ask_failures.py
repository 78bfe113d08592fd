"""What can go wrong while asking (uploads/asking.py, uploads/answers.py), through HTTP against the
emulator: a key the portal cannot decrypt, a character memories.ai sends in two halves, an answer
that goes on past its deadline, a page closed before the first piece, key trouble and 0429 in the
middle of an answer, an answer whose process died, and a follow-up after a video left the user's
sight. Each ends in words, with its question finished (never "being answered" for good)."""

import gc
import json
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from uploads import asking, understanding_limits
from uploads.management.commands.reconcile import clock_round
from uploads.models import ApiKey, Conversation, Membership, Question, UnderstandingSlot

from .conftest import TEST_KEY
from .test_ask import (  # noqa: F401 (closed_answers, kitchen and switched_on are fixtures)
    ask, chat_calls, closed_answers, events_of, kitchen, next_second, switched_on)

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_key_the_portal_cannot_decrypt_is_said_in_words_and_holds_nothing(client, member, kitchen):
    ApiKey.objects.update(secret_encrypted="not-a-fernet-token")  # MEMPORTAL_FERNET_KEYS lost the key's key
    client.force_login(member)

    refused = ask(client, "fryer", video=kitchen.pk)
    assert refused.status_code == 502
    assert "The portal's memories.ai settings are wrong: an operator can fix them." in refused.json()["message"]
    assert Question.objects.get().state == "refused"
    assert not understanding_limits.answering_now().exists()  # nothing counts against the stream cap
    UnderstandingSlot.objects.update(search_at=None)
    page = client.get(reverse("search"), {"q": "fryer"})
    assert page.status_code == 200 and "settings are wrong: an operator can fix them" in page.text


def test_a_character_sent_in_two_halves_arrives_and_is_kept_whole(client, emulator, member, kitchen):
    emulator.inject("chat_stream", "stream_pieces", pieces=["Mind the fire ", "\ud83d", "\udd25", " always."])
    client.force_login(member)
    response = ask(client, "fryer", video=kitchen.pk)
    body = b"".join(response.streaming_content)
    body.decode("ascii")  # escaped: a half character cannot be UTF-8, but \ud83d can be JSON
    events = [json.loads(block[6:]) for block in body.split(b"\n\n") if block.startswith(b"data: ")]

    assert events[-1]["type"] == "done"
    shown = "".join(e["text"] for e in events if e["type"] == "content")  # as the page's text nodes hold it
    assert shown.encode("utf-16", "surrogatepass").decode("utf-16") == "Mind the fire 🔥 always."
    question = Question.objects.get()
    assert question.state == "answered" and question.answer == "Mind the fire 🔥 always."


def test_an_answer_past_its_deadline_is_cut_off_and_says_so(client, settings, emulator, member, kitchen):
    settings.MEMPORTAL_ASK_ANSWER_SECONDS = 1  # the check allows 30 to 540; 1 keeps the test short
    emulator.understanding.stream_delay = 0.4  # about 6 s of answer
    client.force_login(member)

    events = events_of(ask(client, "fryer", video=kitchen.pk))

    assert events[-1] == {"type": "error", "message": events[-1]["message"]}
    assert "took longer than 1 s and was cut off" in events[-1]["message"]
    question = Question.objects.get()
    assert question.state == "failed" and "took longer than 1 s" in question.error
    emulator.wait_for(lambda e: chat_calls(e)[-1].get("stream_end"), timeout=10)
    assert chat_calls(emulator)[-1]["stream_end"] == "client gone"  # the web thread let go of memories.ai


def test_a_page_closed_before_the_first_piece_finishes_its_question(client, emulator, member, kitchen):
    emulator.understanding.stream_delay = 0.5
    client.force_login(member)
    ask(client, "fryer", video=kitchen.pk).close()  # the browser went away before a byte was sent

    question = Question.objects.get()
    assert question.state == "failed" and "page was closed" in question.error
    emulator.wait_for(lambda e: chat_calls(e)[-1].get("stream_end"), timeout=10)
    assert chat_calls(emulator)[-1]["stream_end"] == "client gone"


def test_key_trouble_and_0429_in_the_middle_of_an_answer_count_as_before_it(client, emulator, member, kitchen,
                                                                            api_key):
    emulator.inject("chat_stream", "stream_error", code="0402", after=3)
    client.force_login(member)
    events = events_of(ask(client, "fryer", video=kitchen.pk))
    assert events[-1]["type"] == "error" and "a team admin can add credits" in events[-1]["message"]
    assert TEST_KEY not in json.dumps(events)
    api_key.refresh_from_db()
    assert api_key.failing_since is not None  # the team admin sees it on the key, as after an upload

    ApiKey.objects.update(failing_since=None, last_error="")
    next_second()
    emulator.understanding.rate_limits.clear()
    emulator.inject("chat_stream", "stream_error", code="0429", after=2)
    events = events_of(ask(client, "fryer", video=kitchen.pk))
    assert "memories.ai is busy for your team's account" in events[-1]["message"]
    slot = UnderstandingSlot.objects.get()
    assert slot.chat_at > timezone.now() + timezone.timedelta(seconds=20)  # the account held back
    waited = ask(client, "fryer", video=kitchen.pk)
    assert waited.status_code == 429 and re.search(r"ask again in \d+ s", waited.json()["message"])


def test_an_answer_whose_process_died_is_ended_by_the_clock(client, member, kitchen):
    client.force_login(member)
    conversation = Conversation.objects.create(user=member, team=kitchen.team, title="fryer")
    conversation.videos.set([kitchen])
    Question.objects.create(conversation=conversation, team=kitchen.team, text="fryer", state="answering")
    Question.objects.update(asked_at=timezone.now() - understanding_limits.STREAM_STALE)
    page = reverse("conversation", args=[conversation.pk])
    assert "The answer is still coming in" in client.get(page).text

    clock_round(60)

    assert Question.objects.get().state == "failed"
    text = client.get(page).text
    assert "The answer is still coming in" not in text
    assert "No answer: the answer stopped: the portal was restarted while it came" in text


def test_a_follow_up_after_a_video_left_the_users_sight_is_refused(client, emulator, member, team_admin, team,
                                                                   api_key, kitchen):
    client.force_login(team_admin)  # a team admin may ask about a member's video
    events = events_of(ask(client, "fryer", video=kitchen.pk))
    assert events[-1]["type"] == "done"
    conversation = Conversation.objects.get()
    Membership.objects.filter(user=team_admin).update(role=Membership.Role.MEMBER)  # no longer an admin
    next_second()
    emulator.understanding.rate_limits.clear()

    refused = ask(client, "and the exit?", conversation=conversation.pk)
    assert refused.status_code == 400 and "ask in a new conversation" in refused.json()["message"]
    assert len(chat_calls(emulator)) == 1  # memories.ai's session, which remembers the video, is not asked
    page = client.get(reverse("conversation", args=[conversation.pk])).text
    assert "fryer" in page  # their question is theirs
    assert "The answer is hidden: it may tell of a video you can no longer see." in page
    assert kitchen.display_name not in page and "switch off the fryer" not in page


def test_an_owner_who_left_the_team_reads_but_no_longer_asks(client, emulator, member, kitchen):
    client.force_login(member)
    events_of(ask(client, "fryer", video=kitchen.pk))
    conversation = Conversation.objects.get()
    Membership.objects.filter(user=member).delete()  # their videos stay theirs to see, read-only
    next_second()
    emulator.understanding.rate_limits.clear()

    refused = ask(client, "and the exit?", video=kitchen.pk)
    assert refused.status_code == 400 and "You are no longer a member of Team One" in refused.json()["message"]
    follow_up = ask(client, "and the exit?", conversation=conversation.pk)
    assert follow_up.status_code == 400 and "no longer a member" in follow_up.json()["message"]
    assert len(chat_calls(emulator)) == 1  # the team's key and budget are not used for them
    assert 'data-ask' not in client.get(reverse("video-detail", args=[kitchen.pk])).text  # no question box
    page = client.get(reverse("conversation", args=[conversation.pk])).text
    assert "switch off the fryer" in page and "you can read this conversation, not ask in it" in page


def test_a_key_a_team_admin_switched_off_spends_no_credits(client, emulator, member, kitchen):
    ApiKey.objects.update(is_active=False)
    client.force_login(member)
    refused = ask(client, "fryer", video=kitchen.pk)
    assert refused.status_code == 400
    assert "“Main key” these videos were sent with is switched off" in refused.json()["message"]
    assert chat_calls(emulator) == [] and not Question.objects.exists()


def test_an_answer_nobody_closed_touches_no_database_when_collected(emulator, member, kitchen):
    """The garbage collector may finalise an abandoned answer at any moment, on a connection in the
    middle of another query (it hung the suite on PostgreSQL): it closes the socket, nothing else.
    (gunicorn always closes the response; here nobody does, as after a crash.)"""
    emulator.understanding.stream_delay = 0.3
    videos = asking.askable(member, [kitchen.pk])
    question = asking.ask(member, "fryer", videos)
    answer = asking.events(question, asking.send(question, videos), videos)
    next(answer), next(answer)
    del answer
    gc.collect()

    emulator.wait_for(lambda e: chat_calls(e)[-1].get("stream_end"), timeout=10)
    assert chat_calls(emulator)[-1]["stream_end"] == "client gone"  # the socket went with it
    assert Question.objects.get().state == "answering"  # no query ran from the collector
    Question.objects.update(asked_at=timezone.now() - understanding_limits.STREAM_STALE)
    assert understanding_limits.end_dead_answers() == 1  # the clock ends it
