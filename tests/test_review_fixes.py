"""What a cold review of issues 9 and 10 found, one test each (each failed before its fix)."""

import time

import pytest
from django.test import Client
from django.utils import timezone

from memportal.middleware import plain_address
from memportal.sessions import SEEN_AT
from uploads.models import ApiKey, CallbackRecord, MemoriesAccount, Video

from .conftest import (
    OTHER_KEY, PASSWORD, TEST_KEY, account_of, give_key, make_video, queued_video, relay_tasks, run_worker,
    sample, store_video,
)

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_probe_that_does_not_finish_sends_the_video_as_it_is(member, team, api_key, emulator, settings):
    settings.MEMPORTAL_PROBE_SECONDS = 0.001  # no probe finishes in a millisecond
    video = store_video(member, team, api_key, "a.mp4", sample("sample-h264-aac.mp4").read_bytes())
    run_worker("relay")
    video.refresh_from_db()
    assert video.status == "processing" and len(emulator.uploads) == 1
    assert video.events.filter(message__contains="sent without that check").exists()


def test_retry_reads_the_file_again_before_sending_it(client, member, team, api_key, emulator):
    video = store_video(member, team, api_key, "m.avi", sample("refused-mjpeg.avi").read_bytes())
    run_worker("relay")
    client.force_login(member)
    client.post(f"/videos/{video.pk}/retry/")
    run_worker("relay")
    video.refresh_from_db()
    assert video.status == "rejected" and "MJPEG" in video.last_error and emulator.uploads == []


def test_a_team_whose_key_fails_does_not_hold_back_the_account_it_shares(
        member, outsider, team, other_team, api_key, emulator, settings):
    settings.MEMPORTAL_UPLOAD_INTERVAL_SECONDS = 60
    stuck = give_key(other_team, TEST_KEY)
    for n in range(5):
        make_video(outsider, other_team, name=f"stuck{n}.mp4")
    stuck.mark_failing("refused")
    queued_video(member, team, "first.mp4")
    run_worker("relay")
    second = queued_video(member, team, "second.mp4")
    run_worker("relay")
    slot = account_of(team).next_upload_at
    row = relay_tasks().get(args_kwargs__args__0=str(second.pk))
    assert abs((row.run_after - slot).total_seconds()) < 5  # its own turn, not five slots later


def test_sharing_an_account_merges_whole_accounts(client, superuser, team, other_team, api_key, django_user_model):
    from uploads.models import Team

    third = Team.objects.create(name="Team Three", slug="team-three")
    other = give_key(other_team, OTHER_KEY)
    same = give_key(third, TEST_KEY)  # the same key as team one's: one account already
    MemoriesAccount.objects.filter(pk=api_key.account_id).update(next_upload_at=timezone.now() + timezone.timedelta(seconds=50))
    client.force_login(superuser)
    client.post("/admin/uploads/apikey/", {"action": "share_account", "_selected_action": [other.pk, api_key.pk]})
    accounts = set(ApiKey.objects.values_list("account_id", flat=True))
    assert len(accounts) == 1 and MemoriesAccount.objects.count() == 1
    assert MemoriesAccount.objects.get().next_upload_at > timezone.now() + timezone.timedelta(seconds=40)
    assert same.pk in ApiKey.objects.filter(account_id__in=accounts).values_list("pk", flat=True)


@pytest.mark.parametrize(("raw", "address"), [("203.0.113.7:5678", "203.0.113.7"), ("[2001:db8::1]:443", "2001:db8::1"),
                                              ("2001:db8::2", "2001:db8::2"), ("unknown", None), ("", None)])
def test_a_forwarded_address_is_an_ip_or_nothing(raw, address):
    assert plain_address(raw) == address


def test_a_proxy_that_forwards_nonsense_does_not_break_callbacks(processing, settings):
    settings.MEMPORTAL_BEHIND_PROXY = True
    response = Client(REMOTE_ADDR="10.0.0.2").post(
        processing.callback_path, data='{"videoNo": "%s", "status": "UNPARSE"}' % processing.video_no,
        content_type="application/json", HTTP_X_FORWARDED_FOR="unknown")
    assert response.status_code == 200 and CallbackRecord.objects.get().remote_addr == "10.0.0.2"


def test_the_key_confirmation_is_throttled_like_a_sign_in(client, team_admin, api_key, settings):
    settings.AXES_FAILURE_LIMIT = 3
    settings.MEMPORTAL_REAUTH_SECONDS = 0
    client.force_login(team_admin)
    confirm = "/admin/uploads/apikey/confirm/"
    answers = [client.post(confirm, {"password": "wrong"}, REMOTE_ADDR="10.9.0.1").status_code for _ in range(3)]
    assert answers[-1] == 429
    assert client.post(confirm, {"password": PASSWORD}, REMOTE_ADDR="10.9.0.1").status_code == 429


def test_a_date_part_with_a_comparison_out_of_range_is_400(client, superuser):
    client.force_login(superuser)
    for value in ("99999999999999999999", "0"):
        assert client.get("/admin/uploads/video/", {"created_at__year__gt": value}).status_code == 400


def test_a_key_memories_ai_echoes_back_is_not_kept_in_any_message(member, team, api_key, emulator):
    emulator.inject("upload", "code", code="0401", msg=f"key {TEST_KEY} is not valid")
    video = queued_video(member, team)
    run_worker("relay")
    api_key.refresh_from_db()
    video.refresh_from_db()
    assert api_key.is_failing and TEST_KEY not in api_key.last_error
    assert not any(TEST_KEY in e.message for e in video.events.all())


def test_an_ended_sessions_poll_says_so_and_does_not_sign_out(client, member, settings):
    settings.MEMPORTAL_SESSION_IDLE_SECONDS = 600
    client.force_login(member)
    session = client.session
    session[SEEN_AT] = time.time() - 601
    session.save()
    response = client.post("/videos/states/", {"ids": []}, content_type="application/json")
    assert response.status_code == 401 and "_auth_user_id" in client.session  # another tab's upload survives
