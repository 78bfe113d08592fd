"""Emails about a video's outcome (ready; failed or refused) to its owner, who opted in on their
settings page (uploads/account.py, the Profile).

Sent by a worker, never in a web request: each clock round (reconcile --every) sweeps for videos
whose outcome is newer than the last one mailed (Video.mailed_outcome_at) and recent (an owner who
opts in is not mailed about last month's videos), and enqueues one send_outcome_mail per video. The
task claims the outcome with a conditional UPDATE of mailed_outcome_at (from what it read to the
outcome's status_changed_at) and sends only if it won: two sweeps, two task rows or two workers
never send one outcome twice. A retried video that reaches an outcome again has a new
status_changed_at, so it is mailed again.
"""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db.models import F, Q
from django.tasks import TaskResultStatus, task
from django.template import loader
from django.urls import reverse
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from memportal import logs
from memportal.middleware import zone_named

from .models import Profile, Video

logger = logging.getLogger(__name__)
S = Video.Status
FAILURES = (S.FAILED, S.REJECTED)
# Outcomes older than this are never mailed (a sweep that was down, an opt-in after the fact).
RECENT = timedelta(days=1)
SWEEP_AT_MOST = 500  # videos enqueued per sweep; the rest wait for the next round


def due_outcomes():
    """Videos whose recent outcome their owner wants mailed and has not been."""
    wanted = (Q(status=S.READY, owner__portal_profile__email_when_ready=True)
              | Q(status__in=FAILURES, owner__portal_profile__email_when_failed=True))
    return (Video.objects.alive().filter(wanted, owner__is_active=True, status_changed_at__gte=timezone.now() - RECENT)
            .exclude(owner__email="")
            .filter(Q(mailed_outcome_at__isnull=True) | Q(mailed_outcome_at__lt=F("status_changed_at"))))


def sweep_outcome_mail():
    """One task per due outcome, unless a row for that outcome is already waiting (a worker that
    lags behind the clock does not pile up rows). Returns how many were enqueued."""
    waiting = {tuple(row.get("args") or ())[:2] for row in DBTaskResult.objects.filter(
        task_path=send_outcome_mail.module_path, status=TaskResultStatus.READY).values_list("args_kwargs", flat=True)}
    enqueued = 0
    for pk, changed_at in due_outcomes().order_by("status_changed_at").values_list("pk", "status_changed_at")[
            :SWEEP_AT_MOST]:
        args = (str(pk), changed_at.isoformat())
        if args not in waiting:
            send_outcome_mail.enqueue(*args, request_id=logs.current_request_id() or logs.new_request_id())
            enqueued += 1
    return enqueued


@task(queue_name="default")
@logs.in_task_context
def send_outcome_mail(video_id: str, changed_at: str):
    """Mail the owner about the outcome the video reached at `changed_at`, once."""
    video = Video.objects.alive().select_related("owner").filter(pk=video_id).first()
    if video is None or video.status_changed_at != datetime.fromisoformat(changed_at):
        return "stale"  # deleted, or it moved on (a retry) since the sweep
    profile = Profile.of(video.owner)
    wanted = profile.email_when_ready if video.status == S.READY else (
        profile.email_when_failed if video.status in FAILURES else False)
    if not wanted or not video.owner.email or not video.owner.is_active:
        return "not wanted"
    claimed = (Video.objects.filter(pk=video.pk, status=video.status, status_changed_at=video.status_changed_at)
               .filter(Q(mailed_outcome_at__isnull=True) | Q(mailed_outcome_at__lt=video.status_changed_at))
               .update(mailed_outcome_at=video.status_changed_at))
    if not claimed:
        return "already mailed"
    subject, body = outcome_message(video, profile)
    try:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [video.owner.email])
    except OSError:  # smtplib's errors included
        # Not sent: give the claim back, so the next sweep tries again (while the outcome is recent).
        Video.objects.filter(pk=video.pk, mailed_outcome_at=video.status_changed_at).update(
            mailed_outcome_at=video.mailed_outcome_at)
        logger.warning("the outcome email of a video could not be sent; the next sweep tries again", exc_info=True)
        return "not sent"
    logger.info("outcome email sent (%s)", video.status)
    return "sent"


def site_url():
    """The portal's address for links (no request here): MEMPORTAL_SITE_URL, else the public URL
    callbacks use; "" when neither is set (the email then names the page without a link)."""
    return settings.MEMPORTAL_SITE_URL or settings.MEMPORTAL_PUBLIC_URL


def outcome_message(video, profile):
    """(subject, body) in the owner's zone. Only the name, the outcome in words and links: never
    an API key, a callback token, a server path or an error's text."""
    zone = zone_named(profile.time_zone) or timezone.get_default_timezone()
    base = site_url()
    context = {
        "user": video.owner, "name": video.display_name, "status": video.status,
        "ready": video.status == S.READY, "refused": video.status == S.REJECTED,
        "at": timezone.localtime(video.status_changed_at, zone), "zone": str(zone),
        "path": reverse("video-detail", args=[video.pk]), "base": base,
        "settings_path": reverse("profile"), "retention_days": settings.MEMPORTAL_RETENTION_DAYS,
    }
    with timezone.override(zone):
        subject = " ".join(loader.render_to_string("uploads/email/outcome_subject.txt", context).split())
        body = loader.render_to_string("uploads/email/outcome_body.txt", context)
    return subject, body
