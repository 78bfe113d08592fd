"""Request bodies are judged before anything reads them; and the Permissions-Policy header.

Django parses a POST body the first time `request.POST` or `request.FILES` is touched (the CSRF
check touches it), and the upload handler streams each file to disk as it comes. So the size of a
body is decided here, from its declared length, before any of that: an anonymous client may send
a small form (sign-in) and no more, whatever URL it posts to; a signed-in user at most
MEMPORTAL_MAX_REQUEST_BYTES in one request (a form of several files included). A body with no
declared length is refused unless it is empty. Placed after AuthenticationMiddleware and before
the sign-in requirement and the CSRF check, which therefore never make an anonymous body parsed.

Also here: the request id every log line of a request carries (RequestIdMiddleware, first of all);
the time zone of the signed-in user's pages (TimeZoneMiddleware); and a 405 a browser opened
answered with a page in words (MethodNotAllowedPageMiddleware).
"""

import ipaddress
import logging
import zoneinfo

from django.conf import settings
from django.core.signals import request_finished
from django.shortcuts import render
from django.utils.cache import add_never_cache_headers, patch_vary_headers
from django.utils import timezone

from uploads.models.audit import current_request
from uploads.models.profiles import Profile

from . import logs

logger = logging.getLogger(__name__)
BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def client_ip(request):
    """The client's address, the one place that decides it (callback records, logs, and the
    sign-in throttling and audit trail to come). Behind the proxy (DJANGO_BEHIND_PROXY) REMOTE_ADDR
    is the proxy itself: the client is the last X-Forwarded-For entry, the one the proxy appended
    (those before it are whatever the client claimed). Otherwise REMOTE_ADDR, and X-Forwarded-For
    is ignored: anyone can send it."""
    if settings.MEMPORTAL_BEHIND_PROXY:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
        if forwarded and (address := plain_address(forwarded[-1])):
            return address
    return plain_address(request.META.get("REMOTE_ADDR") or "")


def plain_address(value):
    """An IP address as the database stores it, or None: a port ("1.2.3.4:5678", "[::1]:80") is
    dropped, and anything else ("unknown", a name) is no address."""
    value = value.strip()
    if value.startswith("[") and "]" in value:
        value = value[1:value.index("]")]
    elif value.count(":") == 1:
        value = value.split(":", 1)[0]
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def declared_length(request):
    """The body's declared length in bytes, or None when it declares none (or nonsense)."""
    raw = request.META.get("CONTENT_LENGTH") or ""
    if not raw:
        return None if request.META.get("HTTP_TRANSFER_ENCODING") else 0
    try:
        length = int(raw)
    except ValueError:
        return None
    return length if length >= 0 else None


RESUMABLE_PREFIX = "/uploads/tus/"


class RequestBodyLimitMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        resumable_chunk = request.method == "PATCH" and request.path.startswith(RESUMABLE_PREFIX)
        if resumable_chunk and not request.user.is_authenticated:
            # A chunk of a resumable upload whose session ended: the endpoint answers 401 from the
            # headers without reading the body (uploads/tus.py), so the browser signs in again and
            # resumes, instead of reading a 413 as a refused file.
            return self.get_response(request)
        if request.method in BODY_METHODS:
            limit = (settings.MEMPORTAL_MAX_REQUEST_BYTES if request.user.is_authenticated
                     else settings.MEMPORTAL_ANONYMOUS_MAX_REQUEST_BYTES)
            length = declared_length(request)
            if length is None or length > limit:
                logger.warning("request body refused before reading: %s bytes declared, limit %d (%s)",
                               "no length" if length is None else length, limit,
                               "signed in" if request.user.is_authenticated else "anonymous")
                return render(request, "413.html", {"limit": limit}, status=413)
        return self.get_response(request)


# Browser features no page of the portal uses, switched off for every page and frame.
PERMISSIONS_POLICY = ", ".join(f"{feature}=()" for feature in (
    "accelerometer", "autoplay", "camera", "display-capture", "encrypted-media", "fullscreen", "geolocation",
    "gyroscope", "magnetometer", "microphone", "midi", "payment", "picture-in-picture", "publickey-credentials-get",
    "screen-wake-lock", "serial", "usb", "xr-spatial-tracking", "interest-cohort", "browsing-topics"))


class PermissionsPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response.headers.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
        return response


class MethodNotAllowedPageMiddleware:
    """A 405 a browser opened (a reload or a bookmark of what only a form sends) gets a page in
    words, as Django's 400, 403 and 404 do; a program's 405 stays bare, with its Allow header."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if response.status_code != 405 or response.content:
            return response
        patch_vary_headers(response, ["Accept"])
        if "text/html" not in request.headers.get("Accept", ""):
            return response
        page = render(request, "405.html", status=405)
        page["Allow"] = response["Allow"]
        patch_vary_headers(page, ["Accept"])
        add_never_cache_headers(page)  # it names the user (and holds a CSRF token): kept by no cache
        page._has_been_logged = getattr(response, "_has_been_logged", False)  # Django logged the 405 once
        return page


class AuditContextMiddleware:
    """The request being served, for the audit trail (uploads/models/audit.py): its user and
    client address are the actor and the address of what it changes."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.audit_client_ip = client_ip(request)
        token = current_request.set(request)
        try:
            return self.get_response(request)
        finally:
            current_request.reset(token)


def request_id_of(request):
    """The proxy's X-Request-ID when the portal is behind it (DJANGO_BEHIND_PROXY) and the value is
    a plain token of at most 64 characters; otherwise a new one. Without the proxy anyone could
    send the header, so it is ignored: an id must not let a client make its requests look like
    another's."""
    if settings.MEMPORTAL_BEHIND_PROXY:
        given = request.META.get("HTTP_X_REQUEST_ID", "")
        if logs.SANE_REQUEST_ID.fullmatch(given):
            return given
    return logs.new_request_id()


class RequestIdMiddleware:
    """First of all: every log line of the request carries its id, and so does the response
    (X-Request-ID) and every task it enqueues (uploads/tasks.py enqueue). The id stays bound until
    the response is closed (request_finished), so Django's own line about an error response,
    written after the middleware has returned, carries it too."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.request_id = request_id_of(request)
        logs.clear()
        logs.bind(request_id=request.request_id)
        response = self.get_response(request)
        response.headers["X-Request-ID"] = request.request_id
        return response


def forget_request_id(**kwargs):
    logs.clear()


request_finished.connect(forget_request_id, dispatch_uid="memportal.middleware.forget_request_id")


SESSION_ZONE = "memportal_time_zone"  # the user's zone name as last read or saved ("": the portal's)


def remember_zone(session, name):
    """What the profile page calls when the zone is saved: this session's pages use it at once.
    The user's other sessions read the profile again at their next sign-in."""
    session[SESSION_ZONE] = name


def zone_named(name):
    """The ZoneInfo of a zone name, or None for the portal's own (an empty or unknown name)."""
    if not name:
        return None
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):  # dropped from the system's zone database
        return None


class TimeZoneMiddleware:
    """After AuthenticationMiddleware and the session's lifetime: the signed-in user's time zone
    (their profile) is the current one while the response is made, templates and their `|date`
    included; anyone else gets the portal's (MEMPORTAL_TIME_ZONE). The zone's name is kept in the
    session, so the profile is read once per session, not once per request."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        name = ""
        if request.user.is_authenticated:
            name = request.session.get(SESSION_ZONE)
            if name is None:
                name = Profile.objects.filter(user=request.user).values_list("time_zone", flat=True).first() or ""
                remember_zone(request.session, name)
        zone = zone_named(name)
        if zone is None:
            timezone.deactivate()
        else:
            timezone.activate(zone)
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()  # a thread serves other people's requests next
