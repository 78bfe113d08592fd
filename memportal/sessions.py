"""Sessions end after MEMPORTAL_SESSION_IDLE_SECONDS without activity, and in any case
MEMPORTAL_SESSION_MAX_SECONDS after sign-in (ASVS V3.3); a sensitive step asks for the password
again when the sign-in (or the last confirmation) is older than MEMPORTAL_REAUTH_SECONDS.

The times live in the session itself: `signed_in_at` and `seen_at` (set at sign-in by
uploads/signals.py), `confirmed_at` (the last password confirmation). Background requests (the
video list's live poll, /videos/states/, and every page's notices poll, /notices/) keep a session
alive no longer: they are not activity.
"""

import time

from django.conf import settings
from django.contrib.auth import logout
from django.http import JsonResponse

SIGNED_IN_AT, SEEN_AT, CONFIRMED_AT = "memportal_signed_in_at", "memportal_seen_at", "memportal_confirmed_at"
PASSIVE_PATHS = ("/videos/states/", "/notices/")
SEEN_RESOLUTION = 30  # seconds: the session is written at most this often for activity


def mark_signed_in(session, now=None):
    now = time.time() if now is None else now
    session[SIGNED_IN_AT] = session[SEEN_AT] = session[CONFIRMED_AT] = now


def recently_confirmed(request):
    """Whether the user typed their password (to sign in or to confirm) recently enough."""
    confirmed = request.session.get(CONFIRMED_AT)
    return confirmed is not None and time.time() - confirmed <= settings.MEMPORTAL_REAUTH_SECONDS


class SessionLifetimeMiddleware:
    """After AuthenticationMiddleware: an expired session is signed out before anything else runs
    (so the request is an anonymous one, with an anonymous client's limits)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.time()
        if request.user.is_authenticated:
            now, session = started, request.session
            signed_in, seen = session.get(SIGNED_IN_AT), session.get(SEEN_AT)
            if signed_in is None or seen is None:  # a session from before these limits: not a
                session[SIGNED_IN_AT] = session[SEEN_AT] = now  # fresh password confirmation
            elif (now - seen > settings.MEMPORTAL_SESSION_IDLE_SECONDS
                  or now - signed_in > settings.MEMPORTAL_SESSION_MAX_SECONDS):
                if request.path in PASSIVE_PATHS:
                    # The live poll: "sign in again", without ending the session under an upload
                    # that another tab of it may still be sending.
                    return JsonResponse({"error": "the session ended: sign in again"}, status=401)
                logout(request)  # the sign-in requirement then sends them to the sign-in page
            elif request.path not in PASSIVE_PATHS and now - seen >= SEEN_RESOLUTION:
                session[SEEN_AT] = now
        response = self.get_response(request)
        if (time.time() - started >= SEEN_RESOLUTION and request.path not in PASSIVE_PATHS
                and request.user.is_authenticated and SEEN_AT in request.session):
            request.session[SEEN_AT] = time.time()  # a long upload counts as activity to its end
        return response
