"""Resumable uploads on the server's side: create one, write a chunk, finish, cancel, expire.

The protocol (tus) is uploads/tus.py; where the bytes live is uploads/chunkstore.py; this module
keeps the PartialUpload row and the bytes in step:

- One request writes an upload at a time. A PATCH claims the row under its lock at the offset it
  starts from (`writer`, a token); a second one meanwhile is told to wait (423), unless the first
  has received nothing for MEMPORTAL_UPLOAD_STALL_SECONDS (a connection that died without a word:
  the client's next try takes over, and the silent request, superseded, can no longer commit).
- The offset advances only over bytes any web process can continue from: fsync'd into the local
  file, or a whole S3 part recorded with its ETag; and only by the request that still holds the
  claim (compare-and-set under the row's lock). A process killed mid-chunk leaves the offset where
  the last whole chunk (local: the last committed bytes) ended.
- The PATCH that reaches the length finishes the upload without copying it (the local file moved
  into the video's name, the S3 upload completed in place), then, in one transaction, the Video
  row (queued), its first event and its relay task through the form's own path
  (tasks.perform(actions.queue_upload)), and the upload marked finished with its video.
- Cancel and expiry first fence the row (`writer` = GONE: nothing may write or commit any more),
  then remove the bytes (local file deleted, S3 multipart upload aborted), then the row.
"""

import logging
import secrets
import time

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import F, Q
from django.db.models.functions import Now

from . import actions, chunkstore, tasks
from .clock import database_time
from .models import PartialUpload, Team, Video
from .resumable_errors import (EXPIRED, NOT_FOUND, Busy, Conflict, Expired, Forbidden, NotFound, Refused,  # noqa: F401
                               StorageFailed, Superseded, TooLarge, TooMany, UploadError, left_team)

logger = logging.getLogger(__name__)
GONE = PartialUpload.GONE
HEAD_BYTES = 16  # what forms.refusal_reason reads of a file to know its container
BLOCK_BYTES = 64 * 1024  # the request body is read this much at a time (and the claim refreshed)
BEAT_SECONDS = 1.0  # how often a writing request says it is alive (and learns if it was superseded)
STORAGE_ERRORS = (OSError, BotoCoreError, ClientError)


def expire_delta():
    return database_time(settings.MEMPORTAL_UPLOAD_EXPIRE_HOURS * 3600)


def chunk_store():
    """The chunk store of the storage videos are saved to (the one the form's upload uses)."""
    return chunkstore.for_storage(Video._meta.get_field("file").storage)


def store_for(upload):
    store = chunk_store()
    if store.backend != upload.backend:
        raise Expired("The portal's storage changed since this upload began: upload the file again.")
    return store


def stored_name(upload):
    """The video's name in storage, chosen now as the form's upload names its files
    (video_upload_to, then the storage's own choice of a free name)."""
    field = Video._meta.get_field("file")
    name = field.generate_filename(Video(pk=upload.video_uuid, team=upload.team), upload.filename)
    return field.storage.get_available_name(name, max_length=field.max_length)


def create(*, owner, team, filename, title, content_type, length, metadata, fingerprint, refusal):
    """A new upload, its bytes' place made ready. `refusal(reserved, in_flight)` says why not (an
    UploadError) given the bytes the team's unfinished uploads reserve and how many the owner has;
    it is asked under the user's and the team's row locks, so uploads started at once (in one team
    or in several) are counted one by one."""
    store = chunk_store()
    upload = PartialUpload(owner=owner, team=team, filename=filename, title=title, content_type=content_type,
                           length=length, metadata=metadata, fingerprint=fingerprint, backend=store.backend,
                           expires_at=expire_delta())
    try:
        upload.storage_name = stored_name(upload)
    except STORAGE_ERRORS as error:
        raise StorageFailed(f"The storage cannot be reached ({type(error).__name__}): try again in a moment.") from error
    with transaction.atomic():  # the user's row first (the in-flight limit is theirs), then the team's
        # (no_key: the lock only other creations take; it does not hold up rows that refer to the user)
        list(get_user_model().objects.select_for_update(no_key=True).filter(pk=owner.pk).values_list("pk", flat=True))
        list(Team.objects.select_for_update().filter(pk=team.pk).values_list("pk", flat=True))
        error = refusal(PartialUpload.objects.reserved_bytes(team),
                        PartialUpload.objects.unfinished().filter(owner=owner).count())
        if error is not None:
            raise error
        upload.save()
    try:
        upload.s3_upload_id = store.start(upload)
    except STORAGE_ERRORS as error:
        logger.warning("resumable upload %s could not be started in storage: %s", upload.pk, error)
        upload.delete()
        raise StorageFailed(f"The storage cannot be reached ({type(error).__name__}): try again in a moment.") from error
    PartialUpload.objects.filter(pk=upload.pk).update(s3_upload_id=upload.s3_upload_id)
    upload.refresh_from_db()
    logger.info("resumable upload %s started: %s, %d bytes, for %s", upload.pk, filename, length, team)
    return upload


def owned(user, upload_id):
    """The user's upload with this id (no one else's: theirs is not found), or NotFound."""
    upload = (PartialUpload.objects.select_related("team").annotate(db_now=Now())
              .filter(pk=upload_id, owner=user).exclude(writer=GONE).first())
    if upload is None:
        raise NotFound(NOT_FOUND)
    return upload


def is_expired(upload):
    return upload.finished_at is None and upload.expires_at <= upload.db_now


def claim(upload_id, start, allow_expired=False):
    """Become the upload's one writer at `start`: (token, S3 part number), or why not."""
    stall = settings.MEMPORTAL_UPLOAD_STALL_SECONDS
    with transaction.atomic():
        row = PartialUpload.objects.select_for_update().annotate(db_now=Now()).filter(pk=upload_id).first()
        if row is None or row.writer == GONE:
            raise NotFound(NOT_FOUND)
        if row.finished_at is not None:
            raise Conflict("This upload is finished already.", {"Upload-Offset": str(row.offset)})
        if not allow_expired and row.expires_at <= row.db_now:
            raise Expired(EXPIRED)
        if row.offset != start:
            raise Conflict(f"The server has {row.offset} bytes of this file, not {start}: "
                           "ask for its offset (HEAD) and go on from there.", {"Upload-Offset": str(row.offset)})
        if row.writer and row.writer_seen_at and (row.db_now - row.writer_seen_at).total_seconds() < stall:
            raise Busy("Another request is writing this upload: try again in a moment.", {"Retry-After": str(stall)})
        token = secrets.token_hex(16)
        PartialUpload.objects.filter(pk=upload_id).update(writer=token, writer_seen_at=Now(), updated_at=Now(),
                                                          next_part=row.next_part + 1)
    return token, row.next_part


def release(upload_id, token):
    """Give the claim back (a failed write: the client's retry need not wait for it to go stale)."""
    PartialUpload.objects.filter(pk=upload_id, writer=token).update(writer="", writer_seen_at=None)


def superseded(upload_id):
    """The answer to a request whose claim was taken from it."""
    row = PartialUpload.objects.filter(pk=upload_id).exclude(writer=GONE).first()
    if row is None:
        return NotFound(NOT_FOUND)
    return Conflict("Another request took this upload over: ask for its offset (HEAD) and go on from there.",
                    {"Upload-Offset": str(row.offset)})


class Lease:
    """A writing request's claim, refreshed as bytes arrive; raises Superseded once it is not the
    upload's writer any more."""

    def __init__(self, upload_id, token):
        self.upload_id, self.token, self.last = upload_id, token, time.monotonic()

    def beat(self, force=False):
        if force or time.monotonic() - self.last >= BEAT_SECONDS:
            self.last = time.monotonic()
            if not PartialUpload.objects.filter(pk=self.upload_id, writer=self.token).update(writer_seen_at=Now()):
                raise Superseded()


class Body:
    """The request body in blocks of at most BLOCK_BYTES, `expected` bytes in all; it stops early
    (`cut`) when the client's connection ends. Keeps the first `capture` bytes."""

    def __init__(self, stream, expected, beat, capture):
        self.stream, self.expected, self.beat, self.capture = stream, expected, beat, capture
        self.head, self.cut = b"", False

    def __iter__(self):
        left = self.expected
        while left > 0:
            try:
                block = self.stream.read(min(BLOCK_BYTES, left))
            except OSError:  # the connection broke (Django's UnreadablePostError is one)
                block = b""
            if not block:
                self.cut = True
                return
            left -= len(block)
            if len(self.head) < self.capture:
                self.head += block[:self.capture - len(self.head)]
            self.beat()
            yield block


def write_chunk(upload, start, stream, size, head_refusal):
    """Write one chunk (`size` bytes read from `stream`) at `start`; return the upload as it is
    afterwards (finished, with its video, when this chunk completed it). `head_refusal(head)` says
    why the file's first bytes cannot be accepted (the container check), or None."""
    store = store_for(upload)
    if size == 0:  # nothing to write: says the offset (and finishes a complete upload nobody finished)
        if start != upload.offset:
            release(upload.pk, claim(upload.pk, start)[0])  # raises the refusal, unless the offset just got there
        return settle(reload(upload))
    token, part_number = claim(upload.pk, start)
    lease = Lease(upload.pk, token)
    body = Body(stream, size, lease.beat, HEAD_BYTES if start == 0 else 0)
    try:
        received, part = store.write(upload, start, body, size, part_number, lambda: lease.beat(force=True))
        reached = start + received
        if received and start < HEAD_BYTES and reached >= min(HEAD_BYTES, upload.length):
            head = body.head if len(body.head) >= min(HEAD_BYTES, upload.length) else store.head(upload, HEAD_BYTES)
            reason = head_refusal(head)
            if reason:
                terminate(upload)
                raise Refused(reason)
    except Superseded:
        raise superseded(upload.pk) from None
    except chunkstore.BytesGone:
        release(upload.pk, token)
        raise NotFound(NOT_FOUND) from None
    except chunkstore.TooManyParts:
        release(upload.pk, token)
        raise UploadError("This upload was retried too often for S3 (10,000 parts): upload the file again.") from None
    except STORAGE_ERRORS as error:
        release(upload.pk, token)
        if not PartialUpload.objects.filter(pk=upload.pk).exclude(writer=GONE).exists():
            raise NotFound(NOT_FOUND) from None  # cancelled meanwhile (its S3 upload aborted under it)
        logger.warning("chunk of resumable upload %s could not be stored: %s", upload.pk, error)
        raise StorageFailed(f"The chunk could not be stored ({type(error).__name__}): send it again.") from error
    if not received:
        release(upload.pk, token)
        return reload(upload)
    complete = reached == upload.length
    with transaction.atomic():
        row = PartialUpload.objects.select_for_update().filter(pk=upload.pk).first()
        if row is None or row.writer != token or row.offset != start:
            raise superseded(upload.pk)
        # Still the writer when complete: the finishing that follows is this request's.
        PartialUpload.objects.filter(pk=upload.pk).update(
            offset=reached, parts=row.parts + ([part] if part else []), expires_at=expire_delta(), updated_at=Now(),
            writer=token if complete else "", writer_seen_at=Now() if complete else None)
    if body.cut:
        logger.info("resumable upload %s: chunk cut short at %d of %d bytes, kept up to %d",
                    upload.pk, received, size, reached)
    return finish(upload.pk, token) if complete else reload(upload)


def reload(upload):
    return (PartialUpload.objects.select_related("team").annotate(db_now=Now())
            .get(pk=upload.pk))


def finish(upload_id, token):
    """The bytes into the video's name (moved, or completed in place), then the Video, its
    first event, its relay task and the upload's end, in one transaction."""
    upload = PartialUpload.objects.select_related("team", "owner").get(pk=upload_id)
    if not Team.objects.of_member(upload.owner).filter(pk=upload.team_id).exists():
        release(upload_id, token)  # removed from the team (or deactivated): no video, the bytes go
        end_uploads_of(upload.owner_id, upload.team_id)
        raise left_team(upload.team)
    try:
        name = store_for(upload).complete(upload)
        with transaction.atomic():
            row = PartialUpload.objects.select_for_update().filter(pk=upload_id).first()
            if row is None or row.writer != token or row.finished_at is not None:
                raise superseded(upload_id)
            team = upload.team
            video = Video(pk=upload.video_uuid, team=team, owner=upload.owner,
                          api_key=team.usable_key() or team.api_keys.filter(is_active=True).first(),
                          title=upload.title, original_name=upload.filename, content_type=upload.content_type,
                          size=upload.length, fingerprint=upload.fingerprint,  # the duplicates lookup's
                          sha256="")  # no hash state survives a crash mid-upload: the relay
            # worker computes it from the stored file (uploads/tasks.py hash_stored), with the probe
            video.file.name = name
            tasks.perform(actions.queue_upload, video, upload.owner)
            PartialUpload.objects.filter(pk=upload_id).update(
                finished_at=Now(), writer="", writer_seen_at=None, expires_at=expire_delta())
    except chunkstore.BytesGone:
        release(upload_id, token)
        raise NotFound(NOT_FOUND) from None
    except STORAGE_ERRORS as error:
        release(upload_id, token)
        logger.warning("resumable upload %s could not be finished: %s", upload_id, error)
        raise StorageFailed(f"The file could not be finished ({type(error).__name__}): "
                            "ask for its offset (HEAD) in a moment to finish it.") from error
    except Exception:
        release(upload_id, token)
        raise
    logger.info("resumable upload %s finished as video %s", upload_id, upload.video_uuid)
    return reload(upload)


def settle(upload, allow_expired=False):
    """A complete upload that no request is finishing (its finishing request died): finish it
    now. Anything else is returned as it is."""
    if upload.finished_at is not None or upload.offset != upload.length:
        return reload(upload)
    token, _ = claim(upload.pk, upload.length, allow_expired=allow_expired)
    return finish(upload.pk, token)


def terminate(upload):
    """Cancel an unfinished upload: fenced, then its bytes removed, then its row."""
    if not (PartialUpload.objects.filter(pk=upload.pk, finished_at__isnull=True).exclude(writer=GONE)
            .update(writer=GONE, writer_seen_at=Now())):
        if PartialUpload.objects.filter(pk=upload.pk, finished_at__isnull=False).exists():
            raise Conflict("This upload is finished: it is a video now (delete it from its page).")
        raise NotFound(NOT_FOUND)
    fenced = PartialUpload.objects.filter(pk=upload.pk).first()  # as it is now: a last chunk may have landed
    if fenced is not None:
        remove(fenced)


def end_uploads_of(user_id, team_id):
    """A member removed from a team: their unfinished uploads for it are cancelled, bytes and all
    (a failed removal stays fenced; the clock's sweep removes it)."""
    for upload in PartialUpload.objects.filter(owner_id=user_id, team_id=team_id, finished_at__isnull=True):
        try:
            terminate(upload)
        except (NotFound, Conflict):
            pass  # removed or finished meanwhile
        except STORAGE_ERRORS:
            logger.exception("the bytes of resumable upload %s could not be removed (the clock will)", upload.pk)


def remove(upload):
    """The bytes of a fenced upload (`upload` read after the fence), then its row. The video's own
    name is removed too when the upload was complete but never became a video (moved, then the
    finishing failed or was fenced)."""
    stored_too = upload.offset == upload.length and not Video.objects.filter(pk=upload.video_uuid).exists()
    store = chunk_store()
    if store.backend == upload.backend:
        store.discard(upload, stored_too=stored_too)
    else:  # MEMPORTAL_STORAGE changed since: its bytes are in a storage this process does not use
        logger.warning("resumable upload %s left its bytes in the %s storage (%s)", upload.pk, upload.backend,
                       upload.storage_name)
    PartialUpload.objects.filter(pk=upload.pk, writer=GONE).delete()
    logger.info("resumable upload %s removed with its bytes", upload.pk)


def stale_writer():
    """No request is writing: no writer, or one silent for MEMPORTAL_UPLOAD_STALL_SECONDS."""
    return Q(writer="") | Q(writer_seen_at__lte=database_time(-settings.MEMPORTAL_UPLOAD_STALL_SECONDS))


def fence_due(upload):
    """The sweep's compare-and-set on an expired upload it read: fenced only if it is still as it
    was seen (the same writer, still silent, still expired), never one a request woke up since."""
    if upload.writer == GONE:
        return True  # a cancel's removal that failed: fenced already
    still = PartialUpload.objects.filter(stale_writer(), pk=upload.pk, writer=upload.writer, finished_at__isnull=True,
                                         expires_at__lte=Now())
    return bool(still.update(writer=GONE, writer_seen_at=Now()))


def expire_partial_uploads():
    """The clock's sweep: finish complete uploads nobody finished, remove the bytes and rows of
    expired ones (and of cancels whose removal failed), forget finished ones once expired.
    Returns how many unfinished uploads' bytes it removed."""
    stale = stale_writer()
    PartialUpload.objects.filter(finished_at__isnull=False, expires_at__lte=Now()).delete()
    unfinished = PartialUpload.objects.filter(finished_at__isnull=True)
    for upload in unfinished.filter(stale, offset=F("length")).exclude(writer=GONE).select_related("team"):
        try:
            settle(upload, allow_expired=True)
        except (Forbidden, NotFound, Conflict, Busy) as refusal:  # removed from the team, gone, or taken
            logger.info("complete resumable upload %s not finished: %s", upload.pk, refusal.message)
        except Exception:  # noqa: BLE001 (the next round tries again; expiry removes it in the end)
            logger.exception("complete resumable upload %s could not be finished", upload.pk)
    removed = 0
    due = unfinished.filter(Q(expires_at__lte=Now()) & stale | Q(writer=GONE, writer_seen_at__lte=database_time(
        -settings.MEMPORTAL_UPLOAD_STALL_SECONDS)))
    for upload in due:
        if not fence_due(upload):
            continue  # a request claimed it meanwhile, or a chunk moved its expiry
        fenced = PartialUpload.objects.filter(pk=upload.pk).first()  # as it is now, fenced
        if fenced is None:
            continue  # removed meanwhile (another sweep, a cancel)
        try:
            remove(fenced)
        except STORAGE_ERRORS:
            logger.exception("the bytes of resumable upload %s could not be removed (next round)", upload.pk)
            continue
        removed += 1
    return removed
