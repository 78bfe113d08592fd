"""Pacing: memories.ai accepts one upload per minute per account, and all keys of one account
share that limit, so each memories.ai account has one upload slot, whichever teams its keys
belong to (two teams given the same key share it; models/teams.py groups keys by fingerprint).

The slot is a column on the account (`next_upload_at`), claimed with a conditional UPDATE on the
database's clock, so any number of relay workers on any number of machines agree on it. A relay
that finds it taken waits for its turn (after the account's videos queued before it) with
run_after; nothing here sleeps.
"""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce, Greatest

from .clock import database_time
from .models import MemoriesAccount, Video


def slot_seconds():
    """One upload slot: the interval plus a margin (10 %, at most 1 s) for the time between the
    claim and the request reaching memories.ai."""
    interval = settings.MEMPORTAL_UPLOAD_INTERVAL_SECONDS
    return interval + min(1.0, interval * 0.1)


def claim_account_slot(account_id):
    """Take the account's upload slot now; return None if taken, else when the slot frees up.

    A conditional UPDATE decides, so several relay workers never start two uploads of one
    account closer than the interval.
    """
    # The database's clock, not this worker's: workers on several machines compare one time.
    taken = MemoriesAccount.objects.filter(pk=account_id).filter(
        Q(next_upload_at__isnull=True) | Q(next_upload_at__lte=database_time())
    ).update(next_upload_at=database_time(slot_seconds()))
    if taken:
        return None
    return MemoriesAccount.objects.values_list("next_upload_at", flat=True).get(pk=account_id)


def waiting_for(account_id):
    """Queued videos that will be sent with a key of this account (their team's active key, while
    it works: a team whose key fails waits for a fix, not for a slot)."""
    return (Video.objects.alive()
            .filter(status=Video.Status.QUEUED, team__api_keys__account_id=account_id,
                    team__api_keys__is_active=True, team__api_keys__failing_since__isnull=True))


def turn_of(video, account_id, slot_free_at):
    """When this waiting video should try for the slot: after the account's videos queued before it.

    Each waiting relay wakes near its own turn instead of all of them at every free slot, and
    the account's videos go out in the order they were uploaded, whichever team uploaded them.
    """
    ahead = (waiting_for(account_id)
             .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=slot_free_at))
             .filter(Q(created_at__lt=video.created_at) | Q(created_at=video.created_at, pk__lt=video.pk))
             .distinct().count())
    return slot_free_at + timedelta(seconds=ahead * slot_seconds())


def push_back_account_slot(account_id):
    """memories.ai said 0429: hold all of the account's uploads back, longer each time."""
    with transaction.atomic():
        account = MemoriesAccount.objects.select_for_update().get(pk=account_id)
        level = min(account.upload_backoff_level + 1, 6)
        delay = settings.MEMPORTAL_UPLOAD_INTERVAL_SECONDS * (2 ** level)
        later = database_time(delay)  # the database's clock, as for the slot itself
        MemoriesAccount.objects.filter(pk=account_id).update(
            upload_backoff_level=level, next_upload_at=Greatest(Coalesce(F("next_upload_at"), later), later))
        return MemoriesAccount.objects.values_list("next_upload_at", flat=True).get(pk=account_id)


def clear_backoff(account_id):
    """An accepted upload: the account's 0429 backoff starts again from nothing."""
    MemoriesAccount.objects.filter(pk=account_id, upload_backoff_level__gt=0).update(upload_backoff_level=0)
