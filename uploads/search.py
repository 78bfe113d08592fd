"""Search (issue 14, point 1): a text query over the ready videos a user may see, in one team at
a time, answered with moments (a video, a time range, the transcript line said then).

What the user may see decides what is asked (docs/understanding.md, "Search"):
- a member's search passes the `video_nos` of their ready videos, at most 100 a call; a team
  admin searching the team's videos asks the team's namespace once where the videos have one;
  a video with no namespace of its own is only ever asked for by its `video_no`;
- videos uploaded with different keys or into different places are asked separately: one call
  per key, place and hundred videos. A web request makes one call (memories.ai allows one search
  a second per account, and nothing here sleeps): further calls are the next batches, a link
  away, each on its own turn of the account's slot;
- every moment is kept only if its video is one of those the call was about, visible to the
  user: a video of another team, or one the user may not see, is dropped before rendering.
"""

from dataclasses import dataclass, field
from itertools import groupby

from django import forms
from django.http import Http404
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from . import call_slots, memories, transcripts, understanding
from .models import ApiKey, Membership, Team, Video
from .understanding_limits import Wait, in_words, revealed, slot_or_wait

S = Video.Status
VISUAL, SPEECH = "visual", "speech"
SEARCH_TYPES = {VISUAL: "BY_CLIP", SPEECH: "BY_AUDIO"}
MINE, TEAM = "mine", "team"
NOT_READY = (S.QUEUED, S.SENDING, S.PROCESSING)
TOP_K = 20


@dataclass
class Call:
    """One search call: the key it is made with, the place it asks, the video_nos it names (None:
    the place's whole namespace) and the videos its moments may name, by video_no."""

    key: ApiKey
    place: memories.Place
    video_nos: list[str] | None
    videos: dict[str, Video]


@dataclass
class Result:
    video: Video
    start: float | None
    end: float | None
    line: str  # what is said then, from the kept transcript
    href: str
    seen: str = ""  # what is seen then, for a search by what is seen

    @property
    def times(self):
        if self.start is None:
            return ""
        end = f"–{transcripts.moment_clock(self.end)}" if self.end is not None and self.end > self.start else ""
        return transcripts.moment_clock(self.start) + end


@dataclass
class Outcome:
    results: list[Result] = field(default_factory=list)
    batch: int = 0
    batches: int = 0
    searched: int = 0  # ready videos asked about in this batch
    ready: int = 0  # ready videos in the scope
    not_ready: int = 0  # videos in the scope memories.ai has not finished
    problem: str = ""
    wait: Wait | None = None

    @property
    def next_batch(self):
        return self.batch + 1 if self.batch + 1 < self.batches and not self.problem and not self.wait else None


def teams_of(user):
    return Team.objects.all() if user.is_superuser else Team.objects.of_member(user)


def administers(user, team):
    return user.is_superuser or Membership.objects.filter(user=user, team=team, role=Membership.Role.ADMIN).exists()


def in_scope(user, team, scope):
    """The videos of `team` the user may see (`visible_to`), only their own unless `scope` is TEAM
    and they administer the team."""
    videos = Video.objects.visible_to(user).filter(team=team)
    if scope != TEAM or not administers(user, team):
        videos = videos.filter(owner=user)
    return videos


def calls_for(user, team, scope, ready):
    """The calls that search `ready` (the scope's ready videos), in a fixed order."""
    keys = {k.pk: k for k in ApiKey.objects.select_related("account").filter(
        pk__in={v.api_key_id for v in ready if v.api_key_id})}
    fallback = team.usable_key()

    def group(video):
        key = keys.get(video.api_key_id) or fallback
        return (key.pk if key else 0, video.api_family, video.namespace)

    whole_namespace = scope == TEAM and administers(user, team)
    calls = []
    for (key_id, family, namespace), members in groupby(sorted(ready, key=group), key=group):  # (a stable sort)
        members = list(members)
        key = keys.get(key_id) or fallback
        if key is None:
            continue
        place = memories.Place.of(family, namespace)
        by_no = {v.video_no: v for v in members}
        if whole_namespace and place.scoped():
            calls.append(Call(key, place, None, by_no))
            continue
        nos = list(by_no)  # newest first (`run`): the first batch holds the latest videos
        for start in range(0, len(nos), understanding.MAX_VIDEO_NOS):
            chunk = nos[start:start + understanding.MAX_VIDEO_NOS]
            calls.append(Call(key, place, chunk, {no: by_no[no] for no in chunk}))
    return calls


def run(user, team, scope, by, query, batch=0):
    """Search batch `batch` (one call) of what `user` may see of `team`."""
    videos = in_scope(user, team, scope)
    ready = list(videos.filter(status=S.READY).exclude(video_no="").select_related("team").only(
        "pk", "title", "original_name", "thumbnail", "video_no", "api_key_id", "api_family", "namespace",
        "file", "team__name").order_by("-created_at", "-pk"))
    outcome = Outcome(ready=len(ready), not_ready=videos.filter(status__in=NOT_READY).count(), batch=batch)
    calls = calls_for(user, team, scope, ready)
    outcome.batches = len(calls)
    if ready and not calls:
        outcome.problem = "Your team has no working memories.ai API key: a team admin can add one."
    if not 0 <= batch < len(calls):
        if calls:
            parts = f"{len(calls)} part{'s' if len(calls) > 1 else ''}"
            outcome.problem = f"This search has {parts}: there is no part {batch + 1}."
        return outcome
    call = calls[batch]
    outcome.searched = len(call.videos)
    try:
        slot_or_wait(call.key.pacing_account_id(), call_slots.SEARCH)
        moments = understanding.search(revealed(call.key, f"search of team {team.pk}"), call.place, query,
                                       search_type=SEARCH_TYPES[by], video_nos=call.video_nos, top_k=TOP_K)
    except Wait as wait:
        outcome.wait = wait
        return outcome
    except memories.MemoriesError as error:
        if error.rate_limited:
            seconds = call_slots.wait_seconds(call_slots.push_back(
                call.key.pacing_account_id(), call_slots.SEARCH, 2 * call_slots.interval(call_slots.SEARCH)))
            outcome.wait = Wait(f"memories.ai is busy for your team's account: searching again in {seconds} s.",
                                seconds)
        else:
            outcome.problem = in_words(error, call.key)
        return outcome
    outcome.results = results_of(moments, call.videos, seen=by == VISUAL)
    return outcome


def results_of(moments, videos, seen=False):
    """The moments whose video the call was about (any other is dropped), with the line of the
    video's kept transcript said at the moment, and (`seen`) the line of what is seen then."""
    kept = [(m, videos[m.video_no]) for m in moments if m.video_no in videos]
    kept_lines = transcripts.kept_lines([v.pk for _, v in kept])
    results = []
    for moment, video in kept:
        href = reverse("video-detail", args=[video.pk])
        if moment.start is not None:
            href += f"?t={moment.start:g}"
        said, scenes = kept_lines.get(video.pk) or ([], [])
        results.append(Result(video, moment.start, moment.end, transcripts.line_at(said, moment.start, moment.end),
                              href, transcripts.line_at(scenes, moment.start, moment.end) if seen else ""))
    return results


class SearchForm(forms.Form):
    q = forms.CharField(label="Search for", max_length=200, strip=True, error_messages={
        "required": "Type what to search for.", "max_length": "A search can be at most 200 characters long."})
    team = forms.ModelChoiceField(queryset=Team.objects.none(), empty_label=None, required=False, error_messages={
        "invalid_choice": "That is not a team of yours: choose one of the list."})
    scope = forms.ChoiceField(label="Videos", choices=[(MINE, "My videos"), (TEAM, "My team's videos")],
                              required=False)
    by = forms.ChoiceField(label="Search by", choices=[(VISUAL, "What is seen and said"), (SPEECH, "What is said")],
                           required=False)
    batch = forms.IntegerField(min_value=0, required=False, widget=forms.HiddenInput)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["team"].queryset = teams_of(user)


@never_cache
@require_GET
def page(request):
    if not understanding_enabled():
        raise Http404("Search is switched off")
    teams = teams_of(request.user)
    form = SearchForm(request.GET or None, user=request.user)
    context = {"form": form, "teams": teams, "outcome": None}
    if not teams.exists():
        context["no_team"] = True
    elif form.is_valid():
        data = form.cleaned_data
        team = data["team"] or teams.first()
        scope = data["scope"] or MINE
        context.update(team=team, scope=scope, team_admin=administers(request.user, team),
                       outcome=run(request.user, team, scope, data["by"] or VISUAL, data["q"], data["batch"] or 0))
        if context["outcome"].next_batch is not None:
            query = request.GET.copy()
            query["batch"] = context["outcome"].next_batch
            context["next_url"] = f"{request.path}?{query.urlencode()}"
    context["admin_teams"] = [t.pk for t in teams if administers(request.user, t)]
    return render(request, "uploads/search.html", context)


def understanding_enabled():
    return transcripts.enabled()
