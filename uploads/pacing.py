"""Pacing: memories.ai accepts one upload per minute per account, so each team has an upload slot.

The slot is a column on the team (`next_upload_at`), claimed with a conditional UPDATE, so any
number of relay workers on any number of machines agree on it. A relay that finds it taken waits
for its turn (after the team's videos queued before it) with run_after; nothing here sleeps.
"""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce, Greatest

from .clock import database_time
from .models import Team, Video


def slot_seconds():
    """One upload slot: the interval plus a margin (10 %, at most 1 s) for the time between the
    claim and the request reaching memories.ai."""
    interval = settings.MEMPORTAL_UPLOAD_INTERVAL_SECONDS
    return interval + min(1.0, interval * 0.1)


def claim_team_slot(team_id):
    """Take the team's upload slot now; return None if taken, else when the slot frees up.

    A conditional UPDATE decides, so several relay workers never start two uploads of one team
    closer than the interval.
    """
    # The database's clock, not this worker's: workers on several machines compare one time.
    taken = Team.objects.filter(pk=team_id).filter(
        Q(next_upload_at__isnull=True) | Q(next_upload_at__lte=database_time())
    ).update(next_upload_at=database_time(slot_seconds()))
    if taken:
        return None
    return Team.objects.values_list("next_upload_at", flat=True).get(pk=team_id)


def turn_of(video, slot_free_at):
    """When this waiting video should try for the slot: after the team's videos queued before it.

    Each waiting relay wakes near its own turn instead of all of them at every free slot, and
    the team's videos go out in the order they were uploaded.
    """
    ahead = (Video.objects.alive()
             .filter(team_id=video.team_id, status=Video.Status.QUEUED)
             .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=slot_free_at))
             .filter(Q(created_at__lt=video.created_at) | Q(created_at=video.created_at, pk__lt=video.pk))
             .count())
    return slot_free_at + timedelta(seconds=ahead * slot_seconds())


def push_back_team_slot(team_id):
    """memories.ai said 0429: hold all of the team's uploads back, longer each time."""
    with transaction.atomic():
        team = Team.objects.select_for_update().get(pk=team_id)
        level = min(team.upload_backoff_level + 1, 6)
        delay = settings.MEMPORTAL_UPLOAD_INTERVAL_SECONDS * (2 ** level)
        later = database_time(delay)  # the database's clock, as for the slot itself
        Team.objects.filter(pk=team_id).update(
            upload_backoff_level=level, next_upload_at=Greatest(Coalesce(F("next_upload_at"), later), later))
        return Team.objects.values_list("next_upload_at", flat=True).get(pk=team_id)
