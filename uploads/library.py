"""The video library: "My videos", "Team videos" for team admins, the live states feed, renaming
and acting on many videos at once (being written)."""

import uuid

from django.http import Http404, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from .models import Team, Video


@require_GET
@never_cache
def my_videos(request):
    scope = request.GET.get("scope", "mine")
    videos = Video.objects.visible_to(request.user).select_related("team", "owner")
    administers_a_team = Team.objects.administered_by(request.user).exists()
    if scope != "team" or not administers_a_team:
        scope = "mine"
        videos = videos.filter(owner=request.user)
    return render(request, "uploads/video_list.html", {
        "videos": videos[:500], "scope": scope, "administers_a_team": administers_a_team,
    })


def team_videos(request):
    raise Http404


@require_GET
@never_cache
def video_states(request):
    """States of the listed videos, for the list's live update (static/memportal/live.js)."""
    try:
        ids = [uuid.UUID(value) for value in request.GET.getlist("id")[:500]]
    except ValueError:
        raise Http404 from None
    videos = Video.objects.visible_to(request.user).filter(pk__in=ids).select_related("team")
    return JsonResponse({"videos": {
        str(v.pk): {"status": v.status, "label": v.get_status_display(), "next_attempt": v.next_attempt()}
        for v in videos
    }})


@require_POST
def bulk_action(request):
    raise Http404


@require_POST
def rename(request, video_id):
    raise Http404
