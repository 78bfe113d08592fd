"""Tests of the emulator's calls beyond upload (search, transcripts, summaries, chat, sessions), over real HTTP.

What they answer is in ``memories_emulator.understanding``, the content in ``memories_emulator.content``,
the chat in ``memories_emulator.conversations``, the stream in ``memories_emulator.sse``.
"""

from __future__ import annotations

import json
import sys
import time

import pytest
import requests

from memories_emulator import MemoriesEmulator
from memories_emulator.tests.support import KEY, OTHER_KEY, REPO, UPLOAD, V1_UPLOAD, api, upload

DATA = REPO / "tests" / "data"
KITCHEN, FORKLIFT, NO_AUDIO = "sample-h264-aac.mp4", "sample-hevc.mov", "sample-h264-noaudio.avi"
SEARCH, OLDER_SEARCH = "/serve/api/v1/search", "/serve/api/video/search"
CHAT, CHAT_STREAM, OLDER_CHAT = "/serve/api/v1/chat", "/serve/api/v1/chat_stream", "/serve/api/video/chat"
AUDIO, VISUAL = "/serve/api/v1/get_audio_transcription", "/serve/api/v1/get_video_transcription"
SUMMARY, SESSIONS = "/serve/api/v1/generate_summary", "/serve/api/v1/list_sessions"
DETAIL = "/serve/api/v1/get_session_detail"
TRANSCRIPT_SEARCH = "/serve/api/v1/search_audio_transcripts"


@pytest.fixture
def emu(make_emulator):
    """Rate limits off and frames 10 ms apart, unless a test says otherwise."""
    return make_emulator(keys=[KEY, OTHER_KEY], send_callbacks=False, rate_limits={}, stream_delay=0.01)


def parsed(emu, sample, unique_id=None, key=KEY, name=None, path=V1_UPLOAD, status="PARSE"):
    """Upload a sample (under its own name unless `name`), and have it parsed at once."""
    data = {"unique_id": unique_id} if unique_id is not None else {"x": "1"}
    answer = upload(emu, key=key, filename=name or sample, content=(DATA / sample).read_bytes(),
                    content_type="video/mp4", data=data, path=path).json()
    assert answer["code"] == "0000", answer
    emu.set_status(answer["data"]["videoNo"], status, send_callback=False)
    return answer["data"]["videoNo"]


def post(emu, path, body, key=KEY):
    return api(emu, path, body, key=key).json()


def get(emu, path, key=KEY, **params):
    return requests.get(emu.base_url + path, headers={"Authorization": key}, params=params, timeout=5).json()


def ok(answer):
    assert answer["code"] == "0000" and answer["success"] is True and answer["failed"] is False, answer
    return answer["data"]


def events(response):
    """The JSON of each `data:` line of a server-sent event stream."""
    return [json.loads(line[len(b"data: "):]) for line in response.iter_lines() if line.startswith(b"data: ")]


def ask(emu, video_nos, prompt, path=CHAT_STREAM, key=KEY, **body):
    with requests.post(emu.base_url + path, headers={"Authorization": key}, stream=True, timeout=5,
                       json={"video_nos": video_nos, "prompt": prompt, **body}) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        return events(response)


# -- search ---------------------------------------------------------------------------------

def test_search_finds_moments_with_their_times_in_its_own_namespace_only(emu):
    kitchen, forklift = parsed(emu, KITCHEN, "team-a"), parsed(emu, FORKLIFT, "team-a")
    other_team, other_account = parsed(emu, KITCHEN, "team-b"), parsed(emu, KITCHEN, "team-a", key=OTHER_KEY)

    moments = ok(post(emu, SEARCH, {"search_param": "fryer cleaning", "search_type": "BY_AUDIO", "unique_id": "team-a"}))
    assert moments == [{"videoNo": kitchen, "videoName": "sample-h264-aac", "startTime": "0.7", "endTime": "1.4",
                        "score": 1.0}]
    safety = ok(post(emu, SEARCH, {"search_param": "safety", "unique_id": "team-a"}))
    assert {m["videoNo"] for m in safety} == {kitchen, forklift}
    assert ok(post(emu, SEARCH, {"search_param": "safety", "unique_id": "team-a", "video_nos": [forklift]})) == [
        {"videoNo": forklift, "videoName": "sample-hevc", "startTime": "0.6", "endTime": "1.3", "score": 1.0}]
    # Another namespace's or account's video never appears, even when named in video_nos.
    for body in ({"unique_id": "team-a", "video_nos": [other_team, other_account]}, {"unique_id": "Team-A"}, {}):
        assert ok(post(emu, SEARCH, {"search_param": "safety", **body})) == []
    assert [m["videoNo"] for m in ok(post(emu, SEARCH, {"search_param": "safety", "unique_id": "team-b"}))] == [other_team]
    assert [m["videoNo"] for m in ok(post(emu, SEARCH, {"search_param": "fryer", "unique_id": "team-a"},
                                         key=OTHER_KEY))] == [other_account]


def test_search_reads_captions_or_speech_ranks_and_filters(emu):
    kitchen = parsed(emu, KITCHEN, "t")
    body = {"search_param": "red fire blanket", "unique_id": "t"}
    assert [(m["startTime"], m["score"]) for m in ok(post(emu, SEARCH, {**body, "search_type": "BY_CAPTION"}))] == [
        ("1", 1.0)]
    assert [(m["startTime"], m["score"]) for m in ok(post(emu, SEARCH, {**body, "search_type": "BY_AUDIO"}))] == [
        ("1.4", 0.6667)]
    assert [m["score"] for m in ok(post(emu, SEARCH, body))] == [1.0, 0.6667]  # BY_CLIP: both, best first
    assert len(ok(post(emu, SEARCH, {**body, "filtering_level": "high"}))) == 1
    assert len(ok(post(emu, SEARCH, {**body, "top_k": 1}))) == 1
    assert ok(post(emu, SEARCH, {**body, "search_type": "BY_VIDEO"})) == [
        {"videoNo": kitchen, "videoName": "sample-h264-aac", "startTime": "0", "endTime": "2", "score": 1.0}]


def test_search_sees_only_parsed_videos(emu):
    parsing = parsed(emu, KITCHEN, "t", status="UNPARSE")
    assert ok(post(emu, SEARCH, {"search_param": "fryer", "unique_id": "t"})) == []
    emu.set_status(parsing, "PARSE", send_callback=False)
    assert len(ok(post(emu, SEARCH, {"search_param": "fryer", "unique_id": "t"}))) == 1


@pytest.mark.parametrize("body, code", [
    ({}, "0003"), ({"search_param": " "}, "0003"), ({"search_param": "x", "search_type": "BY_SMELL"}, "0001"),
    ({"search_param": "x", "search_type": "BY_IMAGE"}, "0001"), ({"search_param": "x", "top_k": 0}, "0001"),
    ({"search_param": "x", "top_k": 1001}, "0001"), ({"search_param": "x", "filtering_level": "max"}, "0001"),
    ({"search_param": "x", "video_nos": ["VI1"] * 101}, "0001"), ({"search_param": "x", "video_nos": "VI1"}, "0001"),
    ({"search_param": "x", "unique_id": 7}, "0001"),
])
def test_search_refuses_bad_parameters(emu, body, code):
    answer = post(emu, SEARCH, body)
    assert (answer["code"], answer["data"], answer["failed"]) == (code, None, True)


def test_the_older_family_searches_the_default_namespace_for_whole_videos(emu):
    older = parsed(emu, KITCHEN, path=UPLOAD)
    parsed(emu, KITCHEN, "team-a")
    assert ok(post(emu, OLDER_SEARCH, {"search_param": "fryer", "unique_id": "team-a"})) == {
        "videos": [{"videoNo": older, "videoName": "sample-h264-aac"}]}


def test_transcript_search_finds_the_exact_phrase(emu):
    kitchen = parsed(emu, KITCHEN, "t")
    parsed(emu, FORKLIFT, "t")
    assert ok(get(emu, TRANSCRIPT_SEARCH, query="FIRE  blankets hang", unique_id="t")) == {
        "videos": [{"videoNo": kitchen, "startTime": "1.4", "audio_ts": [
            {"startTime": "1.4", "endTime": "2", "text": "Fire blankets hang beside the exit door."}]}],
        "current_page": 1, "page_size": 20, "total_count": 1}
    assert ok(get(emu, TRANSCRIPT_SEARCH, query="blankets fire", unique_id="t"))["videos"] == []
    assert ok(get(emu, TRANSCRIPT_SEARCH, query="fire blankets", unique_id="other"))["videos"] == []


# -- transcripts and summaries --------------------------------------------------------------

def test_transcripts_have_their_lines_and_times(emu):
    kitchen = parsed(emu, KITCHEN, "t")
    speech = ok(get(emu, AUDIO, video_no=kitchen, unique_id="t"))
    assert speech["videoNo"] == kitchen
    assert [(t["index"], t["startTime"], t["endTime"]) for t in speech["transcriptions"]] == [
        (0, "0", "0.7"), (1, "0.7", "1.4"), (2, "1.4", "2")]
    assert speech["transcriptions"][1]["content"] == "Always switch off the fryer before cleaning it."
    captions = ok(get(emu, VISUAL, video_no=kitchen, unique_id="t"))["transcriptions"]
    assert [c["content"] for c in captions][0] == "A chef stands at a steel counter in a bright kitchen."


def test_transcripts_are_null_while_parsing_or_without_audio_and_not_found_elsewhere(emu):
    parsing, silent = parsed(emu, KITCHEN, "t", status="UNPARSE"), parsed(emu, NO_AUDIO, "t")
    assert ok(get(emu, AUDIO, video_no=parsing, unique_id="t")) is None
    assert ok(get(emu, SUMMARY, video_no=parsing, unique_id="t", type="CHAPTER")) is None
    assert ok(get(emu, AUDIO, video_no=silent, unique_id="t")) is None
    assert len(ok(get(emu, VISUAL, video_no=silent, unique_id="t"))["transcriptions"]) == 2
    for params in ({"unique_id": "u"}, {}):
        assert get(emu, VISUAL, video_no=silent, **params)["code"] == "0001"
    assert get(emu, VISUAL, video_no=silent, key=OTHER_KEY, unique_id="t")["code"] == "0001"
    assert get(emu, VISUAL, unique_id="t")["code"] == "0003"


def test_summaries_by_chapter_and_topic(emu):
    kitchen = parsed(emu, KITCHEN, "t")
    chapters = ok(get(emu, SUMMARY, video_no=kitchen, unique_id="t", type="CHAPTER"))
    assert chapters["summary"].startswith("A short kitchen safety briefing")
    assert [(i["title"], i["start"]) for i in chapters["items"]] == [
        ("Welcome", "0"), ("The fryer", "0.7"), ("Fire blankets", "1.4")]
    assert [i["title"] for i in ok(get(emu, SUMMARY, video_no=kitchen, unique_id="t", type="TOPIC"))["items"]] == [
        "Cleaning the fryer", "Fire safety"]
    assert get(emu, SUMMARY, video_no=kitchen, unique_id="t", type="SCENE")["code"] == "0001"
    assert get(emu, SUMMARY, video_no=kitchen, unique_id="t")["code"] == "0003"


def test_any_other_file_gets_content_made_from_its_name(emu, make_emulator):
    video_no = parsed(emu, KITCHEN, "t", name="harbour-crane-tour.mp4")  # the bytes decide first
    first_line = ok(get(emu, AUDIO, video_no=video_no, unique_id="t"))["transcriptions"][0]
    assert first_line["content"].startswith("Welcome to the kitchen")
    answer = upload(emu, filename="Harbour crane tour.mp4", content=b"\x00" * 500, data={"unique_id": "t"},
                    path=V1_UPLOAD).json()
    made_up = answer["data"]["videoNo"]
    emu.set_status(made_up, "PARSE", send_callback=False)
    lines = ok(get(emu, AUDIO, video_no=made_up, unique_id="t"))["transcriptions"]
    assert lines[0] == {"index": 0, "content": "Welcome to Harbour crane tour.", "startTime": "0", "endTime": "3"}
    assert lines[-1]["endTime"] == "12"
    assert {m["videoNo"] for m in ok(post(emu, SEARCH, {"search_param": "crane", "unique_id": "t"}))} == {made_up}
    again = make_emulator(rate_limits={})  # the same name, the same content, in any emulator
    again_no = upload(again, filename="Harbour crane tour.mp4", content=b"\x01", data={"unique_id": "t"},
                      path=V1_UPLOAD).json()["data"]["videoNo"]
    again.set_status(again_no, "PARSE", send_callback=False)
    assert ok(get(again, AUDIO, video_no=again_no, unique_id="t"))["transcriptions"] == lines


# -- chat -----------------------------------------------------------------------------------

def test_chat_stream_sends_the_documented_frames_citing_the_matching_seconds(emu):
    kitchen, forklift = parsed(emu, KITCHEN, "t"), parsed(emu, FORKLIFT, "t")
    frames = ask(emu, [kitchen, forklift], "Where do the fire blankets hang?", unique_id="t")

    assert frames[-1] == {"code": "SUCCESS", "data": "Done"}
    kinds = [f.get("type") for f in frames[:-1]]
    assert kinds[:3] == ["thinking", "thinking", "ref"] and set(kinds[3:]) == {"content"} and len(kinds) > 5
    session_id = frames[0]["sessionId"]
    assert session_id.isdigit() and all(f["sessionId"] == session_id for f in frames[:-1])
    (ref,) = frames[2]["ref"]
    assert ref["video"] == {"video_no": kitchen, "video_name": "sample-h264-aac", "duration": "2"}
    assert ref["refItems"] == [
        {"videoNo": kitchen, "startTime": 1, "endTime": 2, "type": "visual_ts",
         "text": "Close-up of a red fire blanket on a white wall."},
        {"videoNo": kitchen, "startTime": 1.4, "endTime": 2, "type": "audio_ts",
         "text": "Fire blankets hang beside the exit door."}]
    text = "".join(f["content"] for f in frames if f.get("type") == "content")
    assert "at 1.4s: Fire blankets hang beside the exit door." in text
    assert all(f["role"] == "assistant" for f in frames if f.get("type") == "content")
    assert emu.requests[-1]["stream_end"] == "done" and emu.requests[-1]["frames_sent"] == len(frames)


def test_a_frame_the_client_has_read_is_already_on_record(emu):
    """What a test reads from `requests` right after a client got a frame (or the end) is there.

    The record used to be written after the bytes left, so a client quick enough found the last
    frame or the stream's end missing; many thread switches make that race show every time."""
    kitchen = parsed(emu, KITCHEN, "t")
    emu.understanding.stream_delay = 0
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for attempt in range(20):
            with requests.post(emu.base_url + CHAT_STREAM, headers={"Authorization": KEY}, stream=True,
                               timeout=5, json={"video_nos": [kitchen], "prompt": "fryer",
                                                "unique_id": "t"}) as response:
                read = 0
                for line in response.iter_lines(chunk_size=None):
                    if line.startswith(b"data: "):
                        read += 1
                        record = emu.requests[-1]
                        assert record["frames_sent"] >= read and len(record["frames_sent_at"]) >= read
            assert emu.requests[-1].get("stream_end") == "done", attempt  # the body had ended
    finally:
        sys.setswitchinterval(switch_interval)


def test_the_first_frame_arrives_before_the_last_is_sent(emu):
    kitchen = parsed(emu, KITCHEN, "t")
    emu.understanding.stream_delay = 0.1
    with requests.post(emu.base_url + CHAT_STREAM, headers={"Authorization": KEY}, stream=True, timeout=5,
                       json={"video_nos": [kitchen], "prompt": "fryer", "unique_id": "t"}) as response:
        lines = response.iter_lines(chunk_size=None)
        first = next(line for line in lines if line)
        first_read_at = time.time()
        rest = [line for line in lines if line]
    assert json.loads(first[len(b"data: "):])["type"] == "thinking"
    sent_at = emu.requests[-1]["frames_sent_at"]
    assert len(sent_at) == len(rest) + 1 > 3
    assert first_read_at < sent_at[-1] - 0.2  # read while most frames were still to come
    assert all(b - a >= 0.09 for a, b in zip(sent_at, sent_at[1:]))


def test_a_client_that_hangs_up_ends_the_stream(emu):
    kitchen = parsed(emu, KITCHEN, "t")
    emu.understanding.stream_delay = 0.2
    response = requests.post(emu.base_url + CHAT_STREAM, headers={"Authorization": KEY}, stream=True, timeout=5,
                             json={"video_nos": [kitchen], "prompt": "fryer", "unique_id": "t"})
    assert next(line for line in response.iter_lines(chunk_size=None) if line).startswith(b"data: ")
    response.close()
    ended = emu.wait_for(lambda e: e.requests[-1].get("stream_end"), timeout=3)
    assert ended == "client gone" and emu.requests[-1]["frames_sent"] <= 2
    assert any("stream client gone after" in line for line in emu.log_lines)


def test_follow_up_questions_keep_their_session_in_their_namespace(emu):
    kitchen, elsewhere = parsed(emu, KITCHEN, "t"), parsed(emu, KITCHEN, "u")
    first = ask(emu, [kitchen], "What about the fryer?", unique_id="t")
    session_id = first[0]["sessionId"]
    second = ask(emu, [kitchen], "And the fire blankets?", unique_id="t", session_id=session_id)
    assert {f["sessionId"] for f in second[:-1]} == {session_id}
    assert second[3]["content"].startswith("Following up:")

    assert ok(get(emu, SESSIONS, unique_id="t"))["sessions"] == [{"sessionId": session_id,
                                                                  "title": "What about the fryer?"}]
    assert ok(get(emu, SESSIONS, unique_id="u"))["sessions"] == []
    detail = ok(get(emu, DETAIL, sessionId=session_id, unique_id="t"))
    assert [m["role"] for m in detail["messages"]] == ["user", "assistant", "user", "assistant"]
    assert detail["messages"][3]["refs"][0]["refItems"][-1]["startTime"] == 1.4
    assert detail["messages"][1]["thinkings"][0]["title"] == "Information Retrieval"
    # Another namespace's session cannot be read or continued.
    assert get(emu, DETAIL, sessionId=session_id, unique_id="u")["code"] == "0001"
    assert get(emu, DETAIL, sessionId=session_id, key=OTHER_KEY, unique_id="t")["code"] == "0001"
    refused = requests.post(emu.base_url + CHAT_STREAM, headers={"Authorization": KEY}, timeout=5, json={
        "video_nos": [elsewhere], "prompt": "fryer", "unique_id": "u", "session_id": session_id}).json()
    assert (refused["code"], refused["msg"]) == ("0001", "session not found")


def test_chat_refuses_videos_it_cannot_see_or_that_are_not_parsed(emu):
    mine, theirs = parsed(emu, KITCHEN, "t"), parsed(emu, KITCHEN, "u")
    parsing = parsed(emu, FORKLIFT, "t", status="UNPARSE")
    for video_nos, msg in (([mine, theirs], "video not found"), ([parsing], f"video {parsing} is not parsed yet"),
                           ([], "video_nos is required")):
        answer = post(emu, CHAT_STREAM, {"video_nos": video_nos, "prompt": "fryer", "unique_id": "t"})
        assert answer["msg"] == msg and answer["data"] is None
    assert post(emu, CHAT_STREAM, {"video_nos": [mine], "unique_id": "t"})["code"] == "0003"


def test_chat_answers_one_envelope_unless_asked_for_a_stream(emu):
    kitchen, older = parsed(emu, KITCHEN, "t"), parsed(emu, KITCHEN, path=UPLOAD)
    whole = ok(post(emu, CHAT, {"video_nos": [kitchen], "prompt": "fryer", "unique_id": "t"}))
    assert whole["role"] == "ASSISTANT" and "at 0.7s: Always switch off the fryer" in whole["content"]
    assert whole["refs"][0]["refItems"][0]["startTime"] == 0.7 and whole["session_id"].isdigit()
    for path, video_no, body in ((CHAT, kitchen, {"unique_id": "t"}), (OLDER_CHAT, older, {})):
        with requests.post(emu.base_url + path, headers={"Authorization": KEY, "Accept": "text/event-stream"},
                           json={"video_nos": [video_no], "prompt": "fryer", **body}, stream=True, timeout=5) as r:
            assert events(r)[-1] == {"code": "SUCCESS", "data": "Done"}


def test_times_can_come_in_the_other_json_type(emu):
    kitchen = parsed(emu, KITCHEN, "t")
    emu.understanding.flip_time_types = True
    assert ok(get(emu, AUDIO, video_no=kitchen, unique_id="t"))["transcriptions"][1]["startTime"] == 0.7
    assert ask(emu, [kitchen], "fryer", unique_id="t")[2]["ref"][0]["refItems"][0]["startTime"] == "0.7"


# -- limits and faults ----------------------------------------------------------------------

def test_each_kind_of_call_is_limited_per_key_as_published(make_emulator, clock):
    emu = make_emulator(keys=[KEY, OTHER_KEY], send_callbacks=False, clock=clock, stream_delay=0)
    kitchen, theirs = parsed(emu, KITCHEN, "t"), parsed(emu, KITCHEN, "t", key=OTHER_KEY)
    search = {"search_param": "fryer", "unique_id": "t"}
    assert [post(emu, SEARCH, search)["code"] for _ in range(2)] == ["0000", "0429"]
    assert get(emu, TRANSCRIPT_SEARCH, query="fryer", unique_id="t")["code"] == "0429"  # the same limit
    assert post(emu, SEARCH, search, key=OTHER_KEY)["code"] == "0000"  # per key
    assert [get(emu, path, video_no=kitchen, unique_id="t")["code"] for path in (AUDIO, VISUAL)] == ["0000", "0429"]
    assert [get(emu, SUMMARY, video_no=kitchen, unique_id="t", type="TOPIC")["code"] for _ in range(2)] == [
        "0000", "0429"]
    clock.advance(1.0)
    assert post(emu, SEARCH, search)["code"] == "0000"
    chat = {"video_nos": [kitchen], "prompt": "fryer", "unique_id": "t"}
    assert [post(emu, path, chat)["code"] for path in (CHAT, CHAT, CHAT_STREAM)] == ["0000", "0000", "0429"]
    assert post(emu, CHAT, {**chat, "video_nos": [theirs]}, key=OTHER_KEY)["code"] == "0000"
    clock.advance(59.9)
    assert post(emu, CHAT, chat)["code"] == "0429"
    clock.advance(0.2)
    assert post(emu, CHAT, chat)["code"] == "0000"
    emu.understanding.rate_limits.clear()  # switched off
    assert [post(emu, SEARCH, search)["code"] for _ in range(3)] == ["0000"] * 3
    assert get(emu, SESSIONS, unique_id="t")["code"] == "0000"  # never limited (nothing published)


def test_out_of_credits_and_other_codes_are_injected_like_any_fault(emu):
    kitchen = parsed(emu, KITCHEN, "t")
    emu.inject("chat_stream", "code", code="0402")
    emu.inject("search", "code", code="0401")
    answer = post(emu, CHAT_STREAM, {"video_nos": [kitchen], "prompt": "fryer", "unique_id": "t"})
    assert answer == {"code": "0402", "msg": "not enough credits", "data": None}
    assert post(emu, SEARCH, {"search_param": "fryer", "unique_id": "t"})["code"] == "0401"
    assert emu.understanding.sessions.count() == 0  # refused before anything was asked
    emu.inject("chat_stream", "code", code="0402", acted=True)  # asked, then refused: the stream is not sent
    assert post(emu, CHAT_STREAM, {"video_nos": [kitchen], "prompt": "fryer", "unique_id": "t"})["code"] == "0402"
    assert emu.understanding.sessions.count() == 1


def test_a_stream_can_end_in_an_error_or_be_cut(emu):
    kitchen = parsed(emu, KITCHEN, "t")
    emu.inject("chat_stream", "stream_error", code="0402", after=2)
    frames = ask(emu, [kitchen], "fryer", unique_id="t")
    assert [f.get("type") for f in frames] == ["thinking", "thinking", None]
    assert frames[-1] == {"code": "0402", "msg": "not enough credits", "data": None}
    emu.inject("chat_stream", "stream_cut", after=3)
    with requests.post(emu.base_url + CHAT_STREAM, headers={"Authorization": KEY}, stream=True, timeout=5,
                       json={"video_nos": [kitchen], "prompt": "fryer", "unique_id": "t"}) as response:
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            list(response.iter_lines())
    assert emu.requests[-1]["stream_end"] == "cut" and emu.requests[-1]["frames_sent"] == 3


def test_every_path_can_be_moved(make_emulator):
    emu = make_emulator(rate_limits={}, paths={"v1_search_path": "/v2/search", "chat_stream_path": "/v2/chat"})
    assert post(emu, "/v2/search", {"search_param": "x"})["code"] == "0000"
    assert requests.post(emu.base_url + SEARCH, headers={"Authorization": KEY}, json={}, timeout=5).status_code == 404
    assert post(emu, "/v2/chat", {"video_nos": ["VI1"], "prompt": "x"})["msg"] == "video not found"


def test_a_wrong_key_is_refused_before_anything_is_looked_up(emu):
    assert post(emu, SEARCH, {"search_param": "x"}, key="sk-wrong-key-123")["code"] == "0401"
    assert get(emu, SESSIONS, key="sk-wrong-key-123")["code"] == "0401"
    assert all("sk-wrong-key-123" not in line for line in emu.log_lines)


def test_the_command_takes_the_stream_delay_and_can_switch_limits_off():
    from memories_emulator.__main__ import parse_args

    assert (parse_args(["--key", "k"]).stream_delay, parse_args(["--key", "k"]).no_rate_limits) == (0.15, False)
    assert parse_args(["--key", "k", "--stream-delay", "0", "--no-rate-limits"]).no_rate_limits is True
    assert MemoriesEmulator(keys=["k"]).understanding.rate_limits == {
        "search": (1, 1.0), "chat": (2, 60.0), "transcription": (1, 1.0), "summary": (1, 1.0)}
