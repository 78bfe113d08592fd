"""Callbacks that arrive all at once, over real HTTP to the running site.

memories.ai may repeat a callback, and its callbacks may overlap in time and arrive out of
order. However many come at once, each one gets a 2xx answer and a stored record, the video
makes at most one final move, and the timeline shows only moves the lifecycle allows.
"""

import random
import threading
from collections import Counter

import pytest
import requests

from uploads.models import CallbackRecord, VideoEvent

pytestmark = pytest.mark.django_db(transaction=True)

# from_status -> to_status moves a remote status may cause (uploads/reports.py).
ALLOWED_MOVES = {("processing", "ready"), ("processing", "failed"), ("processing", "processing")}
FINAL_FOR = {"PARSE": "ready", "FAIL": "failed", "PARSE_ERROR": "failed"}


@pytest.fixture
def site(live_server):
    """The running site. Django's test server listens with a backlog of 10 connections, so 50
    clients connecting in the same instant overflow it and the kernel drops some before the site
    ever sees them (production's gunicorn listens with 2048). Re-listening widens the queue; the
    site itself is untouched."""
    live_server.thread.httpd.socket.listen(128)
    return live_server


def fire_at_once(url, bodies):
    """POST every body from its own thread, all released together; return (status, json) per body."""
    barrier = threading.Barrier(len(bodies))
    answers = [None] * len(bodies)

    def send(i, body):
        barrier.wait(timeout=10)
        try:
            response = requests.post(url, json=body, timeout=60)
            answers[i] = (response.status_code, response.json())
        except Exception as exc:  # recorded, asserted on below with the others
            answers[i] = (None, repr(exc))

    threads = [threading.Thread(target=send, args=(i, body)) for i, body in enumerate(bodies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    assert not any(thread.is_alive() for thread in threads), "a callback request never finished"
    return answers


def test_fifty_identical_callbacks_at_once_move_the_video_once(site, processing):
    url = site.url + processing.callback_path
    answers = fire_at_once(url, [{"videoNo": processing.video_no, "status": "PARSE"}] * 50)

    assert [status for status, _ in answers] == [200] * 50, answers
    assert Counter(body["message"] for _, body in answers) == {"applied": 1, "duplicate": 49}
    processing.refresh_from_db()
    assert (processing.status, processing.remote_status) == ("ready", "PARSE")
    event = VideoEvent.objects.get(video=processing)
    assert (event.source, event.from_status, event.to_status, event.remote_status) == (
        "callback", "processing", "ready", "PARSE")
    records = CallbackRecord.objects.filter(video=processing)
    assert records.count() == 50
    assert Counter(records.values_list("outcome", flat=True)) == {"applied": 1, "duplicate": 49}
    assert set(records.values_list("video_no", "remote_status")) == {(processing.video_no, "PARSE")}


def test_a_concurrent_mix_of_statuses_ends_final_once_with_allowed_moves_only(site, processing):
    statuses = ["UNPARSE"] * 10 + ["PARSE"] * 10 + ["FAIL"] * 10 + ["PARSE_ERROR"] * 10
    random.Random(20240611).shuffle(statuses)
    bodies = [{"videoNo": processing.video_no, "status": status} for status in statuses]
    answers = fire_at_once(site.url + processing.callback_path, bodies)

    assert [status for status, _ in answers] == [200] * len(bodies), answers
    processing.refresh_from_db()
    assert processing.status in ("ready", "failed")

    events = list(VideoEvent.objects.filter(video=processing).order_by("created_at", "pk"))
    final = [e for e in events if e.to_status in ("ready", "failed")]
    assert len(final) == 1, [(e.from_status, e.to_status, e.remote_status) for e in events]
    assert final[0].to_status == processing.status == FINAL_FOR[final[0].remote_status]
    assert final[0].remote_status == processing.remote_status
    remote = "UNPARSE"  # what the video held before the callbacks
    for event in events:
        assert (event.from_status, event.to_status) in ALLOWED_MOVES, event
        if event.from_status == event.to_status:
            # Staying in processing is only ever the record of a new raw status.
            assert event.remote_status != remote, event
        remote = event.remote_status
    assert events[-1] == final[0]  # nothing moved after the final state

    records = CallbackRecord.objects.filter(video=processing)
    assert records.count() == len(bodies)
    outcomes = Counter(records.values_list("outcome", flat=True))
    assert set(outcomes) <= {"applied", "duplicate", "stale"}, outcomes
    assert outcomes["applied"] == len(events)  # every applied callback wrote exactly one event
    for record in records.exclude(outcome="applied"):
        target = FINAL_FOR.get(record.remote_status)
        if target == processing.status:
            assert record.outcome == "duplicate", record  # agrees with where the video is
        elif target is not None:
            assert record.outcome == "stale", record  # the other final state: never applied
