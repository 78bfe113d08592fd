"""The pages of asking (issue 14, point 2): the question box's POST, which streams the answer to a
page that asked with `Accept: text/event-stream` (static/memportal/ask.js) and otherwise waits for
it and shows the conversation; a user's conversations, each reopened with its follow-up box; and
the page that asks about videos chosen on the list.

The stream is the portal's own server-sent events (uploads/asking.py decides them), relayed as
memories.ai sends its frames: no buffering (`X-Accel-Buffering: no` for nginx), no compression,
and when the browser goes away the WSGI server closes the response, which closes the stream and
its connection to memories.ai. Each stream holds a web thread while it lasts: their number is
capped (MEMPORTAL_ASK_STREAMS_MAX).
"""

import json
import uuid
from contextlib import closing

from django.conf import settings
from django.contrib import messages
from django.http import Http404, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from . import asking, transcripts
from .models import Conversation, Question, Video
from .understanding_limits import Wait

MOST_QUESTION = 2000  # characters
DRAFT = "ask_draft"  # the session's question a refusal sent back to the box (without JavaScript)


def switched_on():
    if not transcripts.enabled():
        raise Http404("Asking is switched off")


@never_cache
@require_POST
def ask(request):
    """Ask a question about `video` ids, or a follow-up in `conversation`."""
    switched_on()
    streamed = "text/event-stream" in request.headers.get("Accept", "")
    text = request.POST.get("question", "").replace("\r\n", "\n").strip()  # a browser sends a newline as CRLF
    conversation = None
    try:
        if not text:
            raise asking.NotAskable("Type a question first.")
        if len(text) > MOST_QUESTION:
            raise asking.NotAskable(f"A question can be at most {MOST_QUESTION} characters long.")
        if request.POST.get("conversation"):
            conversation = get_object_or_404(Conversation, pk=_uuid(request.POST["conversation"]), user=request.user)
            videos = asking.conversation_videos(conversation, request.user)
            if len(videos) < conversation.videos.count():  # memories.ai's session remembers them all
                raise asking.NotAskable(asking.GONE)
        else:
            videos = asking.askable(request.user, [_uuid(v) for v in request.POST.getlist("video")])
        question = asking.ask(request.user, text, videos, conversation)
    except asking.NotAskable as refusal:
        return _refused(request, streamed, str(refusal), 400)
    except Wait as wait:
        return _refused(request, streamed, wait.message, 429, wait.seconds)
    stream = asking.send(question, videos)
    if stream is None:  # memories.ai refused it: busy (429, try again) or key trouble and the like (502)
        question.refresh_from_db()
        busy = question.error == asking.BUSY
        return _refused(request, streamed, question.error, 429 if busy else 502, 30 if busy else None,
                        conversation=question.conversation)
    answer = asking.events(question, stream, videos)
    if not streamed:
        with closing(answer):
            for _ in answer:
                pass
        return redirect("conversation", question.conversation_id)
    response = StreamingHttpResponse(_ServerSent(answer), content_type="text/event-stream; charset=utf-8")
    response["Cache-Control"] = "no-cache, no-store"
    response["X-Accel-Buffering"] = "no"  # nginx passes each event on as it comes
    return response


class _ServerSent:
    """The answer's events as server-sent events. Not a generator: closing it (the WSGI server
    does when the browser goes away) closes the answer, which closes memories.ai's stream, even
    before its first piece. JSON with ASCII escapes: half of a character memories.ai sent in two
    frames is a valid `\\ud83d` here, joined again by the page, where UTF-8 could not encode it."""

    def __init__(self, answer):
        self.answer = answer

    def __iter__(self):
        return self

    def __next__(self):
        return b"data: " + json.dumps(next(self.answer)).encode("ascii") + b"\n\n"

    def close(self):
        self.answer.close()


def _refused(request, streamed, message, status, retry_after=None, conversation=None):
    if streamed:
        response = JsonResponse({"message": message, "retry_after": retry_after,
                                 "conversation": str(conversation.pk) if conversation else None,
                                 "url": reverse("conversation", args=[conversation.pk]) if conversation else None},
                                status=status)
        if retry_after:
            response["Retry-After"] = str(retry_after)
        return response
    messages.error(request, message)
    request.session[DRAFT] = request.POST.get("question", "")[:MOST_QUESTION]  # the box has it again: nothing lost
    if conversation is not None:
        return redirect("conversation", conversation.pk)
    back = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return redirect(back)
    return redirect("conversations")


def _uuid(value):
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise asking.NotAskable("That is not a video or conversation of yours.") from None


@never_cache
@require_GET
def conversations(request):
    switched_on()
    rows = (Conversation.objects.filter(user=request.user).select_related("team").order_by("-updated_at")
            .prefetch_related("videos"))[:100]
    return render(request, "uploads/conversations.html", {"conversations": rows})


@never_cache
@require_GET
def conversation(request, conversation_id):
    switched_on()
    conversation = get_object_or_404(Conversation.objects.select_related("team"), pk=conversation_id,
                                     user=request.user)
    seen = list(Video.objects.visible_to(request.user).filter(conversations=conversation))
    by_no = {v.video_no: v for v in seen if v.video_no}
    questions = [{"question": q, "moments": asking.rendered(q.moments, by_no)} for q in conversation.questions.all()]
    askable = asking.conversation_videos(conversation, request.user)
    whole = len(seen) == conversation.videos.count()  # else an answer may tell of a video no longer theirs
    member = asking.may_ask(request.user, conversation.team)
    return render(request, "uploads/conversation.html", {
        "conversation": conversation, "videos": seen, "questions": questions, "whole": whole,
        "can_ask": whole and len(askable) == len(seen) and member,
        "gone": asking.GONE if member else f"You are no longer a member of {conversation.team.name}: you can read "
                                           "this conversation, not ask in it.",
        "answering": any(q["question"].state == Question.State.ANSWERING for q in questions),
        **ask_box(request, askable, conversation)})


@never_cache
@require_http_methods(["GET", "POST"])
def ask_about(request):
    """The list's "Ask about selected" (a POST of the chosen rows), or the same page again by its
    link (GET, `?video=` each, where a refused question without JavaScript comes back to): a
    question box for those videos. Nothing is changed."""
    switched_on()
    back = reverse("video-list")
    chosen = request.POST.getlist("video") if request.method == "POST" else request.GET.getlist("video")
    try:
        videos = asking.askable(request.user, [_uuid(v) for v in chosen])
    except asking.NotAskable as refusal:
        messages.error(request, str(refusal))
        return redirect(back)
    again = reverse("ask-about") + "?" + urlencode([("video", str(v.pk)) for v in videos])
    return render(request, "uploads/ask_about.html", {"videos": videos, **ask_box(request, videos, next_url=again)})


def ask_box(request, videos, conversation=None, next_url=None):
    """The context of templates/uploads/_ask.html: `next_url` is where a refusal without
    JavaScript comes back to (this page), `draft` the question it sent back."""
    return {"ask": {"videos": [] if conversation else videos, "conversation": conversation,
                    "budget": settings.MEMPORTAL_CHAT_QUESTIONS_PER_DAY, "next": next_url or request.get_full_path(),
                    "many": len(videos) > 1, "draft": request.session.pop(DRAFT, "")}}


def for_video_page(request, video):
    """The video page's Ask section ({} when switched off or the video is not ready)."""
    if (not transcripts.enabled() or video.status != Video.Status.READY or not video.video_no
            or not asking.may_ask(request.user, video.team)):
        return {}
    past = Conversation.objects.filter(user=request.user, videos=video).order_by("-updated_at")[:5]
    return {"past_conversations": list(past), **ask_box(request, [video])}
