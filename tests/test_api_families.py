"""Both memories.ai API families (issue 9): a video is sent through the configured family and,
with v1, into its team's namespace; every later call about it (status, delete) names the same
family and namespace, whatever the setting says by then."""

import pytest

from .conftest import TEST_KEY, delete_videos, give_key, make_due, queued_video, run_worker

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def v1(settings, emulator, fast_pipeline):
    settings.MEMORIES_API_FAMILY = "v1"
    emulator.send_callbacks = False
    return emulator


def paths(emulator):
    return [r["path"].split("?")[0] for r in emulator.requests]


def test_with_v1_a_video_goes_to_its_teams_namespace_and_is_checked_there(member, team, api_key, v1):
    video = queued_video(member, team)
    run_worker("relay")
    video.refresh_from_db()
    assert video.status == "processing" and (video.api_family, video.namespace) == ("v1", f"memportal-team-{team.pk}")
    assert v1.uploads[0].fields["unique_id"] == video.namespace
    assert v1.videos[video.video_no].unique_id == video.namespace
    v1.set_status(video.video_no, "FAIL", send_callback=False)  # v1's get_metadata says FAILED
    make_due("default")
    run_worker("default")
    video.refresh_from_db()
    assert video.status == "failed" and video.remote_status == "FAILED"
    assert "/serve/api/v1/get_metadata" in paths(v1)


def test_two_teams_on_one_account_keep_their_videos_apart(member, outsider, team, other_team, api_key, v1):
    give_key(other_team, TEST_KEY)
    mine, theirs = queued_video(member, team, "mine.mp4"), queued_video(outsider, other_team, "theirs.mp4")
    run_worker("relay")
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert mine.namespace != theirs.namespace
    assert {v1.videos[v.video_no].unique_id for v in (mine, theirs)} == {mine.namespace, theirs.namespace}
    delete_videos([mine.pk], member)
    run_worker("default")
    assert v1.videos[mine.video_no].deleted and not v1.videos[theirs.video_no].deleted
    assert any(r["path"].endswith(f"unique_id={mine.namespace}") for r in v1.requests)


def test_a_video_sent_through_the_older_family_keeps_it_after_the_switch(member, team, api_key, settings,
                                                                         emulator, fast_pipeline):
    emulator.send_callbacks = False
    video = queued_video(member, team)
    run_worker("relay")
    video.refresh_from_db()
    assert (video.api_family, video.namespace) == ("video", "")
    settings.MEMORIES_API_FAMILY = "v1"
    emulator.set_status(video.video_no, "PARSE", send_callback=False)
    make_due("default")
    run_worker("default")
    video.refresh_from_db()
    assert video.status == "ready"
    assert "/serve/api/video/list_videos" in paths(emulator) and "/serve/api/v1/get_metadata" not in paths(emulator)


def test_videos_sent_before_families_existed_are_the_older_familys(member, team, api_key, emulator, fast_pipeline):
    video = queued_video(member, team)
    run_worker("relay")
    type(video).objects.filter(pk=video.pk).update(api_family="", namespace="")  # as migration 0006 leaves them
    video.refresh_from_db()
    assert video.place.family == "video"
    emulator.set_status(video.video_no, "PARSE", send_callback=False)
    make_due("default")
    run_worker("default")
    video.refresh_from_db()
    assert video.status == "ready"
