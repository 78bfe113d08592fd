"""In a real browser (Debian's Chromium), against the emulator over HTTP: search, then open a moment
with the player at its second; ask on a video page and watch the answer stream in without a reload;
a cited moment and a transcript line seek the player on the page; a follow-up goes into the same
conversation; a refusal is said in words and keeps the question typed; without JavaScript the form
posts and the conversation's page shows the answer. Under the strict CSP, axe-clean, fitting 375 px."""

import re

import pytest
from playwright.sync_api import expect

from memories_emulator.content import generated
from uploads.models import Conversation, Question, UnderstandingSlot, Video, VideoTranscript

from .browser import fits_375px, no_serious_violations, sign_in
from .conftest import PASSWORD, TEST_KEY
from .test_browser import shot
from .test_browser_transcript import crane_video
from .test_thumbnails import long_mp4

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
NAME = "Harbour crane tour.mp4"  # the emulator's content from the name: lines at 0, 3, 6 and 9 s
SAID = generated("Harbour crane tour")  # what the emulator says the video says (its name without .mp4)
MOVIE = {}  # the 10 s H.264 MP4, made once per run
ANSWERING = "memories.ai is answering"


@pytest.fixture(autouse=True)
def switched_on(settings):
    settings.MEMPORTAL_UNDERSTANDING = True
    settings.MEMORIES_API_FAMILY = "v1"  # namespaces per team, moments with times
    return settings


@pytest.fixture
def crane(emulator, member, team, api_key, tmp_path):
    """A ready video memories.ai holds (uploaded to the emulator for real), with a stored copy the
    player plays and its transcript fetched (the emulator's lines, as the worker would keep them)."""
    if not MOVIE:
        MOVIE["content"] = long_mp4(tmp_path / "long.mp4")
    content = MOVIE["content"]
    video = crane_video(emulator, member, team, api_key, content)
    VideoTranscript.objects.create(video=video, state="fetched", summary=SAID.summary, lines=[
        {"index": n, "start": s.start, "end": s.end, "text": s.text} for n, s in enumerate(SAID.audio)], scenes=[
        {"index": n, "start": s.start, "end": s.end, "text": s.text} for n, s in enumerate(SAID.visual)])
    video.refresh_from_db()
    return video


def free_slots(emulator):
    """The account's search and chat slots free again, as later (the stored times move, not the
    clock), and the emulator's rate limits off."""
    UnderstandingSlot.objects.update(chat_at=None, search_at=None)
    emulator.understanding.rate_limits.clear()


def until(page, script, timeout=15.0, what="the page"):
    """Poll `script` (read with page.evaluate: no string predicate the CSP would refuse) until truthy."""
    for _ in range(int(timeout * 10)):
        value = page.evaluate(script)
        if value:
            return value
        page.wait_for_timeout(100)
    raise AssertionError(f"timed out waiting for {what}: {script}")


def player_time(page):
    return page.evaluate("document.getElementById('player').currentTime")


def player_at(page, second):
    """The player's metadata came and its time reached `second`; paused there, it reads that second."""
    until(page, "document.getElementById('player').readyState >= 1", what="the player's metadata")
    until(page, f"document.getElementById('player').currentTime >= {second}", what=f"the player at {second} s")
    page.evaluate("document.getElementById('player').pause()")
    at = player_time(page)
    assert second <= at < second + 1.5, at  # that second (it may have played on a little)
    return at


def signed_in(page, base, user):
    sign_in(page, base, user.username, PASSWORD)
    page.wait_for_url(f"{base}/videos/")


def ask(page, question):
    page.fill("#ask-question", question)
    page.click(".ask-form button[type=submit]")


def test_search_then_open_a_moment_at_its_second(strict_page, live_server, member, crane, emulator):
    page = strict_page
    signed_in(page, live_server.url, member)
    page.click("header nav >> text=Search")
    page.fill("#id_q", "remember")
    page.click(".search-form button[type=submit]")

    expect(page.locator("#results-heading")).to_have_text("1 moment found")
    moment = page.locator("ol.moments li.moment")
    expect(moment).to_have_count(1)
    expect(moment.locator(".moment-title")).to_have_text("Harbour crane tour")
    expect(moment.locator(".moment-times")).to_have_text("at 0:06–0:09")
    expect(moment.locator("q.moment-line")).to_have_text(SAID.audio[2].text)  # the line said then
    expect(moment.locator(".moment-seen")).to_have_text(f"Seen: {SAID.visual[1].text}")  # and what is seen then
    assert moment.locator(".moment-link").get_attribute("href") == f"/videos/{crane.pk}/?t=6"
    no_serious_violations(page)
    fits_375px(page)
    shot(page, "search")

    moment.locator(".moment-link").click()
    page.wait_for_url(f"{live_server.url}/videos/{crane.pk}/?t=6")
    assert page.locator("#player source").get_attribute("src") == f"/videos/{crane.pk}/media/#t=6"
    player_at(page, 6)  # the media fragment put it there: nothing was clicked on this page


def test_ask_watch_the_answer_stream_follow_a_citation_and_a_follow_up(strict_page, live_server, member, crane,
                                                                      emulator):
    page = strict_page
    signed_in(page, live_server.url, member)
    page.goto(f"{live_server.url}/videos/{crane.pk}/")
    until(page, "document.getElementById('player').readyState >= 1", what="the player's metadata")
    page.evaluate("document.getElementById('player').muted = true")
    page.evaluate("window.askMarker = 'still this page'")  # gone if anything reloads the page
    emulator.understanding.stream_delay = 0.4  # 15 frames: about 6 s of answer

    ask(page, "Where is the crane?")
    turn = page.locator(".ask-turns .ask-turn").first
    expect(turn.locator("[data-question]")).to_have_text("Where is the crane?")
    expect(turn.locator("[data-answer]")).to_contain_text("I found 3 moments")
    midway = page.evaluate("""() => ({answer: document.querySelector('.ask-turns [data-answer]').textContent,
                                      status: document.querySelector('.ask-turns [data-status]').textContent})""")
    assert ANSWERING in midway["status"], midway  # part of the answer is on the page, still answering
    expect(turn.locator("[data-status]")).to_have_text("Answered.", timeout=30_000)
    answer = turn.locator("[data-answer]").inner_text()
    assert answer.startswith(midway["answer"]) and len(answer) > len(midway["answer"])
    assert answer.endswith(SAID.audio[2].text)
    assert page.evaluate("window.askMarker") == "still this page"
    assert page.url == f"{live_server.url}/videos/{crane.pk}/"
    question = Question.objects.get()
    assert question.state == "answered" and question.answer == answer

    cited = turn.locator("[data-moments] li.moment")
    expect(cited).to_have_count(2)  # at 0 s said and seen: one moment; at 6 s said
    expect(cited.nth(0).locator("q.moment-line")).to_have_text(f"{SAID.audio[0].text} · {SAID.visual[0].text}")
    expect(cited.nth(1).locator(".moment-times")).to_have_text("0:06")
    expect(cited.nth(1).locator("q.moment-line")).to_have_text(SAID.audio[2].text)
    assert cited.nth(1).locator("a").get_attribute("href") == f"/videos/{crane.pk}/?t=6"

    cited.nth(1).locator("a").click()  # a cited moment of this video seeks its player, on this page
    player_at(page, 6)
    assert page.url == f"{live_server.url}/videos/{crane.pk}/"
    assert page.evaluate("window.askMarker") == "still this page"
    no_serious_violations(page)
    fits_375px(page)
    page.locator("#ask").scroll_into_view_if_needed()
    shot(page, "ask")

    free_slots(emulator)  # as half a minute later: the account's chat slot is free
    emulator.understanding.stream_delay = 0.05
    expect(page.locator("label[for=ask-question]")).to_have_text("Ask a follow-up question")
    ask(page, "And the thanks?")
    second = page.locator(".ask-turns .ask-turn").nth(1)
    expect(second.locator("[data-status]")).to_have_text("Answered.")
    expect(second.locator("[data-answer]")).to_contain_text("Following up:")  # memories.ai's session went on
    expect(second.locator("[data-moments] .moment-times")).to_have_text(["0:09"])
    conversation = Conversation.objects.get()
    assert conversation.questions.count() == 2

    second.locator("[data-open] a").click()
    page.wait_for_url(f"{live_server.url}/conversations/{conversation.pk}/")
    expect(page.locator(".ask-question")).to_have_count(2)
    expect(page.locator(".ask-question").nth(0)).to_contain_text("Where is the crane?")
    expect(page.locator(".ask-question").nth(1)).to_contain_text("And the thanks?")
    expect(page.locator(".ask-answer").nth(0)).to_have_text(answer)
    expect(page.locator("label[for=ask-question]")).to_have_text("Ask a follow-up question")
    no_serious_violations(page)
    fits_375px(page)

    page.click("header nav >> text=Conversations")
    expect(page.locator("ul.conversations li")).to_have_count(1)
    expect(page.locator("ul.conversations li a")).to_have_text("Where is the crane?")
    expect(page.locator("ul.conversations li small")).to_contain_text("about Harbour crane tour · Team One")
    no_serious_violations(page)
    fits_375px(page)


def test_a_transcript_line_seeks_the_player(strict_page, live_server, member, crane):
    page = strict_page
    signed_in(page, live_server.url, member)
    page.goto(f"{live_server.url}/videos/{crane.pk}/")
    lines = page.locator("#transcript-lines li")
    expect(lines).to_have_count(4)
    expect(lines.nth(3)).to_contain_text("Thanks for watching.")
    until(page, "document.getElementById('player').readyState >= 1", what="the player's metadata")
    page.evaluate("document.getElementById('player').muted = true")
    page.locator("#transcript-lines button[data-seek='9.0']").click()
    player_at(page, 9)
    assert page.url == f"{live_server.url}/videos/{crane.pk}/"


def test_a_refusal_is_said_in_words_and_keeps_the_question(strict_page, live_server, member, crane, emulator):
    page = strict_page
    page.clock.install()  # time flows as usual; fast_forward skips the wait for the chat slot
    signed_in(page, live_server.url, member)
    page.goto(f"{live_server.url}/videos/{crane.pk}/")
    ask(page, "Where is the crane?")
    first = page.locator(".ask-turns .ask-turn").nth(0)
    expect(first.locator("[data-status]")).to_have_text("Answered.")

    ask(page, "And the thanks?")  # at once: the account's chat slot (2 a minute) is taken
    second = page.locator(".ask-turns .ask-turn").nth(1)
    error = second.locator("[data-error]")
    button = page.locator(".ask-form button[type=submit]")
    expect(error).to_be_visible()
    expect(error).to_contain_text(re.compile(r"memories\.ai answers 2 questions a minute for your team's account, "
                                             r"and that is used up: ask again in \d+ s\."))
    expect(second.locator("[data-status]")).to_have_text(re.compile(r"You can ask again in (2\d|30) s\."))
    expect(page.locator("#ask-question")).to_have_value("And the thanks?")  # nothing lost: ask it again
    expect(button).to_be_disabled()  # until the wait is over, counted down
    page.clock.fast_forward("00:31")
    expect(second.locator("[data-status]")).to_have_text("You can ask again now.")
    expect(button).to_be_enabled()

    free_slots(emulator)
    emulator.inject("chat_stream", "code", code="0402")  # memories.ai: out of credits
    button.click()
    third = page.locator(".ask-turns .ask-turn").nth(2)
    expect(third.locator("[data-error]")).to_contain_text("a team admin can add credits at memories.ai")
    assert TEST_KEY not in third.inner_text()
    expect(page.locator("#ask-question")).to_have_value("And the thanks?")
    expect(button).to_be_enabled()  # no wait was given: the key is for a team admin to fix
    assert [q.state for q in Question.objects.order_by("asked_at")] == ["answered", "refused"]
    no_serious_violations(page)
    fits_375px(page)


def test_a_first_question_memories_ai_refused_is_asked_again_in_its_conversation(
        strict_page, live_server, member, crane, emulator):
    page = strict_page
    signed_in(page, live_server.url, member)
    page.goto(f"{live_server.url}/videos/{crane.pk}/")
    emulator.inject("chat_stream", "code", code="0402")
    ask(page, "Where is the crane?")
    first = page.locator(".ask-turns .ask-turn").nth(0)
    expect(first.locator("[data-error]")).to_contain_text("a team admin can add credits at memories.ai")
    expect(first.locator("[data-open] a")).to_be_visible()  # the conversation keeps the refused question

    free_slots(emulator)
    page.click(".ask-form button[type=submit]")  # the question is still in the box
    second = page.locator(".ask-turns .ask-turn").nth(1)
    expect(second.locator("[data-status]")).to_have_text("Answered.")
    conversation = Conversation.objects.get()  # one conversation, not one per try
    assert [q.state for q in conversation.questions.order_by("asked_at")] == ["refused", "answered"]
    page.goto(f"{live_server.url}/conversations/{conversation.pk}/")
    turns = page.locator(".ask-turn")
    expect(turns.nth(0)).to_contain_text("Not answered:")
    expect(turns.nth(1)).to_contain_text("Where is the crane?")

    free_slots(emulator)
    ask(page, "And what about the thanks?")  # a follow-up streams in below the turns before it
    expect(page.locator(".ask-turn").nth(2).locator("[data-status]")).to_have_text("Answered.")
    assert page.evaluate("""() => {
        const turns = [...document.querySelectorAll('.ask-turn')], form = document.querySelector('.ask-form');
        return turns.every(t => t.compareDocumentPosition(form) & Node.DOCUMENT_POSITION_FOLLOWING);
    }""")  # the question box is below every turn: the conversation reads top to bottom


def test_without_javascript_the_answer_is_on_the_conversations_page(browser_page, live_server, member, crane):
    context = browser_page.context.browser.new_context(java_script_enabled=False,
                                                       viewport={"width": 1440, "height": 900})
    try:
        page = context.new_page()
        page.set_default_timeout(15_000)
        signed_in(page, live_server.url, member)
        page.goto(f"{live_server.url}/videos/{crane.pk}/")
        expect(page.locator("label[for=ask-question]")).to_have_text("Ask about this video")
        ask(page, "Where is the crane?")  # the form posts; the page comes once the answer is complete

        page.wait_for_url(re.compile(r"/conversations/[0-9a-f-]{36}/$"))
        conversation = Conversation.objects.get()
        assert page.url == f"{live_server.url}/conversations/{conversation.pk}/"
        expect(page.locator(".ask-question")).to_contain_text("Where is the crane?")
        expect(page.locator(".ask-answer")).to_contain_text("I found 3 moments")
        expect(page.locator("li.moment .moment-times")).to_have_text(["at 0:00", "at 0:06"])
        assert page.locator("li.moment a").nth(1).get_attribute("href") == f"/videos/{crane.pk}/?t=6"
        expect(page.locator("label[for=ask-question]")).to_have_text("Ask a follow-up question")
    finally:
        context.close()
