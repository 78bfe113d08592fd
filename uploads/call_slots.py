"""The per-account slots of memories.ai's calls beyond upload: transcription and summary (1/s),
search (1/s) and chat (2/min). Each is a column of the account's UnderstandingSlot row, claimed
with a conditional UPDATE on the database's clock, as uploads/pacing.py claims the upload slot,
so any number of workers and web processes agree. Nothing here sleeps: a caller that finds its
slot taken learns when it frees (a worker hands its turn on with run_after; a web request tells
the user how long to wait).
"""

from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from .clock import database_time
from .models import UnderstandingSlot

TRANSCRIPT, SEARCH, CHAT = "next_at", "search_at", "chat_at"  # the slot's columns
MARGIN = 0.1  # seconds added to each interval for the time between the claim and memories.ai


def interval(call):
    """Seconds between two calls of `call` for one account (memories.ai's published limits)."""
    return {TRANSCRIPT: 1.0, SEARCH: settings.MEMPORTAL_SEARCH_INTERVAL_SECONDS,
            CHAT: settings.MEMPORTAL_CHAT_INTERVAL_SECONDS}[call] + MARGIN


def claim(account_id, call, seconds=None):
    """Take the account's `call` slot now; None when taken, else when it frees up."""
    try:
        with transaction.atomic():
            UnderstandingSlot.objects.get_or_create(account_id=account_id)
    except IntegrityError:  # two processes created it at once: it exists now
        pass
    held = interval(call) if seconds is None else seconds
    taken = UnderstandingSlot.objects.filter(account_id=account_id).filter(
        Q(**{f"{call}__isnull": True}) | Q(**{f"{call}__lte": database_time()})).update(**{call: database_time(held)})
    if taken:
        return None
    return free_at(account_id, call)


def free_at(account_id, call):
    return UnderstandingSlot.objects.values_list(call, flat=True).filter(account_id=account_id).first()


def push_back(account_id, call, seconds):
    """memories.ai said 0429: no call of this kind for the account for `seconds` (never sooner than
    already planned); returns when it frees."""
    later = database_time(seconds)
    UnderstandingSlot.objects.filter(account_id=account_id).update(**{call: Greatest(Coalesce(F(call), later), later)})
    return free_at(account_id, call)


def wait_seconds(when):
    """Whole seconds from now until `when` (at least 1), for "try again in N s"."""
    if when is None:
        return 1
    return max(1, int((when - timezone.now()) / timedelta(seconds=1) + 0.999))
