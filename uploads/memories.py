"""The one seam to memories.ai: every call to its API goes through this module.

Each call has explicit connect/read timeouts, reads the answer's `code` (memories.ai answers
HTTP 200 with an error code as often as a non-2xx status), and turns every failure into one
MemoriesError whose `kind` says what the caller should do: retry later, give up on this video,
or stop using this key. The API key goes into the Authorization header and nowhere else: it is
never part of a message, a log line or an exception.
"""

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import requests
from django.conf import settings
from requests_toolbelt import MultipartEncoder

logger = logging.getLogger(__name__)

RETRY = "retry"  # transient: back off and try again, a bounded number of times
REJECT = "reject"  # this request will never succeed: the video is refused
KEY = "key"  # the key or the account is at fault, not the video
CONFIG = "config"  # a setting (base URL, a path) or a proxy in between is wrong: every team would hit it

KEY_CODES = {
    "0401": "memories.ai refused the API key (authorization invalid)",
    "0403": "memories.ai says the developer account of this key is disabled",
    "9009": "memories.ai denied permission to this API key",
    "0402": "the memories.ai account of this key has run out of credits",
}
REJECT_CODES = {
    "0001": "memories.ai refused the file or a field of the request",
    "0003": "memories.ai refused a parameter of the request",
    "0409": "memories.ai says this is a duplicate upload",
}
RATE_LIMITED = "0429"

# The status words memories.ai reports for a video (upload answer, callbacks, list_videos);
# uploads/lifecycle.py maps them to the portal's states.
PARSED_WORDS = frozenset({"PARSE"})
FAILED_WORDS = frozenset({"FAIL", "FAILED", "PARSE_ERROR"})  # v1's lists say FAILED
UNPARSED_WORDS = frozenset({"UNPARSE"})


class MemoriesError(Exception):
    def __init__(self, kind: str, message: str, code: str = "", http_status: int | None = None):
        super().__init__(message)
        self.kind = kind
        self.code = code
        self.http_status = http_status
        self.message = message

    @property
    def rate_limited(self):
        return self.code == RATE_LIMITED or self.http_status == 429

    @property
    def answer(self):
        """What memories.ai answered, for the timeline: its code, else the HTTP status ("" for a
        connection that broke)."""
        return self.code or (f"HTTP {self.http_status}" if self.http_status else "")

    def __str__(self):
        label = f"code {self.code}" if self.code else (f"HTTP {self.http_status}" if self.http_status else "")
        return f"{self.message} ({label})" if label else self.message


OLDER, V1 = "video", "v1"  # the API families: /serve/api/video/... and /serve/api/v1/...
FAMILIES = (OLDER, V1)


@dataclass(frozen=True)
class Place:
    """Where a video lives at memories.ai: the API family it was uploaded through and, with v1,
    its namespace (`unique_id`). Every later call about the video uses the same place."""

    family: str = OLDER
    namespace: str = ""

    @classmethod
    def of(cls, family: str, namespace: str) -> "Place":
        return cls(family or OLDER, namespace or "")

    def path(self, call: str) -> str:
        """The configured path of `call` (upload, list, metadata, delete) in this family."""
        if self.family == V1:
            return getattr(settings, f"MEMORIES_V1_{call.upper()}_PATH")
        return getattr(settings, f"MEMORIES_{call.upper()}_PATH")

    def scoped(self) -> dict:
        """The namespace as memories.ai's v1 calls take it (nothing for the older family)."""
        return {"unique_id": self.namespace} if self.family == V1 and self.namespace else {}


def current_place(namespace: str = "") -> Place:
    """Where a new upload goes: the configured family, with `namespace` if it has them."""
    family = settings.MEMORIES_API_FAMILY
    return Place(family, namespace if family == V1 else "")


@dataclass(frozen=True)
class UploadResult:
    video_no: str
    video_name: str
    status: str
    uploaded_at: datetime | None


@dataclass(frozen=True)
class RemoteVideo:
    video_no: str
    video_name: str
    status: str


def error_for_code(code: str, msg: str) -> MemoriesError:
    known = KEY_CODES.get(code) or REJECT_CODES.get(code) or ""
    said = f": “{msg}”" if msg and msg.casefold() not in known.casefold() else ""  # not "(x): “x”"
    if code in KEY_CODES:
        return MemoriesError(KEY, KEY_CODES[code] + said, code=code)
    if code in REJECT_CODES:
        return MemoriesError(REJECT, REJECT_CODES[code] + said, code=code)
    if code == RATE_LIMITED:
        return MemoriesError(RETRY, "memories.ai is busy or rate-limiting this account" + said, code=code)
    return MemoriesError(RETRY, f"memories.ai answered an unknown code{said}", code=code)


# memories.ai's uploadTime is for display only (the portal's own clock decides how long it waits):
# a value more than this far from now is not believed (seconds sent for milliseconds, say).
PLAUSIBLE_CLOCK_SKEW = timedelta(days=1)


def parse_millis(value) -> datetime | None:
    """A time in milliseconds since the epoch, if it is within a day of now; else None."""
    try:
        when = datetime.fromtimestamp(int(str(value)) / 1000, tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None
    return when if abs(when - datetime.now(tz=UTC)) <= PLAUSIBLE_CLOCK_SKEW else None


def _url(path: str) -> str:
    return settings.MEMORIES_API_BASE_URL + path


def _timeouts():
    return (settings.MEMORIES_CONNECT_TIMEOUT, settings.MEMORIES_READ_TIMEOUT)


# HTTP statuses that say the request went to the wrong place or through a proxy that refuses it:
# the paths are global settings, so retrying this file (or any other) cannot help.
CONFIG_STATUSES = {404, 405, 413}
REFUSED_STATUSES = {400, 415, 422}  # this request (this file) is refused as it is


def classify_http(status: int, path: str) -> MemoriesError | None:
    """The error an HTTP status means before the envelope is read; None for 2xx."""
    if status == 429 or status >= 500:
        return MemoriesError(RETRY, "memories.ai answered with a server error", http_status=status)
    if 300 <= status < 400 or status in CONFIG_STATUSES:
        return MemoriesError(CONFIG, f"memories.ai's answer to {path} means a setting or a proxy is wrong: check "
                                     "MEMORIES_API_BASE_URL, the MEMORIES_*_PATH settings and any proxy in between",
                             http_status=status)
    if status in (401, 403):
        return MemoriesError(KEY, "memories.ai refused the API key", http_status=status)
    if status in REFUSED_STATUSES:
        return MemoriesError(REJECT, "memories.ai refused this request", http_status=status)
    if status >= 400:
        return MemoriesError(RETRY, "memories.ai answered with an error", http_status=status)
    return None


def _envelope(response: requests.Response) -> dict:
    """The answer's `data`, or MemoriesError for anything but code 0000."""
    try:
        body = response.json()
    except ValueError:
        body = None
    has_envelope = isinstance(body, dict) and "code" in body
    # memories.ai answers its own errors with HTTP 200 and a code; an error status that still
    # carries the envelope is read by its code too, except for the server errors and 429.
    error = classify_http(response.status_code, urlsplit(response.url or "").path or "?")
    if error is not None and (not has_envelope or error.kind == RETRY):
        raise error
    if not has_envelope:
        raise MemoriesError(RETRY, "memories.ai sent an answer that is not its JSON envelope",
                            http_status=response.status_code)
    code = str(body.get("code"))
    if code != "0000":
        raise error_for_code(code, without_key(str(body.get("msg") or ""), response)[:300])
    data = body.get("data")
    return data if isinstance(data, dict) else {}


def without_key(text: str, response: requests.Response) -> str:
    """memories.ai's message with the key it was sent, if it echoes it, replaced by "…": the
    message reaches timelines, pages and logs."""
    sent = getattr(response, "request", None)
    key = sent.headers.get("Authorization") if sent is not None else None
    return text.replace(key, "…") if key and len(key) >= 4 else text


def _post(path, api_key, **kwargs) -> requests.Response:
    return _request("post", path, api_key, **kwargs)


def _request(method, path, api_key, **kwargs) -> requests.Response:
    headers = kwargs.pop("headers", {})
    headers["Authorization"] = api_key
    try:
        return requests.request(method, _url(path), headers=headers, timeout=_timeouts(), allow_redirects=False,
                                **kwargs)
    except UnicodeEncodeError:  # a key stored before the admin refused such characters
        raise MemoriesError(KEY, "the API key holds characters an HTTP header cannot carry") from None
    except requests.Timeout:
        raise MemoriesError(RETRY, "memories.ai did not answer in time") from None
    except requests.ConnectionError:
        raise MemoriesError(RETRY, "could not connect to memories.ai, or the connection broke") from None
    except requests.RequestException as exc:
        raise MemoriesError(RETRY, f"the request to memories.ai failed ({type(exc).__name__})") from None


class SourceError(Exception):
    """The file being sent could not be read, or ended before its declared size: the portal's
    storage is at fault, not memories.ai (and not an OSError, which requests would report as a
    broken connection). `short` says the file ended early: it changed since it was stored."""

    def __init__(self, message: str, short: bool = False):
        super().__init__(message)
        self.short = short


class ProgressReader:
    """A file wrapper for MultipartEncoder that reports progress as bytes are read.

    A file that ends before its declared size raises SourceError: MultipartEncoder would
    otherwise ask for the missing bytes for ever.
    """

    def __init__(self, fileobj, size: int, on_progress=None):
        self.fileobj = fileobj
        self.size = size
        self.sent = 0
        self.on_progress = on_progress

    @property
    def len(self):
        return self.size - self.sent

    def read(self, n=-1):
        try:
            chunk = self.fileobj.read(n if n and n > 0 else 1024 * 1024)
        except Exception as exc:  # local disk or S3: whatever the storage raises
            raise SourceError(f"the stored file could not be read ({type(exc).__name__})") from exc
        if not chunk and self.len > 0:
            raise SourceError(f"the stored file ended {self.len} bytes before its size", short=True)
        self.sent += len(chunk)
        if self.on_progress is not None:
            self.on_progress(self.sent)
        return chunk


UPLOAD_BLOCK = 256 * 1024


class EncoderBlocks:
    """The encoder as an iterable of UPLOAD_BLOCK-sized blocks; `len` gives requests the length.

    Handed a file-like body, urllib3 reads it 16 KiB at a time and MultipartEncoder's per-read
    bookkeeping then costs ~3x curl's CPU per byte (docs/benchmarks.md); with 256 KiB blocks the
    relay costs what curl does. The body is still sent with a Content-Length, not chunked.
    """

    def __init__(self, encoder: MultipartEncoder):
        self.encoder = encoder
        self.len = encoder.len

    def __iter__(self):
        while block := self.encoder.read(UPLOAD_BLOCK):
            yield block


def upload(api_key: str, fileobj, *, size: int, filename: str, content_type: str,
           callback_url: str | None, on_progress=None, place: Place = Place()) -> UploadResult:
    """Stream one file to memories.ai. A MultipartEncoder is single-use: one per attempt."""
    fields = {**place.scoped(), "file": (filename, ProgressReader(fileobj, size, on_progress), content_type)}
    if callback_url:
        fields["callback"] = callback_url
    encoder = MultipartEncoder(fields=fields)
    response = _post(place.path("upload"), api_key, data=EncoderBlocks(encoder),
                     headers={"Content-Type": encoder.content_type})
    data = _envelope(response)
    video_no = str(data.get("videoNo") or "")
    if not video_no:
        raise MemoriesError(RETRY, "memories.ai accepted the upload but sent no videoNo")
    return UploadResult(
        video_no=video_no,
        video_name=str(data.get("videoName") or ""),
        status=str(data.get("videoStatus") or ""),
        uploaded_at=parse_millis(data.get("uploadTime")),
    )


def find_video(api_key: str, video_no: str, place: Place = Place()) -> RemoteVideo | None:
    """Where one video stands, by its family's documented call (v1: get_metadata; the older
    family: list_videos); None when memories.ai does not know it (in that namespace)."""
    if place.family == V1:
        return _metadata(api_key, video_no, place)
    response = _post(place.path("list"), api_key, json={"page": 1, "size": 20, "video_no": video_no})
    data = _envelope(response)
    for item in data.get("videos") or []:
        if isinstance(item, dict) and str(item.get("video_no")) == video_no:
            return RemoteVideo(video_no=video_no, video_name=str(item.get("video_name") or ""),
                               status=str(item.get("status") or ""))
    return None


def _metadata(api_key: str, video_no: str, place: Place) -> RemoteVideo | None:
    try:
        data = _envelope(_request("get", place.path("metadata"), api_key,
                                  params={"video_no": video_no, **place.scoped()}))
    except MemoriesError as error:
        if error.kind == REJECT:  # "video not found" (0001): not in this namespace
            return None
        raise
    number = str(data.get("video_no") or data.get("videoNo") or "")
    if number != video_no:
        return None
    return RemoteVideo(video_no=video_no, video_name=str(data.get("video_name") or data.get("videoName") or ""),
                       status=str(data.get("status") or data.get("videoStatus") or ""))


def list_videos(api_key: str, page: int = 1, size: int = 1, place: Place | None = None) -> dict:
    """One page of list_videos (the configured family's); used to test that a key works."""
    place = place or current_place()
    return _envelope(_post(place.path("list"), api_key, json={"page": page, "size": size, **place.scoped()}))


def delete_videos(api_key: str, video_nos: list[str], place: Place = Place()) -> None:
    """Delete up to 100 videos (of one place); unknown numbers and 0409 count as done."""
    if len(video_nos) > 100:
        raise ValueError("memories.ai deletes at most 100 videos per call")
    response = _post(place.path("delete"), api_key, data=json.dumps(list(video_nos)), params=place.scoped(),
                     headers={"Content-Type": "application/json"})
    try:
        _envelope(response)
    except MemoriesError as exc:
        if exc.code != "0409":
            raise
