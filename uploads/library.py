"""The video library: "My videos", "Team videos" for team admins, the live states feed, renaming
and acting on many videos at once.

Sort, filters, search and page are all in the query string (a view can be bookmarked and
shared); a page costs the same few queries whatever its number or the table's size
(bench/library.py). Every query of videos starts from Video.objects.visible_to(user).
"""

import json
import uuid

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Case, Exists, IntegerField, OuterRef, Value, When
from django.db.models.functions import Coalesce, Lower, NullIf
from django.http import Http404, HttpResponseBadRequest, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from . import actions, removal, standing, tasks, views
from .models import Membership, Team, Video
from .templatetags.library import duration

S = Video.Status
PER_PAGE = 25
MOST_IDS = 1000  # one live-update request; a page lists PER_PAGE
# What a row of the list reads (templatetags/library.py's video_rows, standing.describe); any other
# field would cost a query per row.
ROW_FIELDS = ("title", "original_name", "thumbnail", "size", "duration_seconds", "created_at", "status", "attempts",
              "next_attempt_at", "team__name", "owner__username")
STATE_ORDER = Case(*(When(status=s, then=Value(i)) for i, s in enumerate(
    (S.QUEUED, S.SENDING, S.PROCESSING, S.READY, S.FAILED, S.REJECTED, S.CANCELLED))), output_field=IntegerField())
SORTS = {  # the `sort` parameter: its label and its ordering
    "newest": ("Newest first", ("-created_at", "-pk")),
    "oldest": ("Oldest first", ("created_at", "pk")),
    "name": ("Name, A to Z", (Lower("name").asc(), "pk")),
    "name-desc": ("Name, Z to A", (Lower("name").desc(), "-pk")),
    "largest": ("Largest first", ("-size", "-pk")),
    "smallest": ("Smallest first", ("size", "pk")),
    "state": ("State", (STATE_ORDER.asc(), "-created_at", "-pk")),
}


class LibraryFilter(forms.Form):
    """What the list shows, from the query string; a value it does not know is left out."""

    q = forms.CharField(label="Search", required=False, max_length=200,
                        widget=forms.TextInput(attrs={"type": "search", "placeholder": "Title or file name"}))
    state = forms.ChoiceField(label="State", required=False, choices=[("", "Any state"), *S.choices])
    team = forms.TypedChoiceField(label="Team", required=False, coerce=int, empty_value=None)
    member = forms.TypedChoiceField(label="Member", required=False, coerce=int, empty_value=None)
    sort = forms.ChoiceField(label="Sort by", required=False, choices=[(k, v[0]) for k, v in SORTS.items()])

    def __init__(self, data, *, teams, members=None):
        super().__init__(data)
        self.fields["team"].choices = [("", "All teams"), *((t.pk, t.name) for t in teams)]
        if members is None:
            del self.fields["member"]
        else:
            self.fields["member"].choices = [("", "Everyone"), *((u.pk, u.get_username()) for u in members)]
        self.teams = teams

    def chosen(self):
        """The valid choices as a dict (an invalid field is dropped, not the whole filter)."""
        self.is_valid()
        return {name: self.cleaned_data.get(name) for name in self.fields if name not in self.errors}


def filtered(videos, chosen):
    videos = videos.annotate(name=Coalesce(NullIf("title", Value("")), "original_name"))
    if chosen.get("q"):
        videos = videos.filter(name__icontains=chosen["q"].strip())
    if chosen.get("state"):
        videos = videos.filter(status=chosen["state"])
    if chosen.get("team"):
        videos = videos.filter(team_id=chosen["team"])
    if chosen.get("member"):
        videos = videos.filter(owner_id=chosen["member"])
    return videos.order_by(*SORTS[chosen.get("sort") or "newest"][1])


def library_page(request, videos, *, teams, members=None, scope):
    form = LibraryFilter(request.GET, teams=teams, members=members)
    chosen = form.chosen()
    sort = chosen.get("sort") or "newest"
    # The page's ids are sorted on their own (narrow rows: a deep page sorts no wide ones), then one
    # query reads the page's rows with what they show, their queue figures and whether the user may
    # act on them (the subqueries computed for the 25 rows only, not for every row sorted).
    page = Paginator(filtered(videos, chosen).values("pk"), PER_PAGE).get_page(request.GET.get("page"))
    rows = []
    if page.paginator.count:
        may_act = Exists(Video.objects.actionable_by(request.user).filter(pk=OuterRef("pk")))
        rows = list(filtered(standing.with_standing(videos.filter(pk__in=page.object_list))
                             .select_related("team", "owner").only(*ROW_FIELDS).annotate(can_act=may_act),
                             {"sort": sort}))
    described = standing.describe(rows)
    for video in rows:
        video.standing = described[video.pk]
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "uploads/video_list.html", {
        "form": form, "page": page, "videos": rows, "scope": scope,
        "filtered": any(chosen.get(k) for k in ("q", "state", "team", "member")),
        "query": query.urlencode(), "sort": sort, "sorts": column_sorts(query, sort),
        "administers_a_team": scope == "team" or (  # team admins are staff: a member costs no query
            request.user.is_staff and Team.objects.administered_by(request.user).exists()),
        "can_act": {v.pk for v in rows if v.can_act},
        "here": request.get_full_path(),
    })


COLUMNS = {"name": ("name", "name-desc"), "size": ("largest", "smallest"), "date": ("newest", "oldest"),
           "state": ("state", "state")}
ARIA_SORT = {"name": "ascending", "name-desc": "descending", "newest": "descending", "oldest": "ascending",
             "largest": "descending", "smallest": "ascending", "state": "ascending"}


def column_sorts(query, current):
    """Per sortable column: the link that sorts by it (again: the other way) and its aria-sort."""
    sorts = {}
    for column, (first, second) in COLUMNS.items():
        target = second if current == first else first
        link = query.copy()
        link["sort"] = target
        sorts[column] = {"link": "?" + link.urlencode(),
                         "aria": ARIA_SORT[current] if current in (first, second) else ""}
    return sorts


@require_GET
@never_cache
def my_videos(request):
    videos = Video.objects.visible_to(request.user).filter(owner=request.user)
    teams = list(Team.objects.filter(pk__in=videos.values("team_id")).order_by("name"))
    return library_page(request, videos, teams=teams, scope="mine")


@require_GET
@never_cache
def team_videos(request):
    """The videos of the teams the user administers (a member gets a 404: the page is not theirs)."""
    teams = list(Team.objects.administered_by(request.user).order_by("name"))
    if not teams:
        raise Http404
    videos = Video.objects.visible_to(request.user).filter(team__in=teams)
    users = {m.user_id: m.user for m in Membership.objects.filter(team__in=teams).select_related("user")}
    members = sorted(users.values(), key=lambda u: u.get_username().lower())
    return library_page(request, videos, teams=teams, members=members, scope="team")


ANY_ID = str(uuid.UUID(int=0))
FEED_FIELDS = ("pk", "status", "attempts", "next_attempt_at", "thumbnail", "duration_seconds", "team__name",
               *standing.COLUMNS)  # in the order video_states() unpacks them


@require_POST
@never_cache
def video_states(request):
    """Where the listed videos stand, for the live update (static/memportal/live.js): a JSON body
    {"ids": [...]} (any number of ids up to MOST_IDS, in the body, never the query string)."""
    try:
        ids = [uuid.UUID(str(value)) for value in json.loads(request.body or b"{}").get("ids", [])[:MOST_IDS]]
    except (ValueError, TypeError, AttributeError):
        return HttpResponseBadRequest("Send {\"ids\": [video ids]} as JSON.")
    # Tuples, not models (building 100 models cost more than the query), the queue figures columns
    # of the same query.
    rows = list(standing.with_standing(Video.objects.visible_to(request.user).filter(pk__in=ids))
                .values_list(*FEED_FIELDS))
    held, now = bool(rows and rows[0][-1]), timezone.now()
    thumbnail_url = reverse("video-thumbnail", args=[ANY_ID])  # once: a reverse per row costs more than the query
    videos = {}
    for pk, status, attempts, next_attempt_at, thumbnail, seconds, team_name, *figures, _held in rows:
        pk = str(pk)
        videos[pk] = {**standing.standing(status, attempts, next_attempt_at, team_name, figures, held, now),
                      "thumbnail": thumbnail_url.replace(ANY_ID, pk) if thumbnail else "",
                      "duration": duration(seconds)}
    return JsonResponse({"videos": videos})


BULK = {  # action: (verb for the confirmation, done, refused, action or None for delete)
    "retry": ("Retry", "{n} queued again", "{n} could not be retried (only failed or rejected videos with their "
              "file can be)", actions.retry),
    "cancel": ("Cancel", "{n} cancelled", "{n} could not be cancelled (only queued videos can be)", actions.cancel),
    "delete": ("Delete", "{n} deleted, here and at memories.ai", "", None),
}


def count_of(n):
    return f"{n} video{'s' if n != 1 else ''}"


def back_to(request, default="video-list"):
    target = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(target, {request.get_host()}, require_https=request.is_secure()):
        return redirect(target)
    return redirect(default)


@require_POST
def bulk_action(request):
    """Retry, cancel or delete the chosen videos: first a page that names how many, then done."""
    action = request.POST.get("action")
    if action not in BULK:
        return HttpResponseBadRequest("Choose retry, cancel or delete.")
    try:
        ids = {uuid.UUID(value) for value in request.POST.getlist("video")[:MOST_IDS]}
    except ValueError:
        return HttpResponseBadRequest("A chosen video is not a video.")
    videos = list(Video.objects.actionable_by(request.user).filter(pk__in=ids).select_related("team"))
    if not videos:
        messages.error(request, "Choose at least one of your videos first.")
        return back_to(request)
    verb, done, refused, run = BULK[action]
    if request.POST.get("confirmed") != "yes":
        return render(request, "uploads/bulk_confirm.html", {
            "action": action, "verb": verb, "videos": videos, "count": count_of(len(videos)),
            "next": request.POST.get("next", ""), "unknown": len(ids) - len(videos)})
    if run is None:
        tasks.enqueue(removal.delete_videos([v.pk for v in videos], request.user).work)
        succeeded = len(videos)
    else:
        succeeded = sum(1 for v in videos if tasks.perform(run, v.pk, request.user))
    if succeeded:
        messages.success(request, done.format(n=count_of(succeeded)) + ".")
    if len(videos) - succeeded:
        messages.error(request, refused.format(n=count_of(len(videos) - succeeded)) + ".")
    return back_to(request)


class RenameForm(forms.Form):
    title = forms.CharField(label="Title", max_length=200, required=False,
                            help_text="Leave it empty to show the file name.")


@require_POST
def rename(request, video_id):
    video = get_object_or_404(Video.objects.visible_to(request.user), pk=video_id)
    if not Video.objects.actionable_by(request.user).filter(pk=video.pk).exists():
        messages.error(request, views.read_only_message(video))
        return back_to(request)
    form = RenameForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"The title was not changed: {form.errors['title'][0]}")
        return back_to(request)
    title = " ".join(form.cleaned_data["title"].split())
    renamed = tasks.perform(actions.rename, video.pk, title, request.user)
    messages.success(request, f"Renamed to “{renamed.display_name}”.")
    return back_to(request)
