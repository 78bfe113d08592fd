"""A person's own settings (the time zone times are shown in, which outcomes of their videos they
are emailed about), and the notices feed that tells an open page a video of theirs is done.

The zone is made active for every request by memportal/middleware.py (TimeZoneMiddleware), which
keeps it in the session: saving the form here writes it there too.
"""

import zoneinfo
from datetime import UTC, datetime, timedelta

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from memportal.middleware import SESSION_ZONE, remember_zone, zone_named

from .models import Profile, Video

S = Video.Status
# Entries of the zone database that are no place anyone lives in.
NOT_ZONES = {"localtime", "posixrules", "Factory"}
NOTICE_STATES = (S.READY, S.FAILED, S.REJECTED)
# A change is written with its worker's clock and may commit a little after another one with a
# later time: the cursor handed back lags this much behind, and the page skips what it has shown.
NOTICE_OVERLAP = timedelta(seconds=30)
NOTICES_AT_MOST = 50


def zone_names():
    return sorted(zoneinfo.available_timezones() - NOT_ZONES)


def zone_choices():
    return [("", f"{settings.TIME_ZONE} (the portal's default)")] + [(name, name) for name in zone_names()]


def zone_of(profile):
    """The ZoneInfo a profile's times are shown in: its own, or the portal's."""
    return zone_named(profile.time_zone) or timezone.get_default_timezone()


class ProfileForm(forms.ModelForm):
    time_zone = forms.ChoiceField(
        label="Show times in", required=False, choices=zone_choices,
        help_text="Every time on the portal's pages and in its emails is shown in this zone.",
        error_messages={"invalid_choice": "“%(value)s” is not a time zone the portal knows: pick one from the list."})

    class Meta:
        model = Profile
        fields = ["time_zone", "email_when_ready", "email_when_failed"]
        labels = {"email_when_ready": "Email me when a video of mine is ready",
                  "email_when_failed": "Email me when memportal or memories.ai could not process a video of mine"}


@never_cache
def profile(request):
    current = Profile.of(request.user)
    form = ProfileForm(request.POST or None, instance=current)
    if request.method == "POST" and form.is_valid():
        saved = form.save()
        remember_zone(request.session, saved.time_zone)
        messages.success(request, "Your settings are saved.")
        return redirect("profile")
    if request.session.get(SESSION_ZONE) != current.time_zone:
        # Changed in another session (or the system's zone database moved on): resync this one.
        remember_zone(request.session, current.time_zone)
        timezone.activate(zone_of(current))
    return render(request, "uploads/profile.html", {
        "form": form, "zone_name": timezone.get_current_timezone_name(), "now": timezone.localtime(),
    })


def parse_cursor(value):
    """An aware datetime from the feed's cursor: seconds since the epoch (what the pages render and
    the feed hands back) or an ISO 8601 time (naive: UTC). None when it is neither."""
    value = (value or "").strip()
    try:
        return datetime.fromtimestamp(float(value), tz=UTC)
    except (ValueError, OverflowError, OSError):
        pass
    try:
        moment = datetime.fromisoformat(value.replace(" ", "+"))  # a "+" unescaped in a query reads as a space
    except ValueError:
        return None
    return moment if timezone.is_aware(moment) else moment.replace(tzinfo=UTC)


def cursor_text(moment):
    return f"{moment.timestamp():.6f}"


@login_not_required  # a poll whose session ended answers 401 (a script cannot follow a sign-in redirect)
@require_GET
@never_cache
def notices(request):
    """The signed-in user's own videos that became ready, failed or were refused after the cursor
    (GET ?after=), for static/memportal/notices.js. One query, on the index (owner,
    status_changed_at). Not activity: memportal/sessions.py counts it as a passive path."""
    if not request.user.is_authenticated:
        return JsonResponse({"error": "the session ended: sign in again"}, status=401)
    after = parse_cursor(request.GET.get("after"))
    if after is None:
        return JsonResponse({"error": "after= must be a time (ISO 8601) or a cursor this feed gave"}, status=400)
    now = timezone.now()
    changed = (Video.objects.alive()
               .filter(owner=request.user, status_changed_at__gt=after, status__in=NOTICE_STATES)
               .order_by("-status_changed_at")
               .values("pk", "title", "original_name", "status", "status_changed_at")[:NOTICES_AT_MOST])
    return JsonResponse({
        "cursor": cursor_text(max(after, now - NOTICE_OVERLAP)),
        "notices": [notice(row) for row in reversed(changed)],
    })


def notice(row):
    name = row["title"] or row["original_name"]
    return {
        "id": str(row["pk"]), "name": name, "status": row["status"], "label": S(row["status"]).label,
        "text": NOTICE_WORDS[row["status"]], "url": reverse("video-detail", args=[row["pk"]]),
        "changed_at": cursor_text(row["status_changed_at"]),
    }


# What follows the video's name (a link) in a notice.
NOTICE_WORDS = {
    S.READY: "is ready.",
    S.FAILED: "could not be processed by memories.ai: you can retry it from its page.",
    S.REJECTED: "was refused: its page says why.",
}
