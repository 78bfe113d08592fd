"""Tests of the emulator's two API families ("v1.1" and "v1") and v1's unique_id namespaces, over real HTTP.

Paths and answer shapes are in ``memories_emulator.remote``, what a call can see in
``memories_emulator.store``. Fixtures are in ``conftest.py``, shared helpers in ``support.py``.
"""

from __future__ import annotations

import threading

import pytest
import requests

from memories_emulator import MemoriesEmulator
from memories_emulator.tests.support import (
    DELETE, KEY, LIST, METADATA, OLDER_DELETE, OTHER_KEY, UPLOAD, V1_LIST, V1_UPLOAD, api, delete, metadata,
    upload,
)


def v1_upload(emu, unique_id=None, **kwargs):
    data = {"x": "1", **kwargs.pop("data", {}), **({"unique_id": unique_id} if unique_id is not None else {})}
    answer = upload(emu, path=V1_UPLOAD, data=data, **kwargs).json()
    assert answer["code"] == "0000", answer
    return answer["data"]["videoNo"]


def listed_numbers(emu, path, body, key=KEY):
    answer = api(emu, path, body, key=key).json()
    assert answer["code"] == "0000", answer
    return [v["video_no"] for v in answer["data"]["videos"]]


# -- uploads ------------------------------------------------------------------------

def test_an_upload_through_each_family_is_stored_in_its_namespace(emu):
    older = upload(emu, path=UPLOAD, data={"unique_id": "team-7"}).json()
    newer = upload(emu, path=V1_UPLOAD, data={"unique_id": "team-7", "callback": "http://portal.test/cb"}).json()
    for answer in (older, newer):
        assert answer["code"] == "0000" and answer["success"] is True and answer["failed"] is False
        assert set(answer["data"]) == {"videoNo", "videoName", "videoStatus", "uploadTime"}
    without, empty = v1_upload(emu), v1_upload(emu, unique_id="")

    videos = emu.videos
    assert videos[older["data"]["videoNo"]].unique_id == "default"  # the older family has no namespaces
    assert videos[newer["data"]["videoNo"]].unique_id == "team-7"
    assert videos[without].unique_id == videos[empty].unique_id == "default"
    assert [u.fields.get("unique_id") for u in emu.uploads] == ["team-7", "team-7", None, ""]
    assert emu.state()["videos"][newer["data"]["videoNo"]]["unique_id"] == "team-7"
    assert [r["path"] for r in emu.requests[:2]] == [UPLOAD, V1_UPLOAD]


# -- namespaces ---------------------------------------------------------------------

def test_a_video_of_one_namespace_is_invisible_to_calls_naming_another(make_emulator):
    emu = make_emulator(keys=[KEY, OTHER_KEY], send_callbacks=False)
    video_no = v1_upload(emu, unique_id="team-7")

    assert listed_numbers(emu, V1_LIST, {"unique_id": "team-7"}) == [video_no]
    for body in ({"unique_id": "team-8"}, {}, {"unique_id": "Team-7"}, {"video_no": video_no}):
        assert listed_numbers(emu, V1_LIST, body) == []
    assert listed_numbers(emu, LIST, {"unique_id": "team-7"}) == []  # the older family means "default"
    assert listed_numbers(emu, V1_LIST, {"unique_id": "team-7"}, key=OTHER_KEY) == []  # per account

    assert metadata(emu, video_no, "team-7").json()["code"] == "0000"
    for unique_id in ("team-8", None, "", "TEAM-7"):
        assert metadata(emu, video_no, unique_id).json() == {"code": "0001", "msg": "video not found",
                                                             "data": None}
    assert metadata(emu, video_no, "team-7", key=OTHER_KEY).json()["code"] == "0001"

    for call in (lambda: delete(emu, [video_no], "team-8"), lambda: delete(emu, [video_no]),
                 lambda: delete(emu, [video_no], path=OLDER_DELETE),
                 lambda: delete(emu, [video_no], "team-7", key=OTHER_KEY)):
        assert call().json() == {"code": "0000", "msg": "success", "data": None}  # yet nothing deleted
    assert not emu.videos[video_no].deleted
    assert listed_numbers(emu, V1_LIST, {"unique_id": "team-7"}) == [video_no]


def test_default_is_one_namespace_across_both_families(emu):
    older = upload(emu).json()["data"]["videoNo"]
    newer = v1_upload(emu)
    named_default = v1_upload(emu, unique_id="default")

    assert set(listed_numbers(emu, LIST, {})) == {older, newer, named_default}
    assert set(listed_numbers(emu, V1_LIST, {})) == {older, newer, named_default}
    assert set(listed_numbers(emu, V1_LIST, {"unique_id": "default"})) == {older, newer, named_default}
    assert metadata(emu, older).json()["data"]["unique_id"] == "default"
    assert api(emu, V1_LIST, {"unique_id": 7}).json() == {"code": "0001", "msg": "unique_id must be a string",
                                                          "data": None}


def test_delete_with_unique_id_deletes_only_in_that_namespace(emu):
    default = upload(emu).json()["data"]["videoNo"]
    team7, team8 = v1_upload(emu, unique_id="team-7"), v1_upload(emu, unique_id="team-8")
    everything = [default, team7, team8, "VI000000000000000001"]

    assert delete(emu, everything, "team-7").json()["code"] == "0000"
    assert {no for no, v in emu.videos.items() if v.deleted} == {team7}
    assert listed_numbers(emu, V1_LIST, {"unique_id": "team-8"}) == [team8]
    # The older path knows only "default", even when a unique_id is sent to it.
    assert delete(emu, everything, "team-8", path=OLDER_DELETE).json()["code"] == "0000"
    assert {no for no, v in emu.videos.items() if v.deleted} == {team7, default}
    assert metadata(emu, team8, "team-8").json()["data"]["video_no"] == team8

    assert delete(emu, [f"VI{n:018d}" for n in range(101)], "team-8").json()["code"] == "0001"
    assert delete(emu, [f"VI{n:018d}" for n in range(100)], "team-8").json()["code"] == "0000"
    assert api(emu, DELETE + "?unique_id=team-8", {"video_nos": [team8]}).json()["code"] == "0001"
    assert not emu.videos[team8].deleted


# -- get_metadata, and how each family spells a status --------------------------------

def test_get_metadata_describes_a_known_video(make_emulator, clock):
    emu = make_emulator(clock=clock, parse_delay=10, send_callbacks=False)
    video_no = v1_upload(emu, unique_id="team-7", filename="holiday.MOV", content=b"m" * 4321,
                         content_type="video/quicktime")

    r = metadata(emu, video_no, "team-7")
    assert r.status_code == 200
    assert r.json() == {"code": "0000", "msg": "success", "data": {
        "video_no": video_no, "video_name": "holiday", "status": "UNPARSE", "duration": "12",
        "size": "4321", "create_time": str(int(clock.now * 1000)), "unique_id": "team-7"}}
    clock.advance(10)
    assert metadata(emu, video_no, "team-7").json()["data"]["status"] == "PARSE"  # follows the timeline
    emu.set_upload_time_unit("s")
    assert metadata(emu, video_no, "team-7").json()["data"]["create_time"] == str(int(clock.now - 10))

    assert metadata(emu, "VI000000000000000001", "team-7").json()["code"] == "0001"
    assert metadata(emu, "", "team-7").json() == {"code": "0003", "msg": "video_no is required", "data": None}
    assert metadata(emu, video_no, "team-7", key="sk-wrong-key-98765").json()["code"] == "0401"
    assert requests.post(emu.base_url + METADATA, params={"video_no": video_no}, timeout=5).status_code == 405
    assert requests.get(emu.base_url + V1_LIST, timeout=5).status_code == 405
    delete(emu, [video_no], "team-7")
    assert metadata(emu, video_no, "team-7").json()["msg"] == "video not found"  # deleted is gone


def test_v1_lists_and_metadata_say_failed_where_callbacks_say_fail(emu, receiver):
    video_no = v1_upload(emu, data={"callback": receiver.url + "/cb"})  # "default": both families see it

    emu.set_status(video_no, "FAIL")
    emu.wait_for(lambda e: any(c["body"]["status"] == "FAIL" for c in e.callbacks_sent))
    assert {"videoNo": video_no, "status": "FAIL"} in [item["body"] for item in receiver.received]
    assert emu.videos[video_no].status == "FAIL"
    assert metadata(emu, video_no).json()["data"]["status"] == "FAILED"
    [v1_listed] = api(emu, V1_LIST, {}).json()["data"]["videos"]
    [older_listed] = api(emu, LIST, {}).json()["data"]["videos"]
    assert (v1_listed["status"], older_listed["status"]) == ("FAILED", "FAIL")
    # A status filter is read in the family's own spelling.
    assert listed_numbers(emu, V1_LIST, {"status": "FAILED"}) == [video_no]
    assert listed_numbers(emu, V1_LIST, {"status": "FAIL"}) == []
    assert listed_numbers(emu, LIST, {"status": "FAIL"}) == [video_no]

    emu.set_status(video_no, "PARSE_ERROR", send_callback=False)
    assert metadata(emu, video_no).json()["data"]["status"] == "PARSE_ERROR"
    assert api(emu, V1_LIST, {}).json()["data"]["videos"][0]["status"] == "PARSE_ERROR"
    assert api(emu, LIST, {}).json()["data"]["videos"][0]["status"] == "PARSE_ERROR"


# -- faults ---------------------------------------------------------------------------

def test_faults_on_metadata(emu):
    video_no = v1_upload(emu, unique_id="team-7")
    emu.inject("metadata", "http", status=503)
    emu.inject("metadata", "code", code="0429")
    emu.inject("metadata", "malformed")

    assert api(emu, V1_LIST, {"unique_id": "team-7"}).json()["code"] == "0000"  # list faults are apart
    assert metadata(emu, video_no, "team-7").status_code == 503
    assert metadata(emu, video_no, "team-7").json() == {"code": "0429", "msg": "too many requests", "data": None}
    assert metadata(emu, video_no, "team-7").text == "not json{"
    assert metadata(emu, video_no, "team-7").json()["code"] == "0000"  # used up
    assert [r["code"] for r in emu.requests[-4:]] == ["503", "0429", "200", "0000"]

    emu.inject("metadata", "wrong_content_type")
    lookalike = metadata(emu, video_no, "team-7")
    assert lookalike.headers["Content-Type"] == "text/html" and lookalike.json()["code"] == "0000"
    assert lookalike.json()["data"]["video_no"] not in emu.videos  # made up, nothing created

    emu.inject("metadata", "timeout_before_body", seconds=2)
    with pytest.raises(requests.ReadTimeout):
        metadata(emu, video_no, "team-7", timeout=(2, 0.3))

    held, release = threading.Event(), threading.Event()
    fault = emu.inject("metadata", "hold_answer", event=held, release=release)
    outcome = {}
    client = threading.Thread(target=lambda: outcome.update(r=metadata(emu, video_no, "team-7", timeout=10)))
    client.start()
    assert held.wait(5) and fault.held_video_no is None and not outcome
    release.set()
    client.join(5)
    assert outcome["r"].json()["data"]["video_no"] == video_no

    spec = {"endpoint": "metadata", "fault": "code", "code": "9009"}
    requests.post(emu.base_url + "/_emulator/fault", json=spec, timeout=5).raise_for_status()
    assert emu.state()["pending_faults"] == [{"endpoint": "metadata", "fault": "code", "times": 1, "code": "9009"}]
    assert metadata(emu, video_no, "team-7").json()["code"] == "9009"
    with pytest.raises(ValueError):
        emu.inject("metadata", "twice")


def test_faults_reach_a_call_whichever_family_it_came_through(emu):
    emu.inject("upload", "code", code="0402")
    emu.inject("list", "http", status=502)
    emu.inject("delete", "code", code="0409")
    emu.inject("delete", "code", code="0429")

    assert upload(emu, path=V1_UPLOAD).json()["code"] == "0402"
    assert api(emu, V1_LIST, {}).status_code == 502
    assert delete(emu, [], path=OLDER_DELETE).json()["code"] == "0409"
    assert delete(emu, [], "team-7").json()["code"] == "0429"
    assert emu.state()["pending_faults"] == [] and not emu.videos


# -- paths ----------------------------------------------------------------------------

def test_every_call_path_is_configurable(make_emulator):
    emu = make_emulator(v1_upload_path="/u1", v1_list_path="/l1", metadata_path="/m1", delete_path="/d1",
                        older_delete_path="/d0")
    answer = upload(emu, path="/u1", data={"unique_id": "team-7"}).json()
    video_no = answer["data"]["videoNo"]
    assert emu.videos[video_no].unique_id == "team-7"
    assert listed_numbers(emu, "/l1", {"unique_id": "team-7"}) == [video_no]
    r = requests.get(emu.base_url + "/m1", params={"video_no": video_no, "unique_id": "team-7"},
                     headers={"Authorization": KEY}, timeout=5)
    assert r.json()["data"]["unique_id"] == "team-7"
    for moved_away in (V1_UPLOAD, V1_LIST, DELETE, OLDER_DELETE):
        assert api(emu, moved_away, {}).status_code == 404
    assert requests.get(emu.base_url + METADATA, timeout=5).status_code == 404
    assert delete(emu, [video_no], "team-7", path="/d0").json()["code"] == "0000"  # older: "default"
    assert not emu.videos[video_no].deleted
    assert delete(emu, [video_no], "team-7", path="/d1").json()["code"] == "0000"
    assert emu.videos[video_no].deleted


def test_a_path_moved_onto_another_calls_default_serves_the_moved_call(make_emulator):
    emu = make_emulator(upload_path=V1_UPLOAD)  # the older call, at the newer path: no namespaces
    video_no = upload(emu, path=V1_UPLOAD, data={"unique_id": "team-7"}).json()["data"]["videoNo"]
    assert emu.videos[video_no].unique_id == "default"
    assert api(emu, UPLOAD, {}).status_code == 404

    with pytest.raises(ValueError):
        MemoriesEmulator([KEY], list_path="/same", v1_list_path="/same")
