"""Resumable uploads still arriving (the tus endpoint, uploads/tus.py): whose, for which team, how
many bytes the server holds, and where (uploads/resumable.py, uploads/chunkstore.py).

`offset` only ever counts bytes any web process can continue from: fsync'd into the local partial
file, or whole S3 parts recorded in `parts`. One request writes at a time: it holds `writer` (a
token) and refreshes `writer_seen_at` as bytes arrive; a writer silent for
MEMPORTAL_UPLOAD_STALL_SECONDS may be superseded. A finished upload keeps its row (with its video's
id) until it expires, so a client whose last answer was lost still learns its video.
"""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import F, Q, Sum
from django.utils import timezone

from ..clock import database_time
from .teams import Team


class PartialUploadQuerySet(models.QuerySet):
    def unfinished(self):
        """Still arriving (or paused): not finished, not expired, not being removed."""
        return (self.filter(finished_at__isnull=True, expires_at__gt=database_time())
                .exclude(writer=PartialUpload.GONE))

    def reserved_bytes(self, team):
        """What the team's unfinished uploads will keep on the storage: their whole declared
        length, counted from creation (so ten uploads started at once cannot each fit alone) until
        their row is deleted: an expired or cancelled upload's bytes stay on the disk until the
        clock (or the cancel) has removed them."""
        return self.filter(team=team, finished_at__isnull=True).aggregate(total=Sum("length"))["total"] or 0


class PartialUpload(models.Model):
    GONE = "gone"  # `writer` of an upload being removed (terminated or expired): nothing may write

    class Backend(models.TextChoices):
        LOCAL = "local", "Local folder"
        S3 = "s3", "S3 multipart upload"

    # The upload's URL carries this id (uuid4: unguessable); only its owner may use it.
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="partial_uploads")
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="partial_uploads")
    # The id the Video will have: its stored name (video_upload_to) is chosen at creation.
    video_uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    filename = models.CharField(max_length=255)
    title = models.CharField(max_length=200, blank=True)
    content_type = models.CharField(max_length=100)
    length = models.PositiveBigIntegerField()
    offset = models.PositiveBigIntegerField(default=0)
    # Upload-Metadata as the client sent it (echoed by HEAD), and the browser's cheap fingerprint
    # of the file (name, size, last-modified, sampled slices) to recognise it after a crash.
    metadata = models.TextField(blank=True)
    fingerprint = models.CharField(max_length=200, blank=True, db_index=True)

    backend = models.CharField(max_length=8, choices=Backend.choices)
    storage_name = models.CharField(max_length=500)
    s3_upload_id = models.CharField(max_length=1024, blank=True)
    # Recorded S3 parts, in order: {"PartNumber", "ETag", "ChecksumCRC32", "Size"}.
    parts = models.JSONField(default=list, blank=True)
    # Every claim takes a new part number, so a superseded request's part can never replace a
    # recorded one (S3 completes with the listed parts only; the others are dropped).
    next_part = models.PositiveIntegerField(default=1)

    writer = models.CharField(max_length=32, blank=True)
    writer_seen_at = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    # By the database's clock (web processes on several machines compare it).
    expires_at = models.DateTimeField(db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = PartialUploadQuerySet.as_manager()

    class Meta:
        ordering = ["created_at"]
        indexes = [models.Index(fields=["owner", "finished_at"], name="partial_owner_finished_idx")]
        constraints = [models.CheckConstraint(condition=Q(offset__lte=F("length")),
                                              name="partial_offset_within_length")]

    def __str__(self):
        return f"{self.filename} ({self.offset} of {self.length} bytes)"

    @property
    def is_complete(self):
        return self.offset == self.length
