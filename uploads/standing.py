"""Where each video stands, in words: its state, and for a queued one its place in its queue and
when it should be sent ("3rd in Demo team's queue, about 2 min"), or why it waits.

A queued video is sent when its memories.ai account's upload slot is free and the account's
videos queued before it have gone (uploads/pacing.py: one slot per account, whichever teams use
it). The estimate is that slot's free time plus one slot per video ahead. `describe()` works out
every listed video from the columns with_standing() adds to the list's own query.
"""

from django.db.models import Case, DateTimeField, Exists, IntegerField, OuterRef, Q, Subquery, Value, When
from django.utils import timezone

from .clock import database_time
from .models import ApiKey, MemoriesAccount, RelayHold, Video
from .pacing import slot_seconds

S = Video.Status
NO_KEY = "Waiting for a working memories.ai API key: a team admin can add one."
HELD = "Waiting: an operator is fixing the portal's memories.ai settings."


class Count(Subquery):
    """The number of rows of a subquery, as a column of the outer query."""

    template = "(SELECT COUNT(*) FROM (%(subquery)s) _counted)"
    output_field = IntegerField()


def ordinal(number):
    if 10 <= number % 100 <= 20:
        return f"{number}th"
    return f"{number}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(number % 10, 'th') }"


def about(seconds):
    """A wait in words: "under a minute", "about 3 min", "about 2 h"."""
    if seconds < 60:
        return "under a minute"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"about {minutes} min"
    return f"about {round(minutes / 60)} h"


def with_standing(videos):
    """`videos` with what describe() needs, computed in their own query (no query per row, and
    the same queries whether any is queued or none): for a queued video its account (the team's
    usable key's), that account's upload slot and the account's videos queued ahead of it; for
    every row whether the operator holds the relays."""
    usable = ApiKey.objects.filter(team_id=OuterRef("team_id"), is_active=True, failing_since__isnull=True)
    account = Subquery(usable.order_by(*ApiKey._meta.ordering or ["pk"]).values("account_id")[:1])
    ahead = (Video.objects.alive()
             .filter(status=S.QUEUED, team__api_keys__account_id=OuterRef("standing_account"),
                     team__api_keys__is_active=True, team__api_keys__failing_since__isnull=True)
             .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=database_time()))
             .filter(Q(created_at__lt=OuterRef("created_at"))
                     | Q(created_at=OuterRef("created_at"), pk__lt=OuterRef("pk")))
             .order_by().values("pk").distinct())
    slot = Subquery(MemoriesAccount.objects.filter(pk=OuterRef("standing_account")).values("next_upload_at")[:1])
    queued = Q(status=S.QUEUED)
    return (videos
            .annotate(standing_account=Case(When(queued, then=account), default=None, output_field=IntegerField()))
            .annotate(standing_slot=Case(When(queued, then=slot), default=None, output_field=DateTimeField()),
                      standing_ahead=Case(When(queued, then=Count(ahead)), default=Value(0), output_field=IntegerField()),
                      standing_held=Exists(RelayHold.objects.filter(cleared_at__isnull=True))))


def _figures(videos):
    """(per video id: (account, slot, ahead), held) from with_standing()'s columns, or, for
    videos read without them (a list page: its sorted query stays lean, the figures are worked
    out for its 25 rows only), from one query of their own."""
    if all(hasattr(v, "standing_account") for v in videos):
        return ({v.pk: (v.standing_account, v.standing_slot, v.standing_ahead) for v in videos},
                any(v.standing_held for v in videos))
    rows = list(with_standing(Video.objects.filter(pk__in=[v.pk for v in videos])).values_list(
        "pk", "standing_account", "standing_slot", "standing_ahead", "standing_held"))
    return {pk: (account, slot, ahead) for pk, account, slot, ahead, _ in rows}, any(r[4] for r in rows)


def queued_line(video, figures, held, now):
    account_id, slot_at, ahead = figures.get(video.pk, (None, None, 0))
    if account_id is None:
        return NO_KEY
    if held:
        return HELD
    if video.next_attempt_at and video.next_attempt_at > now:
        tries = f"{video.attempts} attempt{'s' if video.attempts != 1 else ''} so far"
        return f"Trying again {about((video.next_attempt_at - now).total_seconds())} from now ({tries})."
    start = max(now, slot_at) if slot_at else now
    eta = (start - now).total_seconds() + ahead * slot_seconds()
    place = "Next" if ahead == 0 else ordinal(ahead + 1)
    when = "to be sent shortly" if eta < 5 else f"to be sent in {about(eta)}"
    return f"{place} in {video.team.name}'s queue, {when}."


def describe(videos):
    """{video id: {"status", "label", "line", "final"}} for these videos (their `team` selected)."""
    # Asked whether or not one is queued: a page costs the same queries whatever it shows.
    figures, held = _figures(videos) if videos else ({}, False)
    now = timezone.now()
    described = {}
    for video in videos:
        if video.status == S.QUEUED:
            line = queued_line(video, figures, held, now)
        elif video.status == S.SENDING:
            line = "Being sent to memories.ai now."
        elif video.status == S.PROCESSING:
            line = "memories.ai is processing it."
        else:
            line = ""
        described[video.pk] = {"status": video.status, "label": video.get_status_display(), "line": line,
                               "final": video.status not in (S.QUEUED, S.SENDING, S.PROCESSING)}
    return described
