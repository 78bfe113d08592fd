"""The client of memories.ai's calls beyond upload (uploads/understanding.py), against the emulator over HTTP:
search kept to a namespace and to video_nos, the streamed answer read in pieces and closed early, citations
at the right second, transcripts and summaries, sessions, and each error answered as the upload path's."""

import time

import pytest

from uploads import memories, understanding
from uploads.memories import KEY, RETRY, MemoriesError, Place
from uploads.understanding import Content, Done, Error, Refs, Thinking

from .conftest import OTHER_KEY, TEST_KEY, sample

TEAM_A, TEAM_B = Place("v1", "memportal-team-1"), Place("v1", "memportal-team-2")
OLDER = Place("video", "")


@pytest.fixture(autouse=True)
def unlimited(emulator):
    """The published rate limits off (the tests of them switch them back on), frames 10 ms apart."""
    limits = dict(emulator.understanding.rate_limits)
    emulator.understanding.rate_limits.clear()
    emulator.understanding.stream_delay = 0.01
    return limits


def parsed(emulator, name, place, key=TEST_KEY, status="PARSE"):
    """A sample sent through the portal's own upload call into `place`, parsed at once."""
    content = sample(name).read_bytes()
    with sample(name).open("rb") as fileobj:
        sent = memories.upload(key, fileobj, size=len(content), filename=name, content_type="video/mp4",
                               callback_url=None, place=place)
    emulator.set_status(sent.video_no, status, send_callback=False)
    return sent.video_no


@pytest.fixture
def kitchen(emulator):
    return parsed(emulator, "sample-h264-aac.mp4", TEAM_A)


# -- search ---------------------------------------------------------------------------------

def test_search_finds_moments_of_its_namespace_only(emulator, kitchen):
    forklift = parsed(emulator, "sample-hevc.mov", TEAM_A)
    other_team = parsed(emulator, "sample-h264-aac.mp4", TEAM_B)
    other_account = parsed(emulator, "sample-h264-aac.mp4", TEAM_A, key=OTHER_KEY)

    assert understanding.search(TEST_KEY, TEAM_A, "fryer cleaning", search_type="BY_AUDIO") == [
        understanding.Moment(kitchen, "sample-h264-aac", 0.7, 1.4, 1.0)]
    found = understanding.search(TEST_KEY, TEAM_A, "safety")
    assert {m.video_no for m in found} == {kitchen, forklift}
    assert [m.video_no for m in understanding.search(TEST_KEY, TEAM_B, "safety")] == [other_team]
    assert [m.video_no for m in understanding.search(OTHER_KEY, TEAM_A, "safety")] == [other_account]


def test_search_keeps_to_the_video_nos_it_was_given(emulator, kitchen):
    forklift = parsed(emulator, "sample-hevc.mov", TEAM_A)
    theirs = parsed(emulator, "sample-h264-aac.mp4", TEAM_B)
    assert [(m.video_no, m.start) for m in understanding.search(TEST_KEY, TEAM_A, "safety", video_nos=[forklift])] == [
        (forklift, 0.6)]
    assert understanding.search(TEST_KEY, TEAM_A, "safety", video_nos=[theirs]) == []  # another team's number
    before = len(emulator.requests)
    assert understanding.search(TEST_KEY, TEAM_A, "safety", video_nos=[]) == []  # nobody asked: nothing sent
    assert len(emulator.requests) == before
    with pytest.raises(ValueError, match="at most 100"):
        understanding.search(TEST_KEY, TEAM_A, "safety", video_nos=[kitchen] * 101)


def test_without_a_namespace_search_needs_video_nos_and_keeps_to_them(emulator):
    mine, someone_elses = (parsed(emulator, "sample-h264-aac.mp4", OLDER) for _ in range(2))
    for place in (OLDER, Place("v1", "")):  # the older family, v1's default: shared by every team of the account
        with pytest.raises(ValueError, match="needs video_nos"):
            understanding.search(TEST_KEY, place, "fryer")
        with pytest.raises(ValueError, match="namespace"):
            understanding.search_transcripts(TEST_KEY, place, "fryer")
    # The older family's search takes no video_nos and answers every video of the default namespace:
    # the client keeps those it asked for. It gives no times.
    assert understanding.search(TEST_KEY, OLDER, "fryer", video_nos=[mine]) == [
        understanding.Moment(mine, "sample-h264-aac", None, None, None)]
    assert emulator.requests[-1]["path"] == "/serve/api/video/search"
    assert someone_elses != mine


def test_transcript_search_finds_the_spoken_phrase(emulator, kitchen):
    (hit,) = understanding.search_transcripts(TEST_KEY, TEAM_A, "fire blankets")
    assert (hit.video_no, hit.start) == (kitchen, 1.4)
    assert hit.lines == (understanding.Line(0, "Fire blankets hang beside the exit door.", 1.4, 2.0),)
    assert understanding.search_transcripts(TEST_KEY, TEAM_B, "fire blankets") == []


# -- transcripts and summaries --------------------------------------------------------------

def test_transcripts_come_with_their_times(emulator, kitchen):
    speech = understanding.transcript(TEST_KEY, TEAM_A, kitchen)
    assert speech.video_no == kitchen
    assert [(line.index, line.start, line.end) for line in speech.lines] == [(0, 0.0, 0.7), (1, 0.7, 1.4), (2, 1.4, 2.0)]
    assert speech.lines[1].text == "Always switch off the fryer before cleaning it."
    captions = understanding.transcript(TEST_KEY, TEAM_A, kitchen, kind="video")
    assert captions.lines[1].text == "Close-up of a red fire blanket on a white wall." and captions.lines[1].start == 1.0
    emulator.understanding.flip_time_types = True  # numbers where the docs say strings: read alike
    assert understanding.transcript(TEST_KEY, TEAM_A, kitchen) == speech


def test_no_transcript_yet_while_parsing_nor_of_speech_without_audio(emulator):
    parsing = parsed(emulator, "sample-h264-aac.mp4", TEAM_A, status="UNPARSE")
    silent = parsed(emulator, "sample-h264-noaudio.avi", TEAM_A)
    assert understanding.transcript(TEST_KEY, TEAM_A, parsing) is None
    assert understanding.summary(TEST_KEY, TEAM_A, parsing) is None
    assert understanding.transcript(TEST_KEY, TEAM_A, silent) is None
    assert len(understanding.transcript(TEST_KEY, TEAM_A, silent, kind="video").lines) == 2
    with pytest.raises(MemoriesError) as raised:  # another team's namespace does not have it
        understanding.transcript(TEST_KEY, TEAM_B, silent)
    assert (raised.value.kind, raised.value.code) == (memories.REJECT, "0001")


def test_summaries_by_chapters_and_topics(emulator, kitchen):
    chapters = understanding.summary(TEST_KEY, TEAM_A, kitchen)
    assert chapters.text.startswith("A short kitchen safety briefing")
    assert [(i.title, i.start) for i in chapters.items] == [("Welcome", 0.0), ("The fryer", 0.7), ("Fire blankets", 1.4)]
    topics = understanding.summary(TEST_KEY, TEAM_A, kitchen, kind="TOPIC")
    assert topics.items[1] == understanding.SummaryItem("Fire safety", "Fire blankets beside the exit door.", 1.4)
    with pytest.raises(ValueError):
        understanding.summary(TEST_KEY, TEAM_A, kitchen, kind="SCENE")


# -- chat -----------------------------------------------------------------------------------

def test_the_answer_streams_in_pieces(emulator, kitchen):
    emulator.understanding.stream_delay = 0.15
    with understanding.chat_stream(TEST_KEY, TEAM_A, [kitchen], "How do I clean the fryer?") as frames:
        first = next(frames)
        first_read_at = time.time()
        rest = list(frames)
    sent_at = emulator.requests[-1]["frames_sent_at"]
    assert isinstance(first, Thinking) and first.session_id
    assert first_read_at < sent_at[-1] - 0.3  # the first piece was read long before the last was sent
    assert len(sent_at) == 1 + len(rest) and rest[-1] == Done()
    pieces = [f.text for f in rest if isinstance(f, Content)]
    assert len(pieces) > 3 and "at 0.7s: Always switch off the fryer before cleaning it." in "".join(pieces)


def test_citations_point_at_the_second_of_the_transcript_line(emulator, kitchen):
    frames = list(understanding.chat_stream(TEST_KEY, TEAM_A, [kitchen], "Where do the fire blankets hang?"))
    (refs,) = [f for f in frames if isinstance(f, Refs)]
    (ref,) = refs.refs
    assert (ref.video_no, ref.video_name, ref.duration) == (kitchen, "sample-h264-aac", 2.0)
    spoken = next(item for item in ref.items if item.kind == "audio_ts")
    line = next(line for line in understanding.transcript(TEST_KEY, TEAM_A, kitchen).lines if line.text == spoken.text)
    assert (spoken.video_no, spoken.start, spoken.end) == (kitchen, line.start, line.end) == (kitchen, 1.4, 2.0)
    emulator.understanding.flip_time_types = True  # the documented numbers sent as strings: read alike
    again = next(f for f in understanding.chat_stream(TEST_KEY, TEAM_A, [kitchen], "fire blankets hang")
                 if isinstance(f, Refs))
    assert [(i.start, i.end) for i in again.refs[0].items] == [(i.start, i.end) for i in ref.items]


def test_a_follow_up_question_keeps_its_session(emulator, kitchen):
    stream = understanding.chat_stream(TEST_KEY, TEAM_A, [kitchen], "What about the fryer?")
    frames = list(stream)
    session_id = stream.session_id
    assert session_id and {f.session_id for f in frames if not isinstance(f, Done)} == {session_id}
    follow_up = understanding.chat_stream(TEST_KEY, TEAM_A, [kitchen], "And the blankets?", session_id=session_id)
    assert "".join(f.text for f in follow_up if isinstance(f, Content)).startswith("Following up:")
    assert follow_up.session_id == session_id

    assert understanding.list_sessions(TEST_KEY, TEAM_A) == [understanding.SessionInfo(session_id, "What about the fryer?")]
    assert understanding.list_sessions(TEST_KEY, TEAM_B) == []
    detail = understanding.session_detail(TEST_KEY, TEAM_A, session_id)
    assert [m.role for m in detail.messages] == ["user", "assistant", "user", "assistant"]
    assert detail.messages[1].refs[0].items[0].start == 0.7 and detail.messages[1].thinkings
    with pytest.raises(MemoriesError, match="session not found"):
        understanding.session_detail(TEST_KEY, TEAM_B, session_id)


def test_the_older_family_chats_through_its_own_path(emulator):
    video_no = parsed(emulator, "sample-h264-aac.mp4", OLDER)
    frames = list(understanding.chat_stream(TEST_KEY, OLDER, [video_no], "fryer"))
    assert frames[-1] == Done() and emulator.requests[-1]["path"] == "/serve/api/video/chat"


def test_a_consumer_that_stops_early_closes_the_connection(emulator, kitchen):
    emulator.understanding.stream_delay = 0.2
    with understanding.chat_stream(TEST_KEY, TEAM_A, [kitchen], "fryer") as frames:
        assert isinstance(next(frames), Thinking)
    assert emulator.wait_for(lambda e: e.requests[-1].get("stream_end"), timeout=3) == "client gone"
    assert emulator.requests[-1]["frames_sent"] <= 2

    relayed = understanding.chat_stream(TEST_KEY, TEAM_A, [kitchen], "fryer")  # as a streaming response closes it
    next(relayed)
    relayed.close()
    assert emulator.wait_for(lambda e: e.requests[-1].get("stream_end"), timeout=3) == "client gone"
    assert list(relayed) == []


# -- errors ---------------------------------------------------------------------------------

def test_over_the_rate_limit_is_a_retry_and_out_of_credits_is_key_trouble(emulator, kitchen, unlimited):
    emulator.understanding.rate_limits.update(unlimited)  # the published limits
    understanding.search(TEST_KEY, TEAM_A, "fryer")
    with pytest.raises(MemoriesError) as busy:
        understanding.search(TEST_KEY, TEAM_A, "fryer")
    assert (busy.value.kind, busy.value.code, busy.value.rate_limited) == (RETRY, "0429", True)
    understanding.transcript(TEST_KEY, TEAM_A, kitchen)
    with pytest.raises(MemoriesError) as busy:
        understanding.transcript(TEST_KEY, TEAM_A, kitchen, kind="video")  # one limit for both transcripts
    assert busy.value.rate_limited

    emulator.inject("chat_stream", "code", code="0402")
    with pytest.raises(MemoriesError) as broke:
        understanding.chat_stream(TEST_KEY, TEAM_A, [kitchen], "fryer")
    assert (broke.value.kind, understanding.out_of_credits(broke.value)) == (KEY, True)
    assert "credits" in str(broke.value)
    with pytest.raises(MemoriesError) as refused:
        understanding.summary("sk-mavi-unknown-key-0000", TEAM_A, kitchen)
    assert (refused.value.kind, refused.value.code) == (KEY, "0401")
    assert "sk-mavi-unknown-key-0000" not in str(refused.value) and TEST_KEY not in str(broke.value)


def test_an_answer_that_fails_midway_ends_in_an_error_frame(emulator, kitchen):
    emulator.inject("chat_stream", "stream_error", code="0402", after=2, msg=f"no credits left for {TEST_KEY}")
    frames = list(understanding.chat_stream(TEST_KEY, TEAM_A, [kitchen], "fryer"))
    assert [type(f) for f in frames] == [Thinking, Thinking, Error]
    assert frames[-1].code == "0402" and TEST_KEY not in frames[-1].message  # an echoed key is taken out
    assert frames[-1].error.kind == KEY and understanding.out_of_credits(frames[-1].error)

    emulator.inject("chat_stream", "stream_cut", after=3)
    cut = list(understanding.chat_stream(TEST_KEY, TEAM_A, [kitchen], "fryer"))
    assert [type(f) for f in cut] == [Thinking, Thinking, Refs, Error]
    assert (cut[-1].code, cut[-1].error.kind) == ("", RETRY) and "broke" in cut[-1].message


def test_unknown_videos_and_wrong_paths_are_refused_before_any_frame(emulator, kitchen, settings):
    theirs = parsed(emulator, "sample-h264-aac.mp4", TEAM_B)
    with pytest.raises(MemoriesError, match="video not found") as refused:
        understanding.chat_stream(TEST_KEY, TEAM_A, [kitchen, theirs], "fryer")
    assert refused.value.kind == memories.REJECT
    settings.MEMORIES_V1_GENERATE_SUMMARY_PATH = "/serve/api/v9/generate_summary"
    with pytest.raises(MemoriesError) as misplaced:
        understanding.summary(TEST_KEY, TEAM_A, kitchen)
    assert (misplaced.value.kind, misplaced.value.http_status) == (memories.CONFIG, 404)
    emulator.inject("chat_stream", "wrong_content_type")  # one envelope instead of a stream: read as one answer
    assert list(understanding.chat_stream(TEST_KEY, TEAM_A, [kitchen], "fryer"))[-1] == Done()
