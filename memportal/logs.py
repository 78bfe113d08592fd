"""The portal's log lines: one event a line (JSON by default), with the request it belongs to, and
without callback tokens or forged lines.

One line, one event: `MEMPORTAL_LOG_FORMAT=json` (the default, for production's log collector)
writes each record as a JSON object on one line (time in UTC, level, logger, message, request_id,
and in a task its name, task row and video; a traceback is one field); `plain` writes the
classic text line for a person reading a terminal (`make demo`). Both come from the standard
library's logging: the handlers of settings.LOGGING carry the two filters below and one of the two
formatters.

The request id: memportal.middleware.RequestIdMiddleware gives each request one (the proxy's
X-Request-ID, or a new one) and binds it here; uploads/tasks.py passes it with every task a request
enqueues and binds it again while the task runs, so a relay's lines carry the id of the upload
that started it. The context lives in a contextvar: each thread (each request, the worker's
loop) has its own.

Redaction: the callback URL is the only thing that authenticates memories.ai's status callbacks,
so its token is a secret, and so is a password-reset link's (as good as the password for an
hour): Django's request logger ("Bad Request: /callbacks/memories/<token>/"),
gunicorn's access and error logs and a traceback would otherwise write it down. All go through
clean(), which also escapes control characters: a value that came from outside (a callback's
status, a file name, a path) with a newline in it would otherwise write a line of its own that
looks like the portal's.
"""

import functools
import inspect
import json
import logging
import os
import re
import traceback
import uuid
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

from django.dispatch import receiver
from django.tasks.signals import task_finished, task_started
from gunicorn.glogging import Logger

CALLBACK_TOKEN = re.compile(r"(/callbacks/memories/)[^/\s\"?]+")
# A password-reset link's token (Django then swaps it for "set-password" in the session).
RESET_TOKEN = re.compile(r"(/accounts/reset/[^/\s\"?]+/)(?!set-password)[^/\s\"?]+")
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# What json.dumps(ensure_ascii=False) leaves as they are, and a line splitter may still break on.
JSON_LINE_BREAKERS = re.compile(r"[\x7f-\x9f\u2028\u2029]")
# A request id from the proxy is taken as it is only when it is this (memportal/middleware.py).
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
CONTEXT_FIELDS = ("request_id", "task", "task_id", "video_id")


def redact(text: str) -> str:
    return RESET_TOKEN.sub(r"\1…", CALLBACK_TOKEN.sub(r"\1…", text))


def escape_controls(text: str) -> str:
    """Control characters as visible escapes (a newline becomes \\x0a): one record, one line."""
    return CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 256 else f"\\u{ord(m.group()):04x}",
                       text)


def clean(text: str) -> str:
    return escape_controls(redact(text))


# -- the context of a line: which request, which task ------------------------------------------

_context: ContextVar[dict] = ContextVar("memportal_log_context", default={})  # never mutated: replaced


def new_request_id() -> str:
    return uuid.uuid4().hex


def current_request_id() -> str | None:
    return _context.get().get("request_id")


def bind(**fields):
    """Add fields to this thread's log context (a request's start: no block to scope it); a
    token for unbind()."""
    return _context.set({**_context.get(), **{name: str(value) for name, value in fields.items() if value}})


def unbind(token):
    _context.reset(token)


def clear():
    """Forget the context (a request's end, a task's end)."""
    _context.set({})


@contextmanager
def bound(**fields):
    token = bind(**fields)
    try:
        yield
    finally:
        unbind(token)


def in_task_context(func):
    """Under every @task (uploads/tasks.py): while it runs, the task's lines carry the request id
    it was enqueued with (the keyword argument uploads.tasks.enqueue() adds, taken off here, so
    the positional arguments stay what uploads.tasks._live_tokens reads; a row without one gets a
    new id), its name and, when its first argument is one, its video."""
    takes_video = next(iter(inspect.signature(func).parameters), None) == "video_id"

    @functools.wraps(func)
    def run(*args, request_id="", **kwargs):
        video_id = (args[0] if args else kwargs.get("video_id")) if takes_video else None
        request_id = request_id or current_request_id() or new_request_id()  # a direct call: the caller's
        with bound(request_id=request_id, task=func.__name__, video_id=video_id):
            return func(*args, **kwargs)

    return run


@receiver(task_started, dispatch_uid="memportal.logs.bind_task_row")
def bind_task_row(sender, task_result, **kwargs):
    """The worker's task row, for the lines of the task it starts and the worker's own line at its
    end (written after in_task_context has returned)."""
    clear()
    bind(task_id=task_result.id, task=task_result.task.name, request_id=task_result.kwargs.get("request_id"))


@receiver(task_finished, dispatch_uid="memportal.logs.forget_task_row")
def forget_task_row(sender, task_result, **kwargs):
    clear()


class ContextFilter(logging.Filter):
    """Installed on the log handlers (settings.LOGGING): stamps each record with the request id
    and the task of the thread that logged it, unless the record brought its own (gunicorn's
    access line brings the request id of the response it tells)."""

    def filter(self, record):
        context = _context.get()
        for name in CONTEXT_FIELDS:
            if getattr(record, name, None) is None:
                setattr(record, name, context.get(name))
        return True


class RedactingFilter(logging.Filter):
    """Installed on the log handlers (settings.LOGGING): rewrites every record's message (a
    traceback, formatted apart from the message, is redacted by the formatters)."""

    def filter(self, record):
        message = record.getMessage()
        cleaned = clean(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True


# -- the two line formats -----------------------------------------------------------------------

def utc_iso(created: float) -> str:
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """One JSON object a line: {"time", "level", "logger", "message", "request_id", then "task",
    "task_id", "video_id" where known, a record's own "fields" (gunicorn's access line), and
    "exception" (the whole traceback, one string)}. Readable text: not ASCII-escaped, but every
    character a line splitter breaks on is escaped."""

    def format(self, record):
        event = {"time": utc_iso(record.created), "level": record.levelname, "logger": record.name,
                 "message": clean(record.getMessage()), "request_id": getattr(record, "request_id", None)}
        for name in CONTEXT_FIELDS[1:]:
            if value := getattr(record, name, None):
                event[name] = value
        for name, value in (getattr(record, "fields", None) or {}).items():
            event.setdefault(name, clean(value) if isinstance(value, str) else value)
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(self.formatException(record.exc_info))
        if record.exc_text:
            event["exception"] = redact(record.exc_text)  # another handler may have formatted it
        if record.stack_info:
            event["stack"] = redact(self.formatStack(record.stack_info))
        line = json.dumps(event, ensure_ascii=False, default=str)
        return JSON_LINE_BREAKERS.sub(lambda m: f"\\u{ord(m.group()):04x}", line)


class PlainFormatter(logging.Formatter):
    """The text line for a terminal: time, level, logger, message, and the request's short id
    and the task in brackets."""

    def __init__(self, *args, **kwargs):
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def formatMessage(self, record):
        context = [f"req {record.request_id[:8]}" if getattr(record, "request_id", None) else "",
                   getattr(record, "task", None) or "",
                   f"video {record.video_id[:8]}" if getattr(record, "video_id", None) else ""]
        context = " ".join(part for part in context if part)
        return super().formatMessage(record) + (f" [{context}]" if context else "")

    def format(self, record):
        # The traceback too (it may have been formatted, unredacted, by another handler already).
        return redact(super().format(record))


def json_lines() -> bool:
    """MEMPORTAL_LOG_FORMAT, as gunicorn's master reads it (before any Django setting is loaded;
    settings.py refuses a value other than json or plain)."""
    return (os.environ.get("MEMPORTAL_LOG_FORMAT") or "json").strip().lower() != "plain"


# -- gunicorn -----------------------------------------------------------------------------------

class GunicornLogger(Logger):
    """gunicorn --logger-class: the access log line without callback tokens, as JSON with the
    request id the portal answered (its X-Request-ID header) and the request's parts as fields;
    gunicorn's own lines (its error log) redacted and, with json, JSON too."""

    def setup(self, cfg):
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                if json_lines():
                    handler.setFormatter(JsonFormatter())
                if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                    handler.addFilter(RedactingFilter())

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        # The path shows up in several atoms (r, U, {raw_uri}e, {path_info}e, ...): redact all.
        return {name: clean(value) if isinstance(value, str) else value for name, value in atoms.items()}

    def access(self, resp, req, environ, request_time):
        if not json_lines():
            return super().access(resp, req, environ, request_time)
        if not self.access_log_enabled:
            return
        atoms = self.atoms(resp, req, environ, request_time)
        fields = {"method": atoms["m"], "path": atoms["U"], "query": atoms["q"] or None,
                  "status": int(atoms["s"]) if str(atoms["s"]).isdigit() else atoms["s"], "bytes": atoms["B"],
                  "duration_ms": atoms["M"], "remote_addr": atoms["h"], "user_agent": atoms["a"]}
        request_id = atoms.get("{x-request-id}o")
        try:
            self.access_log.info(self.cfg.access_log_format, self.atoms_wrapper_class(atoms),
                                 extra={"request_id": request_id, "fields": fields})
        except Exception:
            self.error(traceback.format_exc())
