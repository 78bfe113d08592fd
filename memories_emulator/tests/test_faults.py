"""Tests of the memories.ai emulator's fault injection (``memories_emulator.faults``), over real HTTP.

Fixtures are in ``conftest.py``, shared helpers in ``support.py``.
"""

from __future__ import annotations

import threading
import time

import pytest
import requests

from memories_emulator.tests.support import DELETE, LIST, api, upload


def test_fault_code_answers_with_the_code_after_the_whole_body(emu):
    emu.inject("upload", "code", code="0402")

    assert upload(emu).json() == {"code": "0402", "msg": "not enough credits", "data": None}
    assert upload(emu).json()["code"] == "0000"  # used up
    refused = emu.uploads[0]
    assert refused.complete and refused.code == "0402" and refused.video_no is None


def test_fault_http_answers_a_bare_status_times_times(emu):
    emu.inject("list", "http", times=2, status=503)

    assert [api(emu, LIST, {}).status_code for _ in range(3)] == [503, 503, 200]
    assert [r["code"] for r in emu.requests] == ["503", "503", "0000"]


def test_faults_are_used_in_order(emu):
    emu.inject("delete", "http", status=502)
    emu.inject("delete", "code", code="0429")

    assert api(emu, DELETE, []).status_code == 502
    assert api(emu, DELETE, []).json()["code"] == "0429"
    assert api(emu, DELETE, []).json()["code"] == "0000"


def test_fault_malformed_and_wrong_content_type(emu):
    emu.inject("upload", "malformed")
    emu.inject("upload", "wrong_content_type")

    malformed = upload(emu)
    assert malformed.status_code == 200 and malformed.text == "not json{"
    assert malformed.headers["Content-Type"] == "application/json"
    wrong = upload(emu)
    assert wrong.headers["Content-Type"] == "text/html" and wrong.json()["code"] == "0000"
    assert not emu.videos  # a success-looking answer that created nothing


def test_fault_slow_answers_normally_after_a_pause(emu):
    emu.inject("list", "slow", seconds=0.3)

    began = time.monotonic()
    assert api(emu, LIST, {}).json()["code"] == "0000"
    assert time.monotonic() - began >= 0.3


def test_fault_reset_breaks_the_connection(emu):
    emu.inject("upload", "reset", bytes=1024)

    with pytest.raises(requests.ConnectionError):
        upload(emu, content=b"v" * 400_000)
    emu.wait_for(lambda e: e.uploads[0].code is None and e.requests[0]["code"] is None
                 and any("no answer (reset)" in line for line in e.log_lines))
    assert emu.uploads[0].body_bytes == 1024 and not emu.uploads[0].complete


def test_fault_timeout_before_body_times_the_client_out(emu):
    emu.inject("upload", "timeout_before_body", seconds=2)

    with pytest.raises(requests.ReadTimeout):
        upload(emu, timeout=(2, 0.3))
    assert emu.uploads[0].body_bytes == 0
    assert upload(emu).json()["code"] == "0000"  # the emulator still serves others meanwhile


def test_fault_stall_after_holds_the_request_until_released(emu):
    stalled, release = threading.Event(), threading.Event()
    emu.inject("upload", "stall_after", bytes=100_000, event=stalled, release=release)
    outcome = {}

    def send():
        try:
            outcome["response"] = upload(emu, content=b"v" * 1_000_000, timeout=10)
        except requests.RequestException as exc:
            outcome["error"] = exc

    client = threading.Thread(target=send)
    client.start()
    assert stalled.wait(5)
    assert emu.uploads[0].body_bytes >= 100_000
    time.sleep(0.1)
    assert not outcome  # still hanging
    release.set()
    client.join(5)
    assert isinstance(outcome.get("error"), requests.ConnectionError)
    emu.wait_for(lambda e: any("no answer (closed)" in line for line in e.log_lines))
    assert not emu.uploads[0].complete


def test_callback_faults(emu, receiver):
    emu.inject("callback", "never")
    emu.inject("callback", "other_video")
    emu.inject("callback", "twice")
    silent, misrouted, doubled = (upload(emu, data={"callback": receiver.url}).json()["data"]["videoNo"]
                                  for _ in range(3))

    emu.wait_for(lambda e: len(e.callbacks_sent) >= 6 and e.videos[silent].status == "PARSE", timeout=5)
    time.sleep(0.1)
    numbers = [item["body"]["videoNo"] for item in receiver.received]
    assert silent not in numbers
    assert numbers.count(doubled) == 4
    others = [n for n in numbers if n != doubled]
    assert len(others) == 2 and misrouted not in others and others[0] not in emu.videos


def test_inject_refuses_unknown_faults(emu):
    with pytest.raises(ValueError):
        emu.inject("upload", "explode")
    with pytest.raises(ValueError):
        emu.inject("callback", "reset")
    with pytest.raises(ValueError):
        emu.inject("upload", "code")  # needs code=


# -- code with acted ------------------------------------------------------------------

def test_fault_code_acted_deletes_yet_answers_the_code(emu):
    video_no = upload(emu).json()["data"]["videoNo"]
    emu.inject("delete", "code", code="0409", acted=True)

    assert api(emu, DELETE, [video_no]).json() == {"code": "0409", "msg": "duplicate request", "data": None}
    assert emu.videos[video_no].deleted  # done, though the answer says otherwise
    assert emu.requests[-1]["code"] == "0409"


def test_fault_code_acted_stores_the_upload_yet_answers_the_code(emu):
    emu.inject("upload", "code", code="0409", msg="duplicate", acted=True)

    assert upload(emu).json() == {"code": "0409", "msg": "duplicate", "data": None}
    [received] = emu.uploads
    assert received.code == "0409" and received.complete and received.video_no in emu.videos
    assert upload(emu).json()["code"] == "0000"  # used up


def test_fault_code_acted_leaves_a_refusal_the_request_earned_anyway(emu):
    emu.inject("upload", "code", code="0409", acted=True)

    assert upload(emu, key="sk-wrong-key-98765").json()["code"] == "0401"
    assert not emu.videos and not emu.state()["pending_faults"]


def test_fault_code_without_acted_changes_nothing(emu):
    video_no = upload(emu).json()["data"]["videoNo"]
    emu.inject("delete", "code", code="0409", acted=False)

    assert api(emu, DELETE, [video_no]).json()["code"] == "0409"
    assert not emu.videos[video_no].deleted


def test_fault_code_acted_over_the_control_api(emu):
    spec = {"endpoint": "upload", "fault": "code", "code": "0409", "acted": True}
    requests.post(emu.base_url + "/_emulator/fault", json=spec, timeout=5).raise_for_status()
    assert upload(emu).json()["code"] == "0409" and len(emu.videos) == 1
    bad = requests.post(emu.base_url + "/_emulator/fault", timeout=5,
                        json={"endpoint": "upload", "fault": "code", "code": "0409", "acted": "yes"})
    assert bad.status_code == 400


# -- hold_answer ------------------------------------------------------------------------

def in_background(call):
    """Run `call` on a thread; the dict gets "response" or "error" when it ends."""
    outcome = {}

    def run():
        try:
            outcome["response"] = call()
        except requests.RequestException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def test_hold_answer_holds_a_stored_upload_until_released(emu):
    held, release = threading.Event(), threading.Event()
    fault = emu.inject("upload", "hold_answer", event=held, release=release)
    assert fault.kind == "hold_answer" and fault.held_video_no is None

    client, outcome = in_background(lambda: upload(emu, content=b"v" * 300_000, timeout=10))
    assert held.wait(5)
    video_no = fault.held_video_no
    assert video_no in emu.videos and emu.videos[video_no].status == "UNPARSE"
    [received] = emu.uploads
    assert received.video_no == video_no and received.complete and received.sha256
    assert received.code is None  # not answered yet
    assert any(f"answer 0000 held for {video_no}" in line for line in emu.log_lines)
    time.sleep(0.1)
    assert not outcome  # still waiting for its answer
    release.set()
    client.join(5)
    answer = outcome["response"].json()
    assert answer["code"] == "0000" and answer["data"]["videoNo"] == video_no
    assert emu.uploads[0].code == "0000" and fault.times == 0
    assert upload(emu).json()["code"] == "0000"  # used up: the next upload is not held


def test_hold_answer_holds_a_delete_that_is_done(emu):
    video_no = upload(emu).json()["data"]["videoNo"]
    held, release = threading.Event(), threading.Event()
    fault = emu.inject("delete", "hold_answer", event=held, release=release)

    client, outcome = in_background(lambda: api(emu, DELETE, [video_no], timeout=10))
    assert held.wait(5)
    assert emu.videos[video_no].deleted and fault.held_video_no is None and not outcome
    release.set()
    client.join(5)
    assert outcome["response"].json()["code"] == "0000"


def test_hold_answer_gives_up_waiting_after_its_seconds(emu):
    emu.inject("list", "hold_answer", release=threading.Event(), seconds=0.3)

    began = time.monotonic()
    assert api(emu, LIST, {}).json()["code"] == "0000"
    assert time.monotonic() - began >= 0.3


def test_hold_answer_hangs_up_when_the_emulator_stops(emu):
    held = threading.Event()
    emu.inject("upload", "hold_answer", event=held, release=threading.Event())

    client, outcome = in_background(lambda: upload(emu, timeout=10))
    assert held.wait(5)
    emu.stop()
    client.join(5)
    assert isinstance(outcome.get("error"), requests.ConnectionError)
    assert len(emu.videos) == 1 and emu.uploads[0].code is None  # stored, never answered


def test_hold_answer_needs_a_release_event(emu):
    with pytest.raises(ValueError):
        emu.inject("upload", "hold_answer")
    with pytest.raises(ValueError):
        emu.inject("upload", "hold_answer", release=None)
    with pytest.raises(ValueError):
        emu.inject("upload", "hold_answer", release=True)
    with pytest.raises(ValueError):
        emu.inject("callback", "hold_answer", release=threading.Event())
    over_http = requests.post(emu.base_url + "/_emulator/fault", timeout=5,
                              json={"endpoint": "upload", "fault": "hold_answer", "release": True})
    assert over_http.status_code == 400 and not emu.state()["pending_faults"]


# -- clear_faults -------------------------------------------------------------------------

def test_clear_faults_drops_queued_faults_and_releases_held_requests(emu, receiver):
    stalled, stall_release = threading.Event(), threading.Event()
    held, hold_release = threading.Event(), threading.Event()
    emu.inject("upload", "stall_after", bytes=10_000, event=stalled, release=stall_release, seconds=30)
    emu.inject("upload", "hold_answer", event=held, release=hold_release, seconds=30)
    emu.inject("list", "code", times=3, code="0429")
    emu.inject("callback", "never")

    stalled_client, stalled_outcome = in_background(lambda: upload(emu, content=b"v" * 500_000, timeout=10))
    assert stalled.wait(5)
    held_client, held_outcome = in_background(lambda: upload(emu, timeout=10))
    assert held.wait(5)
    began = time.monotonic()
    assert emu.clear_faults() == 2  # the list and callback faults; the other two were in play
    stalled_client.join(5)
    held_client.join(5)
    assert time.monotonic() - began < 3
    assert stall_release.is_set() and hold_release.is_set()
    assert isinstance(stalled_outcome.get("error"), requests.ConnectionError)  # a stall still hangs up
    assert held_outcome["response"].json()["code"] == "0000"
    assert emu.state()["pending_faults"] == []
    assert api(emu, LIST, {}).json()["code"] == "0000"
    upload(emu, data={"callback": receiver.url})
    emu.wait_for(lambda e: len(e.callbacks_sent) >= 2, timeout=5)  # "never" was dropped
    assert emu.clear_faults() == 0


def test_clear_faults_cuts_a_pause_short(emu):
    emu.inject("list", "slow", seconds=30)
    client, outcome = in_background(lambda: api(emu, LIST, {}, timeout=10))
    emu.wait_for(lambda e: e.requests and not e.state()["pending_faults"])  # taken: in play

    assert emu.clear_faults() == 0
    client.join(5)
    assert outcome["response"].json()["code"] == "0000"


def test_control_api_clears_faults(emu):
    for code in ("0402", "0429"):
        requests.post(emu.base_url + "/_emulator/fault", timeout=5,
                      json={"endpoint": "upload", "fault": "code", "code": code}).raise_for_status()

    r = requests.post(emu.base_url + "/_emulator/clear_faults", timeout=5)
    assert r.json() == {"ok": True, "dropped": 2}
    assert upload(emu).json()["code"] == "0000"
    assert "faults cleared: 2 dropped" in emu.log_lines
