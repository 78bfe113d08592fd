"""Asking memories.ai about videos (issue 14, point 2): which videos a question may be about, the
limits a question passes before it is sent, and the answer as it streams in, kept as it goes.

- A question is about 1 to MEMPORTAL_ASK_VIDEOS_MAX ready videos the user may see (`visible_to`),
  of one team, sent with one key to one place (family and namespace): memories.ai's chat takes
  one `unique_id`. A video with no namespace of its own is asked about only by its `video_no`.
- Before it is sent, under the team's row lock: the team's chat budget (questions per 24 hours),
  the cap on answers streaming at once (each holds a web thread), then the account's chat slot
  (2 a minute). Any of them says how long to wait (understanding_limits.Wait); nothing sleeps.
- The answer's frames are turned into the portal's own events (`events`): pieces of text, the
  cited moments (kept only for the conversation's videos, and rendered through `visible_to`
  again), then done or an error in words. The answer is saved when the stream ends, however it
  ends: the browser going away stops it, closes the connection to memories.ai and keeps what came.
"""

import logging

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from . import answers, call_slots, lifecycle, memories, transcripts, understanding
from .models import Conversation, Question, Team, Video
from .understanding_limits import BUSY, Wait, budget_or_wait, in_words, revealed, slot_or_wait, stream_or_wait

logger = logging.getLogger(__name__)
Q = Question.State
TITLE_LENGTH = 80
MOST_MOMENTS = 50  # cited moments kept per answer


GONE = ("Some of this conversation's videos are no longer yours to see, or were deleted or are not ready: "
        "memories.ai's session remembers them, so ask in a new conversation from a video's page.")


class NotAskable(Exception):
    """Why these videos cannot be asked about together, in words."""


def askable(user, video_ids):
    """The ready videos among `video_ids` the user may see, checked to go in one question."""
    most = settings.MEMPORTAL_ASK_VIDEOS_MAX
    ids = list(dict.fromkeys(video_ids))
    if not ids:
        raise NotAskable("Choose at least one video to ask about.")
    if len(ids) > most:
        raise NotAskable(f"A question can be about at most {most} videos: choose fewer.")
    videos = list(Video.objects.visible_to(user).filter(pk__in=ids).select_related("team", "api_key"))
    if len(videos) < len(ids):
        raise NotAskable("Some of these videos are not yours to ask about, or were deleted.")
    not_ready = [v for v in videos if v.status != Video.Status.READY or not v.video_no]
    if not_ready:
        raise NotAskable(f"“{not_ready[0].display_name}” is not ready yet: memories.ai can answer questions about a "
                         "video once it has finished processing it.")
    if len({v.team_id for v in videos}) > 1:
        raise NotAskable("Ask about the videos of one team at a time.")
    if len({(v.api_family, v.namespace, getattr(lifecycle.key_for(v), "pk", None)) for v in videos}) > 1:
        raise NotAskable("These videos were sent to memories.ai in different ways (another key or API version): "
                         "ask about them separately.")
    return videos


def may_ask(user, team):
    """A question uses the team's key, credits and budget: its members (and superusers) may ask;
    an owner who has left the team still sees their videos, read-only, and may not."""
    return user.is_superuser or Team.objects.of_member(user).filter(pk=team.pk).exists()


def not_a_member(team):
    return (f"You are no longer a member of {team.name}: a question uses its memories.ai key and budget, so a "
            "team admin must add you again first.")


def conversation_videos(conversation, user):
    """The conversation's videos the user may still see and ask about (ready, not deleted)."""
    return list(Video.objects.visible_to(user).filter(conversations=conversation, status=Video.Status.READY)
                .exclude(video_no="").select_related("team", "api_key"))


def ask(user, text, videos, conversation=None):
    """Record the question, past every limit; returns it (state answering). Raises Wait."""
    team = videos[0].team
    if not may_ask(user, team):
        raise NotAskable(not_a_member(team))
    key = lifecycle.key_for(videos[0])
    if key is None:
        raise Wait("Your team has no working memories.ai API key: a team admin can add one.")
    if not key.is_active:  # answers use credits: a key a team admin switched off spends none
        raise NotAskable(f"The memories.ai API key “{key.label}” these videos were sent with is switched off: "
                         "a team admin can switch it on again to ask about them.")
    with transaction.atomic():
        Team.objects.select_for_update().filter(pk=team.pk).first()  # one question of the team at a time here
        budget_or_wait(team)
        stream_or_wait()
        slot_or_wait(key.pacing_account_id(), call_slots.CHAT)
        if conversation is None:
            conversation = Conversation.objects.create(
                user=user, team=team, title=text[:TITLE_LENGTH], api_family=videos[0].api_family,
                namespace=videos[0].namespace)
            conversation.videos.set(videos)
        else:
            Conversation.objects.filter(pk=conversation.pk).update(updated_at=timezone.now())
        return Question.objects.create(conversation=conversation, team=team, text=text)


def send(question, videos):
    """Send the question to memories.ai: the stream of its answer, or None when memories.ai refused
    it before answering (the question then says why, and does not count against the budget)."""
    conversation = question.conversation
    key = lifecycle.key_for(videos[0])
    place = memories.Place.of(conversation.api_family, conversation.namespace)
    try:
        if key is None:
            raise memories.MemoriesError(memories.KEY, "the team has no memories.ai API key")
        return understanding.chat_stream(revealed(key, f"question {question.pk}"), place,
                                         [v.video_no for v in videos], question.text,
                                         session_id=conversation.session_id)
    except memories.MemoriesError as error:
        logger.info("memories.ai refused question %s: %s", question.pk, error)
        if error.rate_limited and key is not None:
            call_slots.push_back(key.pacing_account_id(), call_slots.CHAT, call_slots.interval(call_slots.CHAT))
        Question.objects.filter(pk=question.pk).update(state=Q.REFUSED, error=in_words(error, key)[:400],
                                                       answered_at=timezone.now())
        return None


class Answer:
    """The answer as the portal's events (dicts), each as soon as memories.ai sent its frame
    (`_events`). The question is saved by `close()`, which the end of the events calls and the
    streaming response calls when the browser goes away, whether or not a piece was sent. Never
    from a generator's `finally`: that also runs when the garbage collector finalises an answer
    nobody closed, at whatever moment, on a database connection that may be in the middle of
    another query. An answer nobody closes keeps its question "being answered" until the clock
    ends it (understanding_limits.end_dead_answers); its connection to memories.ai closes with it."""

    def __init__(self, question, stream, videos):
        self.question, self.stream, self.videos = question, stream, videos
        self.text, self.moments = [], []
        self.state, self.error = Q.FAILED, "the page was closed before the answer was complete"
        self._events, self._closed = _events(self), False

    def __iter__(self):
        return self

    def __next__(self):
        try:
            return next(self._events)
        except StopIteration:
            self.close()
            raise

    def close(self):
        if self._closed:
            return
        self._closed = True
        self._events.close()
        self.stream.close()  # the connection to memories.ai, whatever ended the answer
        kept = Question.objects.filter(pk=self.question.pk, state=Q.ANSWERING)
        try:
            kept.update(answer=whole("".join(self.text)), moments=self.moments, state=self.state,
                        error=self.error[:400], answered_at=timezone.now())
            if self.stream.session_id:
                Conversation.objects.filter(pk=self.question.conversation_id).update(
                    session_id=self.stream.session_id[:200])
        except Exception:  # never left "being answered": it would count against the cap for minutes
            logger.exception("question %s: its answer could not be saved", self.question.pk)
            kept.update(state=Q.FAILED, error="the answer could not be saved", answered_at=timezone.now())


def events(question, stream, videos):
    """The answer to `question` from `stream` (an Answer: iterate it, close it)."""
    return Answer(question, stream, videos)


def _events(answer):
    question, stream, videos = answer.question, answer.stream, answer.videos
    by_no = {v.video_no: v for v in videos}
    key = lifecycle.key_for(videos[0])
    try:
        yield {"type": "started", "conversation": str(question.conversation_id), "question": question.pk,
               "url": reverse("conversation", args=[question.conversation_id])}
        for frame in stream:
            if isinstance(frame, answers.Content) and frame.text:
                answer.text.append(frame.text)
                yield {"type": "content", "text": frame.text}
            elif isinstance(frame, answers.Thinking) and frame.title:
                yield {"type": "thinking", "title": frame.title}
            elif isinstance(frame, answers.Refs):
                cited = merge(answer.moments, [m for m in moments_of(frame.refs) if m["video_no"] in by_no])
                if cited:
                    yield {"type": "moments", "moments": rendered(cited, by_no)}
            elif isinstance(frame, answers.Error):  # key trouble, credits, busy: as before the answer
                if frame.error.rate_limited and key is not None:
                    call_slots.push_back(key.pacing_account_id(), call_slots.CHAT, call_slots.interval(call_slots.CHAT))
                # The portal's own words when the stream broke or ran too long (no code of memories.ai's).
                answer.error = in_words(frame.error, key) if frame.code else f"{frame.message}: ask again in a moment."
                yield {"type": "error", "message": answer.error}
                return
            elif isinstance(frame, answers.Done):
                answer.state, answer.error = Q.ANSWERED, ""
                yield {"type": "done"}
                return
    finally:
        stream.close()  # no database here (see Answer): only the socket


def whole(text):
    """`text` as it can be stored: a character memories.ai sent in two halves (an emoji's two
    UTF-16 surrogates in two frames, each escaped on its own) joined again, a lone half replaced."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def moments_of(refs):
    """The cited moments of an answer's Refs, as kept: [{video_no, start, end, kind, text}]."""
    return [{"video_no": item.video_no or ref.video_no, "start": item.start, "end": item.end, "kind": item.kind,
             "text": item.text} for ref in refs for item in ref.items]


def merge(kept, cited):
    """Add `cited` to `kept` (up to MOST_MOMENTS), one moment per video and second it starts at
    (the link a user follows): what was heard and what was seen from then (memories.ai cites both,
    as two items) become one moment whose text is both and whose end is the later. Returns the
    moments that are new."""
    def second(m):
        return m["video_no"], answers.number(m["start"])

    at = {second(m): m for m in kept}
    new = []
    for moment in cited:
        same = at.get(second(moment))
        if same is None:
            if len(kept) < MOST_MOMENTS:
                at[second(moment)] = moment
                kept.append(moment)
                new.append(moment)
            continue
        if moment["text"] and moment["text"] not in (same["text"] or ""):
            same["text"] = f"{same['text']} · {moment['text']}" if same["text"] else moment["text"]
        ends = [e for e in (answers.number(same["end"]), answers.number(moment["end"])) if e is not None]
        same["end"] = max(ends) if ends else same["end"]
    return new


def rendered(moments, videos_by_no):
    """Kept moments as the page shows them, only those of `videos_by_no` (videos the user may see
    now): a link to the video page at that second, and whether it can seek (a stored copy); the
    kept line of that time when memories.ai gave no text: what is said for a moment heard, what is
    seen for one seen (a keyframe, a caption), else the other."""
    wanted = [m for m in moments if m.get("video_no") in videos_by_no]
    kept = transcripts.kept_lines([videos_by_no[m["video_no"]].pk for m in wanted])
    shown = []
    for moment in wanted:
        video, start = videos_by_no[moment["video_no"]], answers.number(moment.get("start"))
        href = reverse("video-detail", args=[video.pk]) + (f"?t={start:g}" if start is not None else "")
        lines, scenes = kept.get(video.pk) or ([], [])
        first, then = (lines, scenes) if moment.get("kind") == "audio_ts" else (scenes, lines)
        said = moment.get("text") or transcripts.line_at(first, start) or transcripts.line_at(then, start)
        shown.append({"video": str(video.pk), "title": video.display_name, "start": start,
                      "clock": transcripts.moment_clock(start), "href": href, "seekable": bool(video.file),
                      "text": said})
    return shown

