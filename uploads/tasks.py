"""Background work: relaying videos to memories.ai, checking their status, deleting them there;
and the one place work is enqueued (perform/enqueue), for every entry point.

Arguments are JSON (video ids as strings, and the fencing token the task was planned with). A
task never sleeps waiting for a pacing slot: it hands its turn to one successor with run_after. A
task may run twice, late or after it was superseded: it acts only while its token (and, after a
claim, its claim number) is current, so that is harmless.
"""

import hashlib
import logging
import time
from contextlib import contextmanager
from datetime import timedelta

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.tokens import default_token_generator
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q
from django.tasks import TaskResultStatus, task
from django.template import loader
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django_tasks_db.models import DBTaskResult

from memportal import logs

from . import actions, hashing, lifecycle, memories, probe, reports
from .clock import database_time
from .crypto import ApiKeyDecryptionError
from .followups import CheckVideo, DeleteRemoteVideos, RelayVideo, SendPasswordReset
from .models import ApiKey, RelayHold, Video

logger = logging.getLogger(__name__)
S = Video.Status
HEARTBEAT_EVERY_SECONDS = 2.0
# Local files raise OSError; S3 raises botocore's errors (ClientError, EndpointConnectionError...).
STORAGE_ERRORS = (OSError, BotoCoreError, ClientError)


def perform(action, *args, **kwargs):
    """Run an action and enqueue the work it returns, in one transaction; return its value."""
    with transaction.atomic():
        result = action(*args, **kwargs)
        enqueue(result.work)
    return result.value


def enqueue(work):
    """Turn follow-up work (uploads/followups.py) into task rows, each carrying the request id of
    the request or task that made the work (or a new one: the clock, a command), as a keyword
    argument that logs.in_task_context takes off again."""
    request_id = logs.current_request_id() or logs.new_request_id()
    for item in work:
        match item:
            case RelayVideo(video_id=video_id, attempt=attempt, token=token, run_after=run_after):
                _later(relay_video, run_after).enqueue(video_id, attempt, token, request_id=request_id)
            case CheckVideo(video_id=video_id, token=token, run_after=run_after):
                _later(check_video, run_after).enqueue(video_id, token, request_id=request_id)
            case DeleteRemoteVideos(key_id=key_id, video_nos=video_nos, attempt=attempt, run_after=run_after,
                                    family=family, namespace=namespace):
                _later(delete_remote_videos, run_after).enqueue(key_id, list(video_nos), attempt, family, namespace,
                                                                request_id=request_id)
            case SendPasswordReset(user_id=user_id, domain=domain, protocol=protocol):
                send_password_reset.enqueue(user_id, domain, protocol, request_id=request_id)
            case _:
                raise TypeError(f"not follow-up work: {item!r}")


def _later(task_, run_after):
    return task_.using(run_after=run_after) if run_after is not None else task_


def live_relays():
    """{video id: tokens} of relay_video rows that can still run or are running."""
    return _live_tokens(relay_video, token_index=2)


def live_checks():
    """{video id: tokens} of check_video rows that can still run or are running."""
    return _live_tokens(check_video, token_index=1)


def _live_tokens(task_, token_index):
    """A chain is live when such a row carries the video's current token (superseded rows stay
    in the table and find their token stale). A RUNNING row whose worker has been silent longer
    than MEMPORTAL_HEARTBEAT_STALE_SECONDS is taken for dead: a killed worker leaves its row
    RUNNING for ever. Rows enqueued before tokens existed carry none: they count as token "".
    """
    running_since = database_time(-settings.MEMPORTAL_HEARTBEAT_STALE_SECONDS)
    rows = DBTaskResult.objects.filter(task_path=task_.module_path).filter(
        Q(status=TaskResultStatus.READY) | Q(status=TaskResultStatus.RUNNING, started_at__gte=running_since))
    tokens = {}
    for args_kwargs in rows.values_list("args_kwargs", flat=True):
        args = args_kwargs.get("args") or []
        if args:
            tokens.setdefault(args[0], set()).add(args[token_index] if len(args) > token_index else "")
    return tokens


@task(queue_name="relay")
@logs.in_task_context
def relay_video(video_id: str, attempt: int, token: str = ""):
    """Send one stored video to memories.ai, while this task's token and attempt are current."""
    video = Video.objects.alive().select_related("team").filter(pk=video_id).first()
    if video is None or video.status != S.QUEUED or video.attempts != attempt or video.relay_token != token:
        return "stale"
    if video.next_attempt_at and video.next_attempt_at > timezone.now():
        perform(actions.relay_later, video_id, attempt, token, video.next_attempt_at)
        return "not yet"
    key = video.team.usable_key()
    if key is None:
        # The video waits in `queued`; fixing the key resumes the team's queue.
        return "no usable key"
    if RelayHold.in_force() is not None:
        # The video waits in `queued`; clearing the hold resumes every queue.
        return "held: memories.ai settings"
    if not video.sha256:
        hash_stored(video)  # before the slot: the duplicate check on the video's page has it
    if video.media_checked_at is None:
        refused = media_refusal(video)
        if refused:
            perform(actions.media_refused, video_id, token, refused)
            return "refused before sending"
    claimed, retry_at = lifecycle.claim_slot_and_video(video, attempt, token, key)
    if retry_at is not None:
        perform(actions.relay_later, video_id, attempt, token, retry_at)
        return "paced"
    if not claimed:
        return "claimed elsewhere"
    # From the claim on, every path ends in a transition: the video never stays `sending`.
    try:
        return send(video, key)
    except Exception as error:  # a bug, or a failure nobody foresaw: one attempt, in the timeline
        logger.exception("relay of video %s failed unexpectedly", video.pk)
        perform(actions.relay_failed, video.pk, attempt + 1, memories.MemoriesError(
            memories.RETRY, f"unexpected error while sending ({type(error).__name__})"))
        return "unexpected error"


def send(video, key):
    """Stream a claimed video to memories.ai and move it on with the answer."""
    claimed = video.attempts + 1  # what claim_for_relay wrote: later steps act only on this claim
    gone = storage_problem(video)
    if gone:
        perform(actions.stored_file_gone, video.pk, claimed, gone)
        return "stored file gone"
    last_beat = time.monotonic()

    def on_progress(sent):
        nonlocal last_beat
        if time.monotonic() - last_beat >= HEARTBEAT_EVERY_SECONDS:
            last_beat = time.monotonic()
            lifecycle.heartbeat(video.pk, claimed)

    family, namespace = Video.objects.values_list("api_family", "namespace").get(pk=video.pk)  # the claim's
    try:
        raw_key = key.reveal()
        with stored_stream(video) as stream:
            fileobj = stream if video.sha256 else HashingReader(stream)
            result = memories.upload(
                raw_key, fileobj, size=video.size, filename=video.original_name,
                content_type=video.content_type, callback_url=video.callback_url(), on_progress=on_progress,
                place=memories.Place.of(family, namespace),
            )
    except memories.MemoriesError as error:
        logger.info("relay of video %s failed: %s", video.pk, error)
        perform(actions.relay_failed, video.pk, claimed, error, api_key=key)
        return f"failed: {error.kind}"
    except ApiKeyDecryptionError as error:
        perform(actions.relay_failed, video.pk, claimed, memories.MemoriesError(memories.KEY, str(error)), api_key=key)
        return "key cannot be decrypted"
    except memories.SourceError as error:
        if error.short:
            perform(actions.stored_file_gone, video.pk, claimed, "shorter than when it was uploaded")
            return "stored file changed"
        logger.warning("relay of video %s could not read the stored file: %s", video.pk, error)
        perform(actions.relay_failed, video.pk, claimed, memories.MemoriesError(memories.RETRY, f"{error}; will try again"))
        return "storage error"
    except STORAGE_ERRORS as error:
        # The storage failed as the file was opened: transient, bounded by attempts.
        logger.warning("relay of video %s could not open the stored file: %s", video.pk, error)
        perform(actions.relay_failed, video.pk, claimed, memories.MemoriesError(
            memories.RETRY, f"the stored file could not be read ({type(error).__name__}); will try again"))
        return "storage error"
    if not video.sha256:
        # A resumable upload (uploads/resumable.py) arrives in chunks that no hash state survives:
        # its SHA-256 is of the bytes this relay read, every one of them.
        Video.objects.filter(pk=video.pk, sha256="").update(sha256=fileobj.hasher.hexdigest())
    accepted = record_acceptance(video, result)
    if accepted is None:
        return "accepted, not recorded"
    key.mark_used()
    if accepted.deleted_at is None:
        reports.apply_pending_callbacks(video.pk)
    return "sent"


def record_acceptance(video, result, tries=3):
    """memories.ai holds the file now: record that, retrying a failing database a few times, and
    never let the failure count as a failed send (a re-send would leave this copy unrecorded)."""
    for attempt in range(1, tries + 1):
        try:
            return perform(actions.relay_accepted, video.pk, result)
        except Exception:
            logger.exception("memories.ai accepted video %s as %s, but recording it failed (try %d of %d)",
                             video.pk, result.video_no, attempt, tries)
            time.sleep(attempt)
    return None


def media_refusal(video):
    """Read what the stored file holds (uploads/probe.py, time-limited, in a child process) and
    keep it; return why memories.ai would refuse it, or "" to send it. A file that is missing or
    empty, or storage that fails, is left to the send, which tells the user or retries."""
    if storage_problem(video):
        return ""
    try:
        try:
            info = probe.probe(video.file.path, settings.MEMPORTAL_PROBE_SECONDS)
        except NotImplementedError:  # no local path (S3): bounded range reads, as FFmpeg asks
            info = probe.probe(s3_range_reader(video), settings.MEMPORTAL_PROBE_SECONDS)
    except probe.ProbeTimeout as error:
        # No verdict (a slow storage, a busy host, the probe's process killed): not the file's
        # fault, so it is sent as it is and memories.ai judges it.
        logger.warning("video %s could not be probed (%s); sending it unprobed", video.pk, error.detail)
        lifecycle.record(video, lifecycle.Source.RELAY, video.status, video.status,
                         "what the file holds could not be read in time; sent without that check")
        return ""
    except probe.ProbeError as error:
        logger.info("video %s refused before sending: %s (%s)", video.pk, error, getattr(error, "detail", ""))
        return str(error)
    except STORAGE_ERRORS as error:
        logger.warning("video %s could not be probed (%s); sending it unprobed", video.pk, type(error).__name__)
        return ""
    lifecycle.record_media(video.pk, info)
    return probe.refusal(info) or ""


def hash_stored(video):
    """A resumable upload's SHA-256, of the stored file streamed once by this worker (not the
    probe's child: it does not count against the probe's limit), kept before a slot is claimed.
    The video is still queued: no claim, so no heartbeat to keep. A file missing, changed or
    unreadable is left to the send, which says so or hashes the bytes it reads."""
    if storage_problem(video):
        return
    try:
        with stored_stream(video) as stream:
            digest, size = hashing.sha256_of(stream)
    except STORAGE_ERRORS as error:
        logger.warning("video %s could not be hashed before sending (%s)", video.pk, type(error).__name__)
        return
    if size != video.size:
        return  # it changed as it was read: the send tells
    hashing.keep(video.pk, digest)
    video.sha256 = digest


def s3_object(video):
    """The stored file's S3 object (boto3), after one HEAD request: nothing downloaded."""
    return video.file.storage.open(video.file.name, "rb").obj


def s3_range_reader(video):
    """The stored S3 object as a file that fetches only the ranges read (a probe reads a few
    hundred KiB of a video of any size); an object replaced meanwhile is an error."""
    obj = s3_object(video)

    def fetch(start, end):
        return obj.get(Range=f"bytes={start}-{end}", IfMatch=obj.e_tag)["Body"].read()

    return probe.RangeReader(fetch, obj.content_length)


@contextmanager
def stored_stream(video):
    """The stored file as a stream read as it is sent: the local file, or the S3 object's body
    as it arrives (one GET, pinned to the object's ETag). django-storages' S3File would download
    the whole object to a temporary file on the first read, with the request to memories.ai
    already open, idle and without a heartbeat meanwhile."""
    try:
        video.file.path  # noqa: B018 (a local storage has paths)
    except NotImplementedError:
        obj = s3_object(video)
        body = obj.get(IfMatch=obj.e_tag)["Body"]
        try:
            yield body
        finally:
            body.close()
        return
    with video.file.open("rb") as fileobj:
        yield fileobj


class HashingReader:
    """A stored file's stream that hashes what is read from it."""

    def __init__(self, stream):
        self.stream, self.hasher = stream, hashlib.sha256()

    def read(self, n=-1):
        block = self.stream.read(n)
        self.hasher.update(block)
        return block


def storage_problem(video):
    """Why the stored file cannot be sent at all ("missing", "empty"), or "" when it can."""
    name = video.file.name if video.file else ""
    try:
        if not name or not video.file.storage.exists(name):
            return "missing"
        size = video.file.storage.size(name)
        if size == 0:
            return "empty"
        if size != video.size:
            return "changed since it was uploaded"
    except STORAGE_ERRORS:
        return ""  # the storage itself is failing: the read will tell, and that is transient
    return ""


@task(queue_name="default")
@logs.in_task_context
def check_video(video_id: str, token: str = ""):
    """Ask memories.ai where a processing video stands, while this check's token is current;
    plan the next check (one successor, with a new token) if it is not final."""
    video = Video.objects.alive().select_related("team", "api_key").filter(pk=video_id).first()
    if video is None or video.status != S.PROCESSING or not video.video_no or video.check_token != token:
        return "stale"
    key = lifecycle.key_for(video)
    if key is None:
        perform(actions.plan_next_check, video.pk, token)
        return "no key"
    Video.objects.filter(pk=video.pk).update(checks=video.checks + 1, last_checked_at=timezone.now())
    try:
        remote = memories.find_video(key.reveal(), video.video_no, video.place)
    except (memories.MemoriesError, ApiKeyDecryptionError) as error:
        logger.info("status check of video %s failed: %s", video.pk, error)
        perform(actions.plan_next_check, video.pk, token)
        return "check failed"
    if remote is not None:
        reports.apply_remote_status(video.pk, remote.status, lifecycle.Source.STATUS_CHECK,
                                    f"status check: {remote.status}", video_no=video.video_no, check_token=token)
    perform(actions.plan_next_check, video.pk, token)
    return remote.status if remote else "unknown to memories.ai"


@task(queue_name="default")
@logs.in_task_context
def delete_remote_videos(key_id: int, video_nos: list[str], attempt: int, family: str = "", namespace: str = ""):
    """Ask memories.ai to delete up to 100 videos of one place; unknown numbers count as deleted.
    (Rows enqueued before API families carry no place: the older family's.)"""
    key = ApiKey.objects.filter(pk=key_id).first()
    if key is None:
        logger.warning("cannot delete %d video(s) at memories.ai: their key was removed", len(video_nos))
        return "no key"
    try:
        memories.delete_videos(key.reveal(), video_nos, memories.Place.of(family, namespace))
    except (memories.MemoriesError, ApiKeyDecryptionError) as error:
        if attempt + 1 >= settings.MEMPORTAL_MAX_ATTEMPTS or getattr(error, "kind", "") == memories.REJECT:
            logger.error("gave up deleting %d video(s) at memories.ai: %s", len(video_nos), error)
            return "gave up"
        run_after = timezone.now() + timedelta(seconds=lifecycle.backoff_seconds(attempt + 1))
        enqueue([DeleteRemoteVideos(key_id, tuple(video_nos), attempt + 1, run_after, family, namespace)])
        return "will retry"
    Video.objects.filter(video_no__in=video_nos, deleted_at__isnull=False).update(remote_deleted_at=timezone.now())
    return f"deleted {len(video_nos)}"


@task(queue_name="default")
@logs.in_task_context
def send_password_reset(user_id: int, domain: str, protocol: str):
    """Mail a password-reset link (Django's templates and token generator) to an active user."""
    user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
    if user is None or not user.email:
        return "no such user"
    context = {"email": user.email, "domain": domain, "site_name": domain, "protocol": protocol, "user": user,
               "uid": urlsafe_base64_encode(force_bytes(user.pk)), "token": default_token_generator.make_token(user)}
    subject = "".join(loader.render_to_string("registration/password_reset_subject.txt", context).splitlines())
    body = loader.render_to_string("registration/password_reset_email.html", context)
    send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [user.email])
    return "sent"
