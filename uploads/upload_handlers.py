"""The upload handler: every file to a temporary file on disk, its size limited and hashed as it streams.

Installed in FILE_UPLOAD_HANDLERS because the CSRF middleware parses the body before a view
could swap handlers. A file over MEMPORTAL_MAX_UPLOAD_BYTES is skipped as soon as it passes the
limit (the rest of its bytes are read and dropped, never written), and noted on the request so
the view can say which file was refused and why; the other files of the same form still arrive.
A form holding more than MEMPORTAL_FILES_PER_SELECTION files is refused whole at the first file
too many (TooManyFilesSent: a 400 page that says so, uploads.views.bad_request).
"""

import hashlib

from django.conf import settings
from django.core.exceptions import TooManyFilesSent
from django.core.files.uploadhandler import SkipFile, TemporaryFileUploadHandler
from django.template.defaultfilters import filesizeformat


def refusals(request):
    """Files the handler refused while the body streamed in: a list of (file name, reason)."""
    return getattr(request, "_memportal_refusals", [])


class VideoUploadHandler(TemporaryFileUploadHandler):
    files = 0  # files of this request so far (one handler per request)

    def new_file(self, field_name, file_name, *args, **kwargs):
        self.files += 1
        if self.files > settings.MEMPORTAL_FILES_PER_SELECTION:
            raise TooManyFilesSent(f"more than MEMPORTAL_FILES_PER_SELECTION ({settings.MEMPORTAL_FILES_PER_SELECTION}) files")
        super().new_file(field_name, file_name, *args, **kwargs)
        self.received = 0
        self.hasher = hashlib.sha256()

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        limit = settings.MEMPORTAL_MAX_UPLOAD_BYTES
        if self.received > limit:
            if not hasattr(self.request, "_memportal_refusals"):
                self.request._memportal_refusals = []
            self.request._memportal_refusals.append(
                (self.file_name, f"it is larger than the limit of {filesizeformat(limit)}")
            )
            self.file.close()  # the temporary file is removed on close
            raise SkipFile()
        self.hasher.update(raw_data)
        return super().receive_data_chunk(raw_data, start)

    def file_complete(self, file_size):
        file = super().file_complete(file_size)
        file.sha256 = self.hasher.hexdigest()
        return file
