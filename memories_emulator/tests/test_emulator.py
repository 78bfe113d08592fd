"""Tests of the memories.ai emulator itself (the memories_emulator package), over real HTTP.

Each test starts the emulator on a loopback port and talks to it with
`requests`, the way the portal will. No database and no Django settings are
needed, so the file runs with `-p no:django` as well as under pytest-django.
Fixtures are in ``conftest.py``, shared helpers in ``support.py``, faults in ``test_faults.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import requests

from memories_emulator import MemoriesEmulator
from memories_emulator.__main__ import parse_args
from memories_emulator.tests.support import DELETE, KEY, LIST, OTHER_KEY, REPO, SAMPLE, UPLOAD, api, upload


# -- uploads -------------------------------------------------------------------

def test_it_accepts_an_upload_and_records_what_arrived(emu):
    content = SAMPLE.read_bytes()
    r = upload(emu, filename=SAMPLE.name, content=content,
               data={"callback": "http://portal.test/cb/t0k3n", "unique_id": "team-7"})

    assert r.status_code == 200
    answer = r.json()
    assert answer["code"] == "0000" and answer["success"] is True and answer["failed"] is False
    data = answer["data"]
    assert data["videoName"] == "sample-h264-aac" and data["videoStatus"] == "UNPARSE"
    assert data["videoNo"].startswith("VI") and len(data["videoNo"]) == 20 and data["videoNo"][2:].isdigit()
    assert data["uploadTime"].isdigit()

    [received] = emu.uploads
    assert received.sha256 == hashlib.sha256(content).hexdigest()
    assert received.size == len(content)
    assert received.filename == SAMPLE.name and received.content_type == "video/mp4"
    assert received.fields == {"callback": "http://portal.test/cb/t0k3n", "unique_id": "team-7"}
    assert received.complete and received.code == "0000" and received.video_no == data["videoNo"]
    assert received.headers["Authorization"] == "…st-1" and received.key_tail == "…st-1"

    video = emu.videos[data["videoNo"]]
    assert (video.video_name, video.status, video.size) == ("sample-h264-aac", "UNPARSE", len(content))
    assert video.create_time == int(data["uploadTime"]) and video.callback == "http://portal.test/cb/t0k3n"
    assert KEY not in repr(video)


def test_it_accepts_uploads_on_the_newer_path(emu):
    assert upload(emu, path="/serve/api/v1/upload").json()["code"] == "0000"


@pytest.mark.parametrize("key", ["sk-wrong-key-98765", None])
def test_it_rejects_a_wrong_key_without_repeating_it(emu, key):
    r = upload(emu, key=key, content=b"v" * 300_000)

    assert r.status_code == 200
    assert r.json() == {"code": "0401", "msg": "authorization invalid", "data": None}
    [received] = emu.uploads
    assert received.code == "0401" and received.video_no is None and not emu.videos
    assert received.complete  # the body was drained, so the client read an answer, not a reset
    state = requests.get(emu.base_url + "/_emulator/state", timeout=5).text
    if key is not None:
        assert key not in "\n".join(emu.log_lines) and key not in state and key not in r.text
        assert received.key_tail == "…8765"


def test_it_keeps_keys_out_of_logs_and_state(emu):
    upload(emu)
    api(emu, LIST, {})
    assert emu.log_lines
    assert KEY not in "\n".join(emu.log_lines)
    assert KEY not in json.dumps(emu.state())
    assert KEY not in requests.get(emu.base_url + "/_emulator/state", timeout=5).text


def test_it_paces_uploads_per_key(make_emulator, clock):
    emu = make_emulator(keys=[KEY, OTHER_KEY], upload_interval=60, clock=clock)

    assert upload(emu).json()["code"] == "0000"
    clock.advance(59)
    refused = upload(emu).json()
    assert refused["code"] == "0429" and refused["msg"] == "too many requests"
    assert upload(emu, key=OTHER_KEY).json()["code"] == "0000"  # pacing is per account
    clock.advance(1)
    assert upload(emu).json()["code"] == "0000"  # counted from the last *accepted* upload
    assert [u.code for u in emu.uploads] == ["0000", "0429", "0000", "0000"]


def test_it_paces_in_real_time_by_default(make_emulator):
    emu = make_emulator(upload_interval=0.3)

    assert upload(emu).json()["code"] == "0000"
    assert upload(emu).json()["code"] == "0429"
    time.sleep(0.35)
    assert upload(emu).json()["code"] == "0000"


@pytest.mark.parametrize(("filename", "content_type", "code"), [
    ("clip.txt", "video/mp4", "0001"),
    ("clip", "video/mp4", "0001"),
    ("clip.mp4", "application/octet-stream", "0001"),
    ("CLIP.MOV", "video/quicktime", "0000"),
    ("clip.mkv", "video/x-matroska", "0000"),
    ("clip.avi", "video/x-msvideo", "0000"),
    (None, None, "0003"),
])
def test_it_checks_the_file_part(emu, filename, content_type, code):
    assert upload(emu, filename=filename, content_type=content_type).json()["code"] == code


def test_it_refuses_a_body_without_content_length(emu):
    def body():
        yield b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.mp4"\r\n\r\n'
        yield b"abc\r\n--x--\r\n"

    r = requests.post(emu.base_url + UPLOAD, data=body(), timeout=5,
                      headers={"Authorization": KEY, "Content-Type": "multipart/form-data; boundary=x"})
    assert r.json()["code"] == "0003"


def test_it_refuses_a_multipart_body_without_its_closing_boundary(emu):
    body = b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.mp4"\r\n' \
           b"Content-Type: video/mp4\r\n\r\nabc"
    r = requests.post(emu.base_url + UPLOAD, data=body, timeout=5,
                      headers={"Authorization": KEY, "Content-Type": "multipart/form-data; boundary=x"})
    assert r.json()["code"] != "0000" and not emu.videos


def test_upload_times_can_be_sent_in_seconds(make_emulator, clock):
    emu = make_emulator(clock=clock, upload_time_unit="s", send_callbacks=False)

    video_no = upload(emu).json()["data"]["videoNo"]
    assert emu.videos[video_no].create_time == int(clock.now * 1000)  # kept in ms all the same
    answer = upload(emu).json()["data"]
    assert answer["uploadTime"] == str(int(clock.now))
    listed = api(emu, LIST, {"video_no": video_no}).json()["data"]["videos"][0]
    assert listed["create_time"] == str(int(clock.now))
    emu.inject("upload", "wrong_content_type")
    assert upload(emu).json()["data"]["uploadTime"] == str(int(clock.now))

    emu.set_upload_time_unit("ms")
    assert upload(emu).json()["data"]["uploadTime"] == str(int(clock.now * 1000))
    assert api(emu, LIST, {"video_no": video_no}).json()["data"]["videos"][0]["create_time"] == str(
        int(clock.now * 1000))
    with pytest.raises(ValueError):
        emu.set_upload_time_unit("us")
    with pytest.raises(ValueError):
        MemoriesEmulator([KEY], upload_time_unit="seconds")


def test_the_command_takes_the_upload_time_unit():
    assert parse_args(["--key", "k"]).upload_time_unit == "ms"
    assert parse_args(["--key", "k", "--upload-time-unit", "s"]).upload_time_unit == "s"
    with pytest.raises(SystemExit):
        parse_args(["--key", "k", "--upload-time-unit", "h"])


# -- timeline, callbacks, list, delete ---------------------------------------------

def test_it_posts_both_callback_forms_on_the_timeline(emu, receiver):
    answer = upload(emu, data={"callback": receiver.url + "/memories/callback/s3cr3t-token"}).json()
    video_no = answer["data"]["videoNo"]

    emu.wait_for(lambda e: len(e.callbacks_sent) >= 2, timeout=5)
    first, second = (item["body"] for item in receiver.received)
    assert first["videoNo"] == video_no and first["status"] == "UNPARSE" and len(first["clientId"]) == 32
    assert second == {"videoNo": video_no, "status": "PARSE"}
    assert {item["path"] for item in receiver.received} == {"/memories/callback/s3cr3t-token"}
    assert [c["status_code"] for c in emu.callbacks_sent] == [200, 200]
    assert emu.videos[video_no].status == "PARSE"
    assert "s3cr3t-token" not in "\n".join(emu.log_lines)  # the URL is the portal's secret


def test_it_records_a_callback_that_cannot_be_delivered(emu):
    upload(emu, data={"callback": "http://127.0.0.1:9/unreachable"})

    first, second = emu.wait_for(lambda e: len(e.callbacks_sent) == 2 and e.callbacks_sent, timeout=5)
    assert first["status_code"] is None and "ConnectionError" in first["error"]
    assert second["body"]["status"] == "PARSE"  # an undelivered callback is not retried or blocking
    assert "unreachable" not in "\n".join(emu.log_lines)  # the URL path is the portal's secret


def test_list_videos_follows_the_timeline(make_emulator, clock):
    emu = make_emulator(keys=[KEY, OTHER_KEY], clock=clock, parse_delay=10, send_callbacks=False)
    video_no = upload(emu, filename="first.mp4", content=b"a" * 1234).json()["data"]["videoNo"]
    clock.advance(1)
    upload(emu, filename="second.mp4")
    upload(emu, key=OTHER_KEY, filename="theirs.mp4")

    answer = api(emu, LIST, {"video_no": video_no}).json()
    assert answer["code"] == "0000"
    assert answer["data"]["total_count"] == 1 and answer["data"]["current_page"] == 1
    [listed] = answer["data"]["videos"]
    assert listed == {"video_no": video_no, "video_name": "first", "status": "UNPARSE", "duration": "12",
                      "size": "1234", "create_time": str(emu.videos[video_no].create_time)}

    clock.advance(9)
    assert api(emu, LIST, {"video_no": video_no}).json()["data"]["videos"][0]["status"] == "PARSE"
    names = [v["video_name"] for v in api(emu, LIST, {}).json()["data"]["videos"]]
    assert names == ["second", "first"]  # newest first, and only this key's videos
    parsed = api(emu, LIST, {"status": "PARSE"}).json()["data"]["videos"]
    assert [v["video_name"] for v in parsed] == ["first"]
    paged = api(emu, LIST, {"page": "2", "size": 1}).json()["data"]
    assert [v["video_name"] for v in paged["videos"]] == ["first"] and paged["total_count"] == 2


def test_delete_marks_videos_and_ignores_unknown_numbers(emu):
    video_no = upload(emu).json()["data"]["videoNo"]

    r = requests.post(emu.base_url + DELETE, headers={"Authorization": KEY}, timeout=5,
                      data=json.dumps([video_no, "VI000000000000000001"]),
                      params={"unique_id": "default"})
    assert r.json() == {"code": "0000", "msg": "success", "data": None}
    assert emu.videos[video_no].deleted
    assert api(emu, LIST, {}).json()["data"]["total_count"] == 0
    assert api(emu, "/serve/api/video/delete_videos", []).json()["code"] == "0000"

    too_many = api(emu, DELETE, [f"VI{n:018d}" for n in range(101)]).json()
    assert too_many["code"] == "0001"
    assert api(emu, DELETE, {"video_nos": [video_no]}).json()["code"] == "0001"


def test_set_status_forces_a_status_and_calls_back(make_emulator, clock, receiver):
    emu = make_emulator(clock=clock, callback_delay=100, parse_delay=100)
    video_no = upload(emu, data={"callback": receiver.url + "/cb"}).json()["data"]["videoNo"]

    emu.set_status(video_no, "FAIL")
    emu.wait_for(lambda e: e.callbacks_sent)
    assert receiver.received[0]["body"] == {"videoNo": video_no, "status": "FAIL"}
    clock.advance(200)  # the planned timeline was dropped
    assert emu.videos[video_no].status == "FAIL"
    with pytest.raises(KeyError):
        emu.set_status("VI000000000000000002", "PARSE")


def test_unknown_paths_and_methods_answer_json(emu):
    missing = requests.post(emu.base_url + "/serve/api/nothing", timeout=5)
    assert missing.status_code == 404 and missing.json() == {"error": "not found"}
    assert requests.get(emu.base_url + LIST, timeout=5).status_code == 405
    assert emu.requests[-1]["code"] == "405"


# -- control API --------------------------------------------------------------------

def test_control_api_injects_faults_and_sets_status(emu, receiver):
    r = requests.post(emu.base_url + "/_emulator/fault", timeout=5,
                      json={"endpoint": "upload", "fault": "code", "code": "9009"})
    assert r.json() == {"ok": True}
    assert upload(emu).json()["code"] == "9009"
    video_no = upload(emu, data={"callback": receiver.url + "/callbacks/memories/s3cr3t-token/"}).json()["data"]["videoNo"]

    r = requests.post(emu.base_url + "/_emulator/status", timeout=5,
                      json={"video_no": video_no, "status": "PARSE_ERROR"})
    assert r.json() == {"ok": True}
    state = requests.get(emu.base_url + "/_emulator/state", timeout=5).json()
    assert state["videos"][video_no]["status"] == "PARSE_ERROR"
    assert state["videos"][video_no]["key_tail"] == "…st-1" and "key" not in state["videos"][video_no]
    assert [u["code"] for u in state["uploads"]] == ["9009", "0000"]
    assert "s3cr3t-token" not in json.dumps(state)  # a callback URL's path is the portal's secret
    assert state["videos"][video_no]["callback"] == receiver.url + "/…"
    bad = requests.post(emu.base_url + "/_emulator/fault", timeout=5,
                        json={"endpoint": "upload", "fault": "nope"})
    assert bad.status_code == 400


def test_control_api_can_be_switched_off(make_emulator):
    emu = make_emulator(control_api=False)
    assert requests.get(emu.base_url + "/_emulator/state", timeout=5).status_code == 404


# -- python -m memories_emulator -------------------------------------------------------

def without_django_env():
    return {name: value for name, value in os.environ.items() if not name.startswith("DJANGO_")}


def test_the_package_needs_no_django():
    code = "import sys, memories_emulator.__main__; assert 'django' not in sys.modules, 'django imported'"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=without_django_env(),
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr


def test_the_command_refuses_to_start_without_keys():
    env = {**without_django_env(), "MEMORIES_EMULATOR_KEYS": " , "}
    done = subprocess.run([sys.executable, "-m", "memories_emulator", "--port", "0"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode != 0 and "MEMORIES_EMULATOR_KEYS" in done.stderr


def test_the_command_serves_until_sigterm():
    argv = [sys.executable, "-m", "memories_emulator"]
    env = {**without_django_env(), "MEMORIES_EMULATOR_KEYS": "sk-env-key-0001,sk-env-key-0002"}
    proc = subprocess.Popen(argv + ["--port", "0", "--upload-interval", "60"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        banner = proc.stdout.readline()
        assert banner.startswith("memories.ai emulator on http://127.0.0.1:"), banner + proc.stderr.read()
        assert "(2 keys, uploads paced every 60s)" in banner
        base_url = banner.split()[3]
        r = requests.post(base_url + LIST, headers={"Authorization": "sk-env-key-0002"}, json={}, timeout=5)
        assert r.json()["code"] == "0000"
        request_line = proc.stdout.readline()
        assert f"POST {LIST} key=…0002 -> 0000" in request_line
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "sk-env-key" not in out + err
