"""Emails about a video's outcome, for owners who opted in: sent by the worker, at most one per
outcome whatever the sweeps and task rows, none for old outcomes, again after a retry reaches a new
one (issue 13, "Notices")."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.core import mail
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from uploads import actions, reports, tasks
from uploads.lifecycle import Source
from uploads.mail import send_outcome_mail, sweep_outcome_mail
from uploads.management.commands.reconcile import clock_round
from uploads.memories import UploadResult
from uploads.models import Profile, Video

from .conftest import TEST_KEY, accept_relay, make_video, run_worker

pytestmark = pytest.mark.django_db(transaction=True)
S = Video.Status


@pytest.fixture
def opted_in(member, settings):
    settings.MEMPORTAL_PUBLIC_URL = "https://portal.example.com"
    member.email = "mia@example.com"
    member.save()
    Profile.objects.create(user=member, time_zone="Asia/Tokyo", email_when_ready=True, email_when_failed=True)
    return member


def processing(owner, team, api_key=None, name="All-hands.mp4", video_no="VI1"):
    return make_video(owner, team, status=S.PROCESSING, video_no=video_no, remote_status="UNPARSE", name=name,
                      api_key=api_key)


def finish(video, word="PARSE"):
    """What memories.ai's callback does: PARSE (ready) or FAIL (failed)."""
    assert reports.apply_remote_status(video.pk, word, Source.CALLBACK) == "applied"
    video.refresh_from_db()
    return video


def mail_tasks():
    return DBTaskResult.objects.filter(task_path=send_outcome_mail.module_path)


def test_a_ready_video_is_mailed_once_by_the_worker(opted_in, team, api_key):
    video = finish(processing(opted_in, team, api_key))
    assert sweep_outcome_mail() == 1 and sweep_outcome_mail() == 0  # the row already waits
    assert mail.outbox == [] and mail_tasks().count() == 1
    run_worker("default")
    run_worker("default")
    assert sweep_outcome_mail() == 0
    run_worker("default")
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["mia@example.com"] and message.from_email == settings.DEFAULT_FROM_EMAIL
    assert message.subject == "“All-hands.mp4” is ready"
    assert "“All-hands.mp4” is ready: memories.ai finished processing it" in message.body
    assert f"Open it: https://portal.example.com/videos/{video.pk}/" in message.body
    assert "https://portal.example.com/account/" in message.body
    assert " JST)" in message.body  # the owner's zone
    assert "What you can do" not in message.body
    video.refresh_from_db()
    assert video.mailed_outcome_at == video.status_changed_at


def test_two_task_rows_for_one_outcome_send_one_email(opted_in, team):
    video = finish(processing(opted_in, team))
    for _ in range(2):  # two sweeps (two clocks) that both saw the outcome
        send_outcome_mail.enqueue(str(video.pk), video.status_changed_at.isoformat())
    run_worker("default")
    assert len(mail.outbox) == 1
    assert sorted(row.return_value for row in mail_tasks()) == ["already mailed", "sent"]


def test_a_failed_video_says_what_the_owner_can_do(opted_in, team, api_key):
    video = finish(processing(opted_in, team, api_key), "FAIL")
    sweep_outcome_mail()
    run_worker("default")
    body = mail.outbox[0].body
    assert mail.outbox[0].subject == "memories.ai could not process “All-hands.mp4”"
    assert "\"Retry\" on its page sends it to memories.ai again" in body and "upload it again" in body
    for secret in (TEST_KEY, video.callback_token, "/callbacks/", video.file.name, str(settings.MEDIA_ROOT),
                   video.video_no, video.last_error):
        assert secret not in body


def test_a_refused_video_is_mailed_as_a_failure(opted_in, team):
    make_video(opted_in, team, status=S.REJECTED, name="odd.avi")
    sweep_outcome_mail()
    run_worker("default")
    assert mail.outbox[0].subject == "“odd.avi” was refused" and "H.264" in mail.outbox[0].body


def test_the_clock_sweeps_every_round(opted_in, team):
    finish(processing(opted_in, team))
    clock_round(60)
    run_worker("default")
    assert len(mail.outbox) == 1


def test_nobody_is_mailed_without_asking(member, teammate, team, settings):
    member.email, teammate.email = "mia@example.com", "tom@example.com"
    member.save()
    teammate.save()
    Profile.objects.create(user=teammate, email_when_failed=True)  # failures only
    finish(processing(member, team, name="a.mp4", video_no="VI1"))  # no profile: the defaults, off
    finish(processing(teammate, team, name="b.mp4", video_no="VI2"))
    assert sweep_outcome_mail() == 0
    run_worker("default")
    assert mail.outbox == []


def test_no_email_without_an_address_or_after_opting_out(opted_in, team):
    video = finish(processing(opted_in, team))
    sweep_outcome_mail()
    Profile.objects.filter(user=opted_in).update(email_when_ready=False)  # changed their mind meanwhile
    run_worker("default")
    assert mail.outbox == [] and mail_tasks().get().return_value == "not wanted"
    Profile.objects.filter(user=opted_in).update(email_when_ready=True)
    opted_in.email = ""
    opted_in.save()
    assert sweep_outcome_mail() == 0
    video.refresh_from_db()
    assert video.mailed_outcome_at is None


def test_old_outcomes_are_never_mailed(opted_in, team):
    video = finish(processing(opted_in, team))
    # Opting in today does not mail about the day before yesterday (the stored time moves back).
    Video.objects.filter(pk=video.pk).update(status_changed_at=timezone.now() - timedelta(days=2))
    assert sweep_outcome_mail() == 0


def test_a_task_for_an_outcome_that_moved_on_does_nothing(opted_in, team, api_key):
    video = finish(processing(opted_in, team, api_key), "FAIL")
    sweep_outcome_mail()
    tasks.perform(actions.retry, video.pk, opted_in)  # retried before the worker came to it
    run_worker("default")
    assert mail.outbox == [] and mail_tasks().get().return_value == "stale"


def test_a_second_outcome_after_a_retry_is_mailed_again(opted_in, team, api_key):
    video = finish(processing(opted_in, team, api_key), "FAIL")
    sweep_outcome_mail()
    run_worker("default")
    assert [m.subject for m in mail.outbox] == ["memories.ai could not process “All-hands.mp4”"]
    tasks.perform(actions.retry, video.pk, opted_in)
    accept_relay(video, UploadResult("VI2", "All-hands", "UNPARSE", None))
    finish(video)
    assert sweep_outcome_mail() == 1
    run_worker("default")
    assert sweep_outcome_mail() == 0
    run_worker("default")
    assert [m.subject for m in mail.outbox] == ["memories.ai could not process “All-hands.mp4”",
                                                "“All-hands.mp4” is ready"]


def test_without_a_site_address_the_email_names_the_page(opted_in, team, settings):
    settings.MEMPORTAL_PUBLIC_URL = settings.MEMPORTAL_SITE_URL = ""
    video = finish(processing(opted_in, team))
    sweep_outcome_mail()
    run_worker("default")
    assert f"find it under My videos (its page: /videos/{video.pk}/)" in mail.outbox[0].body
    settings.MEMPORTAL_SITE_URL = "https://videos.example.com"
    video = finish(processing(opted_in, team, name="b.mp4", video_no="VI9"))
    sweep_outcome_mail()
    run_worker("default")
    assert f"Open it: https://videos.example.com/videos/{video.pk}/" in mail.outbox[1].body
