"""The endpoint memories.ai POSTs status to: /callbacks/memories/<token>/.

memories.ai does not sign callbacks, so the URL carries an unguessable per-video token (an HMAC
of the video's id under the secret key). Only the token's SHA-256 is stored: the video is found
by the digest of the token in the URL, through a unique index. Every callback that names a known video is
stored first (body, headers, address) and then applied in its own transaction; the record
keeps what came of it. Malformed input is answered 4xx and logged, never 5xx.
"""

import json
import logging
import re

from django.conf import settings
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from memportal.middleware import client_ip

from . import reports
from .models import CallbackRecord, Video, token_digest

logger = logging.getLogger(__name__)
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Headers worth keeping for the audit; the URL (which holds the token) is not among them.
KEPT_HEADERS = ("Content-Type", "Content-Length", "User-Agent", "X-Forwarded-For", "X-Request-Id")


def answer(status, message):
    return JsonResponse({"ok": status == 200, "message": message}, status=status)


def read_limited_body(request):
    """The body, or None when it is larger than MEMPORTAL_CALLBACK_MAX_BYTES."""
    limit = settings.MEMPORTAL_CALLBACK_MAX_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        return None
    body = request.read(limit + 1)
    return None if len(body) > limit else body


def parse_callback(body):
    """(videoNo, status) from either documented form, or raise ValueError with the reason."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ValueError("the body is not JSON") from None
    except RecursionError:
        raise ValueError("the body is nested too deeply") from None
    if not isinstance(data, dict):
        raise ValueError("the body is not a JSON object")
    video_no, status = data.get("videoNo"), data.get("status")
    if not isinstance(video_no, str) or not video_no.strip() or len(video_no) > 100:
        raise ValueError("videoNo is missing or not a string")
    if not isinstance(status, str) or not status.strip() or len(status) > 40:
        raise ValueError("status is missing or not a string")
    if CONTROL.search(video_no) or CONTROL.search(status):
        raise ValueError("videoNo or status holds control characters")
    return video_no.strip(), status.strip()


def keep_newest_callbacks(video_id):
    """At most MEMPORTAL_CALLBACKS_KEPT_PER_VIDEO records per video, the oldest settled ones going
    first (a pending one waits for the relay's answer and stays): whoever holds a callback URL
    cannot fill the database through it."""
    kept = settings.MEMPORTAL_CALLBACKS_KEPT_PER_VIDEO
    records = CallbackRecord.objects.filter(video_id=video_id)
    excess = records.count() - kept
    if excess > 0:
        oldest = (records.exclude(outcome=CallbackRecord.Outcome.PENDING).order_by("received_at", "pk")
                  .values_list("pk", flat=True)[:excess])
        CallbackRecord.objects.filter(pk__in=list(oldest)).delete()


@csrf_exempt
@never_cache
@require_POST
def memories_callback(request, token):
    video = (Video.objects.filter(callback_digest=token_digest(token))
             .only("pk", "video_no", "status", "remote_status", "deleted_at").first())
    if video is None:
        logger.warning("callback for an unknown token from %s", client_ip(request))
        return answer(404, "unknown callback address")
    body = read_limited_body(request)
    if body is None:
        logger.warning("callback for video %s refused: body over %d bytes", video.pk,
                       settings.MEMPORTAL_CALLBACK_MAX_BYTES)
        return answer(413, "body too large")
    if b"\x00" in body:  # not stored: no database keeps a NUL in text, and nothing sends one
        logger.warning("callback for video %s refused: the body holds a NUL byte", video.pk)
        return answer(400, "the body holds a NUL byte")
    try:
        video_no, status = parse_callback(body)
        refusal = ""
    except ValueError as error:
        video_no, status, refusal = "", "", str(error)
    # A callback that changes nothing (most of them: memories.ai repeats itself) is settled
    # from the row just read: stored with its outcome, nothing to lock.
    settled = None
    if not refusal and video.video_no and video.video_no == video_no:
        settled = reports.settled_outcome(video, status)
    # Stored as it arrived before anything is applied, malformed or not: one INSERT.
    cb = CallbackRecord.objects.create(
        video_id=video.pk,
        remote_addr=client_ip(request),
        headers={name: request.headers[name] for name in KEPT_HEADERS if name in request.headers},
        body=body.decode("utf-8", errors="replace"),
        video_no=video_no, remote_status=status,
        outcome=CallbackRecord.Outcome.REFUSED if refusal else (settled or CallbackRecord.Outcome.PENDING),
        detail=refusal,
    )
    keep_newest_callbacks(video.pk)
    if refusal:
        logger.warning("callback %s for video %s refused: %s", cb.pk, video.pk, refusal)
        return answer(400, refusal)
    outcome = settled or reports.apply_stored_callback(cb, video.pk)
    if outcome == CallbackRecord.Outcome.REFUSED:
        logger.warning("callback %s names videoNo %s, not the video's", cb.pk, video_no)
        return answer(409, "videoNo does not match this callback address")
    if outcome == CallbackRecord.Outcome.ERROR:
        # Stored and logged with its traceback; an operator can replay it. memories.ai need not retry.
        return answer(200, "recorded")
    logger.info("callback %s for video %s: %s -> %s", cb.pk, video.pk, status, outcome)
    return answer(200, outcome)
