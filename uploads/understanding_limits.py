"""What holds a search or a question back, said in words (issue 14, point 4): the account's
pacing slots (uploads/call_slots.py), each team's chat budget (questions per 24 hours), the cap
on answers streaming at once (each holds a web thread), and memories.ai's refusals worded as
the upload path words them. Nothing here sleeps: a user who must wait is told for how long.
"""

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from . import call_slots, memories, understanding
from .crypto import ApiKeyDecryptionError
from .models import Question

logger = logging.getLogger(__name__)

STREAM_STALE = timedelta(minutes=10)  # an answer "being answered" this long ago died with its process
DAY = timedelta(hours=1) * 24
STREAMS_LOCK = 0x6D656D706F7274  # "memport": the advisory lock of the count of streams (PostgreSQL)
BUSY = "memories.ai is busy for your team's account right now: try again in a few seconds."


@dataclass(frozen=True)
class Wait(Exception):
    """The user must wait `seconds` before trying again, for the reason `message` says."""

    message: str
    seconds: int | None = None


def slot_or_wait(account_id, call):
    """Claim the account's `call` slot, or raise Wait saying how long until it frees."""
    free_at = call_slots.claim(account_id, call)
    if free_at is None:
        return
    seconds = call_slots.wait_seconds(free_at)
    if call == call_slots.CHAT:
        raise Wait(f"memories.ai answers {60 / call_slots.interval(call):.0f} questions a minute "
                   f"for your team's account, and that is used up: ask again in {seconds} s.", seconds)
    raise Wait(f"memories.ai allows {every(settings.MEMPORTAL_SEARCH_INTERVAL_SECONDS)} for your team's "
               f"account, and another search is running: searching again in {seconds} s.", seconds)


def every(seconds):
    """The search interval in words: "one search a second", "one search every 3 seconds"."""
    if seconds <= 0:
        return "one search at a time"
    if seconds == 1:
        return "one search a second"
    return f"one search every {seconds:g} seconds"


def budget_or_wait(team):
    """Raise Wait when the team has asked its MEMPORTAL_CHAT_QUESTIONS_PER_DAY questions in the
    last 24 hours (questions memories.ai refused before answering do not count)."""
    allowed = settings.MEMPORTAL_CHAT_QUESTIONS_PER_DAY
    since = timezone.now() - DAY
    asked = Question.objects.filter(team=team, asked_at__gt=since).exclude(state=Question.State.REFUSED)
    if allowed > 0 and asked.count() < allowed:
        return
    oldest = asked.order_by("asked_at").values_list("asked_at", flat=True).first()
    if allowed <= 0 or oldest is None:
        raise Wait(f"Asking questions is switched off for {team.name}: the chat budget is 0 a day.")
    frees = oldest + DAY
    raise Wait(f"{team.name} has used its chat budget of {allowed} question{'s' if allowed != 1 else ''} in 24 hours "
               f"(answers use memories.ai credits): the next one can be asked {when(frees)}.",
               call_slots.wait_seconds(frees))


def when(moment):
    """ "at 14:05 UTC" today, "on Fri 4 Dec at 06:01 UTC" another day (the user's zone)."""
    local, today = timezone.localtime(moment), timezone.localdate()
    if local.date() == today:
        return f"at {local:%H:%M %Z}"
    return f"on {local:%a} {local.day} {local:%b} at {local:%H:%M %Z}"


def answering_now():
    return Question.objects.filter(state=Question.State.ANSWERING, asked_at__gt=timezone.now() - STREAM_STALE)


def end_dead_answers():
    """Questions still "being answered" past STREAM_STALE (their web process died mid-answer, or
    the row could not be saved): failed, saying so, so their conversation stops saying "still
    coming in". Returns how many."""
    return Question.objects.filter(state=Question.State.ANSWERING, asked_at__lte=timezone.now() - STREAM_STALE).update(
        state=Question.State.FAILED, error="the answer stopped: the portal was restarted while it came",
        answered_at=timezone.now())


def stream_or_wait():
    """Raise Wait when MEMPORTAL_ASK_STREAMS_MAX answers are streaming now. Inside the caller's
    transaction, one question at a time across the portal is counted: on PostgreSQL under a
    transaction-level advisory lock (two teams' questions, each under its own team's row lock,
    would otherwise both see one place left and take it); SQLite's IMMEDIATE transactions already
    take one writer at a time."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [STREAMS_LOCK])
    if answering_now().count() >= settings.MEMPORTAL_ASK_STREAMS_MAX:
        raise Wait(f"The portal is answering as many questions at once as it takes "
                   f"({settings.MEMPORTAL_ASK_STREAMS_MAX}): ask again in 30 s.", 30)


def revealed(key, doing):
    """The key's secret for a call (`doing`: what for, in the log). A key the portal cannot decrypt
    (its MEMPORTAL_FERNET_KEYS) is the operator's to fix: logged, and a settings error for the user."""
    try:
        return key.reveal()
    except ApiKeyDecryptionError as error:
        logger.error("%s: %s", doing, error)
        raise memories.MemoriesError(memories.CONFIG, str(error)) from None


def in_words(error: memories.MemoriesError, key=None) -> str:
    """memories.ai's refusal for the user. Key trouble and 0402 (credits) mark the key failing,
    as the upload path does, so a team admin sees it on the key; the words never hold the key."""
    if error.kind == memories.KEY:
        if key is not None:
            key.mark_failing(str(error))
        if understanding.out_of_credits(error):
            return f"{error}: a team admin can add credits at memories.ai, or another key, and then ask again."
        return f"{error}: a team admin can fix the team's memories.ai API key."
    if error.rate_limited:
        return BUSY
    if error.kind == memories.CONFIG:
        return "The portal's memories.ai settings are wrong: an operator can fix them."
    if error.kind == memories.REJECT:
        return f"{error}."
    return "memories.ai could not be reached or answered strangely: try again in a moment."
