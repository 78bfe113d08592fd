"""The refusals of the resumable upload endpoint (uploads/tus.py answers each with its status),
raised by uploads/resumable.py and its helpers."""


class UploadError(Exception):
    """A refusal, in words for the user, with the HTTP status the endpoint answers."""

    status = 400

    def __init__(self, message, headers=None):
        super().__init__(message)
        self.message, self.headers = message, headers or {}


class Forbidden(UploadError):
    status = 403


class NotFound(UploadError):
    status = 404


class Conflict(UploadError):
    status = 409


class Expired(UploadError):
    status = 410


class TooLarge(UploadError):
    status = 413


class Refused(UploadError):
    status = 422


class Busy(UploadError):
    status = 423


class TooMany(UploadError):
    status = 429


class StorageFailed(UploadError):
    status = 503


NOT_FOUND = "No such upload: it was cancelled, or it expired and its bytes were removed. Upload the file again."
EXPIRED = "This upload expired and its bytes are being removed: upload the file again."


class Superseded(Exception):
    """Another request took this upload over (or it was cancelled) while this one wrote."""


def left_team(team):
    """The refusal of an upload whose owner is no longer a member of its team."""
    return Forbidden(f"You are no longer a member of {team}: this upload cannot go on.")
