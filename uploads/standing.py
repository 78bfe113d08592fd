"""Where each video stands, in words: its state, and for a queued one its place in its queue and
when it should be sent ("3rd in Demo team's queue, about 2 min"), or why it waits.

A queued video is sent when its memories.ai account's upload slot is free and the account's
videos queued before it have gone (uploads/pacing.py: one slot per account, whichever teams use
it). The estimate is that slot's free time plus one slot per video ahead. `describe()` works out
every listed video from the columns with_standing() adds to the list's own query; `standing()`
is the same for one video given as plain values (the live states feed reads rows, not models).
"""

from django.db import connections
from django.db.models import BooleanField, DateTimeField, IntegerField
from django.db.models.expressions import RawSQL
from django.utils import timezone

from .clock import database_time
from .models import ApiKey, MemoriesAccount, RelayHold, Video
from .pacing import slot_seconds

S = Video.Status
LABELS = dict(S.choices)
LIVE = (S.QUEUED, S.SENDING, S.PROCESSING)  # the states that still move on their own
MOVING = {S.SENDING: "Being sent to memories.ai now.", S.PROCESSING: "memories.ai is processing it."}
NO_KEY = "Waiting for a working memories.ai API key: a team admin can add one."
HELD = "Waiting: an operator is fixing the portal's memories.ai settings."
COLUMNS = ("standing_account", "standing_slot", "standing_ahead", "standing_held")
_SQL = {}  # per database vendor: with_standing()'s columns, written once


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


def _columns(using):
    """with_standing()'s columns as (SQL, params, output field), for the database `using`.

    Written as SQL once per database vendor, not as Subquery/OuterRef expressions: the ORM took
    longer to build and compile those nested subqueries, on every request, than the database took
    to run them (docs/benchmarks.md, "The video library"). The SQL names the outer query's video
    table, so it is for a query of videos (not one used as a subquery, where Django renames it)."""
    connection = connections[using]
    if connection.vendor not in _SQL:
        qn = connection.ops.quote_name
        video, key, account_table, hold = (qn(m._meta.db_table) for m in (Video, ApiKey, MemoriesAccount, RelayHold))
        now, now_params = Video.objects.none().query.get_compiler(using=using).compile(database_time())
        # The account of the team's usable key (one active key per team: at most one row).
        account = (f"(SELECT k.account_id FROM {key} k WHERE k.team_id = {video}.team_id AND k.is_active"
                   f" AND k.failing_since IS NULL LIMIT 1)")
        # The account's videos queued before this one that may go now, whichever team's key they use.
        ahead = (f"(SELECT COUNT(*) FROM {video} q WHERE q.deleted_at IS NULL AND q.status = %s"
                 f" AND (q.next_attempt_at IS NULL OR q.next_attempt_at <= {now})"
                 f" AND (q.created_at < {video}.created_at"
                 f" OR (q.created_at = {video}.created_at AND q.id < {video}.id))"
                 f" AND EXISTS (SELECT 1 FROM {key} qk WHERE qk.team_id = q.team_id AND qk.account_id = {account}"
                 f" AND qk.is_active AND qk.failing_since IS NULL))")
        queued = f"CASE WHEN {video}.status = %s THEN"
        _SQL[connection.vendor] = {
            "standing_account": (f"{queued} {account} ELSE NULL END", [S.QUEUED], IntegerField()),
            "standing_slot": (f"{queued} (SELECT a.next_upload_at FROM {account_table} a WHERE a.id = {account})"
                              " ELSE NULL END", [S.QUEUED], DateTimeField()),
            "standing_ahead": (f"{queued} {ahead} ELSE 0 END", [S.QUEUED, S.QUEUED, *now_params], IntegerField()),
            "standing_held": (f"EXISTS (SELECT 1 FROM {hold} h WHERE h.cleared_at IS NULL)", [], BooleanField()),
        }
    return _SQL[connection.vendor]


def with_standing(videos):
    """`videos` with what describe() needs, computed in their own query (no query per row, and
    the same queries whether any is queued or none): for a queued video its account (the team's
    usable key's), that account's upload slot and the account's videos queued ahead of it; for
    every row whether the operator holds the relays."""
    return videos.annotate(**{name: RawSQL(sql, params, output_field=field)
                              for name, (sql, params, field) in _columns(videos.db).items()})


def _figures(videos):
    """(per video id: (account, slot, ahead), held) from with_standing()'s columns, or, for
    videos read without them, from one query of their own."""
    if all(hasattr(v, "standing_account") for v in videos):
        return ({v.pk: (v.standing_account, v.standing_slot, v.standing_ahead) for v in videos},
                any(v.standing_held for v in videos))
    rows = list(with_standing(Video.objects.filter(pk__in=[v.pk for v in videos]).order_by())
                .values_list("pk", *COLUMNS))
    return {pk: (account, slot, ahead) for pk, account, slot, ahead, _ in rows}, any(r[4] for r in rows)


def queued_line(attempts, next_attempt_at, team_name, figures, held, now):
    account_id, slot_at, ahead = figures or (None, None, 0)
    if account_id is None:
        return NO_KEY
    if held:
        return HELD
    if next_attempt_at and next_attempt_at > now:
        tries = f"{attempts} attempt{'s' if attempts != 1 else ''} so far"
        return f"Trying again {about((next_attempt_at - now).total_seconds())} from now ({tries})."
    start = max(now, slot_at) if slot_at else now
    eta = (start - now).total_seconds() + ahead * slot_seconds()
    place = "Next" if ahead == 0 else ordinal(ahead + 1)
    when = "to be sent shortly" if eta < 5 else f"to be sent in {about(eta)}"
    return f"{place} in {team_name}'s queue, {when}."


def standing(status, attempts, next_attempt_at, team_name, figures, held, now):
    """{"status", "label", "line", "final"} of one video; `figures`: its (account, slot, ahead)."""
    if status == S.QUEUED:
        line = queued_line(attempts, next_attempt_at, team_name, figures, held, now)
    else:
        line = MOVING.get(status, "")
    return {"status": status, "label": LABELS.get(status, status), "line": line, "final": status not in LIVE}


def describe(videos):
    """{video id: {"status", "label", "line", "final"}} for these videos (their `team` selected)."""
    # Asked whether or not one is queued: a page costs the same queries whatever it shows.
    figures, held = _figures(videos) if videos else ({}, False)
    now = timezone.now()
    return {v.pk: standing(v.status, v.attempts, v.next_attempt_at, v.team.name if v.status == S.QUEUED else "",
                           figures.get(v.pk), held, now) for v in videos}
