"""Where the bytes of an unfinished resumable upload live, for each storage the portal can use.

Local folder: one file per upload in the storage's `partial/` folder (the same disk as the videos),
written at the chunk's offset and fsync'd before the caller counts the bytes; finishing moves it
into the video's name (a rename, as FileSystemStorage moves the plain upload's temporary file).
S3: one multipart upload per upload, created at the video's key; each chunk is one part, spooled
to a temporary file of at most one chunk (botocore must hash a part before sending it, and can
then retry it) and uploaded with upload_part; finishing is complete_multipart_upload in place.

Nothing here knows the database: `upload` is any object with the PartialUpload fields used.
"""

import os
import tempfile

from botocore.exceptions import ClientError
from django.conf import settings
from django.core.files import File
from django.core.files.storage import FileSystemStorage
from storages.utils import clean_name

S3_MIN_PART = 5 * 1024 * 1024  # every S3 part but the last must be at least this long
S3_MAX_PARTS = 10_000
PARTIAL_FOLDER = "partial"


class BytesGone(Exception):
    """The upload's bytes are no longer where they were (it was terminated or expired)."""


class TooManyParts(Exception):
    """S3 takes at most 10,000 parts to one upload (every retried chunk takes a new number)."""


def for_storage(storage):
    """The chunk store for the storage videos are saved to."""
    if isinstance(storage, FileSystemStorage):
        return LocalChunks(storage)
    if hasattr(storage, "bucket_name"):  # django-storages' S3Storage
        return S3Chunks(storage)
    raise NotImplementedError(f"resumable uploads do not support {type(storage).__name__}")


class MovableFile(File):
    """A file already on the storage's disk: FileSystemStorage._save moves it (file_move_safe,
    a rename on one disk) instead of copying it, as it does for a TemporaryUploadedFile."""

    def __init__(self, path):
        super().__init__(None, os.path.basename(path))
        self._path = path

    def temporary_file_path(self):
        return self._path


def fsync_folder(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalChunks:
    backend = "local"
    min_part = 1

    def __init__(self, storage):
        self.storage = storage

    def path(self, upload):
        return self.storage.path(f"{PARTIAL_FOLDER}/{upload.pk}.part")

    def start(self, upload):
        """An empty partial file (nothing to record: its name derives from the upload's id)."""
        path = self.path(upload)
        os.makedirs(os.path.dirname(path), mode=settings.FILE_UPLOAD_DIRECTORY_PERMISSIONS or 0o750, exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, settings.FILE_UPLOAD_PERMISSIONS or 0o640))
        fsync_folder(os.path.dirname(path))
        return ""

    def write(self, upload, start, blocks, expected, part_number, still_writer):
        """Write the blocks at `start`; return (bytes written and fsync'd, None). A body cut short
        keeps what arrived: the caller counts it, the client resumes from there."""
        try:
            fd = os.open(self.path(upload), os.O_WRONLY)
        except FileNotFoundError:
            raise BytesGone() from None
        written = 0
        try:
            os.lseek(fd, start, os.SEEK_SET)
            for block in blocks:
                view = memoryview(block)
                while view:
                    view = view[os.write(fd, view):]
                written += len(block)
            os.fsync(fd)
        finally:
            os.close(fd)
        return written, None

    def head(self, upload, size):
        try:
            with open(self.path(upload), "rb") as partial:
                return partial.read(size)
        except FileNotFoundError:
            raise BytesGone() from None

    def complete(self, upload):
        """Move the partial file into the video's name; return the name. Again after a crash
        between the move and the database: the file is found in its place."""
        path, name = self.path(upload), upload.storage_name
        if not os.path.exists(path):
            if self.storage.exists(name) and self.storage.size(name) == upload.length:
                return name
            raise BytesGone()
        if os.path.getsize(path) != upload.length:
            raise BytesGone()  # cannot happen: no write goes past the length
        saved = self.storage.save(name, MovableFile(path), max_length=500)
        fsync_folder(os.path.dirname(self.storage.path(saved)))
        return saved

    def discard(self, upload, stored_too):
        """Remove the partial file (and the video's name when `stored_too`: moved, never recorded)."""
        try:
            os.unlink(self.path(upload))
        except FileNotFoundError:
            pass
        if stored_too:
            self.storage.delete(upload.storage_name)


class S3Chunks:
    backend = "s3"
    min_part = S3_MIN_PART

    def __init__(self, storage):
        self.storage = storage
        self.client = storage.connection.meta.client
        self.bucket = storage.bucket_name

    def key(self, upload):
        # The storage's own normalisation (its `location` prefix), as its _save uses.
        return self.storage._normalize_name(clean_name(upload.storage_name))

    def start(self, upload):
        """A multipart upload at the video's key, with the parameters the storage gives an object
        it saves (its object parameters, the content type, its ACL); returns its UploadId."""
        params = self.storage.get_object_parameters(upload.storage_name)
        params.setdefault("ContentType", upload.content_type)
        if "ACL" not in params and self.storage.default_acl:
            params["ACL"] = self.storage.default_acl
        answer = self.client.create_multipart_upload(Bucket=self.bucket, Key=self.key(upload),
                                                     ChecksumAlgorithm="CRC32", **params)
        return answer["UploadId"]

    def write(self, upload, start, blocks, expected, part_number, still_writer):
        """Spool the chunk, then upload it as part `part_number`; return (its length, the part)
        or (0, None) when the body was cut short: only whole parts count."""
        if part_number > S3_MAX_PARTS:
            raise TooManyParts()
        with tempfile.TemporaryFile(dir=settings.FILE_UPLOAD_TEMP_DIR) as spool:
            received = 0
            for block in blocks:
                spool.write(block)
                received += len(block)
            if received != expected:
                return 0, None
            still_writer()  # a superseded request uploads nothing
            spool.seek(0)
            try:
                answer = self.client.upload_part(
                    Bucket=self.bucket, Key=self.key(upload), UploadId=upload.s3_upload_id, PartNumber=part_number,
                    Body=spool, ContentLength=received, ChecksumAlgorithm="CRC32")
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") in ("NoSuchUpload", "404"):
                    raise BytesGone() from error
                raise
        return received, {"PartNumber": part_number, "ETag": answer["ETag"],
                          "ChecksumCRC32": answer.get("ChecksumCRC32", ""), "Size": received}

    def head(self, upload, size):
        raise NotImplementedError("S3 uploads are checked from the first part's own bytes")

    def complete(self, upload):
        """Complete the multipart upload in place; return the name. Again after a crash between
        the completion and the database: the object is found at its key."""
        parts = [{key: part[key] for key in ("PartNumber", "ETag", "ChecksumCRC32") if part.get(key)}
                 for part in upload.parts]
        key = self.key(upload)
        try:
            self.client.complete_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload.s3_upload_id,
                                                  MultipartUpload={"Parts": parts})
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "NoSuchUpload":
                raise
        try:
            size = self.client.head_object(Bucket=self.bucket, Key=key)["ContentLength"]
        except ClientError as error:
            raise BytesGone() from error
        if size != upload.length:
            raise BytesGone()
        return upload.storage_name

    def discard(self, upload, stored_too):
        """Abort the multipart upload (S3 drops its parts), and remove the object when `stored_too`."""
        if upload.s3_upload_id:
            try:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=self.key(upload),
                                                   UploadId=upload.s3_upload_id)
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") not in ("NoSuchUpload", "404"):
                    raise
        if stored_too:
            self.storage.delete(upload.storage_name)
