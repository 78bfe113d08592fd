"""The resumable upload endpoint: tus 1.0.0, core with the creation, termination and expiration
extensions, by hand (no maintained server fits Django 6.1: django-tus reads chunks into memory,
drf-tus needs DRF and a global middleware and copies the assembled file).

    OPTIONS /uploads/tus/         what the server supports (anyone may ask)
    POST    /uploads/tus/         create: Upload-Length, Upload-Metadata -> 201, Location
    GET     /uploads/tus/         the user's unfinished uploads, as JSON (not tus: to offer resuming)
    HEAD    /uploads/tus/<id>/    Upload-Offset (and the video, once finished)
    PATCH   /uploads/tus/<id>/    one chunk at Upload-Offset -> 204, the new Upload-Offset
    DELETE  /uploads/tus/<id>/    cancel: the bytes the server had are removed

Exempt from the sign-in redirect: a client that is not signed in gets 401 (before the CSRF check,
so it learns to sign in again), one that may not upload 403, in the upload form's words. POST,
PATCH and DELETE carry the CSRF token in X-CSRFToken. A chunk is read from the request stream in
blocks (never request.body or request.POST); one larger than MEMPORTAL_UPLOAD_CHUNK_BYTES is
refused (413) before a byte of it is read. Every answer carries Tus-Resumable; the storage side
is uploads/resumable.py.
"""

import base64
import binascii
import os
from datetime import timedelta
from functools import wraps

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db.models.functions import Now
from django.http import HttpResponse, JsonResponse
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.utils.http import http_date
from django.views.decorators.csrf import csrf_exempt, csrf_protect

from . import resumable, resumable_errors
from .forms import SIGNED_OUT, content_type_for, not_accepted, refusal_reason, too_large, too_many_in_flight
from .models import PartialUpload, Team
from .resumable import Forbidden, Refused, TooLarge, TooMany, UploadError
from .views import no_key_message

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,termination,expiration"
CHUNK_TYPE = "application/offset+octet-stream"
METADATA_MAX_CHARS = 4096


def answer(status, message="", headers=None):
    response = HttpResponse(f"{message}\n" if message else "", status=status, content_type="text/plain; charset=utf-8")
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def signed_out():
    """The answer to a client that is not signed in (its session ended): 401, never the sign-in
    page, with where to sign in. memportal/middleware.py may give it to an anonymous chunk too."""
    response = answer(401, SIGNED_OUT, {"Memportal-Sign-In": reverse("login")})
    response["Tus-Resumable"] = TUS_VERSION
    add_never_cache_headers(response)
    return response


def limits():
    return {"Tus-Version": TUS_VERSION, "Tus-Extension": TUS_EXTENSIONS,
            "Tus-Max-Size": str(settings.MEMPORTAL_MAX_UPLOAD_BYTES),
            "Memportal-Chunk-Size": str(settings.MEMPORTAL_UPLOAD_CHUNK_BYTES)}


def upload_headers(upload):
    """What HEAD and PATCH tell of an upload: its offset, and its expiry or, once finished, its video."""
    headers = {"Upload-Offset": str(upload.offset), "Upload-Length": str(upload.length)}
    if upload.finished_at is not None:
        headers["Memportal-Video-Id"] = str(upload.video_uuid)
        headers["Memportal-Video-Url"] = reverse("video-detail", args=[upload.video_uuid])
    else:
        headers["Upload-Expires"] = http_date(upload.expires_at.timestamp())
    return headers


def endpoint(*methods):
    """The wrapper every tus view shares: method override, OPTIONS, 401, Tus-Resumable, CSRF."""
    def decorate(handler):
        @login_not_required
        @csrf_exempt  # checked in dispatch(), after the sign-in check
        @wraps(handler)
        def view(request, *args, **kwargs):
            method = request.method
            override = request.headers.get("X-HTTP-Method-Override", "").upper()
            if method == "POST" and override in ("PATCH", "DELETE"):
                method = override
            if method not in methods + ("OPTIONS",):
                response = answer(405, f"{method} is not allowed here.", {"Allow": ", ".join(methods + ("OPTIONS",))})
            elif method == "OPTIONS":
                response = answer(204, headers=limits())
            elif not request.user.is_authenticated:
                response = signed_out()
            elif method != "GET" and request.headers.get("Tus-Resumable") != TUS_VERSION:
                response = answer(412, f"This server speaks tus {TUS_VERSION}: send Tus-Resumable: {TUS_VERSION}.",
                                  {"Tus-Version": TUS_VERSION})
            else:
                response = dispatch(request, handler, method, *args, **kwargs)
            if request.method == "HEAD":
                response.content = b""
            response["Tus-Resumable"] = TUS_VERSION
            add_never_cache_headers(response)
            return response
        return view
    return decorate


@csrf_protect
def dispatch(request, handler, method, *args, **kwargs):
    try:
        return handler(request, method, *args, **kwargs)
    except UploadError as error:
        return answer(error.status, error.message, error.headers)


class NoBytesYet(Exception):
    pass


class FileStub:
    """What forms.refusal_reason reads of a file (name, size, first bytes), before its bytes are
    here (`head` None: the container is judged with the first chunk)."""

    def __init__(self, name, size, head=None):
        self.name, self.size, self.head = name, size, head

    def seek(self, position):
        pass

    def read(self, size):
        if self.head is None:
            raise NoBytesYet()
        return self.head[:size]


def refusal_before_bytes(name, size):
    """The upload form's refusal of the file's name and size (extension, empty), in its words."""
    try:
        return refusal_reason(FileStub(name, size))
    except NoBytesYet:
        return None


def head_refusal(upload):
    def judge(head):
        reason = refusal_reason(FileStub(upload.filename, upload.length, head))
        return not_accepted(upload.filename, reason) if reason else None
    return judge


def whole_number(value):
    if value is None or not (value.isascii() and value.isdigit()):
        return None
    return int(value)


def parse_metadata(raw):
    """Upload-Metadata: comma-separated "key base64(value)" pairs (the value may be absent)."""
    if len(raw) > METADATA_MAX_CHARS:
        raise UploadError(f"Upload-Metadata may hold at most {METADATA_MAX_CHARS} characters.")
    values = {}
    for pair in filter(None, (item.strip() for item in raw.split(","))):
        key, _, value = pair.partition(" ")
        if key in values or " " in value.strip():
            raise UploadError(f"Upload-Metadata is not tus metadata (at “{key}”).")
        try:
            values[key] = base64.b64decode(value.strip(), validate=True).decode() if value.strip() else ""
        except (binascii.Error, UnicodeDecodeError):
            raise UploadError(f"Upload-Metadata: the value of “{key}” is not base64 of UTF-8 text.") from None
    return values


def file_name(raw):
    """The file's own name, as Django keeps an uploaded file's: no folders, no control characters,
    at most 255 characters with its extension kept."""
    name = "".join(ch for ch in raw.replace("\\", "/").rsplit("/", 1)[-1] if ch.isprintable()).strip()
    if name in ("", ".", ".."):
        return ""
    if len(name) > 255:
        stem, extension = os.path.splitext(name)
        name = stem[:255 - len(extension)] + extension
    return name


def upload_team(user, wanted):
    teams = Team.objects.of_member(user)
    if not teams.exists():
        raise Forbidden("You are not a member of any team yet: ask your team admin to add you.")
    if wanted:
        team = teams.filter(pk=int(wanted)).first() if wanted.isascii() and wanted.isdigit() else None
        if team is None:
            raise Forbidden("You are not a member of that team.")
        return team
    if teams.count() > 1:
        raise UploadError("You are a member of several teams: say which one the upload is for (metadata “team”).")
    return teams.first()


@endpoint("POST", "GET")
def collection(request, method):
    if method == "GET":
        return unfinished(request)
    user = request.user
    if request.headers.get("Upload-Defer-Length"):
        raise UploadError("Upload-Defer-Length is not supported: send Upload-Length.")
    length = whole_number(request.headers.get("Upload-Length"))
    if length is None:
        raise UploadError("Upload-Length must be the file's size in bytes.")
    metadata = parse_metadata(request.headers.get("Upload-Metadata", ""))
    name = file_name(metadata.get("filename", ""))
    if not name:
        raise UploadError("Upload-Metadata must name the file (“filename”).")
    team = upload_team(user, metadata.get("team", ""))
    if team.usable_key() is None:
        raise Forbidden(no_key_message(team))
    reason = refusal_before_bytes(name, length)
    if reason:
        raise Refused(not_accepted(name, reason))
    limit = settings.MEMPORTAL_MAX_UPLOAD_BYTES
    if length > limit:
        raise TooLarge(not_accepted(name, too_large(limit)))

    def refusal(reserved, in_flight):
        quota, most = settings.MEMPORTAL_TEAM_STORAGE_BYTES, settings.MEMPORTAL_UPLOADS_IN_FLIGHT_PER_USER
        used = team.stored_bytes() + reserved if quota else 0
        if quota and used + length > quota:
            return TooLarge(not_accepted(name, (
                f"{team} may keep {filesizeformat(quota)} of videos on the portal and keeps {filesizeformat(used)}: "
                "delete videos it no longer needs, or ask your team admin")))
        if in_flight >= most:
            return TooMany(not_accepted(name, too_many_in_flight(in_flight)), {"Retry-After": "60"})
        return None

    upload = resumable.create(owner=user, team=team, filename=name, title=metadata.get("title", "")[:200],
                              content_type=content_type_for(name), length=length,
                              metadata=request.headers.get("Upload-Metadata", ""),
                              fingerprint=metadata.get("fingerprint", "")[:200], refusal=refusal)
    return answer(201, headers={"Location": reverse("tus-upload", args=[upload.pk]), **upload_headers(upload),
                                "Memportal-Chunk-Size": str(settings.MEMPORTAL_UPLOAD_CHUNK_BYTES)})


def unfinished(request):
    """`active`: a request is writing it (its writer heard from within MEMPORTAL_UPLOAD_STALL_SECONDS)
    or a chunk came as recently: another tab or window is likely sending it right now."""
    uploads = (PartialUpload.objects.unfinished().filter(owner=request.user).select_related("team")
               .annotate(db_now=Now()))
    stall = timedelta(seconds=settings.MEMPORTAL_UPLOAD_STALL_SECONDS)

    def active(upload):
        writing = bool(upload.writer) and upload.writer_seen_at is not None and (
            upload.db_now - upload.writer_seen_at < stall)
        return writing or upload.db_now - upload.updated_at < stall
    return JsonResponse({"uploads": [{
        "url": reverse("tus-upload", args=[upload.pk]), "filename": upload.filename, "length": upload.length,
        "offset": upload.offset, "fingerprint": upload.fingerprint, "team": upload.team_id,
        "created_at": upload.created_at.isoformat(), "expires_at": upload.expires_at.isoformat(),
        "active": active(upload),
    } for upload in uploads]})


@endpoint("HEAD", "PATCH", "DELETE")
def resource(request, method, upload_id):
    if method == "PATCH":
        return patch(request, upload_id)
    upload = resumable.owned(request.user, upload_id)
    if method == "DELETE":
        resumable.terminate(upload)
        return answer(204)
    if resumable.is_expired(upload) and not upload.is_complete:
        raise resumable.Expired(resumable.EXPIRED)
    try:
        # Complete, but its finishing request died: finish it now (expired or not, as the clock would:
        # a 410 here would make the client send the file again, and the clock finish this one too).
        upload = resumable.settle(upload, allow_expired=True)
    except (resumable.Busy, resumable.Conflict, resumable.StorageFailed):
        # Being finished right now, finished meanwhile, or the storage failed this time: the bytes
        # are all here, so the offset is the length (never a 5xx, after which tus-js-client would
        # start the file again); the next HEAD, or the clock, finishes it and names the video.
        upload = resumable.reload(upload)
    return answer(200, headers={**upload_headers(upload), "Upload-Metadata": upload.metadata})


def patch(request, upload_id):
    chunk = settings.MEMPORTAL_UPLOAD_CHUNK_BYTES
    size = whole_number(request.META.get("CONTENT_LENGTH") or "0")
    if size is None:
        raise UploadError("Content-Length must be the chunk's size in bytes.")
    if size > chunk:
        raise TooLarge(f"A chunk may hold at most {filesizeformat(chunk)} ({chunk} bytes): send the file in "
                       "chunks of that size (Memportal-Chunk-Size).")
    if request.content_type != CHUNK_TYPE and (size or request.content_type):  # an empty one may omit it
        return answer(415, f"A chunk is sent as Content-Type: {CHUNK_TYPE}.")
    start = whole_number(request.headers.get("Upload-Offset"))
    if start is None:
        raise UploadError("Upload-Offset must be the chunk's position in the file, in bytes.")
    upload = resumable.owned(request.user, upload_id)
    if resumable.is_expired(upload):
        raise resumable.Expired(resumable.EXPIRED)
    if not Team.objects.of_member(request.user).filter(pk=upload.team_id).exists():
        raise resumable_errors.left_team(upload.team)
    if start + size > upload.length:
        raise TooLarge("This chunk goes past the end of the file (Upload-Length).")
    least = resumable.store_for(upload).min_part
    if 0 < size < least and start + size != upload.length:
        raise UploadError(f"Every chunk but the last must hold at least {filesizeformat(least)} ({least} bytes).")
    upload = resumable.write_chunk(upload, start, request, size, head_refusal(upload))
    return answer(204, headers=upload_headers(upload))
