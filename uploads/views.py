"""The pages people use: upload, my videos, one video, and the small JSON feed that keeps the
list's states fresh. Every query of videos goes through Video.objects.visible_to(user)."""

import uuid

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import TooManyFilesSent
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST, require_safe

from . import actions, ask_views, health, removal, standing, tasks, timeline, transcripts
from .forms import (CONTAINERS, QUICKTIME_ATOMS, UploadForm, browser_wording, content_type_for, not_accepted,
                    refusal_reason, too_many_chosen)
from .models import PartialUpload, Team, Video
from .upload_handlers import refusals


@never_cache
def video_detail(request, video_id):
    video = get_object_or_404(standing.with_standing(
        Video.objects.visible_to(request.user).select_related("team", "owner", "api_key")), pk=video_id)
    return render(request, "uploads/video_detail.html", {
        "video": video, "standing": standing.describe([video])[video.pk],
        "timeline": timeline.entries(video.events.select_related("actor")),
        "can_act": Video.objects.actionable_by(request.user).filter(pk=video.pk).exists(),
        "start_at": start_at(request.GET.get("t")),
        **identical_to(video, request.user), **transcripts.for_page(video), **ask_views.for_video_page(request, video),
    })


def start_at(value):
    """`?t=` of a search result or a cited moment: the second the player starts at (None if none)."""
    try:
        seconds = float(value or "")
    except ValueError:
        return None
    return round(seconds, 3) if 0 < seconds < 10 ** 7 else None


def identical_to(video, user, named=5):
    """Other alive videos with this video's SHA-256, in one query: those the user may see, to be
    named (`identical`); else whether the video's team holds one the user may not see
    (`team_has_identical`). Cancelled videos hold no copy at memories.ai: they do not count."""
    if not video.sha256:
        return {"identical": [], "team_has_identical": False}
    seen = Video.objects.visible_to(user)
    rows = list(Video.objects.alive().filter(sha256=video.sha256).exclude(pk=video.pk)
                .exclude(status=Video.Status.CANCELLED)
                .filter(Q(pk__in=seen.values("pk")) | Q(team_id=video.team_id))
                .annotate(seen=Exists(seen.filter(pk=OuterRef("pk"))))
                .order_by("-seen", "created_at").only("pk", "title", "original_name", "created_at")[:named])
    identical = [row for row in rows if row.seen]
    return {"identical": identical, "team_has_identical": bool(rows) and not identical}


@never_cache
def upload(request):
    teams = Team.objects.of_member(request.user)
    if not teams.exists():
        messages.error(request, "You are not a member of any team yet: ask your team admin to add you.")
        return render(request, "uploads/upload.html", {"form": None, "teams": teams})
    if request.method != "POST":
        form = UploadForm(teams=teams)
    else:
        form = UploadForm(request.POST, request.FILES, teams=teams)
        refused = list(refusals(request))
        if form.is_valid():
            team = form.cleaned_data["team"]
            key = team.usable_key()
            files = form.cleaned_data["files"]
            if key is None:
                form.add_error(None, no_key_message(team))
            elif not files and not refused:
                form.add_error("files", "Choose at least one video file.")
            else:
                stored = store_files(request, team, key, files, form.cleaned_data["title"], refused)
                for name, reason in refused:
                    messages.error(request, not_accepted(name, reason))
                if stored:
                    messages.success(request, f"{len(stored)} video{'s' if len(stored) != 1 else ''} "
                                              "stored and queued for memories.ai.")
                    return redirect("video-list")
                return redirect("upload")
    return render(request, "uploads/upload.html", {
        "form": form, "teams": teams, "max_upload": settings.MEMPORTAL_MAX_UPLOAD_BYTES,
        "key_problems": [(t, no_key_message(t)) for t in teams if not t.usable_key()],
        "resumable": resumable_config(),
    })


UPLOADS_AT_ONCE = 3  # files the upload page sends at the same time; the others wait their turn


def resumable_config():
    """What the upload page's script (static/memportal/upload.js) needs to send files one by one
    through the resumable endpoint (uploads/tus.py): its limits and the form's refusals, worded alike."""
    max_bytes, per_selection = settings.MEMPORTAL_MAX_UPLOAD_BYTES, settings.MEMPORTAL_FILES_PER_SELECTION
    return {
        "endpoint": reverse("tus-collection"), "duplicates_url": reverse("video-duplicates"),
        "states_url": reverse("video-states"), "sign_in_url": f"{reverse('login')}?next={reverse('video-list')}",
        "chunk_size": settings.MEMPORTAL_UPLOAD_CHUNK_BYTES, "max_bytes": max_bytes,
        "files_per_selection": per_selection, "in_flight_per_user": settings.MEMPORTAL_UPLOADS_IN_FLIGHT_PER_USER,
        "stall_seconds": settings.MEMPORTAL_UPLOAD_STALL_SECONDS, "at_once": UPLOADS_AT_ONCE,
        "title_max_length": Video._meta.get_field("title").max_length,
        "extensions": list(CONTAINERS), "quicktime_atoms": sorted(atom.decode() for atom in QUICKTIME_ATOMS),
        "wording": browser_wording(max_bytes, per_selection),
    }


@require_GET
@never_cache
def video_duplicates(request):
    """The upload page's early warning: videos of the user's teams (or of `team`) with this
    original name and size, or with the page's fingerprint of the file (kept from a resumable
    upload: it covers the name, size, last change and sampled slices). Those the user may see are
    named; of the others (a teammate's) only that there are some."""
    name, size = request.GET.get("name", "")[:255], request.GET.get("size", "")
    fingerprint = request.GET.get("fingerprint", "")[:200]
    if not name or not size.isascii() or not size.isdigit():
        return JsonResponse({"error": "name and size (in bytes) are needed"}, status=400)
    teams = Team.objects.of_member(request.user)
    team = request.GET.get("team", "")
    if team:
        teams = teams.filter(pk=int(team)) if team.isascii() and team.isdigit() else teams.none()
    match = Q(original_name=name, size=int(size))
    if fingerprint:
        match |= Q(fingerprint=fingerprint)
    same = Video.objects.alive().filter(match, team__in=teams).exclude(status=Video.Status.CANCELLED)
    seen = Video.objects.visible_to(request.user).values("pk")
    visible = list(same.filter(pk__in=seen).select_related("owner")[:5])
    return JsonResponse({
        "videos": [{"id": str(v.pk), "url": reverse("video-detail", args=[v.pk]), "name": v.display_name,
                    "status": v.status, "label": v.get_status_display(), "mine": v.owner_id == request.user.pk,
                    "owner": v.owner.get_username(), "uploaded": v.created_at.date().isoformat()}
                   for v in visible],
        "team_has_it": same.exclude(pk__in=seen).exists(),
    })


def numbered_title(title, index):
    """"Title (n)", the title shortened as needed to fit the field with its number."""
    suffix = f" ({index})"
    room = Video._meta.get_field("title").max_length - len(suffix)
    return f"{title[:room].rstrip()}{suffix}"


class OverQuota(Exception):
    pass


def team_bytes(team):
    """What the team keeps, stored and reserved: unfinished resumable uploads hold their whole
    length from their start (uploads/resumable.py)."""
    return team.stored_bytes() + PartialUpload.objects.reserved_bytes(team)


def over_quota(team, used):
    quota = settings.MEMPORTAL_TEAM_STORAGE_BYTES
    return (f"{team} may keep {filesizeformat(quota)} of videos on the portal and keeps "
            f"{filesizeformat(used)}: delete videos it no longer needs, or ask your team admin")


def store_files(request, team, key, files, title, refused):
    stored = []
    numbered = len(files) > 1 and title
    quota = settings.MEMPORTAL_TEAM_STORAGE_BYTES
    used = team_bytes(team) if quota else 0
    for index, uploaded in enumerate(files, start=1):
        reason = refusal_reason(uploaded)
        if not reason and quota and used + uploaded.size > quota:
            reason = over_quota(team, used)  # early, before the file is stored; create_video decides
        if reason:
            refused.append((uploaded.name, reason))
            continue
        uploaded.content_type = content_type_for(uploaded.name)
        try:
            video = create_video(
                team=team, owner=request.user, api_key=key, uploaded_file=uploaded,
                title=numbered_title(title, index) if numbered else title, sha256=uploaded.sha256,
            )
        except OverQuota as error:
            refused.append((uploaded.name, str(error)))
            continue
        stored.append(video)
        used += video.size
    return stored


def create_video(*, team, owner, api_key, uploaded_file, title, sha256):
    """Save the file to storage, then the Video row and its relay task in one transaction. With a
    team storage limit, the limit is checked again in that transaction under the team's row lock
    (as a resumable upload's creation takes it), so two uploads at once cannot both pass it."""
    video = Video(team=team, owner=owner, api_key=api_key, title=title,
                  original_name=uploaded_file.name, content_type=uploaded_file.content_type,
                  size=uploaded_file.size, sha256=sha256)
    # The storage write happens before the transaction, never inside it.
    video.file.save(uploaded_file.name, uploaded_file, save=False)
    try:
        with transaction.atomic():
            if settings.MEMPORTAL_TEAM_STORAGE_BYTES:
                list(Team.objects.select_for_update().filter(pk=team.pk).values_list("pk", flat=True))
                used = team_bytes(team)
                if used + video.size > settings.MEMPORTAL_TEAM_STORAGE_BYTES:
                    raise OverQuota(over_quota(team, used))
            return tasks.perform(actions.queue_upload, video, owner)
    except Exception:
        video.file.delete(save=False)  # no row points at it: do not leave an orphan behind
        raise


def no_key_message(team):
    failing = team.api_keys.filter(is_active=True, failing_since__isnull=False).first()
    if failing:
        # last_error already says what happened (memories.ai's refusal and its code): say it once.
        reason = failing.last_error.strip()
        reason = reason if reason.endswith((".", "?", "!")) else f"{reason}."
        return (f"Uploads for {team} are paused: {reason} Ask your team admin to check the team's key "
                f"{failing.masked} in memories.ai's dashboard, then save the right key or re-enable it.")
    return f"{team} has no active memories.ai API key yet: ask your team admin to add one."


def read_only_message(video):
    return f"You are no longer a member of {video.team}: “{video}” is shown read-only."


def read_only(request, video):
    """The answer to acting on a video one may only see (a member removed from its team)."""
    messages.error(request, read_only_message(video))
    return redirect("video-detail", video.pk)


def act_on_video(request, video_id, action, done, refused):
    """Run one action on a video the user may act on, and say how it went."""
    video = get_object_or_404(Video.objects.visible_to(request.user).select_related("team"), pk=video_id)
    if not Video.objects.actionable_by(request.user).filter(pk=video.pk).exists():
        return read_only(request, video)
    if tasks.perform(action, video.pk, request.user):
        messages.success(request, done.format(video=video))
    else:
        messages.error(request, refused.format(video=video, state=video.get_status_display()))
    return redirect("video-detail", video.pk)


@require_POST
def video_retry(request, video_id):
    return act_on_video(request, video_id, actions.retry,
                        "“{video}” is queued again.", "“{video}” cannot be retried now ({state}).")


@require_POST
def video_cancel(request, video_id):
    return act_on_video(request, video_id, actions.cancel,
                        "“{video}” was cancelled.", "“{video}” can no longer be cancelled ({state}).")


@require_POST
def video_check_now(request, video_id):
    return act_on_video(request, video_id, actions.request_check,
                        "memories.ai will be asked again about “{video}” in a moment.",
                        "“{video}” is not waiting for memories.ai ({state}).")


@require_POST
def video_transcript_refresh(request, video_id):
    """Fetch the video's transcript and summaries again (a worker does, paced): this only enqueues."""
    if not transcripts.enabled():
        raise Http404
    video = get_object_or_404(Video.objects.visible_to(request.user).select_related("team"), pk=video_id)
    if not Video.objects.actionable_by(request.user).filter(pk=video.pk).exists():
        return read_only(request, video)
    if video.status != Video.Status.READY:
        messages.error(request, f"“{video}” is not ready yet: its transcript comes once memories.ai has made it.")
    elif transcripts.refresh(video):
        messages.success(request, f"The transcript and summary of “{video}” will be fetched again in a moment.")
    else:
        messages.info(request, f"The transcript and summary of “{video}” are being fetched already.")
    return redirect(reverse("video-detail", args=[video.pk]) + "#transcript")


@never_cache
def video_delete(request, video_id):
    video = get_object_or_404(Video.objects.visible_to(request.user).select_related("team"), pk=video_id)
    if not Video.objects.actionable_by(request.user).filter(pk=video.pk).exists():
        return read_only(request, video)
    if request.method != "POST":
        return render(request, "uploads/video_delete.html", {"video": video})
    tasks.enqueue(removal.delete_videos([video.pk], request.user).work)
    messages.success(request, f"“{video}” was deleted, here and at memories.ai.")
    return redirect("video-list")


@require_safe
@never_cache
def healthz(request):
    """For load balancers: 200 "ok", or 503 "unavailable" when this process's database does not
    answer or its storage cannot be reached; nothing else, to anyone. With the health token
    (`Authorization: Bearer …`) or as a superuser: the JSON details (uploads/health.py)."""
    state = health.essentials()
    if health.may_see_details(request, state.database_ok):
        answer = health.details(state)
        response = JsonResponse(answer, status=503 if answer["status"] == "fail" else 200,
                                json_dumps_params={"indent": 2})
    else:
        response = HttpResponse("unavailable" if state.failed else "ok", status=state.http_status,
                                content_type="text/plain")
    patch_vary_headers(response, ["Authorization"])
    return response


def bad_request(request, exception):
    """handler400: a request the portal could not read; the plain upload form's selection of too
    many files says so with the limit (the upload page's script refuses it before sending)."""
    chosen = isinstance(exception, TooManyFilesSent) and too_many_chosen(settings.MEMPORTAL_FILES_PER_SELECTION)
    return render(request, "400.html", {"too_many_chosen": chosen}, status=400)


def csrf_failure(request, reason=""):
    """CSRF_FAILURE_VIEW: a form sent without its valid token (an old tab, another tab's sign-in),
    in the portal's words; the reason goes only to the log (Django's csrf logger)."""
    return render(request, "403.html", {"csrf_failed": True}, status=403)
